"""HTML views of runs, run tables and comparisons (used by widgets and rich display)."""

from __future__ import annotations

import datetime as dt
import html
import math
from typing import Any

from .charts import sparkline

STATUS_COLORS = {
    "running": "#1a73e8", "finished": "#188038", "failed": "#d93025",
    "killed": "#e8710a", "crashed": "#9334e6",
}
CSS = """<style>
.mlops-t{border-collapse:collapse;font-size:12px;font-family:var(--jp-ui-font-family,sans-serif)}
.mlops-t th,.mlops-t td{padding:3px 8px;border-bottom:1px solid var(--jp-border-color2,#e0e0e0);text-align:left;
 white-space:nowrap;max-width:320px;overflow:hidden;text-overflow:ellipsis;color:var(--jp-ui-font-color1,#222)}
.mlops-t th{background:var(--jp-layout-color2,#f4f4f4);font-weight:600}
.mlops-t tr.diff td{background:var(--jp-warn-color3,#fff4ce)}
.mlops-badge{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:11px}
.mlops-h{font:600 14px var(--jp-ui-font-family,sans-serif);margin:6px 0;color:var(--jp-ui-font-color0,#111)}
.mlops-charts{display:flex;flex-wrap:wrap;gap:6px}
.mlops-cell{margin:4px 0;border-left:3px solid var(--jp-border-color1,#ccc);padding-left:6px}
.mlops-cell pre{margin:2px 0;font-size:11px;white-space:pre-wrap}
.mlops-err{border-left-color:#d93025}
</style>"""


def shown(value: Any) -> str:
    """Text safe to put in HTML: escaped, control characters written as escapes."""
    s = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    s = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in s)
    return html.escape(s)


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"
    return shown(v)


def fmt_time(ts: float | None) -> str:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return ""
    return dt.datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def badge(status: str) -> str:
    color = STATUS_COLORS.get(status, "#777")
    return f'<span class="mlops-badge" style="background:{color}">{shown(status)}</span>'


def table(headers: list[str], rows: list[list[str]], diff_rows: set[int] | None = None) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for i, r in enumerate(rows):
        cls = ' class="diff"' if diff_rows and i in diff_rows else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>")
    return f'<table class="mlops-t"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def runs_table_html(rows: list[dict], param_cols: list[str], metric_cols: list[str],
                    sparks: dict[str, list[float]] | None = None) -> str:
    headers = ["status", "name", "run", "started", "duration"] + [shown(p) for p in param_cols] + \
              [shown(m) for m in metric_cols]
    out = []
    for r in rows:
        end = r.get("end_time")
        dur = (end - r["start_time"]) if end else None
        cells = [badge(r["status"]), shown(r["name"]), f"<code>{r['run_id'][:8]}</code>",
                 fmt_time(r["start_time"]), fmt_duration(dur)]
        cells += [fmt_value(r["params"][p]) if p in r["params"] else "" for p in param_cols]
        for m in metric_cols:
            v = r["metrics"].get(m)
            cell = fmt_value(v) if v is not None else ""
            if sparks and m == (metric_cols[0] if metric_cols else None) and r["run_id"] in sparks:
                cell += " " + sparkline(sparks[r["run_id"]])
            cells.append(cell)
        out.append(cells)
    return CSS + table(headers, out)


# -- data versioning -------------------------------------------------------------------------------------
def fmt_size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def dataset_version_html(v) -> str:
    parts = [CSS, f'<div class="mlops-h">{shown(v.ref)} <small>{shown(v.kind)}'
                  f'{" · unchanged" if v.unchanged else ""}</small></div>']
    info = [["size", fmt_size(v.size)], ["files", f"{v.n_files:,}"], ["created", fmt_time(v.created)],
            ["by", shown(v.username or "")], ["digest", f"<code>{v.digest[:16]}</code>"]]
    if v.rows is not None:
        info.insert(0, ["rows", f"{v.rows:,}"])
    if v.message:
        info.append(["message", shown(v.message)])
    if v.run_id:
        info.append(["run", f"<code>{v.run_id[:8]}</code>"])
    if v.source:
        info.append(["source", shown(v.source)])
    parts.append(table(["", ""], info))
    if v.summary:
        rows = []
        for c, s in v.summary["columns"].items():
            top = ", ".join(f"{shown(t[0])} ({t[1]})" for t in s.get("top", [])[:3])
            rows.append([shown(c), shown(s["dtype"]), f"{s['null_fraction']:.3f}", fmt_value(s.get("distinct")),
                         fmt_value(s.get("mean", "")), fmt_value(s.get("std", "")), fmt_value(s.get("min", "")),
                         fmt_value(s.get("max", "")), top])
        parts.append('<div class="mlops-h">Columns</div>')
        parts.append(table(["column", "dtype", "nulls", "distinct", "mean", "std", "min", "max", "top"], rows))
    elif v.files:
        parts.append('<div class="mlops-h">Files</div>')
        parts.append(table(["path", "size", "mode", "digest"],
                           [[shown(f["path"]), fmt_size(f["size"]), oct(f["mode"]), f"<code>{f['digest'][:12]}</code>"]
                            for f in v.files[:200]]))
        if len(v.files) > 200:
            parts.append(f"<small>… and {len(v.files) - 200:,} more files</small>")
    return "".join(parts)


def model_version_html(v) -> str:
    from ..models.signature import describe

    al = "".join(f' <span class="mlops-badge" style="background:#fef7e0;color:#7a5b00">{shown(a)}</span>'
                 for a in v.aliases)
    parts = [CSS, f'<div class="mlops-h">{shown(v.ref)}{al} <small>{shown(v.model_class or "")}</small></div>']
    info = [["uri", f"<code>{shown(v.uri)}</code>"], ["format", shown(v.flavor)],
            ["library", shown(f"{v.library} {v.library_version}")], ["size", fmt_size(v.size)],
            ["created", fmt_time(v.created)], ["by", shown(v.username or "")],
            ["signature", shown(describe(v.signature))]]
    if v.signature and v.signature.get("classes") is not None:
        info.append(["classes", shown(", ".join(map(str, v.signature["classes"])))])
    if v.message:
        info.append(["message", shown(v.message)])
    if v.run_id:
        info.append(["run", f"<code>{v.run_id[:8]}</code>"])
    if v.datasets:
        info.append(["datasets", ", ".join(f"{shown(d['ref'])} ({shown(d['direction'])})" for d in v.datasets)])
    if v.explanations:
        info.append(["explanations", f"{len(v.explanations)} (" + ", ".join(sorted({e['method'] for e in v.explanations}))
                     + ")"])
    parts.append(table(["", ""], info))
    if v.metrics:
        parts.append('<div class="mlops-h">Metrics of the run</div>')
        parts.append(table(["metric", "value"], [[shown(k), fmt_value(val)] for k, val in sorted(v.metrics.items())]))
    return "".join(parts)


def files_diff_html(d) -> str:
    rows = [['<span style="color:#188038">+ added</span>', shown(p), fmt_size(s)] for p, s in d.added[:500]]
    rows += [['<span style="color:#d93025">− removed</span>', shown(p), fmt_size(s)] for p, s in d.removed[:500]]
    rows += [['<span style="color:#e8710a">~ changed</span>', shown(p), f"{fmt_size(a)} → {fmt_size(b)}"]
             for p, a, b in d.changed[:500]]
    head = (f'<div class="mlops-h">{shown(d.a)} → {shown(d.b)}</div><small>{len(d.added)} added, '
            f'{len(d.removed)} removed, {len(d.changed)} changed, {d.unchanged} unchanged</small>')
    return CSS + head + (table(["", "path", "size"], rows) if rows else "")


def table_diff_html(d) -> str:
    parts = [CSS, f'<div class="mlops-h">{shown(d.a)} → {shown(d.b)}</div>',
             f"<small>rows {d.rows[0]:,} → {d.rows[1]:,}</small>"]
    schema = [['<span style="color:#188038">added</span>', shown(c), ""] for c in d.added_columns]
    schema += [['<span style="color:#d93025">removed</span>', shown(c), ""] for c in d.removed_columns]
    schema += [["type changed", shown(c), f"{shown(a)} → {shown(b)}"] for c, a, b in d.type_changes]
    if schema:
        parts.append('<div class="mlops-h">Schema</div>' + table(["", "column", ""], schema))
    if d.key:
        parts.append(f'<div class="mlops-h">Rows by key {shown(d.key)}</div>'
                     f"{d.rows_added:,} added · {d.rows_removed:,} removed · {d.rows_changed:,} changed")
        if d.changed_sample is not None and len(d.changed_sample):
            parts.append(d.changed_sample.to_html(max_rows=20, classes="mlops-t"))
    rows, diff_rows = [], set()
    for i, s in enumerate(d.stats):
        rows.append([shown(s["column"]), s["stat"], fmt_value(s["before"]), fmt_value(s["after"])])
        if s["changed"]:
            diff_rows.add(i)
    if rows:
        parts.append('<div class="mlops-h">Column statistics</div>' + table(["column", "stat", "before", "after"],
                                                                          rows, diff_rows))
    return "".join(parts)


def check_html(r) -> str:
    if r.ok:
        return CSS + f'<div class="mlops-h" style="color:#188038">✓ fits {shown(r.ref)}</div>'
    return CSS + (f'<div class="mlops-h" style="color:#d93025">✗ does not fit {shown(r.ref)}: '
                  f'{len(r.violations)} violation(s)</div>'
                  + table(["column", "problem"], [[shown(c), shown(m)] for c, m in r.violations]))


def lineage_svg(g) -> str:
    """Nodes in layers left to right (sources first), edges as arrows."""
    if not g.nodes:
        return "<i>no lineage</i>"
    layer = {n: 0 for n in g.nodes}
    for _ in range(len(g.nodes)):
        changed = False
        for a, b in g.edges:
            if layer[b] < layer[a] + 1:
                layer[b] = layer[a] + 1
                changed = True
        if not changed:
            break
    cols: dict[int, list[str]] = {}
    for n in sorted(g.nodes, key=lambda n: (layer[n], g.nodes[n][1])):
        cols.setdefault(layer[n], []).append(n)
    bw, bh, gx, gy = 190, 34, 70, 16
    height = max(len(v) for v in cols.values()) * (bh + gy) + gy
    width = len(cols) * (bw + gx) + gx - 40
    pos = {}
    for c, nodes in cols.items():
        off = (height - len(nodes) * (bh + gy) + gy) / 2
        for i, n in enumerate(nodes):
            pos[n] = (20 + c * (bw + gx), off + i * (bh + gy))
    colors = {"data": "#e6f4ea", "run": "#e8f0fe", "model": "#fef7e0"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" style="font:11px sans-serif">',
           '<defs><marker id="mlops-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>']
    for a, b in g.edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        out.append(f'<line x1="{x1 + bw}" y1="{y1 + bh / 2}" x2="{x2}" y2="{y2 + bh / 2}" stroke="#888" '
                   f'marker-end="url(#mlops-arrow)"/>')
    for n, (kind, label, status) in g.nodes.items():
        x, y = pos[n]
        stroke = "#1a73e8" if n == g.focus else "#999"
        out.append(f'<rect x="{x}" y="{y}" width="{bw}" height="{bh}" rx="6" fill="{colors.get(kind, "#eee")}" '
                   f'stroke="{stroke}" stroke-width="{2 if n == g.focus else 1}"/>'
                   f'<text x="{x + 8}" y="{y + 14}" fill="#222">{shown(label[:30])}</text>'
                   f'<text x="{x + 8}" y="{y + 27}" fill="#666">{shown(kind)} · {shown(status)}</text>')
    out.append("</svg>")
    return "".join(out)
