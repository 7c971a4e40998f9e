"""Drift reports and monitoring as HTML (rich display) and as an ipywidgets view with a filter."""

from __future__ import annotations

import math

from .charts import PALETTE
from .html import CSS, figure, fmt_time, shown, table

REF_COLOR, CUR_COLOR = "#7f7f7f", PALETTE[1]


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return shown(v)


def histogram_svg(h: dict | None, width: int = 140, height: int = 36) -> str:
    """Reference (grey bars) and current (orange outline) shares, overlaid."""
    if not h:
        return ""
    ref, cur = h["ref"], h["cur"]
    n = len(ref)
    top = max(max(ref, default=0), max(cur, default=0)) or 1.0
    bw = (width - 2) / max(n, 1)
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for i, v in enumerate(ref):
        bh = v / top * (height - 2)
        parts.append(f'<rect x="{1 + i * bw:.1f}" y="{height - 1 - bh:.1f}" width="{max(bw - 1, 0.5):.1f}" '
                     f'height="{bh:.1f}" fill="{REF_COLOR}" fill-opacity="0.45"/>')
    pts = []
    for i, v in enumerate(cur):
        y = height - 1 - v / top * (height - 2)
        pts += [f"{1 + i * bw:.1f},{y:.1f}", f"{1 + (i + 1) * bw:.1f},{y:.1f}"]
    parts.append(f'<polyline fill="none" stroke="{CUR_COLOR}" stroke-width="1.5" points="{" ".join(pts)}"/>')
    title = (f"{h['lo']:.4g} … {h['hi']:.4g}" if h.get("kind") == "numeric"
             else ", ".join(h.get("labels", [])[:12]))
    parts.append(f"<title>{shown(title)} (grey: reference, orange: current)</title></svg>")
    return "".join(parts)


def _status(r) -> str:
    if r["status"] == "skipped":
        return '<span class="mlops-badge" style="background:#777">skipped</span>'
    if r["drift"]:
        return '<span class="mlops-badge" style="background:#d93025">drift</span>'
    return '<span class="mlops-badge" style="background:#188038">ok</span>'


def summary_html(report) -> str:
    s = report.summary
    share = f"{s['drift_share']:.0%}" if s["drift_share"] is not None else "n/a"
    verdict = ('<span class="mlops-badge" style="background:#d93025">dataset drift</span>' if s["dataset_drift"]
               else '<span class="mlops-badge" style="background:#188038">no dataset drift</span>')
    notes = "".join(f"<div>note: {shown(n)}</div>" for n in s.get("notes", []))
    saved = f" · report {report.id}" if report.id is not None else ""
    return (f'<div class="mlops-h">Drift: {s["n_drifted"]} of {s["n_compared"]} features ({share}; dataset '
            f'threshold {s["threshold"]:.0%}) {verdict}</div>'
            f'<div style="font-size:12px">reference: {shown(s["reference"])}<br>current: {shown(s["current"])}'
            f'<br><span style="color:{REF_COLOR}">■</span> reference <span style="color:{CUR_COLOR}">▬</span> '
            f'current · {s["seconds"]:.2f} s{saved}{notes}</div>')


def features_html(report, which: str = "all") -> str:
    df = report.features
    if which == "drifted":
        df = df[df["drift"] == True]
    elif which == "skipped":
        df = df[df["status"] == "skipped"]
    rows = []
    for r in df.to_dict("records"):
        nulls = ""
        if r.get("null_ref") is not None and not (isinstance(r["null_ref"], float) and math.isnan(r["null_ref"])):
            nulls = f"{r['null_ref']:.1%} → {r['null_cur']:.1%}"
        rows.append([shown(r["feature"]), shown(r.get("type") or ""), _status(r), shown(r.get("method") or ""),
                     _num(r.get("score")), _num(r.get("threshold")), histogram_svg(report.histograms.get(r["feature"])),
                     _num(r.get("psi")), nulls, shown(r.get("reason") or "")])
    if not rows:
        return '<div style="font-size:12px">no features here</div>'
    return table(["feature", "type", "status", "method", "score", "threshold", "reference vs current", "PSI",
                  "nulls", "notes"], rows)


def report_html(report) -> str:
    return CSS + summary_html(report) + features_html(report)


def show(report) -> None:
    """A widget: the summary, and the feature table filtered by all / drifted / skipped."""
    from IPython.display import HTML, display

    from .views import in_kernel

    if not in_kernel():
        display(HTML(report_html(report)))
        return
    import ipywidgets as W

    pick = W.ToggleButtons(options=[("all", "all"), (f"drifted ({report.summary['n_drifted']})", "drifted"),
                                    (f"skipped ({len(report.skipped)})", "skipped")], value="all")
    body = W.HTML(features_html(report))

    def on_pick(change):
        body.value = features_html(report, change["new"])

    pick.observe(on_pick, names="value")
    # saved with the whole report as HTML: a notebook saved without widget state still shows it
    from .saved import display_view

    display_view(W.VBox([W.HTML(CSS + summary_html(report)), pick, body]), report_html(report), _text(report))


def _text(report) -> str:
    s = report.summary
    return f"drift report: {s.get('n_drifted', 0)} of {s.get('n_compared', 0)} features drifted"


# -- monitoring ---------------------------------------------------------------------------------------
def monitor_html(m, charts: bool = True) -> str:
    """The span, the charts (requests, latency, quality and drift share on one clock-time axis,
    as SVG) and the window table."""
    w = m.windows
    parts = [CSS, f'<div class="mlops-h">Monitor {shown(m.label)}</div>',
             f'<div style="font-size:12px">{shown(m.describe_span())}</div>']
    for n in m.notes:
        parts.append(f'<div style="font-size:12px">note: {shown(n)}</div>')
    if charts and (len(w) or (m.drift is not None and len(m.drift))):
        parts.append(figure(m.chart().svg()))
    if len(w):
        cols = [c for c in m.table_columns() if c in w.columns]
        rows = [[fmt_time(r["start"]), *[_num(r[c]) for c in cols[1:]]] for r in w[cols].to_dict("records")]
        parts.append(table(["window", *cols[1:]], rows))
    return "".join(parts)


def show_monitor(m) -> None:
    """In a notebook: the card, then the interactive chart (with its SVG for the saved notebook)."""
    from .saved import display_card, display_chart

    display_card(monitor_html(m, charts=False), str(m))
    if len(m.windows) or (m.drift is not None and len(m.drift)):
        display_chart(m.chart())
