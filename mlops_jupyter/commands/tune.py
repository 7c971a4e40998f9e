"""``tune``: an Optuna study over a promoted job (``mlops tune churn-job --space lr=float:0.001:0.3:log
--trials 40``); ``study``: a study's report (``mlops study gbm-search [--save study.html]``), or the
list of studies (``mlops study``)."""

from __future__ import annotations

import argparse

from .job import job_value_arguments, job_values
from .values import positive_int, whole_number


def _duration(text: str) -> float:
    from ..config import parse_duration
    from ..exceptions import BadInput

    try:
        seconds = float(text)
    except ValueError:
        try:
            return parse_duration(text, "--timeout")
        except BadInput as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"--timeout must be above 0 seconds, got {text}")
    return seconds


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tune", help="search a job's parameters with Optuna: each trial an execution of its "
                                           "notebook; the best becomes the challenger")
    p.add_argument("job", help="a job name (jobs/NAME) or folder")
    p.add_argument("--space", nargs="+", action="extend", required=True, metavar="NAME=KIND:...",
                   help="NAME=int:LOW:HIGH[:log], NAME=float:LOW:HIGH[:log], NAME=cat:A,B,...")
    p.add_argument("--trials", type=positive_int, metavar="N", help="how many trials (with --timeout: whichever "
                                                                     "comes first)")
    p.add_argument("--metric", help="what the notebook logs to judge a trial by (default: the job's [model] metric)")
    p.add_argument("--direction", choices=["max", "min"], help="whether higher or lower --metric is better")
    p.add_argument("--timeout", type=_duration, metavar="DURATION", help="stop starting trials after this long "
                                                                         "(30m, 2h, 90s)")
    p.add_argument("--workers", type=positive_int, default=1, help="trials at once on local kernels (default 1)")
    p.add_argument("--dask-scheduler", metavar="ADDRESS", help="run the trials on a Dask cluster: tcp://HOST:8786")
    p.add_argument("--sampler", default="tpe", help="tpe (multivariate), random, cmaes or grid (default tpe)")
    p.add_argument("--prune", default="none", help="hyperband, median or none (default none)")
    p.add_argument("--seed", type=whole_number, help="the sampler's seed")
    job_value_arguments(p, " for every trial")
    p.add_argument("--name", help="the study's name (default: the job's)")
    p.add_argument("--resume", action="store_true", help="continue the study of that name")
    p.set_defaults(func=_tune)

    p = subparsers.add_parser("study", help="a tuning study: its best trial, pictures and trials; "
                                            "alone: every study in the project")
    p.add_argument("name", nargs="?", help="the study (mj.tune's name=)")
    p.add_argument("--save", metavar="PATH", help="write the report as a self-contained HTML page")
    p.set_defaults(func=_study)


def _tune(ns, ctx):
    from ..tuning.jobs import tune_job
    from .errors import CommandError

    if ns.trials is None and ns.timeout is None:
        raise CommandError("tune: say how long to search: --trials N, --timeout DURATION, or both")
    spec, fixed = job_values(ns)
    tune_job(spec, ns.space, ns.trials, params=fixed, metric=ns.metric, direction=ns.direction, timeout=ns.timeout,
             workers=ns.workers, dask_scheduler=ns.dask_scheduler, sampler=ns.sampler, prune=ns.prune, seed=ns.seed,
             name=ns.name, resume=ns.resume, out=ctx.out, progress=ctx.interactive)
    return None


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
