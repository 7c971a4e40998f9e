"""A run and runs side by side: the HTML card (tables, and the charts as inline SVG for saved
pages and the panel) and, in a notebook, the same card followed by the interactive charts."""

from __future__ import annotations

import html

from .html import CSS, badge, figure, fmt_duration, fmt_time, fmt_value, shown, table

MAX_CHARTS = 12


def _svg(chart) -> str:
    return figure(chart.svg())


def _options(obj) -> dict:
    """The chart options a command attached (``--x``, ``--log-y``, ``--metric``)."""
    opts = getattr(obj, "chart_options", None) or {}
    return {"x": opts.get("x", "step"), "log_y": bool(opts.get("log_y")), "metric": opts.get("metric")}


def _charted_keys(rec) -> list[str]:
    return sorted(k for k, n in rec.metric_counts.items() if n > 1)[:MAX_CHARTS]


def run_html(rec, with_cells: bool = True, max_cells: int = 50, charts: bool = True) -> str:
    row = rec.row
    parts = [CSS, f'<div class="mlops-h">Run {shown(rec.name)} {badge(rec.status)} '
                  f'<code>{rec.run_id[:8]}</code></div>']
    info = [
        ["started", fmt_time(row["start_time"])],
        ["duration", fmt_duration(rec.duration)],
        ["notebook", shown(row.get("notebook") or "")],
        ["user@host", shown(f"{row.get('username')}@{row.get('host')}")],
    ]
    if row.get("parent_id"):
        info.append(["parent", f"<code>{row['parent_id'][:8]}</code>"])
    if rec.children:
        info.append(["children", " ".join(f"<code>{c[:8]}</code>" for c in rec.children)])
    if row.get("error"):
        info.append(["error", shown(row["error"])])
    git = rec.env.get("git") or {}
    if git:
        info.append(["git", shown(f"{git.get('commit', '')[:10]}{' (dirty)' if git.get('dirty') else ''}")])
    if rec.env.get("python"):
        info.append(["python", shown(rec.env["python"])])
    parts.append(table(["", ""], info))
    if rec.params:
        parts.append('<div class="mlops-h">Params</div>')
        parts.append(table(["name", "value"], [[shown(k), fmt_value(v)] for k, v in sorted(rec.params.items())]))
    if rec.metrics:
        parts.append('<div class="mlops-h">Metrics (last value)</div>')
        parts.append(table(["name", "value", "points"],
                           [[shown(k), fmt_value(v), str(rec.metric_counts.get(k, ""))]
                            for k, v in sorted(rec.metrics.items())]))
        keys = _charted_keys(rec)
        if charts and keys:
            o = _options(rec)
            parts.append(_svg(rec.chart(keys, x=o["x"], log_y=o["log_y"])))
    models = rec.logged_models()
    if models:
        from ..models.signature import describe

        for m in models:
            short = f"runs:/{rec.run_id[:8]}/{m['folder']}"
            parts.append(f'<div class="mlops-h">Logged model <code>{html.escape(m["folder"])}/</code></div>')
            parts.append(table(["", ""], [
                ["load with", f"<code>mj.models.load({html.escape(repr(short))})</code>"],
                ["format", shown(m.get("flavor", ""))],
                ["class", shown(str(m.get("model_class", "")).rsplit(".", 1)[-1])],
                ["library", shown(f"{m.get('library', '')} {m.get('library_version', '')}".strip())],
                ["signature", shown(describe(m.get("signature")))]]))
    if charts:
        try:
            chart = rec.importance_chart()
        except Exception:
            chart = None
        if chart is not None:
            parts.append('<div class="mlops-h">Feature importance</div>')
            parts.append(_svg(chart))
    if rec.tags:
        parts.append('<div class="mlops-h">Tags</div>')
        parts.append(table(["name", "value"], [[shown(k), shown(v)] for k, v in sorted(rec.tags.items())]))
    if rec.artifacts:
        parts.append('<div class="mlops-h">Artifacts</div>')
        parts.append(table(["path", "size", "digest"],
                           [[shown(a["path"]), f"{a['size']:,}", f"<code>{a['digest'][:12]}</code>"]
                            for a in rec.artifacts]))
    if with_cells:
        cells = rec.cells()
        if cells:
            parts.append(f'<details><summary class="mlops-h">Captured cells ({len(cells)})</summary>')
            for c in cells[:max_cells]:
                cls = "mlops-cell mlops-err" if c["status"] == "error" else "mlops-cell"
                err = f'<div style="color:#d93025">{shown(c["error"])}</div>' if c.get("error") else ""
                parts.append(f'<div class="{cls}"><small>[{c["execution_count"] or " "}] '
                             f'{fmt_duration(c["duration"])}</small><pre>{html.escape(c["source"])}'
                             f'</pre>{err}</div>')
            parts.append("</details>")
    return "".join(parts)


def compare_charts(comp) -> list:
    """The pictures of a comparison: the metric curves (best marked), and when params differ,
    parallel coordinates and the metric against each param."""
    from ..charts.compare import varying_params
    from ..tracking.pictures import points

    out = []
    o = _options(comp)
    keys = sorted({k for r in comp.runs for k, n in r.metric_counts.items() if n > 1})[:MAX_CHARTS]
    if keys:
        out.append(comp.chart(keys, x=o["x"], log_y=o["log_y"]))
    pts = points(comp.runs)
    if comp.metric_keys and varying_params(pts):
        out.append(comp.parallel(o["metric"]))
        out.append(comp.scatter(o["metric"]))
    return out


def compare_html(comp, charts: bool = True) -> str:
    runs = comp.runs
    parts = [CSS, f'<div class="mlops-h">Comparing {len(runs)} runs</div>']
    headers = ["param"] + [f"{shown(r.name)} <code>{r.run_id[:8]}</code> {badge(r.status)}" for r in runs]
    rows, diff = [], set()
    for i, (k, vals, differs) in enumerate(comp.param_rows):
        rows.append([shown(k)] + [fmt_value(v) if v is not None else "—" for v in vals])
        if differs:
            diff.add(i)
    if rows:
        parts.append(table(headers, rows, diff))
        parts.append(f"<small>{len(diff)} of {len(rows)} params differ (highlighted)</small>")
    if comp.metric_keys:
        from ..charts.spec import lower_is_better

        mrows = []
        for k in comp.metric_keys:
            vals = [r.metrics.get(k) for r in runs]
            known = [v for v in vals if isinstance(v, (int, float))]
            best = (min if lower_is_better(k) else max)(known) if len(known) > 1 else None
            mrows.append([shown(k)] + [("—" if v is None else f"<b>{fmt_value(v)} ★</b>" if v == best
                                        else fmt_value(v)) for v in vals])
        parts.append('<div class="mlops-h">Metrics (last value; ★ best)</div>')
        parts.append(table(["metric"] + headers[1:], mrows))
    if charts:
        parts.extend(_svg(c) for c in compare_charts(comp))
    return "".join(parts)


def show_run(rec) -> None:
    """A run in a notebook: its card, then its metric curves as an interactive chart (with an SVG
    copy that the saved notebook keeps)."""
    from .saved import display_card, display_chart

    display_card(run_html(rec, charts=False), repr(rec))
    keys = _charted_keys(rec)
    if keys:
        o = _options(rec)
        display_chart(rec.chart(keys, x=o["x"], log_y=o["log_y"]))


def show_compare(comp) -> None:
    from .saved import display_card, display_chart

    display_card(compare_html(comp, charts=False), f"<Comparison of {len(comp.runs)} runs>")
    for chart in compare_charts(comp):
        display_chart(chart)
