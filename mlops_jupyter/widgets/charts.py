"""Small dependency-free SVG charts: line charts with several series, and sparklines.

Rendering SVG text is fast enough to refresh a live chart every second without
importing matplotlib into the kernel.
"""

from __future__ import annotations

import html
import math

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def decimate(points: list[tuple[float, float]], max_points: int = 400) -> list[tuple[float, float]]:
    """Keep at most *max_points*, keeping each bucket's min and max so spikes stay visible."""
    n = len(points)
    if n <= max_points:
        return points
    bucket = math.ceil(n / (max_points // 2))
    out = []
    for i in range(0, n, bucket):
        chunk = [p for p in points[i:i + bucket] if math.isfinite(p[1])]
        if not chunk:
            continue
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out.extend(sorted({lo, hi}, key=lambda p: p[0]))
    return out


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.2e}"
    return f"{v:.4g}"


def line_chart(series: dict[str, list[tuple[float, float]]], title: str = "", width: int = 360,
               height: int = 180, xlabel: str = "step") -> str:
    """An SVG line chart of named (x, y) series; non-finite values are skipped."""
    pad_l, pad_r, pad_t, pad_b = 52, 10, 22 if title else 8, 26
    clean = {k: [(x, y) for x, y in decimate(v) if math.isfinite(y)] for k, v in series.items()}
    allpts = [p for v in clean.values() for p in v]
    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" style="font:10px sans-serif;background:var(--jp-layout-color0,#fff)">']
    if title:
        parts.append(f'<text x="{width / 2}" y="14" text-anchor="middle" font-weight="bold" '
                     f'fill="var(--jp-ui-font-color1,#333)">{esc(title)}</text>')
    if not allpts:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888">no finite points yet</text></svg>')
        return "".join(parts)
    xs = [p[0] for p in allpts]
    ys = [p[1] for p in allpts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - (abs(y0) * 0.1 or 1), y1 + (abs(y1) * 0.1 or 1)
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(x):
        return pad_l + (x - x0) / (x1 - x0) * pw

    def sy(y):
        return pad_t + ph - (y - y0) / (y1 - y0) * ph

    axis = "var(--jp-border-color1,#bbb)"
    parts.append(f'<rect x="{pad_l}" y="{pad_t}" width="{pw}" height="{ph}" fill="none" stroke="{axis}"/>')
    for frac in (0, 0.5, 1):
        yv = y0 + frac * (y1 - y0)
        parts.append(f'<text x="{pad_l - 4}" y="{sy(yv) + 3:.1f}" text-anchor="end" '
                     f'fill="var(--jp-ui-font-color2,#666)">{_fmt(yv)}</text>')
    for frac in (0, 0.5, 1):
        xv = x0 + frac * (x1 - x0)
        parts.append(f'<text x="{sx(xv):.1f}" y="{height - 12}" text-anchor="middle" '
                     f'fill="var(--jp-ui-font-color2,#666)">{_fmt(xv)}</text>')
    parts.append(f'<text x="{pad_l + pw / 2}" y="{height - 1}" text-anchor="middle" fill="#888">{esc(xlabel)}</text>')
    for i, (name, pts) in enumerate(clean.items()):
        color = PALETTE[i % len(PALETTE)]
        if len(pts) == 1:
            parts.append(f'<circle cx="{sx(pts[0][0]):.1f}" cy="{sy(pts[0][1]):.1f}" r="3" fill="{color}"/>')
        else:
            d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{d}"/>')
    if len(clean) > 1:
        for i, name in enumerate(clean):
            color = PALETTE[i % len(PALETTE)]
            y = pad_t + 10 + i * 12
            parts.append(f'<rect x="{pad_l + 6}" y="{y - 7}" width="8" height="8" fill="{color}"/>'
                         f'<text x="{pad_l + 18}" y="{y}" fill="var(--jp-ui-font-color1,#333)">{esc(name[:40])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def sparkline(values: list[float], width: int = 80, height: int = 18, color: str = PALETTE[0]) -> str:
    vals = [v for v in values if math.isfinite(v)]
    if len(vals) < 2:
        return ""
    pts = decimate(list(enumerate(vals)), 60)
    lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
    span = (hi - lo) or 1.0
    n = pts[-1][0] or 1
    d = " ".join(f"{x / n * (width - 2) + 1:.1f},{height - 1 - (y - lo) / span * (height - 2):.1f}" for x, y in pts)
    return (f'<svg width="{width}" height="{height}"><polyline fill="none" stroke="{color}" '
            f'stroke-width="1.2" points="{d}"/></svg>')
