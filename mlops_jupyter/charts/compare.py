"""Runs side by side: parallel coordinates over params and a metric, and one scatter of the metric
against each param (what MLflow's compare and Optuna's plots show)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from . import Chart
from .spec import HEIGHT, PALETTE, color, finite, frame, lower_is_better

# (run label, params, metrics) for each run
RunPoint = tuple[str, Mapping[str, Any], Mapping[str, float]]
MAX_RUNS_COLOURED = 10  # more runs than colours: lines are coloured by the metric instead


def _is_number(v: Any) -> bool:
    return finite(v) or (isinstance(v, str) and _as_float(v) is not None)


def _as_float(v: Any) -> float | None:
    if finite(v):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _label(v: float) -> str:
    return f"{v:.4g}"


def varying_params(runs: Sequence[RunPoint]) -> list[str]:
    """The params that differ between *runs* (a param equal everywhere tells nothing)."""
    keys = sorted({k for _, p, _ in runs for k in p})
    return [k for k in keys if len({repr(p.get(k)) for _, p, _ in runs}) > 1]


def parallel_coordinates(runs: Sequence[RunPoint], metric: str, params: Sequence[str] | None = None,
                         title: str | None = None, width: int | None = None, height: int = 240,
                         color_by_metric: bool = False, higher_is_better: bool | None = None) -> Chart:
    """One line per run through an axis per param and a last axis for *metric*; numeric axes run
    from their lowest to highest value, categorical ones list their values. Lines take one colour
    per run, or (more runs than colours, or *color_by_metric*) a colour for the metric's value,
    the best brightest (*higher_is_better*: else read from the metric's name)."""
    params = list(params) if params is not None else varying_params(runs)
    dims = [*params, metric]
    width = width or min(900, max(300, 150 * len(dims)))
    rows: list[dict[str, Any]] = []
    ticks: list[dict[str, Any]] = []
    for d in dims:
        raw = [(label, (m.get(d) if d == metric else p.get(d))) for label, p, m in runs]
        present = [(label, v) for label, v in raw if v is not None]
        numeric = present and all(_is_number(v) for _, v in present)
        if numeric:
            vals = {label: _as_float(v) for label, v in present}
            lo, hi = min(vals.values()), max(vals.values())
            log = d != metric and lo > 0 and hi / lo > 100  # learning rates and the like: spread on a log axis
            f = math.log10 if log else (lambda v: v)
            span = f(hi) - f(lo)
            for label, v in vals.items():
                rows.append({"run": label, "dim": d, "pos": 0.5 if span == 0 else (f(v) - f(lo)) / span,
                             "value": _label(v)})
            mid = math.sqrt(lo * hi) if log else lo + (hi - lo) / 2
            for pos, v in ((0.0, lo), (0.5, mid), (1.0, hi)) if span else ((0.5, lo),):
                ticks.append({"dim": d, "pos": pos, "text": _label(v) + (" (log)" if log and pos == 0.5 else "")})
        else:
            cats = sorted({str(v) for _, v in present})
            n = len(cats)
            where = {c: (0.5 if n == 1 else i / (n - 1)) for i, c in enumerate(cats)}
            for label, v in present:
                rows.append({"run": label, "dim": d, "pos": where[str(v)], "value": str(v)})
            ticks.extend({"dim": d, "pos": where[c], "text": c[:18]} for c in cats)
    labels = [label for label, _, _ in runs]
    x = {"field": "dim", "type": "nominal", "sort": dims, "title": "params and metric",
         "axis": {"title": None, "orient": "top", "labelAngle": 0, "domain": False, "ticks": False, "grid": False,
                  "labelFontWeight": "bold", "labelLimit": 140, "labelPadding": 22}}
    y = {"field": "pos", "type": "quantitative", "axis": None, "scale": {"domain": [0, 1], "nice": False},
         "title": "position on each axis"}
    metric_values = {label: _as_float(m.get(metric)) for label, _, m in runs}
    for row in rows:
        row["metric"] = metric_values.get(row["run"])
    if len(labels) <= MAX_RUNS_COLOURED and not color_by_metric:
        col: dict[str, Any] = color(labels)
    else:
        lower = lower_is_better(metric) if higher_is_better is None else not higher_is_better
        col = {"field": "metric", "type": "quantitative", "title": metric,
               "scale": {"scheme": "viridis", "reverse": lower}, "legend": {"type": "gradient"}}
    quantitative = col.get("type") == "quantitative"  # a gradient legend, drawn from the filled points
    layers = [
        {"data": {"values": [{"dim": d} for d in dims]}, "mark": {"type": "rule", "color": "#888", "opacity": 0.6},
         "encoding": {"x": x}},
        {"mark": {"type": "line", "strokeWidth": 2, "opacity": 0.85},
         "encoding": {"x": x, "y": y, "color": {**col, "legend": None} if quantitative else col, "detail": {"field": "run", "type": "nominal"},
                      "tooltip": [{"field": "run", "type": "nominal"}, {"field": "dim", "type": "nominal", "title": "axis"},
                                  {"field": "value", "type": "nominal"}]}},
        {"mark": {"type": "point", "filled": True, "size": 30},
         "encoding": {"x": x, "y": y, "color": col if quantitative else {**col, "legend": None},
                      "tooltip": [{"field": "run", "type": "nominal"}, {"field": "dim", "type": "nominal", "title": "axis"},
                                  {"field": "value", "type": "nominal"}]}},
    ]
    # each axis's lowest value written under it, its highest over it (clear of the lines that meet
    # there), values between beside it; grey: legible on a light and a dark theme
    for test, mark in (("datum.pos >= 1", {"align": "center", "baseline": "bottom", "dy": -6}),
                       ("datum.pos <= 0", {"align": "center", "baseline": "top", "dy": 6}),
                       ("datum.pos > 0 && datum.pos < 1", {"align": "left", "baseline": "middle", "dx": 5})):
        layers.append({"data": {"values": ticks}, "transform": [{"filter": test}],
                       "mark": {"type": "text", "fontSize": 10, "color": "#8a8a8a", **mark},
                       "encoding": {"x": x, "y": y, "text": {"field": "text"}}})
    spec = frame({"data": {"values": rows}, "width": width, "height": height, "layer": layers,
                  **({"resolve": {"legend": {"color": "independent"}}} if quantitative else {})},
                 title=title or f"params and {metric}", kind="parallel")
    spec["usermeta"]["mlops"].update(metric=metric, dims=dims, runs=labels)
    return Chart(spec)


def param_scatter(runs: Sequence[RunPoint], metric: str, params: Sequence[str] | None = None,
                  title: str | None = None, columns: int = 3, width: int = 220, height: int = HEIGHT,
                  single_color: bool = False) -> Chart:
    """*metric* against each param, one panel per param, one colour per run (or one colour for
    all: a study's many trials); numeric params spanning more than two orders of magnitude
    (learning rates) on a log axis."""
    params = list(params) if params is not None else varying_params(runs)
    labels = [label for label, _, _ in runs]
    col = {"value": PALETTE[0]} if single_color else color(labels, symbol="circle")
    panels = []
    rows = []
    for label, p, m in runs:
        y = _as_float(m.get(metric))
        if y is None:
            continue
        for k in params:
            v = p.get(k)
            if v is None:
                continue
            rows.append({"run": label, "param": k, "x": _as_float(v), "x_text": str(v), "metric": y})
    for k in params:
        prow = [r for r in rows if r["param"] == k]
        numeric = prow and all(r["x"] is not None for r in prow)
        if numeric:
            xs = [r["x"] for r in prow]
            scale: dict[str, Any] = {"zero": False, "nice": True, "padding": 12}
            axis: dict[str, Any] = {}
            if min(xs) > 0 and max(xs) / min(xs) > 100:
                scale["type"] = "log"
                # ticks and gridlines at the powers of ten only (a log axis draws one per minor tick)
                lo, hi = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
                axis = {"values": [10.0 ** e for e in range(lo, hi + 1)], "format": "~g"}
            elif all(float(x).is_integer() for x in xs):  # a whole-number param: whole-number ticks
                axis = {"tickMinStep": 1, "format": "d"}
            xe: dict[str, Any] = {"field": "x", "type": "quantitative", "title": k, "scale": scale,
                                  **({"axis": axis} if axis else {})}
        else:
            xe = {"field": "x_text", "type": "nominal", "title": k, "axis": {"labelAngle": 0, "labelLimit": 90}}
        panels.append({
            "transform": [{"filter": {"field": "param", "equal": k}}], "width": width, "height": height,
            "mark": {"type": "point", "filled": True, "size": 70, "opacity": 0.9},
            "encoding": {"x": xe, "y": {"field": "metric", "type": "quantitative", "title": metric,
                                        "scale": {"zero": False, "nice": True, "padding": 12}},
                         "color": col,
                         "tooltip": [{"field": "run", "type": "nominal"}, {"field": "x_text", "type": "nominal", "title": k},
                                     {"field": "metric", "type": "quantitative", "title": metric, "format": ".6~g"}]},
        })
    body: dict[str, Any] = {"data": {"values": rows}}
    if not panels:
        body.update(mark={"type": "text", "color": "#8a8a8a"}, encoding={"text": {"value": f"no run has both a varying param and {metric}"}})
    elif len(panels) == 1:
        body.update(panels[0])
    else:
        body.update(concat=panels, columns=max(1, min(columns, len(panels))),
                    resolve={"scale": {"color": "shared", "y": "shared"}, "legend": {"color": "shared"}})
    spec = frame(body, title=title or f"{metric} against each param", kind="scatter")
    spec["usermeta"]["mlops"].update(metric=metric, params=params, runs=labels)
    return Chart(spec)


def main_metric(runs: Sequence[RunPoint]) -> str | None:
    """The metric most runs have (ties: the first by name)."""
    counts: dict[str, int] = {}
    for _, _, m in runs:
        for k, v in m.items():
            if finite(v):
                counts[k] = counts.get(k, 0) + 1
    if not counts:
        return None
    return sorted(counts, key=lambda k: (-counts[k], k))[0]


