"""Tracking from a notebook: ``track start|stop``, ``log``, ``param``, ``tag``, ``artifact`` (all need
a kernel: a script uses the Python API)."""

from __future__ import annotations

import argparse

from ..exceptions import BadInput
from .values import key_values, metric_values, parse_literal, whole_number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``track``, ``log``, ``param``, ``tag`` and ``artifact``."""
    p = subparsers.add_parser("track", help="start or stop a tracked run (in a notebook: also %%%%mlops track NAME)")
    p.set_defaults(kernel_only="track")
    tsub = p.add_subparsers(dest="action", metavar="start|stop")
    tsub.required = True
    ts = tsub.add_parser("start", help="start a run; it stays active until `track stop`")
    ts.add_argument("name", nargs="?", help="run name (default: the notebook name)")
    _add_run_options(ts)
    ts.set_defaults(func=_start)
    tp = tsub.add_parser("stop", help="end the active run")
    tp.add_argument("--status", choices=["finished", "failed", "killed"], default="finished")
    tp.set_defaults(func=_stop)

    p = subparsers.add_parser("log", help="log metrics to the active run: %%mlops log loss=0.3 acc=0.9 --step 3")
    p.add_argument("metrics", nargs="+", metavar="K=V", help="metric names and numbers")
    p.add_argument("--step", type=whole_number, metavar="N", help="the step (default: each metric's last step + 1)")
    p.set_defaults(func=_log, kernel_only="log")

    p = subparsers.add_parser("param", help="log params to the active run: %%mlops param lr=0.1")
    p.add_argument("params", nargs="+", metavar="K=V")
    p.set_defaults(func=_param, kernel_only="param")

    p = subparsers.add_parser("tag", help="set tags on the active run")
    p.add_argument("tags", nargs="+", metavar="K=V")
    p.set_defaults(func=_tag, kernel_only="tag")

    p = subparsers.add_parser("artifact", help="store a file or folder with the active run")
    p.add_argument("path")
    p.add_argument("--name", help="name to store it under (default: the file name)")
    p.set_defaults(func=_artifact, kernel_only="artifact")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """A new run's ``--param``, ``--tag`` and ``--notebook`` (``track start``, ``%%mlops track``)."""
    p.add_argument("--param", "-p", action="append", metavar="K=V", help="a parameter (repeatable)")
    p.add_argument("--tag", "-t", action="append", metavar="K=V", help="a tag (repeatable)")
    p.add_argument("--notebook", metavar="PATH", help="the notebook path, when it is not found automatically")


def _start(ns, ctx):
    from ..tracking.run import start_run

    params = {k: parse_literal(v) for k, v in key_values(ns.param, "param").items()}
    tags = key_values(ns.tag, "tag")
    run = start_run(ns.name, params=params, tags=tags, notebook=ns.notebook)
    parent = f", child of {run.parent_id[:8]}" if run.parent_id else ""
    ctx.out(f"run {run.name!r} ({run.run_id[:8]}{parent}) started; end it with %mlops track stop")
    return run


def _stop(ns, ctx):
    from ..tracking.run import active_run

    run = active_run()
    if run is None:
        raise BadInput("no active run to stop (start one with %mlops track start NAME)")
    run.end(ns.status)
    ctx.out(f"run {run.name!r} ({run.run_id[:8]}) {ns.status}")
    return None


# log, param, tag and artifact go through the fluent API, as mj.log does: with no active run
# one named after the notebook is started (and the user told once), but only after every
# value has been checked, so bad input starts no run.
def _log(ns, ctx):
    from ..tracking.run import log_metrics

    log_metrics(metric_values(ns.metrics), ns.step)


def _param(ns, ctx):
    from ..tracking.run import log_params

    log_params({k: parse_literal(v) for k, v in key_values(ns.params, "param").items()})


def _tag(ns, ctx):
    from ..tracking.run import set_tags

    set_tags(key_values(ns.tags, "tag"))


def _artifact(ns, ctx):
    from ..tracking.run import active_run, log_artifact

    digest = log_artifact(ns.path, ns.name)
    ctx.out(f"stored {ns.path} with run {active_run().run_id[:8]} ({digest[:12]})")
