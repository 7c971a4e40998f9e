"""Other tools: ``wandb sync|status`` (the Weights & Biases mirror), ``export mlflow``, ``import mlflow``."""

from __future__ import annotations

import argparse

from .context import project_store


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``wandb``, ``export`` and ``import``."""
    p = subparsers.add_parser("wandb", help="the Weights & Biases mirror: wandb sync [RUN...] pushes what was not "
                                            "mirrored; wandb status lists what was")
    wsub = p.add_subparsers(dest="action", metavar="sync|status")
    wsub.required = True
    ws = wsub.add_parser("sync", help="push runs, data and models not yet mirrored (or the runs named) now")
    ws.add_argument("runs", nargs="*", metavar="RUN")
    ws.set_defaults(func=_wandb_sync)
    wt = wsub.add_parser("status", help="what was mirrored, what failed and why")
    wt.set_defaults(func=_wandb_status)

    p = subparsers.add_parser("export", help="export runs and registered models: export mlflow --to URI [RUN...]")
    esub = p.add_subparsers(dest="action", metavar="mlflow")
    esub.required = True
    ex = esub.add_parser("mlflow", help="write runs (params, metric histories, tags, artifacts) and registered "
                                        "models with aliases into an MLflow tracking store; again: only what changed")
    ex.add_argument("runs", nargs="*", metavar="RUN", help="runs to export (default: all)")
    ex.add_argument("--to", required=True, metavar="URI", help="MLflow tracking URI: sqlite:///mlflow.db, http://... "
                                                               "(a file: store needs MLFLOW_ALLOW_FILE_STORE=true)")
    ex.add_argument("--experiment", help="MLflow experiment (default: the project folder's name)")
    ex.add_argument("--no-models", action="store_true", help="runs only, no registered models")
    ex.set_defaults(func=_export_mlflow)

    p = subparsers.add_parser("import", help="bring runs in from another tool: import mlflow --from URI")
    isub = p.add_subparsers(dest="action", metavar="mlflow")
    isub.required = True
    im = isub.add_parser("mlflow", help="import MLflow runs (params, metric histories, tags, artifacts); "
                                        "runs imported before are skipped")
    im.add_argument("runs", nargs="*", metavar="RUN_ID", help="MLflow run ids (default: every run)")
    im.add_argument("--from", dest="source", required=True, metavar="URI", help="MLflow tracking URI")
    im.add_argument("--experiment", action="append", help="only these experiments (repeatable)")
    im.set_defaults(func=_import_mlflow)


def _wandb_sync(ns, ctx):
    from ..integrations import wandb_mirror

    progress = ctx.progress("mirroring to W&B")
    counts = wandb_mirror.sync(project_store(), ns.runs or None, progress=progress, out=ctx.out)
    project = counts.pop("project")
    ctx.out(f"W&B {project}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n or k == "mirrored"))
    if counts["failed"]:
        ctx.extra["exit_code"] = 1
    return None


def _wandb_status(ns, ctx):
    from ..integrations import wandb_mirror

    return wandb_mirror.status(project_store())


def _export_mlflow(ns, ctx):
    from ..integrations.mlflow_export import export_mlflow

    progress = ctx.progress("exporting to MLflow")
    summary = export_mlflow(ns.to, runs=ns.runs or None, experiment=ns.experiment, models=not ns.no_models,
                            progress=progress)
    ctx.out(f"MLflow {ns.to}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()
                                             if not isinstance(v, (dict, list))))
    return None


def _import_mlflow(ns, ctx):
    from ..integrations.mlflow_import import import_mlflow

    progress = ctx.progress("importing from MLflow")
    summary = import_mlflow(ns.source, experiments=ns.experiment, runs=ns.runs or None, progress=progress)
    ctx.out(f"from MLflow {ns.source}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()
                                                     if not isinstance(v, (dict, list))))
    return None
