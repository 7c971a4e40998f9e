"""Model explanations: global importance, a beeswarm of SHAP values, one row's waterfall, and LIME's
local weights.

Every chart names what its colours mean for the class it explains ("raises P(1)", "supports
class 1"), shows at most ``TOP`` features and says how many more there are, and lets long feature
names and LIME's conditions run to ``LABEL_LIMIT`` pixels before eliding them. Text drawn on the
data takes the theme's label colour (the ``guide-label`` style), so the charts read the same in
JupyterLab's light and dark themes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from . import Chart
from .spec import PALETTE, finite, frame

TOP = 15  # features shown; the rest are counted ("and 12 more features")
LABEL_LIMIT = 280  # pixels of a feature name or a LIME condition before it is elided
WIDTH = 420
BAND = 22  # pixels per feature row
MAX_POINTS = 2000  # beeswarm points in all (its SVG is about 180 bytes a point); more rows are thinned evenly
RAISE, LOWER = "#e4455b", "#1f88e5"  # SHAP's red and blue, readable on a light and a dark background
LOW, HIGH = "#1f88e5", "#e4455b"  # beeswarm: low and high feature values
NO_VALUE = "#8c8c8c"  # a beeswarm point whose feature is not a number
RULE = "#8c8c8c"
LEGEND_TOP = {"orient": "top", "direction": "horizontal", "symbolType": "square", "labelLimit": 300,
              "columnPadding": 18}


def _more(n_more: int) -> str:
    return f"and {n_more:,} more feature{'s' if n_more != 1 else ''} (not shown)" if n_more > 0 else ""


def _title(title: str, *subtitles: str) -> dict[str, Any]:
    sub = [s for s in subtitles if s]
    out: dict[str, Any] = {"text": title, "anchor": "start"}
    if sub:
        out["subtitle"] = sub
        out["subtitlePadding"] = 4
    return out


# Row axes carry their title as a column heading above the labels: a rotated title would be placed
# beside the labels nearest it and can overlap a long one further up.
HEADING = {"titleAngle": 0, "titleY": -8, "titleBaseline": "bottom", "titleFontWeight": "bold"}


def _y_features(order: Sequence[str], title: str = "feature") -> dict[str, Any]:
    return {"field": "feature", "type": "nominal", "sort": list(order), "title": title,
            "axis": {"labelLimit": LABEL_LIMIT, "grid": False, "ticks": False, **HEADING, "titleAlign": "right",
                     "titleX": -4}}


def _value(v: float) -> float:
    return float(f"{v:.6g}")


def _x_axis() -> dict[str, Any]:
    return {"format": "~g", "tickCount": {"expr": "ceil(width / 80)"}}


def _numbers_column(order: Sequence[str], texts: Sequence[str], title: str, x: dict[str, Any]) -> dict[str, Any]:
    """A layer that only draws a second y axis on the right: each row's number (a contribution, a
    weight) beside its bar, in the theme's label colour."""
    expr = f"{json.dumps(list(texts))}[indexof({json.dumps(list(order))}, datum.value)]"
    return {"mark": {"type": "tick", "opacity": 0, "aria": False},
            "encoding": {"y": {"field": "feature", "type": "nominal", "sort": list(order), "title": title,
                               "axis": {"orient": "right", "labelExpr": expr, "grid": False, "ticks": False,
                                        "domain": False, "labelFontSize": 10, **HEADING, "titleAlign": "left",
                                        "titleX": 4}},
                         "x": x}}


def global_importance(features: Sequence[str], importance: Sequence[float] | Mapping[str, Sequence[float]], *,
                      measure: str, title: str, top: int = TOP, note: str = "") -> Chart:
    """Mean |SHAP| per feature as horizontal bars, largest first.

    *importance* is one number per feature, or ``{class label: numbers}`` for a multiclass model:
    then the classes' bars stand side by side in each feature's row (grouped, never stacked).
    *measure* titles the x axis (what the numbers are: "mean |SHAP value| (log-odds of class 1)").
    """
    features = [str(f) for f in features]
    grouped = isinstance(importance, Mapping)
    per: dict[str, list[float]] = ({str(c): [float(v) for v in vs] for c, vs in importance.items()} if grouped
                                   else {"": [float(v) for v in importance]})
    for label, vs in per.items():
        if len(vs) != len(features):
            raise ValueError(f"{len(vs)} importances for {len(features)} features ({label or 'one output'})")
    total = [sum(vs[i] for vs in per.values() if finite(vs[i])) for i in range(len(features))]
    order = sorted(range(len(features)), key=lambda i: -total[i])
    shown = order[:top]
    names = [features[i] for i in shown]
    rows = [{"feature": features[i], "class": label, "value": _value(vs[i])}
            for label, vs in per.items() for i in shown if finite(vs[i])]
    x = {"field": "value", "type": "quantitative", "title": measure, "scale": {"zero": True, "nice": True},
         "axis": _x_axis()}
    tooltip = [{"field": "feature", "type": "nominal"},
               {"field": "value", "type": "quantitative", "format": ".4~g", "title": "mean |SHAP|"}]
    enc: dict[str, Any] = {"y": _y_features(names), "x": x, "tooltip": tooltip}
    classes = list(per)
    height: Any = {"step": BAND}
    if grouped:
        enc["yOffset"] = {"field": "class", "type": "nominal", "sort": classes}
        enc["y"]["scale"] = {"paddingInner": 0.3}
        enc["color"] = {"field": "class", "type": "nominal", "sort": classes, "title": "class",
                        "scale": {"domain": classes, "range": [PALETTE[i % len(PALETTE)] for i in range(len(classes))]},
                        "legend": {"orient": "right", "symbolType": "square"}}
        tooltip.insert(1, {"field": "class", "type": "nominal"})
        height = len(names) * max(BAND, 7 * len(classes) + 8)
    mark = {"type": "bar", "cornerRadiusEnd": 2, **({} if grouped else {"color": PALETTE[0]})}
    body = {"data": {"values": rows}, "width": WIDTH, "height": height, "mark": mark, "encoding": enc}
    spec = frame(body, kind="explain.global")
    spec["title"] = _title(title, note, _more(len(features) - len(shown)))
    spec["usermeta"]["mlops"].update(features=names, classes=classes if grouped else None,
                                     more=len(features) - len(shown))
    return Chart(spec, title=title)


def _levels(column: Sequence[Any]) -> list[float | None]:
    """A feature's values as 0 (low) .. 1 (high) between its 5th and 95th percentiles; None where a
    value is not a number."""
    import numpy as np

    nums = []
    for v in column:
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        nums.append(f)
    a = np.asarray(nums, dtype=float)
    ok = np.isfinite(a)
    if not ok.any():
        return [None] * len(a)
    lo, hi = np.percentile(a[ok], [5, 95])
    if hi > lo:
        lv = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
    else:
        lv = np.full(len(a), 0.5)
    return [round(float(v), 3) if k else None for v, k in zip(lv, ok)]


def _swarm(x: Sequence[float], levels: Sequence[float | None], bins: int = 80) -> list[float]:
    """Vertical offsets (-0.45 .. 0.45 of a row) that pile points up where their x values crowd,
    as a beeswarm does: the densest bin spans the row, low feature values below high ones."""
    if not x:
        return []
    lo, hi = min(x), max(x)
    width = (hi - lo) / bins or 1.0
    by_bin: dict[int, list[int]] = {}
    for i, v in enumerate(x):
        by_bin.setdefault(int((v - lo) / width), []).append(i)
    crowd = max(len(ix) for ix in by_bin.values())
    step = 0.9 / max(crowd, 2)
    out = [0.0] * len(x)
    for ix in by_bin.values():
        ix.sort(key=lambda i: (-1.0 if levels[i] is None else levels[i]))
        n = len(ix)
        for rank, i in enumerate(ix):
            out[i] = round((rank - (n - 1) / 2) * step, 4)
    return out


def beeswarm(features: Sequence[str], values: Sequence[Sequence[float]], data: Sequence[Sequence[Any]] | None, *,
             measure: str, title: str, top: int = TOP, max_points: int = MAX_POINTS) -> Chart:
    """One row of points per feature (the *top* by mean |SHAP|): a point per explained row at its
    SHAP value, coloured by the feature's value in that row (low blue, high red; grey when it is
    not a number). *values* and *data* are rows x features."""
    features = [str(f) for f in features]
    n_rows = len(values)
    n_feat = len(features)
    mean_abs = [sum(abs(float(r[j])) for r in values) / max(n_rows, 1) for j in range(n_feat)]
    shown = sorted(range(n_feat), key=lambda j: -mean_abs[j])[:top]
    per_feature = max(1, max_points // max(len(shown), 1))
    stride = max(1, math.ceil(n_rows / per_feature))
    keep = list(range(0, n_rows, stride))
    points: list[dict[str, Any]] = []
    for j in shown:
        xs = [float(values[i][j]) for i in keep]
        lv = _levels([data[i][j] for i in keep]) if data is not None else [None] * len(keep)
        offsets = _swarm(xs, lv)
        for i, xv, level, off in zip(keep, xs, lv, offsets):
            if finite(xv):
                points.append({"feature": features[j], "shap": _value(xv), "level": level, "jitter": off,
                               "value": _short(data[i][j]) if data is not None else "", "row": i})
    names = [features[j] for j in shown]
    y = _y_features(names)
    x = {"field": "shap", "type": "quantitative", "title": measure, "scale": {"nice": True}, "axis": _x_axis()}
    y_off = {"field": "jitter", "type": "quantitative", "scale": {"domain": [-0.5, 0.5]}}
    tooltip = [{"field": "feature", "type": "nominal"}, {"field": "value", "type": "nominal", "title": "value"},
               {"field": "shap", "type": "quantitative", "format": ".4~g", "title": "SHAP value"},
               {"field": "row", "type": "quantitative", "title": "row"}]
    point = {"type": "circle", "size": 14, "opacity": 0.85, "aria": False}
    layers = [
        {"mark": {"type": "rule", "color": RULE, "strokeDash": [3, 3]}, "data": {"values": [{"zero": 0}]},
         "encoding": {"x": {"field": "zero", "type": "quantitative"}}},
        {"transform": [{"filter": "datum.level == null"}], "mark": {**point, "color": NO_VALUE},
         "encoding": {"y": y, "x": x, "yOffset": y_off, "tooltip": tooltip}},
        {"transform": [{"filter": "datum.level != null"}], "mark": point,
         "encoding": {"y": y, "x": x, "yOffset": y_off, "tooltip": tooltip,
                      "color": {"field": "level", "type": "quantitative", "title": "feature value",
                                "scale": {"domain": [0, 1], "range": [LOW, HIGH]},
                                "legend": {"values": [0, 1], "labelExpr": "datum.value == 0 ? 'low' : 'high'",
                                           "gradientLength": max(60, min(160, BAND * len(shown))),
                                           "orient": "right"}}}},
    ]
    shown_rows = len(keep)
    note = (f"{n_rows:,} rows" if shown_rows == n_rows else f"{shown_rows:,} of {n_rows:,} rows (every {stride})")
    body = {"data": {"values": points}, "width": WIDTH, "height": {"step": BAND + 6}, "layer": layers}
    spec = frame(body, kind="explain.beeswarm")
    spec["title"] = _title(title, note + "; colour: the feature's value in the row", _more(n_feat - len(shown)))
    spec["usermeta"]["mlops"].update(features=names, rows=shown_rows, more=n_feat - len(shown))
    return Chart(spec, title=title)


def waterfall(contributions: Sequence[tuple[str, float]], base: float, *, measure: str, target: str, title: str,
              top: int = 12, note: str = "") -> Chart:
    """From the expected output *base* to this row's output, one feature at a time: the largest
    contributions on top, the rest summed into one bar. Red raises *target* ("P(1)"), blue lowers
    it; the dashed line is the expected output, the solid one the row's."""
    items = sorted(((str(lab), float(v)) for lab, v in contributions if finite(v)), key=lambda t: -abs(t[1]))
    shown, rest = items[:top], items[top:]
    if rest:
        shown.append((f"{len(rest)} other feature{'s' if len(rest) != 1 else ''}", sum(v for _, v in rest)))
    raises, lowers = f"raises {target}", f"lowers {target}"
    rows: list[dict[str, Any]] = []
    pos = float(base)
    for label, v in reversed(shown):  # from the base up: the smallest first, the largest ends at f(x)
        rows.append({"feature": label, "start": _value(pos), "end": _value(pos + v), "contribution": _value(v),
                     "effect": raises if v >= 0 else lowers, "text": f"{v:+.3g}"})
        pos += v
    rows.reverse()
    out = pos
    order = [r["feature"] for r in rows]
    y = _y_features(order, "feature = value in this row")
    x = {"field": "start", "type": "quantitative", "title": measure,
         "scale": {"zero": False, "nice": True, "padding": 8}, "axis": _x_axis()}
    tooltip = [{"field": "feature", "type": "nominal"},
               {"field": "contribution", "type": "quantitative", "format": "+.4~g"},
               {"field": "start", "type": "quantitative", "format": ".4~g", "title": "from"},
               {"field": "end", "type": "quantitative", "format": ".4~g", "title": "to"}]
    layers = [
        {"mark": {"type": "bar", "height": {"band": 0.7}, "cornerRadius": 1},
         "encoding": {"y": y, "x": x, "x2": {"field": "end"}, "tooltip": tooltip,
                      "color": {"field": "effect", "type": "nominal", "title": None,
                                "scale": {"domain": [raises, lowers], "range": [RAISE, LOWER]},
                                "legend": LEGEND_TOP}}},
        _numbers_column(order, [r["text"] for r in rows], "contribution", x),
        {"data": {"values": [{"at": _value(base), "what": "expected output E[f(x)]"},
                             {"at": _value(out), "what": "this row's output f(x)"}]},
         "mark": {"type": "rule", "color": RULE},
         "encoding": {"x": {"field": "at", "type": "quantitative"},
                      "strokeDash": {"field": "what", "type": "nominal", "legend": None,
                                     "scale": {"domain": ["expected output E[f(x)]", "this row's output f(x)"],
                                               "range": [[4, 3], [1, 0]]}},
                      "tooltip": [{"field": "what", "type": "nominal"},
                                  {"field": "at", "type": "quantitative", "format": ".4~g", "title": "value"}]}},
    ]
    body = {"data": {"values": rows}, "width": WIDTH, "height": {"step": BAND}, "layer": layers,
            "resolve": {"axis": {"y": "independent"}}}
    spec = frame(body, kind="explain.waterfall")
    spec["title"] = _title(title, f"E[f(x)] = {base:.4g} (dashed) → f(x) = {out:.4g} (solid)", note)
    spec["usermeta"]["mlops"].update(base=float(base), output=float(out), features=order)
    return Chart(spec, title=title)


def lime_weights(weights: Sequence[tuple[str, float]], *, target: str, settings: Mapping[str, Any], title: str,
                 regression: bool = False, n_features: int | None = None, note: str = "") -> Chart:
    """LIME's local linear model for one row: a bar per condition, its weight. Bars that push
    towards *target* (a class) say "supports <target>", the others "against <target>"; for a
    regression, "raises" or "lowers the prediction". *settings* (num_samples, discretizer, seed,
    training rows) are written under the chart: the same settings give the same bars."""
    items = [(str(c), float(w)) for c, w in weights if finite(w)]
    if regression:
        pro, con = f"raises {target}", f"lowers {target}"
    else:
        pro, con = f"supports {target}", f"against {target}"
    rows = [{"feature": c, "weight": _value(w), "effect": pro if w >= 0 else con, "text": f"{w:+.3g}"}
            for c, w in items]
    order = [r["feature"] for r in rows]
    y = _y_features(order, "condition")
    words = []
    for key in ("num_samples", "discretizer", "seed", "training_rows"):
        if key in settings:
            v = settings[key]
            words.append(f"{key.replace('_', ' ')} {v:,}" if isinstance(v, int) and not isinstance(v, bool)
                         else f"{key.replace('_', ' ')} {v}")
    x = {"field": "weight", "type": "quantitative", "scale": {"nice": True, "zero": True},
         "title": ["LIME weight (local linear model)", "settings: " + " · ".join(words)],
         "axis": {**_x_axis(), "titleLineHeight": 16}}
    tooltip = [{"field": "feature", "type": "nominal", "title": "condition"},
               {"field": "weight", "type": "quantitative", "format": "+.4~g"}]
    layers = [
        {"mark": {"type": "bar", "height": {"band": 0.7}, "cornerRadius": 1},
         "encoding": {"y": y, "x": x, "tooltip": tooltip,
                      "color": {"field": "effect", "type": "nominal", "title": None,
                                "scale": {"domain": [pro, con], "range": [RAISE, LOWER]},
                                "legend": LEGEND_TOP}}},
        {"mark": {"type": "rule", "color": RULE}, "data": {"values": [{"zero": 0}]},
         "encoding": {"x": {"field": "zero", "type": "quantitative"}}},
        _numbers_column(order, [r["text"] for r in rows], "weight", x),
    ]
    more = (n_features - len(rows)) if n_features is not None else 0
    body = {"data": {"values": rows}, "width": WIDTH, "height": {"step": BAND}, "layer": layers,
            "resolve": {"axis": {"y": "independent"}}}
    spec = frame(body, kind="explain.lime")
    spec["title"] = _title(title, note, _more(more))
    spec["usermeta"]["mlops"].update(settings=dict(settings), features=order, target=target)
    return Chart(spec, title=title)


def _short(v: Any) -> str:
    if isinstance(v, float) or type(v).__name__.startswith("float"):
        return f"{float(v):.4g}"
    s = str(v)
    return s if len(s) <= 24 else s[:23] + "…"
