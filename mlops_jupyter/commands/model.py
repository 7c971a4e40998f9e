"""The model registry: ``model register|ls|show|alias|history|load|export``."""

from __future__ import annotations

import argparse

from .context import Listing, listing_frame, project_store, quick_store_url
from .values import share


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``model`` and its subcommands."""
    p = subparsers.add_parser("model", help="register, list, alias and load models: register, ls, show, alias, "
                                            "history, load, export, describe, card, audit")
    msub = p.add_subparsers(dest="action", metavar="register|ls|show|alias|history|load|export|describe|card|audit")
    msub.required = True
    mr = msub.add_parser("register", help="save a model variable as the next version of NAME (in a notebook)")
    mr.add_argument("model", help="the model variable")
    mr.add_argument("--name", "-n", required=True, help="model name")
    mr.add_argument("--example", help="a DataFrame or array variable: the input signature is inferred from it")
    mr.add_argument("--alias", help="point this alias at the new version (e.g. staging)")
    mr.add_argument("--pickle", action="store_true",
                    help="store a model skops/XGBoost/LightGBM cannot save as a pickle (loading it runs code)")
    mr.add_argument("--message", "-m", help="what this version is")
    mr.add_argument("--task", choices=["classification", "regression"],
                    help="a neural network's outputs, where they cannot tell: regression for several outputs "
                         "that are not class scores, classification for one output that is class 1's logit")
    mr.set_defaults(func=_register, kernel_only="model register")
    ml = msub.add_parser("ls", help="models with their latest version and aliases, or the versions of one model")
    ml.add_argument("name", nargs="?")
    ml.set_defaults(func=_ls)
    mw = msub.add_parser("show", help="one version: signature, metrics, datasets, aliases, explanations")
    mw.add_argument("ref", help="NAME@vN, NAME@ALIAS, NAME or models:/NAME/N")
    mw.set_defaults(func=_show)
    ma = msub.add_parser("alias", help="point an alias at a version (the move is logged): model alias churn@v3 "
                                       "production")
    ma.add_argument("ref")
    ma.add_argument("alias")
    ma.add_argument("--delete", action="store_true", help="remove the alias instead (ref names the model)")
    ma.set_defaults(func=_alias)
    mh = msub.add_parser("history", help="every alias move of a model: when, from which version to which, who")
    mh.add_argument("name")
    mh.set_defaults(func=_history)
    mo = msub.add_parser("load", help="load a version (in a notebook: returns the model; here: checks it loads)")
    mo.add_argument("ref")
    mo.add_argument("--pickle", action="store_true", help="allow loading a pickle (runs code from the file)")
    mo.add_argument("--to", metavar="FILE", help="also write the saved model file here")
    mo.set_defaults(func=_load)
    mx = msub.add_parser("export", help="write a version as ONNX for other runtimes and edge devices: model "
                                        "export churn@v3 --format onnx (scikit-learn, PyTorch, Keras)")
    mx.add_argument("ref")
    mx.add_argument("--format", default="onnx", choices=["onnx"], help="file format (default onnx)")
    mx.add_argument("--output", "-o", metavar="FILE", help="where to write it (default NAME-vN.onnx here)")
    mx.add_argument("--quantize", action="store_true", help="dynamic int8 quantization of the weights")
    mx.add_argument("--min-agreement", type=share, metavar="SHARE", help=MIN_AGREEMENT_HELP)
    mx.set_defaults(func=_export)
    md = msub.add_parser("describe", help="what a version is for and where it should not be used (its model card "
                                          "shows it): model describe churn@v3 --intended-use TEXT --limitations TEXT")
    md.add_argument("ref")
    md.add_argument("--intended-use", metavar="TEXT", help="what the model is for, for whom, on what data")
    md.add_argument("--limitations", metavar="TEXT", help="where it should not be used, known weaknesses")
    md.set_defaults(func=_describe)
    mc = msub.add_parser("card", help="a version's model card: what it is, intended use, data and code, evaluation, "
                                      "explanations, monitoring, aliases, audit (-o card.html | card.md)")
    mc.add_argument("ref")
    mc.add_argument("--output", "-o", metavar="FILE", help="write it as a self-contained HTML page (.html) or "
                                                           "Markdown (.md, pictures as SVG beside it)")
    mc.set_defaults(func=_card)
    mu = msub.add_parser("audit", help="what a version's file would run when loaded (pickles are scanned), whether "
                                       "its bytes are the registered ones, its job's pinned dependencies and licences "
                                       "(exit 1 when unsafe or changed)")
    mu.add_argument("ref")
    mu.set_defaults(func=_audit)


# The same words as `serve --min-agreement` (onnx_nets documents the measure).
MIN_AGREEMENT_HELP = ("with --quantize, for PyTorch and Keras networks: how closely the int8 model must agree with "
                      "the original on the version's stored example, or nothing is written. Classifiers: the share "
                      "of rows predicting the same class (default 0.99). Regressors: 1 - the largest error as a share "
                      "of the spread (max - min) of the original's predictions (default 0.95)")


def _register(ns, ctx):
    from .. import models

    model = ctx.variable(ns.model, "the model to register")
    example = ctx.variable(ns.example, "--example")
    if ns.pickle:
        ctx.out("warning: stored as a pickle; loading it will run code from the file (load with --pickle)")
    v = models.register(model, name=ns.name, example=example, alias=ns.alias, pickle=ns.pickle,
                        message=ns.message, task=ns.task)
    if v.staged_for:
        ctx.out(f"staged {v.name} as a candidate of job {v.staged_for}: the batch registers its best execution's "
                f"model{' and decides about @' + ns.alias if ns.alias else ''}")
    else:
        ctx.out(f"registered {v}")
    return v if ctx.has_kernel else None


def _ls(ns, ctx):
    from .. import models

    if not ctx.rich_display:
        from ..models import listing
        from ..store import quickread

        url = quick_store_url()
        if ns.name:
            rows = quickread.model_versions(url, ns.name)
            return Listing("model_versions", [listing.version_record(r, al) for r, al in rows] if rows is not None
                           else models.version_records(ns.name), f"Versions of {ns.name}")
        rows = quickread.models(url)
        return Listing("models", [listing.model_record(r, al) for r, al in rows] if rows is not None
                       else models.model_records())
    if ns.name:
        return listing_frame("model_versions", models.versions(ns.name), f"Versions of {ns.name}")
    return listing_frame("models", models.ls())


def _show(ns, ctx):
    from .. import models

    return models.get(ns.ref)


def _alias(ns, ctx):
    from .. import models
    from ..models.registry import Registry

    reg = Registry(project_store())
    if ns.delete:
        name = models.parse_model_ref(ns.ref)[0]
        prev = reg.delete_alias(name, ns.alias)
        ctx.out(f"{name}: alias {ns.alias} removed (it pointed to v{prev})")
        return None
    v, prev = reg.set_alias(ns.ref, ns.alias)
    moved = f" (was v{prev})" if prev is not None and prev != v.version else ""
    ctx.out(f"{v.name}@{ns.alias} -> v{v.version}{moved}")
    return None


def _export(ns, ctx):
    import os

    from .. import models
    from ..exceptions import BadInput

    if ns.min_agreement is not None and not ns.quantize:
        raise BadInput("--min-agreement applies with --quantize")
    path, note = models.export_with_note(ns.ref, format=ns.format, path=ns.output, quantize=ns.quantize,
                                         min_agreement=ns.min_agreement)
    ctx.out(f"wrote {path} ({os.path.getsize(path):,} bytes; {note}); ONNX Runtime predicts as the model does "
            "on its example")
    return None


def _history(ns, ctx):
    from .. import models

    moves = models.history(ns.name)
    title = f"Alias moves of {ns.name}"
    if ctx.rich_display:
        return listing_frame("alias_moves", moves, title)
    from ..widgets.html import frame_rows

    return Listing("alias_moves", frame_rows(moves), title)


def _load(ns, ctx):
    from ..models.registry import Registry

    reg = Registry(project_store())
    v = reg.get(ns.ref)
    model = reg.load_version(v, allow_pickle=ns.pickle)
    if ns.to:
        from pathlib import Path

        from ..store.blobs import write_atomic

        write_atomic(Path(ns.to), [reg.store.blobs.get_bytes(v.digest)])
        ctx.out(f"wrote {v.ref} ({v.flavor}, {v.size:,} bytes) to {ns.to}")
    if ctx.has_kernel:  # the model itself, as the cell's value
        return model
    ctx.out(f"{v.ref} loads: {type(model).__module__}.{type(model).__name__}")
    return v


def _describe(ns, ctx):
    from .. import models
    from .errors import CommandError

    if ns.intended_use is None and ns.limitations is None:
        raise CommandError("model describe: give --intended-use TEXT and/or --limitations TEXT")
    models.describe(ns.ref, intended_use=ns.intended_use, limitations=ns.limitations)
    ctx.out(f"described {models.get(ns.ref).ref}: its card shows it (mlops model card {ns.ref})")
    return None


def _card(ns, ctx):
    from ..governance.card import build

    card = build(ns.ref)
    if ns.output:
        ctx.out(f"saved {card.save(ns.output)}")
        return None
    return card


def _audit(ns, ctx):
    from ..governance.audit import audit

    report = audit(ns.ref)
    if not report.ok:
        ctx.extra["exit_code"] = 1
    return report
