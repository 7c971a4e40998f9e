"""``demo``: the main job end to end through the example notebooks (terminal only)."""

from __future__ import annotations

import argparse

from .values import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``demo``."""
    p = subparsers.add_parser("demo", help="the main job end to end through the example notebooks (quickstart, a "
                                           "promoted retraining job, monitoring), in a folder with its own store "
                                           "(terminal only)")
    p.add_argument("--dir", default="mlops-demo", help="folder to run the demo in (default: ./mlops-demo)")
    p.add_argument("--grid", nargs="+", action="extend", metavar="NAME=V1,V2",
                   help="the retraining job's grid (default: max_depth=3,6)")
    p.add_argument("--workers", type=positive_int, help="retraining executions at once (default 2)")
    p.set_defaults(func=_demo, terminal_only=True)


def _demo(ns, ctx):
    from ..demo import run_demo

    return run_demo(ns.dir, out=ctx.out, grid=ns.grid, workers=ns.workers)
