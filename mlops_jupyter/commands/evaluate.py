"""``evaluate``: a model version on labelled rows (``mlops evaluate churn@v3 test@v2 --target churned
--by region --baseline churn@production``): every figure, the curves, the slices, the baseline."""

from __future__ import annotations

import argparse

from ..exceptions import BadInput
from .values import positive_int, whole_number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``evaluate``."""
    p = subparsers.add_parser("evaluate", help="evaluate a model version on labelled rows: figures, curves, slices "
                                               "by group and fairness, a baseline with bootstrap intervals; stored "
                                               "with the version")
    p.add_argument("model", help="a registered version: NAME@vN, NAME@ALIAS")
    p.add_argument("data", help="a dataset version (NAME@vN), a CSV or Parquet file, or in a notebook a DataFrame "
                                "variable")
    p.add_argument("--target", "-t", required=True, help="the column of true labels or values")
    p.add_argument("--by", help="column(s) to slice by, comma-separated: every figure per group, the largest gap, "
                                "demographic parity and equalized odds")
    p.add_argument("--baseline", help="another version of the same task: both on the same rows, each figure's "
                                      "difference with a bootstrap interval")
    p.add_argument("--min-group", type=positive_int, default=30,
                   help="groups with fewer rows are marked small and left out of the gaps (default 30)")
    p.add_argument("--resamples", type=positive_int, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--seed", type=whole_number, default=0, help="the bootstrap's seed (default 0)")
    p.add_argument("--positive", help="the positive class of a binary classifier (default: the second class)")
    p.add_argument("--pickle", action="store_true", help="allow loading a version saved as a pickle (runs code)")
    p.add_argument("--no-cache", action="store_true", help="compute again even if the store has this evaluation")
    p.add_argument("--save", metavar="PATH", help="also write it as an HTML page (.html) or its document (.json)")
    p.set_defaults(func=_evaluate)


def _data(word: str, ctx):
    """(the data to evaluate, what the report calls it): a notebook variable or a file, named by
    the word; a dataset version, which names itself."""
    import os

    value, is_var = ctx.lookup(word)
    if is_var:
        return value, word
    if os.path.isfile(word):
        if word.lower().endswith((".parquet", ".pq", ".csv", ".tsv", ".txt")):
            from ..data.frames import read_table_file

            try:
                return read_table_file(word, word), word
            except Exception as e:
                raise BadInput(f"cannot read {word}: {e}") from None
        raise BadInput(f"{word}: evaluate reads CSV or Parquet files; version others with `mlops data add`")
    if "@" not in word and not ctx.has_kernel:
        raise BadInput(f"{word!r} is neither a dataset version (NAME@vN) nor a CSV or Parquet file")
    if "@" not in word:
        raise BadInput(f"{word!r} is neither a DataFrame variable in the notebook nor a dataset version (NAME@vN)")
    return word, None


def _positive(text: str | None):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return {"true": True, "false": False}.get(text.lower(), text)


def _evaluate(ns, ctx):
    from ..evaluation.evaluate import evaluate

    data, label = _data(ns.data, ctx)
    ev = evaluate(ns.model, data, target=ns.target, by=ns.by, baseline=ns.baseline, min_group=ns.min_group,
                  resamples=ns.resamples, seed=ns.seed, positive=_positive(ns.positive), cache=not ns.no_cache,
                  pickle=ns.pickle, progress=ctx.interactive, label=label)
    if ns.save:
        ctx.out(f"saved {ev.save(ns.save)}")
    return ev
