"""Dataset statistics as pictures: a small histogram per column of a table version, drawn inline in
the version's schema table (the panel's dataset view), with round bin edges.

Numeric columns come as bins (``[(low, high, rows), ...]``, edges from :func:`nice_edges`);
categorical and boolean columns as their most frequent values (``[(value, rows), ...]``) and how
many rows hold any other value. The builders take these plain lists and count nothing themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import Chart
from .spec import PALETTE, finite, frame

BAR = PALETTE[0]
OTHER = "#9d9d9d"
MAX_BINS = 20
WIDTH = 150
HEIGHT = 34


def nice_step(span: float, max_bins: int = MAX_BINS) -> float:
    """The smallest step of 1, 2 or 5 times a power of ten that cuts *span* into at most
    *max_bins* bins."""
    if not finite(span) or span <= 0:
        return 1.0
    raw = span / max_bins
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw * (1 - 1e-9):
            return m * power
    return 10 * power  # pragma: no cover - the loop always returns


def nice_edges(lo: float, hi: float, max_bins: int = MAX_BINS, integer: bool = False) -> list[float]:
    """Bin edges on round numbers covering ``[lo, hi]``, each bin holding ``low <= x < high``:
    about *max_bins* bins (one more when *hi* falls on an edge), the step 1, 2 or 5 times a power
    of ten. *integer* columns (whole values) get whole steps, and a bin centred on each value when
    the range is small. One value: one bin around it."""
    if not (finite(lo) and finite(hi)):
        return []
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        half = 0.5 if integer or lo == 0 else nice_step(abs(lo), 10) / 2
        return [lo - half, lo + half]
    if integer and hi - lo < max_bins:
        return [float(v) - 0.5 for v in range(math.floor(lo), math.floor(hi) + 2)]
    step = nice_step(hi - lo, max_bins)
    if integer:
        step = max(step, 1.0)
    start = math.floor(lo / step) * step
    edges = [start]
    while edges[-1] <= hi:
        edges.append(_round(start + len(edges) * step, step))
    return [_round(e, step) for e in edges]


def _round(v: float, step: float) -> float:
    """*v* without the float noise of repeated addition (0.30000000000000004 -> 0.3)."""
    digits = max(0, -math.floor(math.log10(step)) + 2)
    out = round(v, digits)
    return 0.0 if out == 0 else out


def whole_ticks(edges: Sequence[float], most: int = 6) -> list[int]:
    """Ticks on whole numbers inside *edges*, a round step apart, at most about *most* of them
    (Vega-Lite's own tick choice can fall on halves, meaningless for counts of things)."""
    lo, hi = math.ceil(edges[0]), math.floor(edges[-1])
    step = max(1, int(nice_step(hi - lo, most))) if hi > lo else 1
    first = math.ceil(lo / step) * step
    return list(range(first, hi + 1, step))


def _large_numbers(edges: Sequence[float]) -> dict[str, str]:
    """Axis labels of large numbers with an SI suffix (``200k``, ``3M``); 0 stays ``0``. Small
    numbers keep Vega-Lite's plain labels (``0.02``, not ``20m``)."""
    if not edges or max(abs(e) for e in edges) < 1e4:
        return {}
    return {"format": "~s", "labelExpr": "datum.value === 0 ? '0' : datum.label"}


def column_histogram(column: str, *, bins: Sequence[tuple[float, float, int]] | None = None,
                     whole: bool = False, top: Sequence[tuple[Any, int]] | None = None, other: int = 0,
                     width: int = WIDTH, height: int = HEIGHT) -> Chart:
    """The small histogram of one column: *bins* for a numeric column (*whole*: it holds whole
    numbers, so ticks are whole too), or *top* (its most frequent values, most first) and *other*
    (rows holding any other value) for a categorical one. The x axis is titled with the column's
    name; the row counts are in the tooltip."""
    if bins is not None:
        rows = [{"lo": lo, "hi": hi, "rows": int(n)} for lo, hi, n in bins]
        edges = sorted({r["lo"] for r in rows} | {r["hi"] for r in rows})
        body = {
            "data": {"values": rows},
            "mark": {"type": "bar", "color": BAR, "binSpacing": 0, "tooltip": True},
            "encoding": {
                "x": {"field": "lo", "type": "quantitative", "bin": "binned", "title": column,
                      "scale": {"nice": False, "zero": False, **({"domain": [edges[0], edges[-1]]} if edges else {})},
                      "axis": {"tickCount": 4, "labelFontSize": 10, "titleFontSize": 10, "grid": False,
                               "titlePadding": 4, "labelFlush": True, **_large_numbers(edges),
                               **({"values": whole_ticks(edges), "format": "d"}
                                  if whole and edges and not _large_numbers(edges) else {})}},
                "x2": {"field": "hi"},
                "y": {"field": "rows", "type": "quantitative", "title": "rows", "axis": None,
                      "scale": {"zero": True}},
                "tooltip": [{"field": "lo", "type": "quantitative", "title": "from", "format": ",.6~g"},
                            {"field": "hi", "type": "quantitative", "title": "below", "format": ",.6~g"},
                            {"field": "rows", "type": "quantitative", "title": "rows", "format": ","}],
            },
        }
        kind = "histogram"
    else:
        values = [{"value": str(v), "rows": int(n), "other": False} for v, n in (top or ())]
        if other > 0:
            values.append({"value": "(other values)", "rows": int(other), "other": True})
        order = [v["value"] for v in values]
        few = len(values) <= 3  # labels fit under the bars
        body = {
            "data": {"values": values},
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {
                "x": {"field": "value", "type": "nominal", "sort": order,
                      "title": column if few else f"{column} (top {len(top or ())})",
                      "axis": {"labels": few, "ticks": few, "labelAngle": 0, "labelFontSize": 10,
                               "titleFontSize": 10, "titlePadding": 4, "labelLimit": width // 3}},
                "y": {"field": "rows", "type": "quantitative", "title": "rows", "axis": None,
                      "scale": {"zero": True}},
                "color": {"condition": {"test": "datum.other", "value": OTHER}, "value": BAR},
                "tooltip": [{"field": "value", "type": "nominal", "title": column},
                            {"field": "rows", "type": "quantitative", "title": "rows", "format": ","}],
            },
        }
        kind = "categories"
    body.update(width=width, height=height)
    spec = frame(body, kind=kind)
    spec["config"]["axis"]["grid"] = False
    spec["config"]["view"] = {"stroke": None}
    spec["usermeta"]["mlops"]["column"] = column
    return Chart(spec, title=column)
