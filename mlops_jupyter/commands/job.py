"""Jobs: ``promote`` (a notebook into a job folder), ``job run|build|serve|ls|show``, ``retrain``."""

from __future__ import annotations

import argparse

from ..exceptions import BadInput
from .serve import serve_args, serve_model
from .values import key_values, parse_literal, positive_float, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``promote``, ``job`` and ``retrain``."""
    p = subparsers.add_parser("promote", help="turn a notebook into a parameterized job folder jobs/NAME/ (papermill, "
                                              "Dockerfile, k8s, CI): promote [NOTEBOOK] --name NAME [--model M "
                                              "--metric X]")
    p.add_argument("notebook", nargs="?", help="the notebook (in a notebook: default, this one, as last saved)")
    p.add_argument("--name", required=True, help="the job's name (folder jobs/NAME, image mlops/NAME)")
    p.add_argument("--model", help="the registered model the job retrains (omit for a plain batch job)")
    p.add_argument("--metric", help="the metric a challenger must beat the champion on, e.g. auc")
    p.add_argument("--direction", choices=["max", "min"], help="is a higher metric better (max) or lower (min)? "
                                                               "default: from the name (loss, rmse...: min)")
    p.add_argument("--alias", default="production", help="the champion's alias (default production)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="a parameter and its default (repeatable)")
    p.add_argument("--smoke", action="append", metavar="NAME=VALUE", help="a small value for smoke tests (repeatable)")
    p.add_argument("--schedule", metavar="CRON", help="when the CronJob retrains, e.g. '0 3 * * 0'")
    p.add_argument("--image", help="image name (default mlops/NAME:VERSION)")
    p.add_argument("--retrain-when", metavar="RULE", help="when `mlops monitor check` retrains, e.g. "
                                                       "\"drift_share > 0.3 or accuracy < 0.8\" (default: drift_share "
                                                       "> 0.3)")
    p.add_argument("--gate", metavar="RULE", help="what a challenger must show on --gate-data before it takes the "
                                                  "alias, e.g. \"auc >= baseline - 0.002 and max_slice_gap(recall, "
                                                  "region) <= 0.05\" (baseline: the champion's figure)")
    p.add_argument("--gate-data", metavar="DATA@vN", help="the evaluation data version the gate is evaluated on")
    p.add_argument("--gate-target", metavar="COLUMN", help="the column of true labels or values in --gate-data")
    p.add_argument("--force", action="store_true", help="overwrite a job folder edited by hand")
    p.set_defaults(func=_promote)

    p = subparsers.add_parser("job", help="promoted jobs: run, build, serve, ls, show")
    jsub = p.add_subparsers(dest="action", metavar="run|build|serve|ls|show")
    jsub.required = True
    jr = jsub.add_parser("run", help="one tracked execution with papermill: job run NAME -p n_estimators 300")
    jr.add_argument("job", help="a job name (jobs/NAME) or folder")
    job_value_arguments(jr, "")
    jr.add_argument("--smoke", action="store_true", help="with the small values in job.toml's [smoke]")
    jr.add_argument("--timeout", type=positive_float, metavar="SECONDS", help="limit per cell")
    jr.set_defaults(func=_run)
    jb = jsub.add_parser("build", help="build the job's container image (docker or podman)")
    jb.add_argument("job")
    jb.add_argument("--engine", choices=["docker", "podman"], help="default: whichever is installed")
    jb.add_argument("--wheelhouse", action="store_true", help="download every wheel first: the build needs no network")
    jb.add_argument("--base", metavar="IMAGE", help="base image (default python:3.11-slim)")
    jb.add_argument("--tag", metavar="IMAGE", help="image name (default: job.toml's image)")
    jb.set_defaults(func=_build)
    jv = jsub.add_parser("serve", help="serve the job's model at its alias, following the alias when it moves")
    jv.add_argument("job")
    jv.add_argument("--port", type=positive_int, default=8080)
    jv.add_argument("--host", default="127.0.0.1")
    jv.add_argument("--token-file", help="file holding the bearer token (else $MLOPS_SERVE_TOKEN)")
    jv.set_defaults(func=_serve)
    jl = jsub.add_parser("ls", help="the jobs of this project")
    jl.set_defaults(func=_ls)
    js = jsub.add_parser("show", help="a job's parameters, model rule and recent executions")
    js.add_argument("job")
    js.set_defaults(func=_show)

    p = subparsers.add_parser("retrain", help="run a job over a grid in parallel; the best becomes the challenger "
                                              "and takes the alias only if it beats the champion")
    p.add_argument("job", help="a job name (jobs/NAME) or folder")
    p.add_argument("--grid", nargs="+", action="extend", metavar="NAME=V1,V2", help="values to try (every combination)")
    job_value_arguments(p, " for every execution")
    p.add_argument("--workers", type=positive_int, help="executions at once (default: the number of cores)")
    p.add_argument("--dask-scheduler", metavar="ADDRESS", help="run on a Dask cluster: tcp://HOST:8786")
    p.add_argument("--smoke", action="store_true", help="with the small values in job.toml's [smoke]")
    p.add_argument("--timeout", type=positive_float, metavar="SECONDS", help="limit per cell")
    p.set_defaults(func=_retrain)


def job_value_arguments(p: argparse.ArgumentParser, scope: str) -> None:
    """papermill's ways to give a job's parameters (its CLI's -p, -r, -f, -y), for job run and retrain."""
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help=f"a parameter{scope}, read as papermill reads it: True/False/None, numbers, else text")
    p.add_argument("-r", "--parameter-raw", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help=f"a parameter{scope} as text, never converted")
    p.add_argument("-f", "--parameters-file", action="append", metavar="FILE",
                   help=f"a YAML file of NAME: VALUE parameters{scope} (-p and -r override it)")
    p.add_argument("-y", "--parameters-yaml", action="append", metavar="YAML",
                   help=f"parameters{scope} as a YAML string, e.g. 'n: 3' (-p and -r override it)")


def _gate(ns) -> dict | None:
    given = {"rule": ns.gate, "data": ns.gate_data, "target": ns.gate_target}
    if not any(given.values()):
        return None
    flags = {"rule": "--gate", "data": "--gate-data", "target": "--gate-target"}
    missing = [flags[k] for k, v in given.items() if not v]
    if missing:
        raise BadInput(f"a gate needs {', '.join(flags.values())}; missing {', '.join(missing)}")
    return given


def _promote(ns, ctx):
    from ..jobs.promote import current_notebook, promote_notebook

    if ns.notebook:
        notebook = ns.notebook
    elif ctx.has_kernel:  # the notebook this kernel runs
        notebook = current_notebook()
    else:
        raise BadInput("which notebook? mlops promote NOTEBOOK --name NAME")
    params = {k: parse_literal(v) for k, v in key_values(ns.param, "--param").items()}
    smoke = {k: parse_literal(v) for k, v in key_values(ns.smoke, "--smoke").items()}
    if ctx.has_kernel and not ns.notebook:
        ctx.out(f"promoting {notebook} as last saved")
    p = promote_notebook(notebook, ns.name, model=ns.model, metric=ns.metric, params=params,
                         direction=ns.direction, alias=ns.alias, schedule=ns.schedule, image=ns.image,
                         smoke=smoke, force=ns.force, retrain_when=ns.retrain_when, gate=_gate(ns))
    ctx.out(str(p))
    return None


def job_values(ns):
    """The job and its parameter values from -f, -y, -p and -r, read and checked as papermill's
    CLI reads them, before any kernel starts."""
    from ..jobs.params import command_line_values
    from ..jobs.spec import find_job

    spec = find_job(ns.job)
    return spec, command_line_values(spec, ns.parameter, ns.parameter_raw, ns.parameters_file, ns.parameters_yaml)


def _run(ns, ctx):
    from ..jobs.runner import run_job

    spec, values = job_values(ns)
    run_job(spec, values, smoke=ns.smoke, out=ctx.out, timeout=ns.timeout, progress=ctx.interactive)
    return None


def _retrain(ns, ctx):
    from ..jobs.runner import retrain

    spec, values = job_values(ns)
    retrain(spec, grid=ns.grid, params=values, workers=ns.workers, dask_scheduler=ns.dask_scheduler, out=ctx.out,
            timeout=ns.timeout, smoke=ns.smoke, progress=ctx.interactive)
    return None


def _build(ns, ctx):
    from ..jobs.build import build_image

    build_image(ns.job, engine=ns.engine, wheelhouse=ns.wheelhouse, base=ns.base, tag=ns.tag, out=ctx.out)
    return None


def _serve(ns, ctx):
    from ..jobs.spec import find_job

    spec = find_job(ns.job)
    if not spec.serves:
        raise BadInput(f"job {spec.name} registers no model (promoted without --model): nothing to serve")
    args = serve_args(f"{spec.model}@{spec.alias}", port=ns.port, host=ns.host, token_file=ns.token_file,
                      reload_alias=2.0)
    return serve_model(args, ctx)


def _ls(ns, ctx):
    from ..jobs.spec import list_jobs

    return list_jobs()


def _show(ns, ctx):
    from ..jobs.spec import find_job

    spec = find_job(ns.job)
    ctx.out(spec.describe())
    return None
