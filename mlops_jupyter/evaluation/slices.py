"""Every figure per group of a column, the largest gap and ratio between groups, and for two classes
demographic parity and equalized odds.

The table is fairlearn's ``MetricFrame.by_group`` (group sizes included), its gap and ratio are
``difference()`` and ``ratio()`` between groups, and the fairness figures are fairlearn's
``demographic_parity_difference`` and ``equalized_odds_difference``, each computed from fairlearn's
own ``selection_rate``, ``true_positive_rate`` and ``false_positive_rate`` and scikit-learn's functions
(``tests/test_evaluate.py`` compares every figure with fairlearn's). The groups are cut here, once per
column, and each function is called on a group's rows: ``MetricFrame`` turns every row into a Python
object before calling a function, about 0.1 s a figure for 200,000 rows, so the 12 figures of three
columns of a million rows took minutes (``bench/evaluate.py`` measures both).

Groups with fewer rows than ``min_group`` are kept in the table, marked ``small``, and left out of the
gaps, ratios and fairness differences (a group of 12 rows would decide them by chance); when fewer
than two groups are large enough, every group counts and the note says so.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import numpy as np

from ..exceptions import BadInput
from .metrics import Predictions, figure_names

MAX_GROUPS = 50  # a column with more distinct values is not a grouping (bin it first)
MISSING = "(missing)"


def _label_metrics(p: Predictions) -> dict[str, Any]:
    from fairlearn.metrics import false_positive_rate, selection_rate, true_positive_rate
    from sklearn import metrics as M

    if p.task == "regression":
        return {"mae": M.mean_absolute_error, "rmse": M.root_mean_squared_error,
                "r2": _defined(M.r2_score), "mape": M.mean_absolute_percentage_error}
    fns: dict[str, Any] = {"accuracy": M.accuracy_score}
    if p.binary:
        kw = dict(pos_label=p.positive, zero_division=0)
        fns.update(precision=partial(M.precision_score, **kw), recall=partial(M.recall_score, **kw),
                   f1=partial(M.f1_score, **kw), selection_rate=partial(selection_rate, pos_label=p.positive),
                   true_positive_rate=partial(true_positive_rate, pos_label=p.positive),
                   false_positive_rate=partial(false_positive_rate, pos_label=p.positive))
    else:
        kw = dict(labels=p.classes, average="macro", zero_division=0)
        fns.update(precision=partial(M.precision_score, **kw), recall=partial(M.recall_score, **kw),
                   f1=partial(M.f1_score, **kw))
    return fns


def _score_metrics(p: Predictions) -> dict[str, Any]:
    from sklearn import metrics as M

    classes, pos = p.classes, p.positive
    if p.binary:
        j = classes.index(pos)
        return {"roc_auc": _defined(lambda y, P: M.roc_auc_score(y == pos, P[:, j])),
                "pr_auc": _defined(lambda y, P: M.average_precision_score(y, P[:, j], pos_label=pos)),
                "log_loss": _defined(lambda y, P: M.log_loss(y, P, labels=classes)),
                "brier": _defined(lambda y, P: M.brier_score_loss(y, P[:, j], pos_label=pos))}
    from sklearn.preprocessing import label_binarize

    return {"roc_auc": _defined(lambda y, P: M.roc_auc_score(y, P, multi_class="ovr", labels=classes)),
            "pr_auc": _defined(lambda y, P: M.average_precision_score(label_binarize(y, classes=classes), P,
                                                                      average="macro")),
            "log_loss": _defined(lambda y, P: M.log_loss(y, P, labels=classes)),
            "brier": _defined(lambda y, P: M.brier_score_loss(y, P, labels=classes))}


def _defined(fn):
    """*fn*, giving NaN where the figure is undefined on a group (one class only, a single row)."""

    def f(*args, **kw):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return float(fn(*args, **kw))
        except (ValueError, ZeroDivisionError):
            return float("nan")

    return f


def groups_of(values: Any, column: str) -> np.ndarray:
    """A grouping column as values fairlearn can group by: missing values become one group."""
    import pandas as pd

    s = pd.Series(values).reset_index(drop=True)
    distinct = s.nunique(dropna=True)
    if distinct > MAX_GROUPS:
        raise BadInput(f"--by {column} has {distinct:,} distinct values; slices need at most {MAX_GROUPS} "
                       f"(bin it first, e.g. a {column}_band column)")
    if s.isna().any():
        s = s.astype(object).where(s.notna(), MISSING)
    return s.to_numpy()


def _by_group(p: Predictions, groups: np.ndarray, column: str):
    """MetricFrame's ``by_group``: a row per group (sorted), its ``count`` and every figure."""
    import pandas as pd

    codes, uniques = pd.factorize(groups, sort=False)
    names = list(uniques)
    try:
        rank = sorted(range(len(names)), key=lambda i: names[i])
    except TypeError:  # mixed kinds (numbers and "(missing)"): by their text
        rank = sorted(range(len(names)), key=lambda i: str(names[i]))
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(np.bincount(codes, minlength=len(names)))
    label_fns = _label_metrics(p)
    score_fns = _score_metrics(p) if p.task == "classification" and p.proba is not None else {}
    rows, index = [], []
    for i in rank:
        idx = order[(ends[i - 1] if i else 0):ends[i]]
        y, pred = p.y[idx], p.pred[idx]
        row = {"count": float(len(idx))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row.update({name: float(fn(y, pred)) for name, fn in label_fns.items()})
            row.update({name: float(fn(y, p.proba[idx])) for name, fn in score_fns.items()})
        rows.append(row)
        index.append(names[i])
    return pd.DataFrame(rows, index=pd.Index(index, name=column))


def slice_report(p: Predictions, column: str, groups: np.ndarray, min_group: int) -> dict[str, Any]:
    """The per-group table, gaps, ratios and fairness differences of one grouping column."""
    by = _by_group(p, groups, column)
    counts = by["count"].astype(int)
    trusted = counts >= min_group
    note = None
    if trusted.sum() < 2:
        note = (f"fewer than two groups of {column} have {min_group} rows or more: the gaps compare every group"
                if len(by) > 1 else f"{column} has one group only: no gap to measure")
        trusted[:] = True
    figures = [c for c in by.columns if c != "count"]
    kept = by.loc[trusted.to_numpy(), figures].astype(float)
    gap = {f: _num(kept[f].max() - kept[f].min()) for f in figures}
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = {f: _num(kept[f].min() / kept[f].max()) if kept[f].max() != 0 else None for f in figures}
    fairness: dict[str, Any] = {}
    if p.binary:
        fairness = {"demographic_parity_difference": gap.get("selection_rate"),
                    "equalized_odds_difference": _max(gap.get("true_positive_rate"), gap.get("false_positive_rate"))}
    rows = []
    for g, row in by.iterrows():
        rows.append({"group": _plain(g), "count": int(row["count"]), "small": bool(row["count"] < min_group),
                     **{f: _num(row[f]) for f in figures}})
    return {"column": column, "groups": rows, "figures": figures, "gap": gap, "ratio": ratio, "fairness": fairness,
            "min_group": min_group, "trusted": int(trusted.sum()), "note": note,
            "headline": [f for f in figure_names(p.task) if f in figures]}


def _max(a, b):
    vals = [v for v in (a, b) if v is not None]
    return max(vals) if vals else None


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
