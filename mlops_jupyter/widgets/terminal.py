"""Results as text for a terminal: tables of runs, datasets and models, one run, a comparison, a
version. ``render`` picks the view by the result's type; the terminal face (``mlops``) prints it,
and ``mlops demo`` prints runs with it. A listing comes as plain rows, so that listing needs no
pandas (imported only to print a DataFrame).

Tables are laid out by ``rich`` (imported when a table is drawn): columns fit the terminal, a cell
is cut with an ellipsis or wrapped between words, never in the middle of an id, a time or an
alias. Styles (bold headers, coloured statuses) only on a terminal without ``NO_COLOR``; a pipe,
a file or a test gets plain text, as wide as the table.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any

from .html import (ID_CHARS, STATS_HEADERS, blank, column_stats, fmt_duration, fmt_size, fmt_time, fmt_value,
                   fmt_when, frame_rows, listing_table, listing_title, more_columns, numeric, run_rows)

SHOWN_KEYS = 6  # params and metrics shown per run in `mlops runs ls`; `mlops runs show RUN` has all
RIGHT = ("count", "size", "num", "duration")  # right-aligned kinds of cell
WRAPS = ("text", "tokens")  # cells that may wrap, between words only
STATUS_STYLES = {"running": "blue", "finished": "green", "failed": "red", "killed": "yellow", "crashed": "magenta",
                 "pruned": "cyan"}
GAP = 2  # spaces between columns


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return fmt_value(v)
    s = str(v)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def plain_output() -> bool:
    """Plain text (no styles): stdout is not a terminal, ``NO_COLOR`` is set or ``TERM=dumb``."""
    return (not sys.stdout.isatty() or bool(os.environ.get("NO_COLOR"))
            or os.environ.get("TERM") == "dumb")


def output_width() -> int | None:
    """The terminal's width; None (as wide as the table) for a pipe or a file, unless ``COLUMNS``
    says otherwise."""
    if sys.stdout.isatty():
        import shutil

        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 20 else None


def text_table(headers: list[str], rows: list[list[Any]], hows: list[str] | None = None,
               groups: list[tuple[str, int, int]] | None = None, plain: bool | None = None,
               width: int | None = None) -> str:
    """A table as text. *hows* says how each column's cells behave (``token``: never broken,
    ``text``/``tokens``: may wrap between words, ``count``/``size``/``num``: right-aligned, ``id``,
    ``status``); *groups* ``(label, first column, number of columns)`` puts a label above columns
    (params | metrics). *plain*: no styles (default: :func:`plain_output`); *width*: default
    :func:`output_width`. Columns that cannot fit the width, even wrapped, are left out from the
    right (the first stays) and named under the table."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    plain = plain_output() if plain is None else plain
    width = output_width() if width is None else width
    hows = hows or ["token"] * len(headers)
    texts = [[_fmt(v) for v in r] for r in rows]
    above = [""] * len(headers)
    for label, first, n in groups or []:
        if n:
            above[first] = label
    keep = list(range(len(headers)))
    if width:
        least = [narrowest([r[i] for r in texts] + [headers[i], above[i]], hows[i]) for i in keep]
        while len(keep) > 1 and sum(least[i] for i in keep) + GAP * (len(keep) - 1) > width:
            keep.pop()
    left_out = [headers[i] for i in range(len(headers)) if i not in keep]
    grouped = any(above[i] for i in keep)
    t = Table(box=None, show_edge=False, pad_edge=False, padding=(0, GAP // 2),
              header_style="" if plain else "bold", show_header=True)
    for i in keep:
        h, how, label = headers[i], hows[i], above[i]
        header = Text(f"{label}\n{h}" if grouped else h)
        if label and not plain:
            header.stylize("underline", 0, len(label))
        t.add_column(header, justify="right" if how in RIGHT else "left", no_wrap=how not in WRAPS,
                     overflow="ellipsis", min_width=len(label) or None,
                     style="" if plain or how != "id" else "dim")
    for r, raw in zip(texts, rows):
        cells = []
        for i in keep:
            text = Text(r[i])
            if hows[i] == "status" and not plain:
                text.stylize(STATUS_STYLES.get(str(raw[i]), ""))
            cells.append(text)
        t.add_row(*cells)
    buf = io.StringIO()
    console = Console(file=buf, width=width or 100_000, force_terminal=not plain, no_color=plain,
                      color_system=None if plain else "auto", highlight=False, markup=False, emoji=False,
                      legacy_windows=False, force_jupyter=False)  # in a kernel too: text, not a display
    console.print(t)
    out = "\n".join(line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines())
    if left_out:
        note = f"(too narrow for {len(left_out)} more column{'' if len(left_out) == 1 else 's'}: {', '.join(left_out)})"
        out += "\n" + note_lines(note, width)
    return out


def narrowest(cells: list[str], how: str) -> int:
    """The narrowest a column can be: its longest cell, or its longest word if it wraps."""
    if how in WRAPS:
        return max(len(w) for c in cells for w in (c.split() or [""]))
    return max(len(c) for c in cells)


def note_lines(text: str, width: int | None) -> str:
    import textwrap

    return textwrap.fill(text, width, break_on_hyphens=False) if width else text


def render_run_rows(rows: list[dict], plain: bool | None = None, width: int | None = None) -> str:
    """``mlops runs ls``: one line per run, its first params and metrics by name under a params |
    metrics header; the columns that do not fit (or past the first :data:`SHOWN_KEYS` of each)
    are counted under the table."""
    if not rows:
        return "no runs"
    width = output_width() if width is None else width
    pkeys = sorted({k for r in rows for k in r["params"]})
    mkeys = sorted({k for r in rows for k in r["metrics"]})
    base = ["run", "name", "status", "started"]
    base_cells = [[r["run_id"][:ID_CHARS], _fmt(r["name"]), r["status"], fmt_when(r["start_time"])] for r in rows]
    shown_p, shown_m = pkeys[:SHOWN_KEYS], mkeys[:SHOWN_KEYS]

    def cells(r: dict) -> list[str]:
        return ([_fmt(r["params"].get(k)) for k in shown_p]
                + ["" if blank(r["metrics"].get(k)) else _fmt(r["metrics"].get(k)) for k in shown_m])

    if width:  # drop the last params or metrics until the table fits the terminal
        base_least = [narrowest([bc[i] for bc in base_cells] + [h], "token") for i, h in enumerate(base)]

        def needed() -> int:
            body = [cells(r) for r in rows]
            labels = ["params"] * bool(shown_p) + [""] * max(len(shown_p) - 1, 0) \
                + ["metrics"] * bool(shown_m) + [""] * max(len(shown_m) - 1, 0)
            least = base_least + [narrowest([b[i] for b in body] + [k, label], "token")
                                  for i, (k, label) in enumerate(zip(shown_p + shown_m, labels))]
            return sum(least) + GAP * (len(least) - 1)

        while (shown_p or shown_m) and needed() > width:
            if len(shown_m) >= len(shown_p) and shown_m:
                shown_m = shown_m[:-1]
            else:
                shown_p = shown_p[:-1]
    table = [bc + cells(r) for bc, r in zip(base_cells, rows)]
    param_hows = ["num" if numeric([r["params"].get(k) for r in rows]) else "token" for k in shown_p]
    out = text_table(base + shown_p + shown_m, table,
                     ["id", "token", "status", "when"] + param_hows + ["num"] * len(shown_m),
                     groups=[("params", len(base), len(shown_p)), ("metrics", len(base) + len(shown_p), len(shown_m))],
                     plain=plain, width=width)
    hidden_p, hidden_m = pkeys[len(shown_p):], mkeys[len(shown_m):]
    more = more_columns(len(hidden_p), len(hidden_m))
    if more:
        names = [f"params.{k}" for k in hidden_p] + [f"metrics.{k}" for k in hidden_m]
        listed = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
        out += "\n" + note_lines(f"{more} not shown: {listed}; mlops runs show RUN has them all", width)
    return out


def render_runs(df) -> str:
    """A runs DataFrame (``mj.runs()``) as ``mlops runs ls`` shows it."""
    if df.empty:
        return "no runs"
    return render_run_rows(run_rows(df))


def _listing_text(kind: str, rows: list[dict], title: str | None, plain: bool | None, width: int | None,
                  with_title: bool) -> str:
    if kind == "runs":
        return render_run_rows(rows, plain=plain, width=width)
    if not rows:
        return listing_title(kind, rows, title) if with_title else {
            "datasets": "no datasets yet", "models": "no models yet", "alias_moves": "no alias moves yet"}.get(
            kind, "none yet")
    cols, cells = listing_table(kind, rows)
    out = text_table([h for h, _ in cols], cells, [how for _, how in cols], plain=plain, width=width)
    return f"{listing_title(kind, rows, title)}\n{out}" if with_title else out


def render_listing(listing) -> str:
    """The rows an ``ls`` command gave the terminal, as a table."""
    return _listing_text(listing.kind, listing.rows, getattr(listing, "title", None), None, None, False)


def listing_frame_text(frame) -> str:
    """A listing DataFrame (``%mlops data ls``) as plain text, for the notebook's ``text/plain``."""
    info = frame.attrs.get("mlops_listing", {})
    kind = info.get("kind", "datasets")
    rows = run_rows(frame) if kind == "runs" else frame_rows(frame)
    return _listing_text(kind, rows, info.get("title"), True, 0, True)


def render_listing_frame(frame) -> str:
    """A listing DataFrame printed in a terminal."""
    info = frame.attrs.get("mlops_listing", {})
    return _listing_text(info.get("kind", "datasets"), frame_rows(frame), info.get("title"), None, None, False)


def render_run(rec) -> str:
    row = rec.row
    out = [f"run {_fmt(rec.name)} ({rec.run_id})  {rec.status}",
           f"  started   {fmt_time(row['start_time'])}   duration {fmt_duration(rec.duration)}",
           f"  notebook  {_fmt(row.get('notebook') or '')}",
           f"  user@host {row.get('username')}@{row.get('host')}"]
    if row.get("parent_id"):
        out.append(f"  parent    {row['parent_id']}")
    if row.get("error"):
        out.append(f"  error     {_fmt(row['error'])}")
    git = rec.env.get("git") or {}
    if git:
        out.append(f"  git       {git.get('commit', '')[:12]}{' (dirty)' if git.get('dirty') else ''}")
    for title, mapping in (("params", rec.params), ("metrics", rec.metrics), ("tags", rec.tags)):
        if mapping:
            out.append(f"{title}:")
            out += [f"  {_fmt(k)} = {_fmt(v)}" for k, v in sorted(mapping.items())]
    if rec.artifacts:
        out.append("artifacts:")
        out += [f"  {a['path']}  {fmt_size(a['size'])}  {a['digest'][:12]}" for a in rec.artifacts]
    for m in rec.logged_models():
        out.append(f"logged model: {m.get('model_class', '')} ({m.get('flavor', '')}); load with "
                   f"mj.models.load({m['ref']!r})")
    cells = rec.cells()
    if cells:
        out.append(f"cells: {len(cells)} captured ({sum(c['status'] == 'error' for c in cells)} failed)")
    return "\n".join(out)


def render_compare(comp) -> str:
    headers = ["", *[f"{r.name} {r.run_id[:ID_CHARS]}" for r in comp.runs]]
    rows = [[("* " if differs else "  ") + k, *vals] for k, vals, differs in comp.param_rows]
    rows += [[f"  metrics.{k}", *[r.metrics.get(k) for r in comp.runs]] for k in comp.metric_keys]
    return text_table(headers, rows, ["token"] * len(headers)) + "\n(* params that differ)"


def render_version(v) -> str:
    what = (f"{v.rows:,} rows" + (f" × {len(v.summary['columns']):,} columns" if v.summary else "")
            if v.rows is not None else f"{v.n_files:,} file{'' if v.n_files == 1 else 's'}")
    out = [f"{v.ref}  {v.kind}, {what}, {fmt_size(v.size)}", f"  created  {fmt_when(v.created)}",
           f"  digest   {v.digest[:12]}"]
    for label, value in (("message", v.message), ("source", v.source), ("run", v.run_id), ("by", v.username)):
        if value:
            out.append(f"  {label:8} {_fmt(value)}")
    if v.summary:
        hows = ["token", "token", "num", "count", "num", "num", "num", "num", "tokens"]
        out.append(text_table(STATS_HEADERS, column_stats(v), hows))
    else:
        out.append(text_table(["path", "size", "mode", "digest"],
                              [[f["path"], fmt_size(f["size"]), oct(f["mode"]), f["digest"][:12]] for f in v.files[:200]],
                              ["text", "size", "token", "id"]))
        if len(v.files) > 200:
            out.append(f"… and {len(v.files) - 200:,} more files")
    return "\n".join(out)


def render_model(v) -> str:
    from ..models.signature import describe

    out = [str(v), f"  uri       {v.uri}", f"  created   {fmt_when(v.created)} by {_fmt(v.username)}",
           f"  library   {v.library} {v.library_version}  ({v.flavor})", f"  size      {fmt_size(v.size)}",
           f"  signature {describe(v.signature)}"]
    if v.signature and v.signature.get("classes") is not None:
        out.append(f"  classes   {', '.join(map(str, v.signature['classes']))}")
    if v.message:
        out.append(f"  message   {_fmt(v.message)}")
    if v.run_id:
        out.append(f"  run       {v.run_id}")
    if v.metrics:
        out.append("metrics:")
        out += [f"  {_fmt(k)} = {_fmt(val)}" for k, val in sorted(v.metrics.items())]
    if v.datasets:
        out.append("datasets: " + ", ".join(f"{d['ref']} ({d['direction']})" for d in v.datasets))
    if v.explanations:
        out.append(f"explanations: {len(v.explanations)} ("
                   + ", ".join(sorted({e['method'] for e in v.explanations})) + ")")
    if v.evaluations:
        out.append("evaluations:")
        for e in v.evaluations[:10]:
            figs = "  ".join(f"{k}={val:.4f}" if isinstance(val, float) else f"{k}={_fmt(val)}"
                             for k, val in e["figures"].items())
            by = e["options"].get("by") or []
            out.append(f"  {e['data']} ({e['rows']:,} rows{', by ' + ', '.join(by) if by else ''}): {figs}")
    return "\n".join(out)


MAX_FRAME_ROWS = 60


def render_frame(df) -> str:
    """A DataFrame result (``mlops audit``, ``mlops job ls``): times local to the minute, numbers
    right-aligned, at most :data:`MAX_FRAME_ROWS` rows."""
    import pandas as pd

    if not len(df):
        return "nothing yet"
    shown = df.head(MAX_FRAME_ROWS)
    if not isinstance(shown.index, pd.RangeIndex):
        shown = shown.reset_index()
    headers, hows, columns = [], [], []
    for name, col in shown.items():
        headers.append(str(name))
        if pd.api.types.is_datetime64_any_dtype(col):
            hows.append("when")
            columns.append([fmt_when(v.timestamp()) if not pd.isna(v) else "" for v in col])
        elif pd.api.types.is_bool_dtype(col):
            hows.append("token")
            columns.append([_fmt(v) for v in col])
        elif pd.api.types.is_numeric_dtype(col):
            hows.append("num")
            columns.append(["" if pd.isna(v) else _fmt(v.item() if hasattr(v, "item") else v) for v in col])
        else:
            hows.append("text")
            columns.append(["" if v is None or (isinstance(v, float) and v != v) else _fmt(v) for v in col])
    out = text_table(headers, [list(r) for r in zip(*columns)], hows)
    if len(df) > MAX_FRAME_ROWS:
        out += f"\n… and {len(df) - MAX_FRAME_ROWS:,} more rows"
    return out


def render(obj) -> str | None:
    """What ``mlops`` prints for a command's result: the renderer registered for its type in
    ``rendering.TERMINAL`` (``widgets/renderers.py``), else its text."""
    if obj is None:
        return None
    from .. import rendering

    return rendering.render(obj, rendering.TERMINAL)

