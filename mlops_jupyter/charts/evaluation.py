"""An evaluation's pictures: the confusion matrix, ROC, precision-recall and calibration curves,
residuals against predictions and their distribution, a figure per group of a slice, and the
differences from a baseline with their intervals. Builders take plain data (lists, dicts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import Chart
from .spec import PALETTE, finite, frame

SQUARE = 240
UNIT_AXIS = {"values": [0, 0.2, 0.4, 0.6, 0.8, 1.0], "format": ".1f"}
DIAGONAL = {"data": {"values": [{"a": 0, "b": 0}, {"a": 1, "b": 1}]},
            "mark": {"type": "line", "strokeDash": [4, 4], "color": "#9a9a9a", "strokeWidth": 1},
            "encoding": {"x": {"field": "a", "type": "quantitative"}, "y": {"field": "b", "type": "quantitative"}}}


def confusion(matrix: Sequence[Sequence[int]], classes: Sequence[Any], title: str | None = None) -> Chart:
    """Counts of true class (rows) by predicted class (columns); colour is the share of the true class."""
    labels = [str(c) for c in classes]
    cells = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, n in enumerate(row):
            cells.append({"true": labels[i], "predicted": labels[j], "count": int(n), "share": n / total})
    size = max(120, min(SQUARE + 40, 44 * len(labels)))
    x = {"field": "predicted", "type": "nominal", "sort": labels, "title": "predicted",
         "axis": {"labelAngle": 0, "orient": "top", "grid": False}}
    y = {"field": "true", "type": "nominal", "sort": labels, "title": "true", "axis": {"grid": False}}
    layers = [
        {"mark": {"type": "rect"},
         "encoding": {"x": x, "y": y,
                      "color": {"field": "share", "type": "quantitative", "scale": {"scheme": "blues",
                                                                                     "domain": [0, 1]},
                                "legend": {"title": "share of true", "format": ".0%", "gradientLength": 120}},
                      "tooltip": [{"field": "true"}, {"field": "predicted"},
                                  {"field": "count", "type": "quantitative", "format": ","},
                                  {"field": "share", "type": "quantitative", "format": ".1%"}]}},
        {"mark": {"type": "text", "fontSize": 11 if len(labels) <= 6 else 9},
         "encoding": {"x": x, "y": y, "text": {"field": "count", "type": "quantitative", "format": ","},
                      # dark text on light cells, light text on dark ones, in either theme
                      "color": {"condition": {"test": "datum.share > 0.55", "value": "#ffffff"},
                                "value": "#1a1a1a"}}},
    ]
    spec = frame({"width": size, "height": size, "data": {"values": cells}, "layer": layers},
                 title=title or "confusion matrix", kind="evaluation.confusion")
    return Chart(spec)


def _curve_points(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> list[dict]:
    pts = []
    for label, c in curves.items():
        thr = c.get("threshold") or [None] * len(c["x"])
        pts += [{"curve": label, "x": x, "y": y, "threshold": t} for x, y, t in zip(c["x"], c["y"], thr)]
    return pts


def _color(labels: list[str], title: str) -> dict:
    enc: dict[str, Any] = {"field": "curve", "type": "nominal", "scale": {"domain": labels,
                                                                          "range": PALETTE[:len(labels)]}}
    enc["legend"] = {"title": title, "symbolType": "stroke"} if len(labels) > 1 else None
    return enc


def _curve_line(curves: Mapping[str, Mapping[str, Sequence[float]]], x: tuple[str, str], y: tuple[str, str]) -> dict:
    """One line per class over the unit square; *x* and *y* are (axis title, tooltip title)."""
    return {"data": {"values": _curve_points(curves)}, "mark": {"type": "line"},
            "encoding": {"x": {"field": "x", "type": "quantitative", "title": x[0], "scale": {"domain": [0, 1]},
                               "axis": UNIT_AXIS},
                         "y": {"field": "y", "type": "quantitative", "title": y[0], "scale": {"domain": [0, 1]},
                               "axis": UNIT_AXIS},
                         "color": _color(list(curves), "class"),
                         "tooltip": [{"field": "curve", "title": "class"},
                                     {"field": "x", "type": "quantitative", "title": x[1], "format": ".3f"},
                                     {"field": "y", "type": "quantitative", "title": y[1], "format": ".3f"},
                                     {"field": "threshold", "type": "quantitative", "format": ".4~g"}]}}


def roc(curves: Mapping[str, Mapping[str, Sequence[float]]], auc: float | None, title: str | None = None) -> Chart:
    """True against false positive rate, one line per class (one-vs-rest), the chance diagonal."""
    line = _curve_line(curves, ("false positive rate", "FPR"), ("true positive rate", "TPR"))
    return Chart(frame({"width": SQUARE, "height": SQUARE, "layer": [DIAGONAL, line]}, title=title or "ROC curve",
                       subtitle=f"ROC AUC {auc:.4f}" if finite(auc) else None, kind="evaluation.roc"))


def precision_recall(curves: Mapping[str, Mapping[str, Sequence[float]]], ap: float | None,
                     best: Mapping[str, float] | None = None, title: str | None = None) -> Chart:
    """Precision against recall, one line per class; the threshold that maximizes F1 marked."""
    layers = [_curve_line(curves, ("recall", "recall"), ("precision", "precision"))]
    sub = [f"PR AUC (average precision) {ap:.4f}"] if finite(ap) else []
    if best:
        layers.append({"data": {"values": [dict(best)]},
                       "mark": {"type": "point", "filled": True, "size": 70, "color": PALETTE[1]},
                       "encoding": {"x": {"field": "recall", "type": "quantitative"},
                                    "y": {"field": "precision", "type": "quantitative"},
                                    "tooltip": [{"field": "threshold", "type": "quantitative", "format": ".4f"},
                                                {"field": "f1", "type": "quantitative", "format": ".4f"}]}})
        sub.append(f"dot: best F1 {best['f1']:.4f} at threshold {best['threshold']:.4g}")
    return Chart(frame({"width": SQUARE, "height": SQUARE, "layer": layers}, title=title or "precision-recall curve",
                       subtitle=sub, kind="evaluation.pr"))


def calibration(mean_predicted: Sequence[float], observed: Sequence[float], counts: Sequence[int],
                positive: Any, brier: float | None = None) -> Chart:
    """The share of the positive class observed in each bin of predicted probability, against the
    bins' mean prediction; a calibrated model lies on the diagonal. Point size: rows in the bin."""
    pts = [{"x": x, "y": y, "rows": int(n)} for x, y, n in zip(mean_predicted, observed, counts)]
    line = {"data": {"values": pts}, "mark": {"type": "line", "point": {"filled": True}, "color": PALETTE[0]},
            "encoding": {"x": {"field": "x", "type": "quantitative", "title": f"mean predicted P({positive})",
                               "scale": {"domain": [0, 1]}, "axis": UNIT_AXIS},
                         "y": {"field": "y", "type": "quantitative", "title": f"observed share of {positive}",
                               "scale": {"domain": [0, 1]}, "axis": UNIT_AXIS},
                         "tooltip": [{"field": "x", "type": "quantitative", "title": "mean predicted",
                                      "format": ".3f"},
                                     {"field": "y", "type": "quantitative", "title": "observed", "format": ".3f"},
                                     {"field": "rows", "type": "quantitative", "format": ","}]}}
    sub = "dashed: perfectly calibrated" + (f"; Brier score {brier:.4f}" if finite(brier) else "")
    return Chart(frame({"width": SQUARE, "height": SQUARE, "layer": [DIAGONAL, line]}, title="calibration",
                       subtitle=sub, kind="evaluation.calibration"))


def residuals(predicted: Sequence[float], residual: Sequence[float], shown: int, rows: int) -> Chart:
    """Residual (true - predicted) against the prediction, with the zero line."""
    pts = [{"predicted": p, "residual": r} for p, r in zip(predicted, residual)]
    layers = [
        {"data": {"values": pts},
         "mark": {"type": "point", "filled": True, "size": 14, "opacity": 0.45, "color": PALETTE[0]},
         "encoding": {"x": {"field": "predicted", "type": "quantitative", "title": "predicted",
                            "scale": {"zero": False, "nice": True}},
                      "y": {"field": "residual", "type": "quantitative", "title": "residual (true - predicted)",
                            "scale": {"nice": True}},
                      "tooltip": [{"field": "predicted", "type": "quantitative", "format": ".4~g"},
                                  {"field": "residual", "type": "quantitative", "format": ".4~g"}]}},
        {"data": {"values": [{"zero": 0}]}, "mark": {"type": "rule", "color": PALETTE[1], "strokeDash": [4, 3]},
         "encoding": {"y": {"field": "zero", "type": "quantitative"}}},
    ]
    sub = f"{shown:,} of {rows:,} rows (a seeded sample)" if shown < rows else f"all {rows:,} rows"
    return Chart(frame({"width": 360, "height": SQUARE - 20, "layer": layers}, title="residuals against predictions",
                       subtitle=sub, kind="evaluation.residuals"))


def residual_histogram(edges: Sequence[float], counts: Sequence[int]) -> Chart:
    bars = [{"lo": lo, "hi": hi, "rows": int(n)} for lo, hi, n in zip(edges[:-1], edges[1:], counts)]
    spec = frame({"width": 360, "height": SQUARE - 40, "data": {"values": bars},
                  "mark": {"type": "bar", "color": PALETTE[0], "binSpacing": 0},
                  "encoding": {"x": {"field": "lo", "type": "quantitative", "bin": {"binned": True},
                                     "title": "residual (true - predicted)"},
                               "x2": {"field": "hi"},
                               "y": {"field": "rows", "type": "quantitative", "title": "rows"},
                               "tooltip": [{"field": "lo", "type": "quantitative", "title": "from", "format": ".4~g"},
                                           {"field": "hi", "type": "quantitative", "title": "to", "format": ".4~g"},
                                           {"field": "rows", "type": "quantitative", "format": ","}]}},
                 title="residual distribution", kind="evaluation.residual_histogram")
    return Chart(spec)


def slices(column: str, groups: Sequence[Mapping[str, Any]], figures: Sequence[str], overall: Mapping[str, Any],
           min_group: int) -> Chart:
    """One bar per group for each figure (a panel per figure), the overall figure as a rule; groups
    with fewer than *min_group* rows are drawn faint and named so in the legend."""
    rows = []
    for g in groups:
        for f in figures:
            if finite(g.get(f)):
                rows.append({"group": str(g["group"]), "figure": f, "value": g[f], "rows": g["count"],
                             "overall": overall.get(f) if finite(overall.get(f)) else None,
                             "size": f"fewer than {min_group} rows" if g["small"] else f"{min_group} rows or more"})
    order = [str(g["group"]) for g in groups]
    unit = all(f not in ("mae", "rmse", "mape", "log_loss") for f in figures)
    x: dict[str, Any] = {"field": "value", "type": "quantitative", "title": None}
    if unit:
        x.update(scale={"domain": [0, 1]}, axis={"values": [0, 0.25, 0.5, 0.75, 1.0], "format": ".2~f"})
    sizes = [f"{min_group} rows or more", f"fewer than {min_group} rows"]
    bars = {"mark": {"type": "bar", "color": PALETTE[0]},
            "encoding": {"y": {"field": "group", "type": "nominal", "sort": order, "title": column},
                         "x": x,
                         "opacity": {"field": "size", "type": "nominal", "scale": {"domain": sizes, "range": [1, 0.35]},
                                     "legend": {"title": "group size"} if any(g["small"] for g in groups) else None},
                         "tooltip": [{"field": "group"}, {"field": "figure"},
                                     {"field": "value", "type": "quantitative", "format": ".4f"},
                                     {"field": "rows", "type": "quantitative", "format": ","}]}}
    # in a facet every layer reads the facet's rows: the overall figure travels on each row
    rule = {"mark": {"type": "rule", "color": PALETTE[1], "strokeDash": [4, 3], "strokeWidth": 1.5},
            "encoding": {"x": {"aggregate": "min", "field": "overall", "type": "quantitative"}}}
    height = max(60, 22 * len(order))
    spec = frame({"data": {"values": rows},
                  "facet": {"column": {"field": "figure", "type": "nominal", "sort": list(figures), "title": None,
                                       "header": {"labelFontSize": 12}}},
                  "spec": {"width": 120, "height": height, "layer": [bars, rule]},
                  "resolve": {"scale": {"x": "shared" if unit else "independent"}}},
                 title=f"by {column}", subtitle="dashed: all rows", kind="evaluation.slices")
    return Chart(spec)


def baseline(comparison: Mapping[str, Mapping[str, Any]], model: str, base: str, level: float) -> Chart:
    """Each figure's difference (model - baseline) with its bootstrap interval; zero marked."""
    rows = [{"figure": f, "difference": c["difference"], "low": c["low"], "high": c["high"], "verdict": c["verdict"],
             "model": c["model"], "baseline": c["baseline"]}
            for f, c in comparison.items() if finite(c.get("difference"))]
    order = [r["figure"] for r in rows]
    colors = {"domain": ["better", "worse", "unclear"], "range": [PALETTE[4], PALETTE[2], "#8a8a8a"]}
    y = {"field": "figure", "type": "nominal", "sort": order, "title": None}
    layers = [
        {"data": {"values": [{"zero": 0}]}, "mark": {"type": "rule", "color": "#9a9a9a"},
         "encoding": {"x": {"field": "zero", "type": "quantitative"}}},
        {"mark": {"type": "rule", "strokeWidth": 2},
         "encoding": {"y": y, "x": {"field": "low", "type": "quantitative", "title": f"{model} - {base}"},
                      "x2": {"field": "high"},
                      "color": {"field": "verdict", "type": "nominal", "scale": colors,
                                "legend": {"title": f"{model} is"}}}},
        {"mark": {"type": "point", "filled": True, "size": 60},
         "encoding": {"y": y, "x": {"field": "difference", "type": "quantitative",
                                    "title": f"{model} - {base}"},
                      "color": {"field": "verdict", "type": "nominal", "scale": colors,
                                "legend": {"title": f"{model} is"}},
                      "tooltip": [{"field": "figure"}, {"field": "model", "type": "quantitative", "format": ".4f"},
                                  {"field": "baseline", "type": "quantitative", "format": ".4f"},
                                  {"field": "difference", "type": "quantitative", "format": "+.4f"},
                                  {"field": "low", "type": "quantitative", "format": "+.4f"},
                                  {"field": "high", "type": "quantitative", "format": "+.4f"}]}},
    ]
    return Chart(frame({"width": 320, "height": max(60, 24 * len(rows)), "data": {"values": rows}, "layer": layers},
                       title=f"against {base}", subtitle=f"difference with its {level:.0%} bootstrap interval",
                       kind="evaluation.baseline"))
