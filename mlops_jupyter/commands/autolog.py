"""``autolog``: every ``fit`` in this notebook records a run (``%mlops autolog``; ``--disable``)."""

from __future__ import annotations

import argparse

from .values import nonnegative_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("autolog", help="record every fit as a run, without logging code: "
                                              "%%mlops autolog [--frameworks sklearn,xgboost] [--disable]")
    p.add_argument("--frameworks", metavar="NAMES",
                   help="comma-separated: sklearn, xgboost, lightgbm, keras, lightning (default: all)")
    p.add_argument("--disable", action="store_true", help="stop autologging; every patched method is put back")
    p.add_argument("--register", metavar="NAME", help="also register each fitted model as the next version of NAME")
    p.add_argument("--no-models", action="store_true", help="do not log fitted models")
    p.add_argument("--no-datasets", action="store_true", help="do not version the training data")
    p.add_argument("--max-tuning-runs", type=nonnegative_int, default=5, metavar="N",
                   help="hyperparameter searches: the best N candidates as child runs (default 5)")
    p.add_argument("--silent", action="store_true", help="say nothing when autologging is switched")
    p.set_defaults(func=_autolog, kernel_only="autolog")


def _autolog(ns, ctx):
    from ..autologging import autolog

    names = autolog(ns.frameworks, disable=ns.disable, log_models=not ns.no_models,
                    log_datasets=not ns.no_datasets, registered_model_name=ns.register,
                    max_tuning_runs=ns.max_tuning_runs, silent=ns.silent)
    if not ns.silent:
        if ns.disable:
            ctx.out("autologging is off; every patched fit is back as it was")
        else:
            ctx.out(f"autologging {', '.join(names)}: each fit outside a run gets a run named after the "
                    "estimator; inside %mlops track it logs into that run")
    return None
