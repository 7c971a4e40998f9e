"""Glyphs inside table cells: a sparkline of a run's main metric. Every chart with axes is a
Vega-Lite spec from :mod:`mlops_jupyter.charts`; a 80x18 line in a table row has no axes to get
right, and drawing it as SVG text costs microseconds per row instead of a Vega drawing per row.
"""

from __future__ import annotations

import math

from ..charts.spec import PALETTE, thin

__all__ = ["PALETTE", "sparkline"]


def sparkline(values: list[float], width: int = 80, height: int = 18, color: str = PALETTE[0]) -> str:
    vals = [v for v in values if math.isfinite(v)]
    if len(vals) < 2:
        return ""
    pts = thin(list(enumerate(vals)), 60)
    lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
    span = (hi - lo) or 1.0
    n = pts[-1][0] or 1
    d = " ".join(f"{x / n * (width - 2) + 1:.1f},{height - 1 - (y - lo) / span * (height - 2):.1f}" for x, y in pts)
    return (f'<svg width="{width}" height="{height}"><polyline fill="none" stroke="{color}" '
            f'stroke-width="1.2" points="{d}"/></svg>')
