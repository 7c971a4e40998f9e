"""``mlops``: the terminal face of the command grammar (exit code 2 on bad input)."""

from __future__ import annotations

import math
import sys
from typing import Any

from . import commands
from .exceptions import JobFailed, MlopsError


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


def _isnull(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def render_run(rec) -> str:
    from .widgets.html import fmt_duration, fmt_time

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
    from .models.signature import describe
    from .widgets.html import fmt_time

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


def render(obj) -> str | None:
    if obj is None:
        return None
    name = type(obj).__name__
    if name == "RunsFrame":
        return render_runs(obj)
    if name == "RunRecord":
        return render_run(obj)
    if name == "Comparison":
        return render_compare(obj)
    if name == "DatasetVersion":
        return render_version(obj)
    if name == "ModelVersion":
        return render_model(obj)
    if name == "DataFrame":
        import pandas as pd

        with pd.option_context("display.max_columns", 20, "display.width", 160):
            return obj.to_string(max_rows=60) if len(obj) else "nothing yet"
    return str(obj)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `mlops runs ls | head`: the reader has gone, which is fine
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        ns = commands.parse(argv)
        if ns.command in commands.KERNEL_ONLY or f"{ns.command}_{getattr(ns, 'action', '')}" in commands.KERNEL_ONLY:
            what = ns.command if ns.command in commands.KERNEL_ONLY else f"{ns.command} {ns.action}"
            print(f"mlops: `{what}` works inside a notebook or IPython (%mlops {what} ...); "
                  f"in a script use the Python API (import mlops_jupyter as mj)", file=sys.stderr)
            return 2
        ctx = commands.Context(face="cli")
        if ns.command == "fsck" and sys.stderr.isatty():
            from tqdm import tqdm

            ctx.extra["progress"] = lambda it: tqdm(it, desc="verifying blobs", unit="blob")
        result = commands.run_command(ns, ctx)
        text = render(result)
        if text:
            print(text)
        return ctx.extra.get("exit_code", 0)
    except commands.HelpRequested as h:
        print(h.text.rstrip())
        return 0
    except commands.CommandError as e:
        print(e.one_line(), file=sys.stderr)
        return 2
    except JobFailed as e:  # the job ran and failed: not bad input
        print(f"mlops: {e}", file=sys.stderr)
        return 1
    except MlopsError as e:
        print(f"mlops: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlops: interrupted", file=sys.stderr)
        return 130
    finally:
        from .store import close_store

        close_store()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
