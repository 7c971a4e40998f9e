"""Model explanations: global importance, a beeswarm of SHAP values, one row's waterfall, LIME's
local weights, and for image inputs a heat map of the attribution over the picture.

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
NEUTRAL = "#f7f7f7"  # the middle of the diverging attribution scale: no effect
MAGNITUDE = "#5e3c99"  # mean |SHAP|: a size, neither raising nor lowering, so neither red nor blue
HEAT_SIDE = 224  # pixels of a heat map panel's longer side
HEAT_SIDE_MANY = 120  # ... when every class gets its own panel
HEAT_CELLS = 64  # cells along a side at most: a larger image is pooled into blocks
HEAT_COLUMNS = 5  # attribution panels a row
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
                      measure: str, title: str, top: int = TOP, note: str = "",
                      value_title: str = "mean |SHAP|", label_title: str = "feature") -> Chart:
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
               {"field": "value", "type": "quantitative", "format": ".4~g", "title": value_title}]
    tooltip[0]["title"] = label_title
    enc: dict[str, Any] = {"y": _y_features(names, label_title), "x": x, "tooltip": tooltip}
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


def _pool(a, f: int, how: str):
    """*a* (rows x cols [x channels]) in blocks of f x f: their mean (a picture) or sum (SHAP values,
    whose sum over a block is the block's attribution)."""
    import numpy as np

    if f == 1:
        return a
    h, w = a.shape[:2]
    ph, pw = -h % f, -w % f
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2)
    a = np.pad(a.astype(float), pad, constant_values=np.nan)
    blocks = a.reshape((h + ph) // f, f, (w + pw) // f, f, *a.shape[2:])
    return np.nanmean(blocks, axis=(1, 3)) if how == "mean" else np.nansum(blocks, axis=(1, 3))


def attribution_heatmap(image: Any, values: Any, *, title: str, legend: str, note: str = "",
                        input_title: str = "input", absolute: bool = False) -> Chart:
    """An input picture beside its attribution, pixel for pixel: the input in greys (or its own
    colours when it has three channels), the SHAP values on a diverging scale centred on 0 (red
    raises the output, blue lowers it; the neutral middle is no effect), one square cell per pixel
    and no axes. *absolute* draws magnitudes (mean |SHAP|) on a scale from 0 instead.

    Args:
        image: rows x columns (grey) or rows x columns x channels.
        values: rows x columns, or ``{panel title: rows x columns}`` for several panels on one
            colour scale (one per class).
        legend: the colour legend's title ("SHAP value (toward class 3)").
        input_title: the input panel's heading ("input", "mean input").
    """
    import numpy as np

    img = np.asarray(image, dtype=float)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] not in (3, 4):
        img = img.mean(axis=2)  # channels that are no colours: their mean, in greys
    if img.ndim not in (2, 3):
        raise ValueError(f"an image is rows x columns [x channels], not shape {img.shape}")
    panels = {str(k): np.asarray(v, dtype=float) for k, v in values.items()} if isinstance(values, Mapping) \
        else {"SHAP values": np.asarray(values, dtype=float)}
    for name, v in panels.items():
        if v.shape != img.shape[:2]:
            raise ValueError(f"{name}: values of shape {v.shape} for an image of {img.shape[:2]}")
    f = max(1, math.ceil(max(img.shape[:2]) / HEAT_CELLS))
    img = _pool(img, f, "mean")
    panels = {k: _pool(v, f, "sum") for k, v in panels.items()}
    h, w = img.shape[:2]
    side = HEAT_SIDE if len(panels) == 1 else HEAT_SIDE_MANY
    cell = max(2, side // max(h, w))  # whole pixels a cell: fractional cells leave seams between them
    width, height = cell * w, cell * h
    finite_img = img[np.isfinite(img)]
    lo, hi = (float(finite_img.min()), float(finite_img.max())) if finite_img.size else (0.0, 1.0)
    rgb = img.ndim == 3
    pixels = []
    for y in range(h):
        for x in range(w):
            row: dict[str, Any] = {"panel": input_title, "x": x, "y": y}
            if rgb:
                c = np.clip((img[y, x, :3] - lo) / ((hi - lo) or 1.0), 0, 1)
                row["rgb"] = "#" + "".join(f"{round(float(v) * 255):02x}" for v in c)
                row["value"] = " ".join(_short(float(v)) for v in img[y, x, :3])
            else:
                row["level"] = round(float((img[y, x] - lo) / (hi - lo)), 4) if hi > lo else 0.5
                row["value"] = _short(float(img[y, x]))
            pixels.append(row)
    cells = [{"panel": name, "x": x, "y": y, "shap": _value(float(v[y, x]))}
             for name, v in panels.items() for y in range(h) for x in range(w) if finite(float(v[y, x]))]
    m = max((abs(c["shap"]) for c in cells), default=0.0) or 1.0
    scale = ({"domain": [0, _value(m)], "range": [NEUTRAL, MAGNITUDE]} if absolute
             else {"domain": [-_value(m), 0, _value(m)], "range": [LOWER, NEUTRAL, RAISE]})
    pos = {"x": {"field": "x", "type": "ordinal", "axis": None, "scale": {"paddingInner": 0, "paddingOuter": 0}},
           "y": {"field": "y", "type": "ordinal", "axis": None, "scale": {"paddingInner": 0, "paddingOuter": 0}}}
    where = [{"field": "y", "type": "ordinal", "title": "row"}, {"field": "x", "type": "ordinal", "title": "column"}]
    header = {"labelFontSize": 12, "labelPadding": 4, "title": None}

    def facet(data: str, order: list[str], color: dict, tooltip: list, columns: int) -> dict[str, Any]:
        return {"data": {"name": data}, "columns": columns,
                "facet": {"field": "panel", "type": "nominal", "sort": order, "header": header},
                "spec": {"width": width, "height": height, "mark": {"type": "rect", "aria": False},  # no label a cell: 784 of them
                         "encoding": {**pos, "color": color, "tooltip": where + tooltip}}}

    grey = ({"field": "rgb", "type": "nominal", "scale": None, "legend": None} if rgb else
            {"field": "level", "type": "quantitative", "scale": {"domain": [0, 1], "scheme": "greys"}, "legend": None})
    shap_color = {"field": "shap", "type": "quantitative", "scale": scale, "title": legend,
                  "legend": {"orient": "right", "gradientLength": max(80, min(height, 240)), "titleLimit": 300,
                             "format": "~g", "values": [s for s in scale["domain"]]}}
    body = {"datasets": {"input": pixels, "attribution": cells}, "hconcat": [
        facet("input", [input_title], grey, [{"field": "value", "type": "nominal", "title": "input value"}], 1),
        facet("attribution", list(panels), shap_color,
              [{"field": "shap", "type": "quantitative", "format": ".4~g", "title": legend}],
              min(len(panels), HEAT_COLUMNS)),
    ], "resolve": {"scale": {"color": "independent"}}, "spacing": 16}
    spec = frame(body, kind="explain.heatmap")
    pooled = f"each cell pools {f}×{f} pixels (their mean input, their summed SHAP value)" if f > 1 else ""
    spec["title"] = _title(title, note, pooled)
    spec["usermeta"]["mlops"].update(shape=[h, w], pooled=f, panels=list(panels), domain=scale["domain"],
                                     absolute=absolute)
    return Chart(spec, title=title)

