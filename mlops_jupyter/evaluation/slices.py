"""Every figure per group of a column, the largest gap and ratio between groups, and for two classes
demographic parity and equalized odds.

The table is fairlearn's ``MetricFrame.by_group`` (group sizes included), its gap and ratio are
``difference()`` and ``ratio()`` between groups, and the fairness figures are fairlearn's
``demographic_parity_difference`` and ``equalized_odds_difference``: each group's figures are the
same functions as for all the rows (:func:`.metrics.scalar_functions`), plus fairlearn's own
``selection_rate``, ``true_positive_rate`` and ``false_positive_rate`` (``tests/test_evaluate.py``
compares every figure with fairlearn's). The groups are cut here, once per
column, and each function is called on a group's rows: ``MetricFrame`` turns every row into a Python
object before calling a function, about 0.1 s a figure for 200,000 rows, so the 12 figures of three
columns of a million rows took minutes (``bench/evaluate.py`` measures both).

Groups with fewer rows than ``min_group`` are kept in the table, marked ``small``, and left out of the
gaps, ratios and fairness differences (a group of 12 rows would decide them by chance); when fewer
than two groups are large enough, every group counts and the note says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exceptions import BadInput
from .metrics import Predictions, figure_names, plain, safely, scalar_functions

MAX_GROUPS = 50  # a column with more distinct values is not a grouping (bin it first)
MISSING = "(missing)"


def _rates(p: Predictions) -> dict[str, Any]:
    """fairlearn's selection rate and true and false positive rates (two classes), for parity and odds."""
    if not p.binary:
        return {}
    from fairlearn.metrics import false_positive_rate, selection_rate, true_positive_rate

    pos = p.positive
    return {"selection_rate": lambda q: selection_rate(q.y, q.pred, pos_label=pos),
            "true_positive_rate": lambda q: true_positive_rate(q.y, q.pred, pos_label=pos),
            "false_positive_rate": lambda q: false_positive_rate(q.y, q.pred, pos_label=pos)}


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
    fns = {**scalar_functions(p), **_rates(p)}  # the headline figures as for all rows, then the rates
    rows, index = [], []
    for i in rank:
        q = p.take(order[(ends[i - 1] if i else 0):ends[i]])
        row = {"count": float(len(q.y))}
        for name, fn in fns.items():
            v = safely(fn, q)
            row[name] = np.nan if v is None else v
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
        rows.append({"group": plain(g), "count": int(row["count"]), "small": bool(row["count"] < min_group),
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


