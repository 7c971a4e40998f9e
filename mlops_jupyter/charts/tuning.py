"""A tuning study's pictures: the optimization history with its running best, parallel coordinates
of the parameters coloured by the metric, the parameters' importances, and the metric against each
parameter (Optuna's plots, in our chart language). Builders take plain data: trials as dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import Chart
from .compare import parallel_coordinates, param_scatter
from .explain import global_importance
from .spec import HEIGHT, PALETTE, finite, frame

# a trial: {"number": int, "state": "complete" | "pruned" | "fail" | "running", "value": float | None,
#           "params": {name: value}}
Trial = Mapping[str, Any]
STATE_COLORS = {"complete": PALETTE[0], "pruned": "#8a8a8a", "fail": PALETTE[2]}


def history(trials: Sequence[Trial], metric: str, maximize: bool, title: str | None = None, width: int = 520,
            height: int = 220) -> Chart:
    """Each finished trial's value by trial number, and the best so far as a step line."""
    points = [{"trial": int(t["number"]), "value": float(t["value"]), "state": "complete"}
              for t in trials if t.get("state") == "complete" and finite(t.get("value"))]
    best: list[dict[str, Any]] = []
    current = None
    for p in sorted(points, key=lambda p: p["trial"]):
        if current is None or (p["value"] > current if maximize else p["value"] < current):
            current = p["value"]
        best.append({"trial": p["trial"], "best": current})
    last = max((int(t["number"]) for t in trials), default=0)
    axis: dict[str, Any] = {"format": "d", "tickMinStep": 1}
    if last <= 10:  # a whole number on every tick (no 0.5 written as "1")
        axis["values"] = list(range(0, max(last, 1) + 1))
    x = {"field": "trial", "type": "quantitative", "title": "trial",
         "scale": {"domain": [0, max(last, 1)], "nice": False}, "axis": axis}
    y_scale: dict[str, Any] = {"zero": False, "nice": True, "padding": 8}
    values = {p["value"] for p in points}
    if len(values) == 1:  # one value: a range around it, so the axis has ticks and the dot a place
        (v,) = values
        half = abs(v) * 0.1 or 1.0
        y_scale["domain"] = [v - half, v + half]
    layers = [
        {"data": {"values": points}, "mark": {"type": "point", "filled": True, "size": 40, "opacity": 0.75,
                                              "color": PALETTE[0]},
         "encoding": {"x": x, "y": {"field": "value", "type": "quantitative", "title": metric, "scale": y_scale},
                      "tooltip": [{"field": "trial", "type": "quantitative"},
                                  {"field": "value", "type": "quantitative", "title": metric, "format": ".6~g"}]}},
        {"data": {"values": best}, "mark": {"type": "line", "interpolate": "step-after", "color": PALETTE[1],
                                            "strokeWidth": 2},
         "encoding": {"x": x, "y": {"field": "best", "type": "quantitative", "scale": y_scale, "title": metric},
                      "tooltip": [{"field": "trial", "type": "quantitative"},
                                  {"field": "best", "type": "quantitative", "title": "best so far",
                                   "format": ".6~g"}]}},
    ]
    n_done = len(points)
    others = len(trials) - n_done
    sub = f"{n_done} finished trial(s)" + (f", {others} pruned, failed or running (not shown)" if others else "")
    spec = frame({"width": width, "height": height, "layer": layers},
                 title=title or f"optimization history: {metric} ({'higher' if maximize else 'lower'} is better)",
                 subtitle=f"dots: trials; line: best so far. {sub}", kind="tuning.history")
    spec["usermeta"]["mlops"].update(metric=metric, maximize=maximize, trials=n_done, best=best[-1]["best"] if best
                                     else None)
    return Chart(spec)


def _run_points(trials: Sequence[Trial], metric: str) -> list[tuple[str, Mapping[str, Any], Mapping[str, float]]]:
    return [(f"trial {t['number']}", t.get("params") or {}, {metric: float(t["value"])})
            for t in trials if t.get("state") == "complete" and finite(t.get("value"))]


def parallel(trials: Sequence[Trial], metric: str, maximize: bool, params: Sequence[str] | None = None) -> Chart:
    """One line per finished trial through an axis per parameter and the metric, coloured by it."""
    return parallel_coordinates(_run_points(trials, metric), metric, params,
                                title=f"parameters and {metric} (finished trials)", color_by_metric=True,
                                higher_is_better=maximize)


def slices(trials: Sequence[Trial], metric: str, params: Sequence[str] | None = None) -> Chart:
    """The metric against each parameter, one panel each (Optuna's slice plot)."""
    return param_scatter(_run_points(trials, metric), metric, params, title=f"{metric} against each parameter",
                         single_color=True, height=HEIGHT)


def importances(values: Mapping[str, float], metric: str, evaluator: str) -> Chart:
    """How much each parameter matters to the metric (Optuna's importance evaluator)."""
    names = list(values)
    return global_importance(names, [float(values[n]) for n in names], measure=f"importance for {metric} ({evaluator})",
                             title="parameter importances", value_title="importance", label_title="parameter")
