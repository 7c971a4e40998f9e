"""``explain``: SHAP or LIME explanations of a model on a frame (a widget; needs a kernel)."""

from __future__ import annotations

import argparse

from ..exceptions import BadInput, MlopsError
from .context import project_store
from .values import positive_int, whole_number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``explain``."""
    p = subparsers.add_parser("explain", help="SHAP or LIME explanations of a model on a frame, as a widget (in a "
                                              "notebook)")
    p.add_argument("model", help="a model variable, or a registered model (NAME@ALIAS, NAME@vN)")
    p.add_argument("frame", help="a DataFrame/array variable, or a dataset version (NAME@vN)")
    p.add_argument("--method", choices=["shap", "lime"], default="shap")
    p.add_argument("--rows", type=positive_int, default=1000, help="explain at most this many rows (default 1000)")
    p.add_argument("--row", type=whole_number, help="the row the per-row views start on (default 0)")
    p.add_argument("--background", help="a frame variable for the background sample (default: 100 rows of the "
                                        "frame)")
    p.add_argument("--class", dest="class_", metavar="CLASS", help="the class the row views start on")
    p.add_argument("--labels", help="a variable with the true labels of the frame's rows (the row picker shows them)")
    p.add_argument("--seed", type=whole_number, default=0, help="LIME's sampling seed (default 0)")
    p.add_argument("--pickle", action="store_true", help="allow loading a registered pickle model")
    p.add_argument("--no-cache", action="store_true", help="compute again even if the store has this explanation")
    p.set_defaults(func=_explain, kernel_only="explain")


def _explain(ns, ctx):
    from ..models.explain import explain

    model, is_var = ctx.lookup(ns.model)
    if not is_var and ns.model.isidentifier() and "@" not in ns.model:
        from ..models.registry import Registry

        try:
            Registry(project_store()).get(ns.model)
        except MlopsError:
            raise BadInput(f"{ns.model!r} is neither a model variable in the notebook nor a registered model") from None
    frame, is_frame = ctx.lookup(ns.frame)
    if not is_frame and "@" not in ns.frame:
        raise BadInput(f"{ns.frame!r} is neither a frame variable in the notebook nor a dataset version (NAME@vN)")
    background = ctx.variable(ns.background, "--background")
    labels = ctx.variable(ns.labels, "--labels")
    return explain(model, frame, method=ns.method, rows=ns.rows, row=ns.row, background=background,
                   class_=ns.class_, y=labels, seed=ns.seed, cache=not ns.no_cache, pickle=ns.pickle, out=ctx.out)
