"""A served model over time: requests per window as bars, latency and quality as lines with a
marker on every window, drift share from the saved reports; one clock-time axis for all of them.

A window without requests is drawn as such: a zero bar and a gap in every line, never a ramp
joining its neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import Chart
from .spec import color, finite, frame, padded_domain

WIDTH = 560
HEIGHT = 110


def _ms(t: float) -> int:
    return round(t * 1000)


def monitor_chart(windows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], *, start: float,
                  end: float, window: float, drift: Sequence[Mapping[str, Any]] = (), title: str | None = None,
                  width: int = WIDTH, height: int = HEIGHT) -> Chart:
    """*windows*: one row per (window start in seconds, version) with the figures named in
    *columns* (``(column, title)``; ``requests`` is drawn as bars). Windows of the span that have
    no row are filled in as empty. *drift*: ``{"created": seconds, "drift_share": share}`` rows."""
    versions = sorted({str(w["version"]) for w in windows}, key=_version_order)
    labels = [f"v{v}" for v in versions]
    rows: list[dict[str, Any]] = []
    busy = set()
    for w in windows:
        t = float(w["start"])
        busy.add(round(t, 3))
        row = {"t": _ms(t), "t2": _ms(t + window), "tm": _ms(t + window / 2), "version": f"v{w['version']}"}
        for col, _ in columns:
            v = w.get(col)
            row[col] = float(v) if finite(v) else None
        rows.append(row)
    n = int((end - start) // window) + 1 if window > 0 else 0
    for i in range(min(n, 5000)):  # the empty windows: no bar, and every line breaks there
        t = start + i * window
        if round(t, 3) not in busy and t < end:
            rows.extend({"t": _ms(t), "t2": _ms(t + window), "tm": _ms(t + window / 2), "version": label,
                         **{col: None for col, _ in columns}} for label in labels)
    rows.sort(key=lambda r: (r["t"], _version_order(r["version"][1:])))
    if any(c == "requests" for c, _ in columns):  # versions stacked in each window's bar
        below: dict[int, float] = {}
        for r in rows:
            r["r0"] = below.get(r["t"], 0.0)
            r["r1"] = r["r0"] + (r["requests"] or 0.0)
            below[r["t"]] = r["r1"]
    x = {"field": "t", "type": "temporal", "title": "time", "scale": {"domain": [_ms(start), _ms(end)]},
         "axis": {"format": _time_format(end - start), "labelOverlap": True}}
    col = color(labels, field="version", title="version", symbol="square" if len(columns) else "stroke")
    panels = []
    for c, name in columns:
        tooltip = [{"field": "t", "type": "temporal", "title": "window start", "format": "%Y-%m-%d %H:%M"},
                   {"field": "version", "type": "nominal"},
                   {"field": c, "type": "quantitative", "title": name, "format": ".4~g"}]
        scale: dict[str, Any] = {"zero": c == "requests", "nice": True}
        dom = padded_domain([r[c] for r in rows if r.get(c) is not None], floor=0.0)
        if dom is not None and c != "requests":
            scale.update(domain=dom, nice=False)
        y = {"field": c, "type": "quantitative", "title": name, "scale": scale, "axis": {"tickCount": 4}}
        if c == "requests":
            panels.append({"width": width, "height": height,
                           "mark": {"type": "rect", "opacity": 0.85, "stroke": None},
                           "encoding": {"x": x, "x2": {"field": "t2"}, "y": {**y, "field": "r1"},
                                        "y2": {"field": "r0"}, "color": col, "tooltip": tooltip}})
        else:
            panels.append({"width": width, "height": height,
                           "mark": {"type": "line", "point": {"filled": True, "size": 36}},
                           "encoding": {"x": {**x, "field": "tm"}, "y": y, "color": col, "tooltip": tooltip}})
    body: dict[str, Any] = {"data": {"values": rows}}
    drift_rows = [{"t": _ms(float(d["created"])), "drift_share": float(d["drift_share"])}
                  for d in drift if finite(d.get("drift_share"))]
    if drift_rows:
        panels.append({"data": {"values": drift_rows}, "width": width, "height": height,
                       "mark": {"type": "line", "color": "#e45756",
                                "point": {"filled": True, "size": 36, "color": "#e45756"}},
                       "encoding": {"x": x, "y": {"field": "drift_share", "type": "quantitative",
                                                  "title": "drift share", "scale": {"domain": [0, 1]},
                                                  "axis": {"format": ".0%", "tickCount": 4}},
                                    "tooltip": [{"field": "t", "type": "temporal", "title": "report",
                                                 "format": "%Y-%m-%d %H:%M"},
                                                {"field": "drift_share", "type": "quantitative", "format": ".0%"}]}})
    if not panels:
        body.update(mark={"type": "text", "color": "#8a8a8a"}, encoding={"text": {"value": "no requests in this span"}})
    elif len(panels) == 1:
        body.update(panels[0])
    else:
        body.update(vconcat=panels, resolve={"scale": {"x": "shared", "y": "independent", "color": "shared"}})
    spec = frame(body, title=title, kind="monitor")
    spec["usermeta"]["mlops"].update(versions=labels, columns=[c for c, _ in columns], window=window)
    return Chart(spec)


def _version_order(v: str):
    return (0, int(v)) if v.isdigit() else (1, v)


def _time_format(span: float) -> str:
    if span <= 2 * 86400:
        return "%H:%M"
    if span <= 60 * 86400:
        return "%b %d %H:%M"
    return "%Y-%m-%d"
