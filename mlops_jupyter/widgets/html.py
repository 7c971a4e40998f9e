"""HTML views of runs, run tables and comparisons (used by widgets and rich display)."""

from __future__ import annotations

import datetime as dt
import html
import math
from typing import Any

STATUS_COLORS = {
    "running": "#1a73e8", "finished": "#188038", "failed": "#d93025",
    "killed": "#e8710a", "crashed": "#9334e6", "pruned": "#5f6368",
}
# `.mlops-t.mlops-t`: as specific as JupyterLab's `:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td`
# (right-aligned cells), so that ours, coming later, wins; colours from the theme's --jp-* variables.
# A chart drawn offline (vl-convert's SVG) inside an HTML card: its black text, grey axes and white
# background follow JupyterLab's theme (CSS outranks SVG presentation attributes), and text a
# browser draws a little wider than vl-convert measured it may run past the picture's edge.
CHART_CSS = """<style>
.mlops-chart{margin:4px 0 10px 0;max-width:100%;overflow-x:auto;padding-right:24px}
.mlops-chart>svg{overflow:visible}
.mlops-chart>svg>rect:first-child{fill:var(--jp-layout-color0,white)}
.mlops-chart svg [fill="#000"]{fill:var(--jp-ui-font-color1,#000)}
.mlops-chart svg [stroke="#888"]{stroke:var(--jp-border-color1,#888)}
.mlops-chart svg [stroke="#ddd"]{stroke:var(--jp-border-color2,#ddd)}
</style>"""

CSS = """<style>
table.mlops-t{border-collapse:collapse;font-size:12px;font-family:var(--jp-ui-font-family,sans-serif);
 margin:2px 0 6px 0;table-layout:auto;color:var(--jp-ui-font-color1,#222)}
.mlops-t.mlops-t th,.mlops-t.mlops-t td{padding:3px 8px;border-bottom:1px solid var(--jp-border-color2,#e0e0e0);
 text-align:left;white-space:nowrap;max-width:320px;overflow:hidden;text-overflow:ellipsis;vertical-align:top;
 color:var(--jp-ui-font-color1,#222)}
.mlops-t.mlops-t th{background:var(--jp-layout-color2,#f4f4f4);font-weight:600;vertical-align:bottom}
.mlops-t.mlops-t tr.diff td{background:var(--jp-warn-color3,#fff4ce)}
.mlops-t.mlops-t .num{text-align:right;font-variant-numeric:tabular-nums}
.mlops-t.mlops-t th.grp{text-align:center;border-bottom:2px solid var(--jp-border-color1,#bdbdbd)}
.mlops-t.mlops-t .grp1{border-left:1px solid var(--jp-border-color1,#bdbdbd)}
.mlops-t.mlops-t td.wrap{white-space:normal;min-width:8em}
.mlops-t.mlops-t code{font-family:var(--jp-code-font-family,monospace);font-size:11px;background:none;padding:0;
 color:var(--jp-ui-font-color1,#222)}
.mlops-t .mlops-tok{white-space:nowrap}
.mlops-t.mlops-t td.mlops-label{color:var(--jp-ui-font-color2,#666)}
.mlops-badge{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:11px;line-height:16px}
.mlops-scroll{overflow-x:auto;max-width:100%;line-height:normal;font-size:12px}
.mlops-h{font:600 14px var(--jp-ui-font-family,sans-serif);margin:6px 0;color:var(--jp-ui-font-color0,#111)}
.mlops-h small{font-weight:400;color:var(--jp-ui-font-color2,#666)}
.mlops-charts{display:flex;flex-wrap:wrap;gap:6px}
.mlops-cell{margin:4px 0;border-left:3px solid var(--jp-border-color1,#ccc);padding-left:6px}
.mlops-cell pre{margin:2px 0;font-size:11px;white-space:pre-wrap}
.mlops-err{border-left-color:#d93025}
.mlops-note{font:11px var(--jp-ui-font-family,sans-serif);color:var(--jp-ui-font-color2,#666);margin:4px 0}
</style>""" + CHART_CSS


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


def text_card(rows: list[tuple[str, str]]) -> str:
    """label | text rows whose text wraps (sentences: notes, verdicts, what was evaluated on what)."""
    return '<table class="mlops-t">' + "".join(
        f'<tr><td class="mlops-label">{shown(k)}</td><td class="wrap" style="max-width:760px">{shown(v)}</td></tr>'
        for k, v in rows) + "</table>"


def table(headers: list[str], rows: list[list[str]], diff_rows: set[int] | None = None) -> str:
    """A table of HTML cells; with every header empty, a card of label | value rows (no header row,
    the labels dimmed)."""
    card = not any(headers)
    head = "" if card else "<thead><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr></thead>"
    body = []
    for i, r in enumerate(rows):
        cls = ' class="diff"' if diff_rows and i in diff_rows else ""
        cells = [f'<td class="mlops-label">{c}</td>' if card and j == 0 else f"<td>{c}</td>" for j, c in enumerate(r)]
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return f'<table class="mlops-t">{head}<tbody>{"".join(body)}</tbody></table>'


# -- formats shared by the notebook's tables and the terminal's -----------------------------------------
ID_CHARS = 8  # run ids as tables show them; the full id is in the DataFrame and in `show`


def missing(v: Any) -> bool:
    """None, NaN, NaT or pandas' NA."""
    if v is None:
        return True
    if isinstance(v, (str, list, dict, tuple)):
        return False
    try:
        return bool(v != v)
    except TypeError:  # pandas.NA: its comparisons are NA
        return True
    except ValueError:  # an array
        return False


def blank(v: Any) -> bool:
    """Nothing to show: a missing value or an empty string."""
    return missing(v) or (isinstance(v, str) and v == "")


def fmt_when(seconds: float | None) -> str:
    """Local time to the minute, ``2026-11-30 10:06`` (as ``ls -l`` shows it)."""
    if blank(seconds):
        return ""
    return dt.datetime.fromtimestamp(float(seconds)).strftime("%Y-%m-%d %H:%M")


def fmt_size(n: float | None) -> str:
    """Bytes for people, in SI units: ``512 B``, ``1.2 MB``, ``340 GB``."""
    if blank(n):
        return ""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            break
        n /= 1000
    if unit == "B":
        return f"{n:.0f} B"
    return f"{n:.1f} {unit}" if abs(n) < 100 else f"{n:.0f} {unit}"


def fmt_count(n: float | None) -> str:
    return "" if blank(n) else f"{int(n):,}"


def fmt_num(v: Any, digits: int = 4) -> str:
    """A statistic to *digits* significant digits: ``0.1235``, ``1,234``, ``3.142e-07``; whole
    numbers in full (``123,456``); text as it is."""
    if blank(v):
        return ""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if math.isinf(v):
        return str(v)
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if 1000 <= abs(v) < 1e15:
        return f"{round(v):,}"
    if 1e-4 <= abs(v):
        return f"{v:#.{digits}g}".rstrip(".")  # '#': 1.000, not 1
    return f"{v:.{digits - 1}e}"


def numeric(values: list[Any]) -> bool:
    """Every value a number (not a bool), or missing: a column to align right."""
    return all(blank(v) or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)


def fmt_missing(nulls: int | None, rows: int | None, fraction: float | None = None) -> str:
    """Missing values as a count and a share of the rows: ``0 (0%)``, ``12 (1.2%)``, ``3 (<0.1%)``."""
    if blank(nulls):
        if blank(fraction) or blank(rows):
            return ""
        nulls = round(fraction * rows)
    nulls = int(nulls)
    if not rows:
        return f"{nulls:,}"
    pct = 100 * nulls / rows
    if nulls == 0:
        share = "0%"
    elif pct < 0.1:
        share = "<0.1%"
    elif pct < 10:
        share = f"{pct:.1f}%"
    else:
        share = f"{pct:.0f}%"
    return f"{nulls:,} ({share})"


def tokens(text: str | None) -> list[str]:
    """The items of a comma-separated cell (aliases, metrics, datasets), each one unbreakable:
    ``production->v1`` is shown ``production→v1``."""
    if blank(text):
        return []
    return [t.strip().replace("->", "→") for t in str(text).split(", ") if t.strip()]


def plain_value(v: Any) -> Any:
    """A DataFrame cell as the listings' rows carry it: times in seconds since the epoch, numpy
    scalars as Python's, missing values as None."""
    if missing(v):
        return None
    if isinstance(v, dt.datetime):  # also pandas.Timestamp
        return v.timestamp()
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        try:
            return v.item()
        except (ValueError, TypeError):
            return v
    return v


def frame_rows(frame) -> list[dict]:
    """The rows of a listing DataFrame, plain (see :func:`plain_value`)."""
    return [{str(k): plain_value(v) for k, v in rec.items()} for rec in frame.to_dict("records")]


def run_rows(frame) -> list[dict]:
    """The rows of a runs DataFrame (``params.X``, ``metrics.X`` columns) in the shape
    ``search_runs`` gives: ``params`` and ``metrics`` as dicts of what each run logged."""
    out = []
    for rec in frame_rows(frame):
        row = {k: rec.get(k) for k in ("run_id", "name", "status", "start_time", "end_time", "user")}
        row["params"] = {k[7:]: v for k, v in rec.items() if k.startswith("params.") and v is not None}
        row["metrics"] = {k[8:]: v for k, v in rec.items() if k.startswith("metrics.") and v is not None}
        out.append(row)
    return out


# Each listing: its title, what it counts, and its columns as (header, key or function of the row,
# how the cell is shown). How: "text" (free text, may be cut), "token" (never broken), "id" (short),
# "when", "size", "count", "tokens" (comma-separated items, each unbreakable).
def _move(r: dict) -> str:
    return f"{r.get('from') or '—'} → {r.get('to') or ''}"


LISTINGS: dict[str, tuple[str, str, list[tuple[str, Any, str]]]] = {
    "datasets": ("Datasets", "dataset", [
        ("name", "name", "token"), ("latest", "latest", "token"), ("kind", "kind", "token"),
        ("rows", "rows", "count"), ("files", "files", "count"), ("size", "size", "size"),
        ("created", "created", "when"), ("run", "run_id", "id"), ("user", "user", "token"),
        ("message", "message", "text")]),
    "data_versions": ("Versions", "version", [
        ("version", "ref", "token"), ("kind", "kind", "token"), ("rows", "rows", "count"),
        ("files", "files", "count"), ("size", "size", "size"), ("created", "created", "when"),
        ("run", "run_id", "id"), ("user", "user", "token"), ("digest", "digest", "id"),
        ("message", "message", "text")]),
    "models": ("Models", "model", [
        ("name", "name", "token"), ("latest", "latest", "token"), ("aliases", "aliases", "tokens"),
        ("class", "class", "token"), ("format", "flavor", "token"), ("size", "size", "size"),
        ("created", "created", "when"), ("run", "run_id", "id"), ("metrics", "metrics", "tokens")]),
    "model_versions": ("Versions", "version", [
        ("version", "ref", "token"), ("aliases", "aliases", "tokens"), ("class", "class", "token"),
        ("format", "flavor", "token"), ("size", "size", "size"), ("created", "created", "when"),
        ("run", "run_id", "id"), ("datasets", "datasets", "tokens"), ("metrics", "metrics", "tokens"),
        ("signature", "signature", "text")]),
    "alias_moves": ("Alias moves", "move", [
        ("when", "when", "when"), ("alias", "alias", "token"), ("move", _move, "token"),
        ("user", "user", "token"), ("host", "host", "token")]),
}
NUMERIC = ("count", "size")


def cell_text(value: Any, how: str) -> str:
    """A listing cell as plain text (the HTML and the terminal tables dress it)."""
    if how == "when":
        return fmt_when(value)
    if how == "size":
        return fmt_size(value)
    if how == "count":
        return fmt_count(value)
    if blank(value):
        return ""
    if how == "id":
        return str(value)[:ID_CHARS]
    if how == "tokens":
        return ", ".join(tokens(value))
    if isinstance(value, float):
        return fmt_value(value)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))


def listing_table(kind: str, rows: list[dict]) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """The columns ((header, how)) and cells (plain text) of a listing of *kind*."""
    cols = LISTINGS[kind][2]
    cells = [[cell_text(key(r) if callable(key) else r.get(key), how) for _, key, how in cols] for r in rows]
    return [(h, how) for h, _, how in cols], cells


def listing_title(kind: str, rows: list[dict], title: str | None = None) -> str:
    """``Datasets · 3``: the listing's title and how many rows it has."""
    name, noun, _ = LISTINGS[kind]
    n = len(rows)
    return f"{title or name} · {n:,} {noun}{'' if n == 1 else 's'}"


def _html_cell(text: str, how: str) -> str:
    if how == "tokens":
        return ", ".join(f'<span class="mlops-tok">{shown(t)}</span>' for t in text.split(", ") if t)
    if how == "id":
        return f"<code>{shown(text)}</code>" if text else ""
    return shown(text)


def _td(text: str, how: str) -> str:
    """A listing cell: numbers right-aligned, free text and lists wrapped between words only."""
    cls = "num" if how in NUMERIC else "wrap" if how in ("text", "tokens") else ""
    return f'<td class="{cls}">{_html_cell(text, how)}</td>' if cls else f"<td>{_html_cell(text, how)}</td>"


def listing_html(listing) -> str:
    """A listing (``data ls``, ``model ls``, ``model history``) as a card like ``model show``'s."""
    return listing_rows_html(listing.kind, listing.rows, getattr(listing, "title", None))


def listing_frame_html(frame) -> str:
    """A listing DataFrame (what ``%mlops data ls`` returns) drawn as its card."""
    info = frame.attrs.get("mlops_listing", {})
    return listing_rows_html(info.get("kind", "datasets"), frame_rows(frame), info.get("title"))


def listing_rows_html(kind: str, rows: list[dict], title: str | None = None) -> str:
    head = f'<div class="mlops-h">{shown(listing_title(kind, rows, title))}</div>'
    if not rows:
        return CSS + head
    cols, cells = listing_table(kind, rows)
    ths = "".join(f'<th class="num">{shown(h)}</th>' if how in NUMERIC else f"<th>{shown(h)}</th>"
                  for h, how in cols)
    body = "".join("<tr>" + "".join(_td(c, how) for c, (_, how) in zip(r, cols)) + "</tr>" for r in cells)
    return f'{CSS}{head}<table class="mlops-t"><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>'


def more_columns(hidden_params: int, hidden_metrics: int) -> str:
    """``12 more columns (4 params, 8 metrics)``, or "" when every column is shown."""
    n = hidden_params + hidden_metrics
    if not n:
        return ""
    parts = [f"{k} {what}{'' if k == 1 else 's'}" for k, what in ((hidden_params, "param"), (hidden_metrics, "metric"))
             if k]
    return f"{n} more column{'' if n == 1 else 's'} ({', '.join(parts)})"


def runs_table_html(rows: list[dict], param_cols: list[str], metric_cols: list[str],
                    sparks: dict[str, list[float]] | None = None, note: str = "") -> str:
    """Runs as a table: status, name, short id, start and duration, then the chosen params and
    metrics under a two-level header; *note* under the table (the columns not shown)."""
    base = ["status", "name", "run", "started", "duration"]
    numeric_params = {p for p in param_cols if numeric([r["params"].get(p) for r in rows])}
    if param_cols or metric_cols:
        top = "".join(f'<th rowspan="2">{h}</th>' for h in base)
        top += "".join(f'<th class="grp" colspan="{len(cols)}">{what}</th>'
                       for cols, what in ((param_cols, "params"), (metric_cols, "metrics")) if cols)
        sub = "".join(f'<th class="{"grp1" if i == 0 else ""}{" num" if p in numeric_params else ""}">{shown(p)}</th>'
                      for i, p in enumerate(param_cols))
        sub += "".join(f'<th class="num{" grp1" if i == 0 else ""}">{shown(m)}</th>' for i, m in enumerate(metric_cols))
        head = f"<tr>{top}</tr><tr>{sub}</tr>"
    else:
        head = "<tr>" + "".join(f"<th>{h}</th>" for h in base) + "</tr>"
    if sparks:
        from .charts import sparkline
    body = []
    for r in rows:
        end = r.get("end_time")
        dur = (end - r["start_time"]) if not blank(end) and not blank(r.get("start_time")) else None
        cells = [f"<td>{badge(r['status'])}</td>", f"<td>{shown(r['name'])}</td>",
                 f"<td><code>{r['run_id'][:ID_CHARS]}</code></td>", f"<td>{fmt_when(r['start_time'])}</td>",
                 f'<td class="num">{fmt_duration(dur)}</td>']
        for i, p in enumerate(param_cols):
            v = r["params"].get(p)
            cls = " ".join(c for c in ("grp1" if i == 0 else "", "num" if p in numeric_params else "") if c)
            cells.append(f'<td class="{cls}">{"" if v is None else fmt_value(v)}</td>')
        for i, m in enumerate(metric_cols):
            v = r["metrics"].get(m)
            cell = "" if blank(v) else fmt_value(v)
            if sparks and i == 0 and r["run_id"] in sparks:
                cell += " " + sparkline(sparks[r["run_id"]])
            cells.append(f'<td class="num{" grp1" if i == 0 else ""}">{cell}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    out = f'{CSS}<table class="mlops-t"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
    if note:
        out += f'<div class="mlops-note">{shown(note)}</div>'
    return out


def runs_frame_html(frame, keys: int = 8) -> str:
    """A runs DataFrame (``mj.runs()``) as a table for people: the first *keys* params and metrics,
    the rest counted."""
    rows = run_rows(frame)
    params = sorted({k for r in rows for k in r["params"]})
    metrics = sorted({k for r in rows for k in r["metrics"]})
    more = more_columns(max(len(params) - keys, 0), max(len(metrics) - keys, 0))
    return (f'<div class="mlops-h">Runs <small>{len(rows):,}</small></div>'
            + runs_table_html(rows, params[:keys], metrics[:keys],
                              note=f"{more} not shown: select them from the DataFrame" if more else ""))


# -- data versioning -------------------------------------------------------------------------------------
STATS_HEADERS = ["column", "type", "missing", "distinct", "mean", "std", "min", "max", "most common"]


def column_stats(v) -> list[list[str]]:
    """A table version's statistics, one row per column (plain text, 4 significant digits):
    ``STATS_HEADERS``."""
    rows = v.rows if v.rows is not None else v.summary.get("rows")
    out = []
    for c, s in v.summary["columns"].items():
        top = ", ".join(f"{t[0]} ({t[1]:,})" for t in s.get("top", [])[:3])
        out.append([cell_text(c, "token"), str(s.get("dtype", "")), fmt_missing(s.get("nulls"), rows, s.get("null_fraction")),
                    fmt_count(s.get("distinct")), fmt_num(s.get("mean")), fmt_num(s.get("std")),
                    fmt_num(s.get("min")), fmt_num(s.get("max")), top])
    return out


def dataset_version_html(v) -> str:
    parts = [CSS, f'<div class="mlops-h">{shown(v.ref)} <small>{shown(v.kind)}'
                  f'{" · unchanged" if v.unchanged else ""}</small></div>']
    info = [["size", fmt_size(v.size)], ["files", fmt_count(v.n_files)], ["created", fmt_when(v.created)],
            ["by", shown(v.username or "")], ["digest", f"<code>{v.digest[:12]}</code>"]]
    if v.rows is not None:
        cols = len(v.summary["columns"]) if v.summary else None
        info.insert(0, ["rows", fmt_count(v.rows) + (f" × {cols:,} columns" if cols is not None else "")])
    if v.message:
        info.append(["message", shown(v.message)])
    if v.run_id:
        info.append(["run", f"<code>{v.run_id[:ID_CHARS]}</code>"])
    if v.source:
        info.append(["source", shown(v.source)])
    parts.append(table(["", ""], info))
    if v.summary:
        numeric = {2, 3, 4, 5, 6, 7}
        ths = "".join(f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>"
                      for i, h in enumerate(STATS_HEADERS))
        hows = ["token", "token"] + ["count"] * 6 + ["tokens"]  # "count": right-aligned
        body = "".join("<tr>" + "".join(_td(c, how) for c, how in zip(r, hows)) + "</tr>" for r in column_stats(v))
        parts.append('<div class="mlops-h">Columns</div>')
        parts.append(f'<table class="mlops-t"><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>')
    elif v.files:
        parts.append('<div class="mlops-h">Files</div>')
        parts.append(table(["path", "size", "mode", "digest"],
                           [[shown(f["path"]), fmt_size(f["size"]), oct(f["mode"]), f"<code>{f['digest'][:12]}</code>"]
                            for f in v.files[:200]]))
        if len(v.files) > 200:
            parts.append(f'<div class="mlops-note">… and {len(v.files) - 200:,} more files</div>')
    return "".join(parts)


def model_version_html(v) -> str:
    from ..models.signature import describe

    al = "".join(f' <span class="mlops-badge" style="background:#fef7e0;color:#7a5b00">{shown(a)}</span>'
                 for a in v.aliases)
    parts = [CSS, f'<div class="mlops-h">{shown(v.ref)}{al} <small>{shown(v.model_class or "")}</small></div>']
    info = [["uri", f"<code>{shown(v.uri)}</code>"], ["format", shown(v.flavor)],
            ["library", shown(f"{v.library} {v.library_version}")], ["size", fmt_size(v.size)],
            ["created", fmt_when(v.created)], ["by", shown(v.username or "")],
            ["signature", shown(describe(v.signature))]]
    if v.signature and v.signature.get("classes") is not None:
        info.append(["classes", shown(", ".join(map(str, v.signature["classes"])))])
    if v.message:
        info.append(["message", shown(v.message)])
    if v.run_id:
        info.append(["run", f"<code>{v.run_id[:ID_CHARS]}</code>"])
    if v.datasets:
        info.append(["datasets", ", ".join(f"{shown(d['ref'])} ({shown(d['direction'])})" for d in v.datasets)])
    if v.explanations:
        info.append(["explanations", f"{len(v.explanations)} (" + ", ".join(sorted({e['method'] for e in v.explanations}))
                     + ")"])
    parts.append(table(["", ""], info))
    if v.metrics:
        parts.append('<div class="mlops-h">Metrics of the run</div>')
        parts.append(table(["metric", "value"], [[shown(k), fmt_value(val)] for k, val in sorted(v.metrics.items())]))
    if v.evaluations:
        names = list(dict.fromkeys(k for e in v.evaluations for k in e["figures"]))
        parts.append('<div class="mlops-h">Evaluations</div>')
        parts.append(table(["data", "rows", "slices", *[shown(k) for k in names], "when"],
                           [[shown(e["data"]), f"{e['rows']:,}", shown(", ".join(e["options"].get("by") or []) or "—"),
                             *[fmt_value(e["figures"].get(k)) if e["figures"].get(k) is not None else "—"
                               for k in names], fmt_when(e["created"])] for e in v.evaluations[:10]]))
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


def figure(svg: str) -> str:
    """An offline-drawn chart (SVG text) for an HTML card, following the notebook's theme."""
    return f'{CHART_CSS}<div class="mlops-chart">{svg}</div>'
