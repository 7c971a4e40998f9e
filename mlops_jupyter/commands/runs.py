"""Exploring runs: ``runs ls|show|rm``, ``show``, ``compare``, ``watch``, ``lineage``."""

from __future__ import annotations

import argparse

from ..exceptions import BadInput
from .context import Listing, project_store, quick_store_url
from .values import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``runs``, ``show``, ``compare``, ``watch`` and ``lineage``."""
    p = subparsers.add_parser("runs", help="list, show or remove runs (ls is the default)")
    p.set_defaults(func=_ls)  # `runs` alone lists
    rsub = p.add_subparsers(dest="action", metavar="ls|show|rm")
    rl = rsub.add_parser("ls", help="list runs, newest first")
    rl.add_argument("--last", type=positive_int, metavar="N", help="only the N newest (after filter and sort)")
    rl.add_argument("--where", metavar="EXPR", help="filter, e.g. \"metrics.acc > 0.8 and params.lr < 0.1\"")
    rl.add_argument("--sort", metavar="KEY", help="sort key, e.g. -metrics.acc (minus: descending)")
    rl.add_argument("--user", metavar="NAME", help="only the runs NAME started (OS user, or JupyterHub user)")
    rl.set_defaults(func=_ls)
    rs = rsub.add_parser("show", help="one run: params, metrics, charts, artifacts, captured cells")
    rs.add_argument("run", help="run id, id prefix, run name, or 'last'")
    _chart_options(rs)
    rs.set_defaults(func=_show)
    rr = rsub.add_parser("rm", help="delete runs and their metrics (blobs go with `mlops gc`)")
    rr.add_argument("runs", nargs="+", metavar="RUN")
    rr.add_argument("--force", action="store_true", help="also delete runs still marked running")
    rr.set_defaults(func=_rm)

    p = subparsers.add_parser("show", help="same as `runs show`")
    p.add_argument("run", help="run id, id prefix, run name, or 'last'")
    _chart_options(p)
    p.set_defaults(func=_show)

    p = subparsers.add_parser("compare", help="params side by side (differences highlighted) and metric curves "
                                              "overlaid")
    p.add_argument("runs", nargs="+", metavar="RUN")
    _chart_options(p)
    p.add_argument("--metric", metavar="KEY", help="the metric of the parallel coordinates and scatter "
                                                   "(default: the one most runs have)")
    p.set_defaults(func=_compare)

    p = subparsers.add_parser("watch", help="a live chart of a run's metrics (default: the active run)")
    p.add_argument("run", nargs="?")
    p.set_defaults(func=_watch, kernel_only="watch")

    p = subparsers.add_parser("lineage", help="data -> run -> data/model around a dataset version, a run or a "
                                              "model version")
    p.add_argument("ref", help="NAME@vN, a run, or models:/NAME/N")
    p.set_defaults(func=_lineage)


def _chart_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--x", choices=["step", "time", "relative"], default="step",
                   help="x axis of the metric curves: step, clock time, or time since the run started")
    p.add_argument("--log-y", action="store_true", help="metric curves on a logarithmic y axis")
    p.add_argument("--chart", metavar="FILE", help="also write the metric curves to FILE (.svg, .png, .html, "
                                                   ".json: the Vega-Lite spec)")


def _with_chart(result, ns, ctx):
    """Attach the chart options to *result*; write the chart when --chart asks for it."""
    result.chart_options = {"x": ns.x, "log_y": ns.log_y, "metric": getattr(ns, "metric", None)}
    if ns.chart:
        path = result.chart(x=ns.x, log_y=ns.log_y).save(ns.chart)
        ctx.out(f"chart written to {path}")
    return result


def _ls(ns, ctx):
    if not ctx.rich_display:
        from ..store import quickread

        rows = None if ns.where or ns.sort else quickread.runs(quick_store_url(), ns.last, ns.user)
        if rows is None:  # a filter, a sort, another database, a run to mark crashed: the usual way
            from ..store import open_store
            from ..tracking.query import search_runs

            rows = search_runs(open_store(), ns.where, ns.sort, ns.last, user=ns.user)
        return Listing("runs", rows)
    from ..tracking.query import runs

    return runs(where=ns.where, order_by=ns.sort, limit=ns.last, user=ns.user)


def _show(ns, ctx):
    from ..tracking.query import get_run

    return _with_chart(get_run(ns.run), ns, ctx)


def _rm(ns, ctx):
    store = project_store()
    ids = [store.meta.resolve(r) for r in ns.runs]
    running = [i for i in ids if store.meta.run_row(i)["status"] == "running"]
    if running and not ns.force:
        raise BadInput(f"run {running[0][:8]} is still running; stop it first or pass --force")
    n = store.meta.delete_runs(ids)
    ctx.out(f"deleted {n} run{'s' if n != 1 else ''}; `mlops gc` frees their blobs")


def _compare(ns, ctx):
    from ..tracking.query import compare

    comp = compare(ns.runs)
    if ns.metric is not None:
        comp.parallel(ns.metric)  # an unknown metric is said now, in one line
    return _with_chart(comp, ns, ctx)


def _watch(ns, ctx):
    from ..tracking.run import active_run

    store = project_store()
    if ns.run:
        run_id = store.meta.resolve(ns.run)
    else:
        run = active_run()
        if run is None:
            raise BadInput("no active run to watch; name one: %mlops watch RUN")
        run_id = run.run_id
    ctx.extra["watch"] = run_id
    return None


def _lineage(ns, ctx):
    from .. import data

    return data.lineage(ns.ref)
