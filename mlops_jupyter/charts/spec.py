"""What every chart shares: the specification's frame, one colour per run, point thinning, and
which way a metric is better."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from . import SCHEMA

# Tableau 10, Vega's default categorical scheme: readable on a light and on a dark background.
PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6",
           "#9d755d", "#bab0ac"]

# Marks a layer that only serves the interactive chart (hover points, voronoi): the static
# picture leaves it out.
HOVER = "mlops-hover"

WIDTH = 260
HEIGHT = 160

_LOWER_IS_BETTER = re.compile(
    r"(loss|err|error|mse|mae|rmse|mape|logloss|log_loss|perplexity|latency|duration|time|wer|cer|"
    r"brier|drift|nll|regret|cost|fpr|fnr|miss)", re.IGNORECASE)


def frame(body: dict[str, Any], *, title: str | None = None, subtitle: str | Sequence[str] | None = None,
          kind: str = "", **extra: Any) -> dict[str, Any]:
    """A complete Vega-Lite spec around *body*: schema, our defaults (gridlines, legends outside
    the data, no fixed colours so JupyterLab's dark theme applies) and ``usermeta`` naming the
    picture's kind for tests and the panel. A *subtitle* (a line, or lines) goes under the *title*."""
    spec: dict[str, Any] = {"$schema": SCHEMA}
    if title:
        spec["title"] = {"text": title, "anchor": "start", **({"subtitle": subtitle} if subtitle else {})}
    spec.update(body)
    spec["config"] = {
        "view": {"stroke": None},
        "axis": {"grid": True, "labelFontSize": 11, "titleFontSize": 11, "titleFontWeight": "normal",
                 "labelOverlap": True, "labelFlush": True},
        "legend": {"orient": "right", "labelFontSize": 11, "titleFontSize": 11, "labelLimit": 220},
        "header": {"labelFontSize": 12, "titleFontSize": 12},
        "title": {"fontSize": 13},
        "line": {"strokeWidth": 1.6},
        # Arial and Liberation Sans share their metrics: text measured where the SVG is drawn
        # offline fits where a browser shows it
        "font": "Arial, 'Liberation Sans', Helvetica, sans-serif",
    }
    spec["usermeta"] = {"mlops": {"kind": kind}}
    spec.update(extra)
    return spec


def run_colors(labels: Sequence[str]) -> dict[str, Any]:
    """The colour scale of a view: each run label gets the same colour in every chart of it."""
    labels = list(dict.fromkeys(labels))
    return {"domain": labels, "range": [PALETTE[i % len(PALETTE)] for i in range(len(labels))]}


def color(labels: Sequence[str], field: str = "run", title: str | None = "run", legend: bool = True,
          symbol: str = "stroke") -> dict:
    """The colour encoding of a view's runs; *symbol* is the legend's mark (``stroke`` for lines,
    ``circle`` for points)."""
    enc: dict[str, Any] = {"field": field, "type": "nominal", "scale": run_colors(labels)}
    if legend and len(labels) > 1:
        enc["legend"] = {"title": title, "orient": "right", "symbolType": symbol}
    else:
        enc["legend"] = None
    return enc


def lower_is_better(metric: str) -> bool:
    """The direction a metric is read in, from its name: loss, error, latency... go down."""
    return bool(_LOWER_IS_BETTER.search(metric))


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def thin_index(values, max_points: int):
    """The indices of at most about *max_points* of *values* (in order): in each bucket its first
    point and its lowest and highest, and the last point, so a spike is never thinned away."""
    import numpy as np

    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // 3)
    size = -(-n // buckets)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(buckets, size)
    starts = np.arange(buckets) * size
    live = starts < n
    lo = starts + np.argmin(np.where(np.isnan(grid), np.inf, grid), axis=1)
    hi = starts + np.argmax(np.where(np.isnan(grid), -np.inf, grid), axis=1)
    return np.unique(np.concatenate([starts[live], lo[live], hi[live], [n - 1]]))


def thin(points: Sequence[tuple], max_points: int = 2000, value_index: int = 1) -> list[tuple]:
    """At most about *max_points* of *points* (sorted by x), chosen by :func:`thin_index` on their
    values."""
    if len(points) <= max_points:
        return list(points)
    return [points[i] for i in thin_index([p[value_index] for p in points], max_points).tolist()]


def padded_domain(values: Iterable[float], *, floor: float | None = None) -> list[float] | None:
    """An explicit domain when all *values* are equal (one point, or a flat line), so the axis is
    neither empty nor reaches below *floor*; None (let Vega-Lite choose round ticks) otherwise."""
    vals = [v for v in values if finite(v)]
    if not vals:
        return None
    v, hi = min(vals), max(vals)
    if v != hi:
        return None
    pad = abs(v) * 0.1 or 1.0
    lo, hi = v - pad, v + pad
    if floor is not None and lo < floor <= v:
        lo = floor
    return [lo, hi]


def time_unit(span_seconds: float) -> tuple[float, str]:
    """The divisor and unit name that give round ticks for a span of relative time."""
    if span_seconds >= 3 * 3600:
        return 3600.0, "h"
    if span_seconds >= 3 * 60:
        return 60.0, "min"
    return 1.0, "s"

