"""Results as text for a terminal: tables of runs, datasets and models, one run, a comparison, a
version. ``render`` picks the view by the result's type; the terminal face (``mlops``) prints it,
and ``mlops demo`` prints runs with it. A listing comes as plain rows, so that listing needs no
pandas (imported only to print a DataFrame).
"""

from __future__ import annotations

import math
from typing import Any


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    s = str(v)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def text_table(headers: list[str], rows: list[list[str]], max_width: int = 40) -> str:
    cells = [[_fmt(h) for h in headers]] + [[_fmt(c)[:max_width] for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_runs(df) -> str:
    if df.empty:
        return "no runs"
    pcols = [c for c in df.columns if c.startswith("params.")][:6]
    mcols = [c for c in df.columns if c.startswith("metrics.")][:6]
    rows = []
    for _, r in df.iterrows():
        start = r["start_time"].tz_convert(None).strftime("%Y-%m-%d %H:%M:%S") if r["start_time"] is not None else ""
        vals = [r["run_id"][:8], r["name"], r["status"], start]
        vals += ["" if _isnull(r[c]) else r[c] for c in pcols + mcols]  # blank: not logged
        rows.append(vals)
    return text_table(["run", "name", "status", "started"] + pcols + mcols, rows)


SHOWN_KEYS = 6  # params and metrics shown per run in `mlops runs ls`; `mlops runs show RUN` has all


def fmt_when(seconds: float | None) -> str:
    """Local time to the minute, as ``ls -l`` shows it."""
    import time

    return "" if seconds is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def fmt_size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def render_run_rows(rows: list[dict]) -> str:
    """``mlops runs ls``: one line per run, its first params and metrics by name."""
    if not rows:
        return "no runs"
    pkeys = sorted({k for r in rows for k in r["params"]})
    mkeys = sorted({k for r in rows for k in r["metrics"]})
    shown_p, shown_m = pkeys[:SHOWN_KEYS], mkeys[:SHOWN_KEYS]
    lines = [[r["run_id"][:8], r["name"], r["status"], fmt_when(r["start_time"])]
             + [r["params"].get(k, "") for k in shown_p] + [r["metrics"].get(k) for k in shown_m] for r in rows]
    out = text_table(["run", "name", "status", "started"] + [f"params.{k}" for k in shown_p]
                     + [f"metrics.{k}" for k in shown_m], lines)
    hidden = [f"{len(keys) - SHOWN_KEYS} more {what}" for keys, what in ((pkeys, "params"), (mkeys, "metrics"))
              if len(keys) > SHOWN_KEYS]
    if hidden:
        out += f"\n({' and '.join(hidden)} not shown: mlops runs show RUN has them all)"
    return out


def render_listing(listing) -> str:
    """The rows an ``ls`` command gave the terminal, as a table."""
    rows, kind = listing.rows, listing.kind
    if kind == "runs":
        return render_run_rows(rows)
    if not rows:
        return "no datasets yet" if kind == "datasets" else "no models yet"
    if kind in ("datasets", "data_versions"):
        first = ["name", "latest"] if kind == "datasets" else ["ref"]
        headers = first + ["kind", "size", "files", "rows", "created", "run", "user", "message"]
        table = [[r[c] for c in first] + [r["kind"], fmt_size(r["size"]), r["files"], r["rows"],
                                          fmt_when(r["created"]), (r["run_id"] or "")[:8], r["user"], r["message"]]
                 for r in rows]
    else:
        first = ["name", "latest"] if kind == "models" else ["ref"]
        headers = first + ["aliases", "class", "flavor", "size", "created", "run", "metrics"]
        table = [[r[c] for c in first] + [r["aliases"], r["class"], r["flavor"], fmt_size(r["size"]),
                                          fmt_when(r["created"]), (r["run_id"] or "")[:8], r["metrics"]]
                 for r in rows]
    return text_table(headers, table, max_width=60)


def _isnull(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def render_run(rec) -> str:
    from .html import fmt_duration, fmt_time

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
        out += [f"  {a['path']}  {a['size']:,} bytes  {a['digest'][:12]}" for a in rec.artifacts]
    cells = rec.cells()
    if cells:
        out.append(f"cells: {len(cells)} captured ({sum(c['status'] == 'error' for c in cells)} failed)")
    return "\n".join(out)


def render_compare(comp) -> str:
    headers = ["", *[f"{r.name} {r.run_id[:8]}" for r in comp.runs]]
    rows = [[("* " if differs else "  ") + k, *vals] for k, vals, differs in comp.param_rows]
    rows += [[f"  metrics.{k}", *[r.metrics.get(k) for r in comp.runs]] for k in comp.metric_keys]
    return text_table(headers, rows) + "\n(* params that differ)"


def render_version(v) -> str:
    out = [str(v)]
    for label, value in (("message", v.message), ("source", v.source), ("run", v.run_id), ("by", v.username)):
        if value:
            out.append(f"  {label:8} {_fmt(value)}")
    if v.summary:
        rows = [[c, s["dtype"], f"{s['null_fraction']:.3f}", s.get("distinct"), s.get("mean"), s.get("std"),
                 s.get("min"), s.get("max"), ", ".join(f"{t[0]} ({t[1]})" for t in s.get("top", [])[:3])]
                for c, s in v.summary["columns"].items()]
        out.append(text_table(["column", "dtype", "nulls", "distinct", "mean", "std", "min", "max", "top"], rows))
    else:
        out += [f"  {f['path']}  {f['size']:,} bytes  {oct(f['mode'])}  {f['digest'][:12]}" for f in v.files[:200]]
        if len(v.files) > 200:
            out.append(f"  ... and {len(v.files) - 200:,} more files")
    return "\n".join(out)


def render_model(v) -> str:
    from ..models.signature import describe
    from .html import fmt_time

    out = [str(v), f"  uri       {v.uri}", f"  created   {fmt_time(v.created)} by {_fmt(v.username)}",
           f"  library   {v.library} {v.library_version}  ({v.flavor})", f"  signature {describe(v.signature)}"]
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
    return "\n".join(out)


def render_frame(df) -> str:
    import pandas as pd

    with pd.option_context("display.max_columns", 20, "display.width", 160):
        return df.to_string(max_rows=60) if len(df) else "nothing yet"


def render(obj) -> str | None:
    """What ``mlops`` prints for a command's result: the renderer registered for its type in
    ``rendering.TERMINAL`` (``widgets/renderers.py``), else its text."""
    if obj is None:
        return None
    from .. import rendering

    return rendering.render(obj, rendering.TERMINAL)
