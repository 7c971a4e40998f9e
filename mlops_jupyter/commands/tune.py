"""``study``: a tuning study's report (``mlops study gbm-search [--save study.html]``), or the list of
studies (``mlops study``)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("study", help="a tuning study: its best trial, pictures and trials; "
                                            "alone: every study in the project")
    p.add_argument("name", nargs="?", help="the study (mj.tune's name=)")
    p.add_argument("--save", metavar="PATH", help="write the report as a self-contained HTML page")
    p.set_defaults(func=_study)


def _study(ns, ctx):
    from ..tuning.report import studies, study

    if ns.name is None:
        if ns.save:
            from .errors import CommandError

            raise CommandError("study: --save needs a study: mlops study NAME --save PATH")
        return studies()
    rep = study(ns.name)
    if ns.save:
        if not ns.save.lower().endswith((".html", ".htm")):
            from .errors import CommandError

            raise CommandError(f"study: --save writes an HTML page (.html), not {ns.save!r}")
        ctx.out(f"saved {rep.save(ns.save)}")
        return None
    return rep
