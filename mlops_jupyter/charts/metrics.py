"""Metric curves: one chart per metric, one colour per run across all of them.

Each chart has round ticks and gridlines, a tooltip with the exact value and step on the nearest
point, zoom and pan (wheel and drag; double-click resets), and a "smoothing" control (a running
mean over the run, drawn over the faded raw curve). The x axis is the step, the wall-clock time or
the time since the run started; the y axis can be logarithmic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..exceptions import BadInput
from . import Chart
from .spec import (
    HEIGHT,
    HOVER,
    WIDTH,
    color,
    frame,
    lower_is_better,
    padded_domain,
    thin_index,
    time_unit,
)

X_MODES = ("step", "time", "relative")
MAX_POINTS = 600  # per run and metric; a bucket keeps its first, lowest and highest value
MARKERS_BELOW = 40  # series this short get a marker on every point

# run label -> metric key -> [(step, value, timestamp in seconds)]
Series = Mapping[str, Mapping[str, Sequence[tuple[int, float, float]]]]


def metric_chart(series: Series, keys: Sequence[str] | None = None, *, x: str = "step", log_y: bool = False,
                 best: bool = False, title: str | None = None, columns: int = 3, width: int = WIDTH,
                 height: int = HEIGHT, starts: Mapping[str, float] | None = None,
                 max_points: int = MAX_POINTS) -> Chart:
    """The curves of *keys* (default: every metric in *series*) for each run in *series*.

    *x* is ``"step"``, ``"time"`` (clock time) or ``"relative"`` (since the run's start, from
    *starts*, else its first point). *best* marks, in each chart, the best last value among the
    runs (lowest for losses and errors, highest otherwise).
    """
    if x not in X_MODES:
        raise BadInput(f"x is one of {', '.join(X_MODES)}, not {x!r}")
    runs = list(series)
    if keys is None:
        keys = sorted({k for per in series.values() for k in per})
    keys = list(keys)
    span = 0.0
    if x == "relative":
        firsts = {r: (starts or {}).get(r) for r in runs}
        for r in runs:
            if firsts[r] is None:
                ts = [p[2] for pts in series[r].values() for p in pts[:1]]
                firsts[r] = min(ts) if ts else 0.0
        span = max((p[2] - firsts[r] for r in runs for pts in series[r].values() for p in pts[-1:]), default=0.0)
    divisor, unit = time_unit(span)
    longest = 0
    lasts: dict[str, list[tuple[str, float, float]]] = {k: [] for k in keys}
    by_key: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    for r in runs:
        for k in keys:
            pts = series[r].get(k, ())
            idx = _kept(pts, max_points)
            if idx is None:
                continue
            longest = max(longest, len(pts))
            kept = [pts[i] for i in idx]
            last = pts[idx[-1]]
            steps = [int(p[0]) for p in kept]
            values = [float(p[1]) for p in kept]
            if x == "step":
                xs: list = steps
            elif x == "time":
                xs = [round(p[2] * 1000) for p in kept]
            else:
                xs = [round((p[2] - firsts[r]) / divisor, 6) for p in kept]
            if x == "step":  # the step is x: not sent twice
                by_key[k].extend({"run": r, "x": xv, "value": v} for xv, v in zip(xs, values))
            else:
                by_key[k].extend({"run": r, "x": xv, "step": st, "value": v}
                                 for xv, st, v in zip(xs, steps, values))
            lasts[k].append((r, _x_of(last, x, firsts.get(r) if x == "relative" else None, divisor), last[1]))
    x_enc = _x_encoding(x, unit)
    charts = []
    for i, k in enumerate(keys):
        charts.append(_one(i, k, by_key[k], runs, x_enc, x, log_y, width, height, longest,
                           _best(k, lasts[k]) if best and len(lasts[k]) > 1 else None))
    body: dict[str, Any] = {
        "datasets": {f"m{i}": by_key[k] for i, k in enumerate(keys)},  # one per metric, named by position
        "params": [{"name": "smoothing", "value": 0,
                    "bind": {"input": "select", "options": [0, 1, 2], "labels": ["none", "light", "strong"],
                             "name": "smoothing "}}],
    }
    if len(charts) == 1:
        body.update(charts[0])
    else:
        body.update(concat=charts, columns=max(1, min(columns, len(charts))),
                    # said outright: the Vega-Lite in JupyterLab 4 (5.6) shares y between charts otherwise
                    resolve={"scale": {"color": "shared", "x": "independent", "y": "independent"},
                             "legend": {"color": "shared"}})
    spec = frame(body, title=title, kind="metrics")
    spec["usermeta"]["mlops"].update(x=x, log_y=log_y, runs=runs, keys=keys,
                                     datasets={k: f"m{i}" for i, k in enumerate(keys)})
    return Chart(spec, title=title or ", ".join(keys))


def _kept(pts: Sequence[tuple], max_points: int) -> list[int] | None:
    """The indices of the points of *pts* ((step, value, timestamp), in step order) that the chart
    draws: the finite values, thinned to about *max_points*; None when no value is finite.

    Only the values are read into numpy (the steps and times of the kept points are read from the
    tuples afterwards): thinning 10,000 points costs about as much as one pass over them."""
    import operator

    import numpy as np

    n = len(pts)
    if not n:
        return None
    values = np.fromiter(map(operator.itemgetter(1), pts), float, count=n)
    ok = np.isfinite(values)
    if ok.all():
        where = None
    else:
        where = np.flatnonzero(ok)
        values = values[where]
        if not len(values):
            return None
    keep = thin_index(values, max_points)
    return (keep if where is None else where[keep]).tolist()


def _x_of(point: tuple, x: str, first: float | None, divisor: float) -> float:
    if x == "step":
        return point[0]
    if x == "time":
        return round(point[2] * 1000)
    return round((point[2] - (first or 0.0)) / divisor, 6)


def _x_encoding(x: str, unit: str) -> dict[str, Any]:
    if x == "time":
        return {"field": "x", "type": "temporal", "title": "time", "axis": {"labelOverlap": True}}
    if x == "relative":
        return {"field": "x", "type": "quantitative", "title": f"relative time ({unit})",
                "scale": {"zero": True, "nice": True}}  # from the run's start
    return {"field": "x", "type": "quantitative", "title": "step",
            "scale": {"zero": False, "nice": True}, "axis": {"tickMinStep": 1, "format": ",d"}}


def _best(key: str, lasts: list[tuple[str, float, float]]) -> dict[str, Any]:
    low = lower_is_better(key)
    run, xv, value = (min if low else max)(lasts, key=lambda t: t[2])
    return {"run": run, "x": xv, "value": value, "label": f"best {value:.4g}"}


def _one(i: int, key: str, rows: list[dict], runs: list[str], x_enc: dict, x: str, log_y: bool,
         width: int, height: int, longest: int, best: dict | None) -> dict[str, Any]:
    values = [r["value"] for r in rows]
    vlo, vhi = (min(values), max(values)) if values else (0.0, 0.0)
    y_scale: dict[str, Any] = {"zero": False, "nice": True}
    if log_y:
        y_scale["type"] = "log" if values and vlo > 0 else "symlog"
        y_scale["nice"] = False  # a nice log domain runs to whole decades and flattens the curve
    # Each chart's domains are given outright (Vega still rounds them): the Vega-Lite that
    # JupyterLab 4 ships (5.6) otherwise mixes the last chart's values into every chart's domain
    # when a chart has two layers over the same data (fixed in Vega-Lite 5.20).
    dom = padded_domain([vlo], floor=0.0 if vlo >= 0 else None) if values and vlo == vhi else None
    if dom is not None:
        y_scale["domain"] = dom
        y_scale["nice"] = False
    elif values:
        y_scale["domain"] = [vlo, vhi]
    xe = dict(x_enc)
    if rows:
        xs = [r["x"] for r in rows]
        xlo, xhi = min(xs), max(xs)
        xdom = padded_domain([xlo], floor=0.0) if xlo == xhi and x != "time" else None
        if xdom is not None:
            xe["scale"] = {**xe.get("scale", {}), "domain": xdom, "nice": False}
        else:
            xe["scale"] = {**xe.get("scale", {}), "domain": [0 if x == "relative" else xlo, xhi]}
        if x == "time":  # clock labels to the second for a short run, to the minute for a long one
            span = (xhi - xlo) / 1000
            fmt = "%H:%M:%S" if span < 600 else "%H:%M" if span < 2 * 86400 else "%b %d %H:%M"
            xe["axis"] = {**xe.get("axis", {}), "format": fmt}
        if x == "step" and not isinstance(xe["scale"]["domain"][0], str):  # a few steps: a tick on each
            lo, hi = (xdom if xdom is not None else (xlo, xhi))
            if hi - lo <= 12:
                xe["axis"] = {**xe["axis"], "values": list(range(int(lo), int(hi) + 1))}
    y = {"field": "value", "type": "quantitative", "title": key, "scale": y_scale}
    smoothed_y = {**y, "field": "smoothed"}
    col = color(runs)
    n = max(len(rows), 1)
    light, strong = max(2, n // max(len(runs), 1) // 50), max(3, n // max(len(runs), 1) // 12)
    step_field = "x" if x == "step" else "step"
    tooltip = [{"field": "run", "type": "nominal"},
               {"field": step_field, "type": "quantitative", "format": ",d", "title": "step"},
               {"field": "value", "type": "quantitative", "format": ".6~g", "title": key}]
    if x == "time":
        tooltip.insert(2, {"field": "x", "type": "temporal", "title": "time", "format": "%Y-%m-%d %H:%M:%S"})
    elif x == "relative":
        tooltip.insert(2, {"field": "x", "type": "quantitative", "title": x_enc["title"], "format": ".4~g"})
    line_mark: dict[str, Any] = {"type": "line", "clip": True, "opacity": {"expr": "smoothing == 0 ? 1 : 0.25"}}
    if longest <= MARKERS_BELOW:
        line_mark["point"] = True
    layers: list[dict[str, Any]] = [
        {"params": [{"name": f"zoom_{i}", "select": "interval", "bind": "scales"}],
         "mark": line_mark, "encoding": {"x": xe, "y": y, "color": col}},
        {"transform": [
            {"filter": "smoothing > 0"},
            {"window": [{"op": "mean", "field": "value", "as": "m1"}], "frame": [-light, 0],
             "groupby": ["run"], "sort": [{"field": "x"}]},
            {"window": [{"op": "mean", "field": "value", "as": "m2"}], "frame": [-strong, 0],
             "groupby": ["run"], "sort": [{"field": "x"}]},
            {"calculate": "smoothing == 1 ? datum.m1 : datum.m2", "as": "smoothed"}],
         "mark": {"type": "line", "clip": True}, "encoding": {"x": xe, "y": smoothed_y, "color": col}},
        {"name": HOVER,
         "params": [{"name": f"hover_{i}", "select": {"type": "point", "nearest": True, "on": "pointerover",
                                                      "clear": "pointerout", "fields": ["run", "x"]}}],
         "mark": {"type": "point", "filled": True, "size": 60, "clip": True},
         "encoding": {"x": xe, "y": y, "color": {**col, "legend": None},
                      "opacity": {"condition": {"param": f"hover_{i}", "empty": False, "value": 1}, "value": 0},
                      "tooltip": tooltip}},
    ]
    if best is not None:  # a ring in the run's colour around the best point, and its value
        marker = {"data": {"values": [best]}, "encoding": {"x": xe, "y": y}}
        layers.append({**marker, "mark": {"type": "point", "shape": "circle", "size": 220, "filled": False,
                                          "strokeWidth": 2.5},
                       "encoding": {**marker["encoding"], "color": {**col, "legend": None}, "tooltip": [
                           {"field": "label", "type": "nominal", "title": "best"},
                           {"field": "run", "type": "nominal"}]}})
        # the value beside its ring, inside the plot: under the ring when it is in the upper half
        upper = bool(values) and best["value"] >= (vlo + vhi) / 2
        layers.append({**marker, "mark": {"type": "text", "dy": 18 if upper else -16, "align": "right", "dx": -4,
                                          "fontSize": 11, "fontWeight": "bold"},  # in the run's colour
                       "encoding": {**marker["encoding"], "text": {"field": "label"},
                                    "color": {**col, "legend": None}}})
    return {"data": {"name": f"m{i}"}, "width": width, "height": height,
            "title": key, "layer": layers}
