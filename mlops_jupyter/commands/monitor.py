"""Monitoring: ``drift`` (per feature, between any two sides) and ``monitor`` (a served model over
time; ``monitor check JOB`` evaluates the job's retrain rule)."""

from __future__ import annotations

import argparse
import os

from ..exceptions import BadInput
from .context import project_store
from .values import key_values, parse_literal, positive_int, share


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``drift`` and ``monitor``."""
    p = subparsers.add_parser("drift", help="data drift per feature: drift train@v2 serving:churn@production --since "
                                            "24h (each side: a data version, serving:MODEL@ALIAS, a CSV/Parquet file, "
                                            "or in a notebook a DataFrame variable)")
    p.add_argument("reference")
    p.add_argument("current")
    p.add_argument("--columns", metavar="A,B,C", help="compare only these columns")
    p.add_argument("--threshold", type=share, default=0.5, metavar="SHARE",
                   help="the dataset drifts when at least this share of features drifts (default 0.5)")
    p.add_argument("--method", metavar="M", help="the test deciding drift: wasserstein, jensenshannon, psi, ks, chi2 "
                                                 "(or numeric=ks,categorical=chi2,COLUMN=psi)")
    p.add_argument("--feature-threshold", action="append", metavar="METHOD=X",
                   help="a method's threshold, e.g. psi=0.25 or ks=0.01 (repeatable)")
    p.add_argument("--since", help="serving sides: from (24h, 7d, or an ISO date)")
    p.add_argument("--until", help="serving sides: until (default now)")
    p.add_argument("--model", help="link the report to this model version (NAME@ALIAS, NAME@vN)")
    p.add_argument("--no-save", action="store_true", help="do not store the report")
    p.set_defaults(func=_drift)

    p = subparsers.add_parser("monitor", help="a served model's traffic, latency, accuracy and drift over time: "
                                              "monitor churn@production --since 7d; monitor check JOB evaluates the "
                                              "job's retrain rule and retrains when it fires")
    p.add_argument("ref", help="NAME@ALIAS, NAME@vN or NAME (or `check`)")
    p.add_argument("job", nargs="?", help="with `check`: the job whose rule to evaluate")
    p.add_argument("--since", help="from (default 7d; with check: the job's [retrain] window)")
    p.add_argument("--until", help="until (default now)")
    p.add_argument("--window", help="window size for the charts (default: about 24 windows over the span)")
    p.add_argument("--dry-run", action="store_true", help="with check: decide and store, but do not retrain")
    p.add_argument("--workers", type=positive_int, help="with check: executions at once when retraining")
    p.set_defaults(func=_monitor)


def _drift_side(ctx, word: str):
    value, is_var = ctx.lookup(word)
    if is_var:
        return value
    if ctx.shell is not None and word.isidentifier() and "@" not in word and not os.path.exists(word):
        from ..data.catalog import Catalog

        if Catalog(project_store().meta).latest(word) is None:
            raise BadInput(f"{word!r} is neither a DataFrame variable in the notebook nor a dataset")
    return word


def _drift(ns, ctx):
    from ..monitoring.drift import drift

    method = ns.method
    if method and "=" in method:
        method = key_values(method.split(","), "--method")
    thresholds = {}
    for k, v in key_values(ns.feature_threshold, "--feature-threshold").items():
        x = parse_literal(v)
        thresholds[k] = x if isinstance(x, (int, float)) and not isinstance(x, bool) else v
    columns = [c.strip() for c in ns.columns.split(",") if c.strip()] if ns.columns else None
    report = drift(_drift_side(ctx, ns.reference), _drift_side(ctx, ns.current), columns=columns,
                   threshold=ns.threshold, method=method, thresholds=thresholds, since=ns.since, until=ns.until,
                   model=ns.model, save=not ns.no_save, progress=None if ctx.interactive else False)
    return report


def _monitor(ns, ctx):
    from ..monitoring import check, monitor

    if ns.ref == "check":
        if not ns.job:
            raise BadInput("which job? monitor check JOB")
        result = check(ns.job, dry_run=ns.dry_run, window=ns.since, out=ctx.out, workers=ns.workers,
                       progress=ctx.interactive)
        ctx.extra["exit_code"] = result.exit_code
        # a notebook shows the drift the check measured; a terminal has had the check's lines
        return result.drift if ctx.rich_display and result.drift is not None else None
    if ns.job:
        raise BadInput(f"unexpected {ns.job!r}: monitor NAME@ALIAS [--since 7d], or monitor check JOB")
    if ns.dry_run or ns.workers:
        raise BadInput("--dry-run and --workers go with `monitor check JOB`")
    return monitor(ns.ref, since=ns.since or "7d", until=ns.until, window=ns.window)
