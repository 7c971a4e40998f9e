"""Data versions: ``data add|ls|show|diff|checkout|load|check``."""

from __future__ import annotations

import argparse
import os

from ..exceptions import BadInput
from .context import Listing, listing_frame, quick_store_url


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``data`` and its subcommands."""
    p = subparsers.add_parser("data", help="version files, folders and DataFrames: add, ls, show, diff, checkout, "
                                           "load, check")
    dsub = p.add_subparsers(dest="action", metavar="add|ls|show|diff|checkout|load|check")
    dsub.required = True
    da = dsub.add_parser("add", help="version a file, a folder, or (in a notebook) a DataFrame variable")
    da.add_argument("source", help="a path, or the name of a DataFrame variable in the notebook")
    da.add_argument("--name", "-n", help="dataset name (default: the file, folder or variable name)")
    da.add_argument("--message", "-m", help="what this version is")
    da.add_argument("--output", action="store_true", help="record it as the active run's output (default: input)")
    da.set_defaults(func=_add)
    dl = dsub.add_parser("ls", help="datasets with their latest version, or the versions of one dataset")
    dl.add_argument("name", nargs="?")
    dl.set_defaults(func=_ls)
    ds = dsub.add_parser("show", help="schema, row count, per-column statistics, files")
    ds.add_argument("ref", help="NAME@vN, NAME@latest or NAME (the latest version)")
    ds.set_defaults(func=_show)
    dd = dsub.add_parser("diff", help="what changed between two versions")
    dd.add_argument("a")
    dd.add_argument("b")
    dd.add_argument("--key", help="for tables: compare rows by this key column")
    dd.set_defaults(func=_diff)
    dc = dsub.add_parser("checkout", help="files back, byte-identical, with their mode bits")
    dc.add_argument("ref")
    dc.add_argument("--to", required=True, metavar="DIR", help="where to write the files")
    dc.add_argument("--force", action="store_true", help="overwrite files that differ from the version")
    dc.set_defaults(func=_checkout)
    dg = dsub.add_parser("load", help="a table version back as a DataFrame")
    dg.add_argument("ref")
    dg.set_defaults(func=_load)
    dk = dsub.add_parser("check", help="does a DataFrame (or CSV/Parquet file) fit a version's schema and ranges?")
    dk.add_argument("ref")
    dk.add_argument("frame", help="a DataFrame variable (in a notebook) or a CSV/Parquet path")
    dk.set_defaults(func=_check)


def _add(ns, ctx):
    import time

    from .. import data

    obj, is_var = ctx.lookup(ns.source)
    if not is_var and ctx.shell is not None and ns.source.isidentifier() and not os.path.exists(ns.source):
        raise BadInput(f"{ns.source!r} is neither a variable in the notebook nor a path")
    name = ns.name or (ns.source if is_var else None)
    started = time.monotonic()
    v = data.add(obj, name=name, message=ns.message, output=ns.output,
                 source=f"variable {ns.source}" if is_var else None)
    ctx.out(added_line(v, time.monotonic() - started))
    if not ctx.has_kernel:
        return None  # the statistics are `data show NAME`'s
    # In a notebook `v = %mlops data add df` keeps the version; shown as the cell's value it has
    # just been said in one line, so it shows nothing more (once: `v` later shows its card).
    v.said_in_one_line = True
    return v


def added_line(v, seconds: float) -> str:
    """What ``data add`` says, one line: ``added train@v2: 120 rows × 3 columns, 4.1 kB in 0.3s``."""
    from ..widgets.html import fmt_duration, fmt_size

    if v.unchanged:
        return f"unchanged, still {v.ref} ({v.digest[:12]})"
    if v.rows is not None:
        cols = len(v.summary["columns"]) if v.summary else None
        what = f"{v.rows:,} rows" + (f" × {cols:,} column{'' if cols == 1 else 's'}" if cols is not None else "")
    else:
        what = f"{v.n_files:,} file{'' if v.n_files == 1 else 's'}"
    return f"added {v.ref}: {what}, {fmt_size(v.size)} in {fmt_duration(seconds)} (statistics: data show {v.ref})"


def _ls(ns, ctx):
    from .. import data

    if not ctx.rich_display:
        from ..data import listing
        from ..store import quickread

        url = quick_store_url()
        if ns.name:
            rows = quickread.dataset_versions(url, ns.name)
            return Listing("data_versions", [listing.version_record(r) for r in rows] if rows is not None
                           else data.version_records(ns.name), f"Versions of {ns.name}")
        rows = quickread.datasets(url)
        return Listing("datasets", [listing.dataset_record(r) for r in rows] if rows is not None
                       else data.dataset_records())
    if ns.name:
        return listing_frame("data_versions", data.versions(ns.name), f"Versions of {ns.name}")
    return listing_frame("datasets", data.datasets())


def _show(ns, ctx):
    from .. import data

    return data.show(ns.ref)


def _diff(ns, ctx):
    from .. import data

    return data.diff(ns.a, ns.b, key=ns.key)


def _checkout(ns, ctx):
    from .. import data

    report = data.checkout(ns.ref, ns.to, force=ns.force)
    ctx.out(str(report))


def _load(ns, ctx):
    from .. import data

    return data.load(ns.ref)


def _check(ns, ctx):
    from .. import data

    obj, _ = ctx.lookup(ns.frame)
    report = data.check(ns.ref, obj)
    if not report.ok:
        ctx.extra["exit_code"] = 1  # the terminal exits with it; a notebook shows the report
    return report
