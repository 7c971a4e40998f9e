"""Retraining rules (job.toml's `[retrain] retrain_when`, evaluated by monitoring): ``drift_share > 0.3 or accuracy < 0.8``.

A rule is a comparison of a figure with a number, combined with ``and``, ``or``, ``not`` and
parentheses (chains like ``0.2 < drift_share <= 0.5`` work). It is parsed with Python's own
parser into a tree of which only those forms are allowed, and evaluated over the figures;
nothing in it is ever executed as code. A comparison whose figure is unknown in the window
(no labels yet, so no accuracy) is unknown; ``and``/``or``/``not`` carry it (Kleene's three-valued
logic: ``unknown or true`` is true, ``not unknown`` is unknown) and the rule fires only when it is
true; the decision says which figures were unknown.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass

from ..exceptions import BadInput

FIGURES = {
    "drift_share": "share of compared features that drifted (0..1)",
    "drifted_features": "number of features that drifted",
    "dataset_drift": "1 when the share crosses the drift report's threshold, else 0",
    "requests": "logged requests in the window",
    "rows": "predicted rows in the window",
    "labeled_rows": "rows with a posted label",
    "latency_p50_ms": "median latency", "latency_p95_ms": "95th percentile latency",
    "latency_p99_ms": "99th percentile latency",
    "accuracy": "classifiers", "precision": "classifiers", "recall": "classifiers", "f1": "classifiers",
    "roc_auc": "classifiers (needs logged probabilities)",
    "mae": "regressors", "rmse": "regressors", "r2": "regressors",
    "positive_share": "share of rows predicted as the positive class",
    "prediction_mean": "mean prediction (regressors)",
}
_OPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}
_SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


class RuleError(BadInput):
    pass


@dataclass
class Rule:
    text: str
    tree: ast.expr

    @property
    def names(self) -> list[str]:
        return sorted({n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name)})

    def evaluate(self, figures: dict) -> tuple[bool, list[str]]:
        """(does it fire, the comparisons that made it so / unknown figures)."""
        why: list[str] = []
        unknown: set[str] = set()
        fired = _eval(self.tree, figures, why, unknown) is True
        return fired, why + [f"{n} unknown in this window (a rule fires only when the known figures decide it)"
                             for n in sorted(unknown)]


def _where(text: str, node_or_col) -> str:
    col = node_or_col if isinstance(node_or_col, int) else getattr(node_or_col, "col_offset", 0)
    near = text[col:col + 24].strip()
    return f"at column {col + 1}" + (f" (near {near!r})" if near else " (at the end)")


def parse(text: str, what: str = "retrain_when") -> Rule:
    """Parse and check a rule; a RuleError names the position of the problem."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError(f"{what} is empty: write a rule such as \"drift_share > 0.3 or accuracy < 0.8\"")
    src = text.strip()
    if "\n" in src:
        raise RuleError(f"{what}: a rule is one line")
    try:
        tree = ast.parse(src, mode="eval").body
    except SyntaxError as e:
        raise RuleError(f"{what} does not parse ({e.msg}) {_where(src, max((e.offset or 1) - 1, 0))}") from None
    _check(tree, src, what, top=True)
    return Rule(src, tree)


def _check(node: ast.AST, src: str, what: str, top: bool = False) -> None:
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, src, what, top=True)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, src, what, top=True)
    elif isinstance(node, ast.Compare):
        if not top:
            raise RuleError(f"{what}: a comparison cannot be compared again {_where(src, node)}")
        parts = [node.left, *node.comparators]
        for op in node.ops:
            if type(op) not in _OPS:
                raise RuleError(f"{what}: only < <= > >= == != compare figures {_where(src, node)}")
        for p in parts:
            _check(p, src, what)
        if not any(isinstance(p, ast.Name) for p in parts):
            raise RuleError(f"{what}: a comparison needs a figure such as drift_share {_where(src, node)}")
    elif isinstance(node, ast.Name):
        if top:
            raise RuleError(f"{what}: {node.id} alone is not a condition; compare it, e.g. {node.id} > 0.3 "
                            f"{_where(src, node)}")
        if node.id not in FIGURES:
            import difflib

            close = difflib.get_close_matches(node.id, FIGURES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; figures: {', '.join(FIGURES)}"
            raise RuleError(f"{what}: unknown figure {node.id!r}{hint} {_where(src, node)}")
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if top:
            raise RuleError(f"{what}: a number alone is not a condition {_where(src, node)}")
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) in (int, float) and not top:
        pass
    elif isinstance(node, ast.BinOp):
        col = node.left.end_col_offset or 0
        while col < len(src) and src[col] in " ()":
            col += 1
        op = src[col:node.right.col_offset].strip(" (")
        raise RuleError(f"{what}: operator {op!r} is not allowed (figures, numbers, < <= > >= == !=, and/or/not, "
                        f"parentheses) {_where(src, col)}")
    else:
        raise RuleError(f"{what}: only figures, numbers, comparisons, and/or/not and parentheses are allowed "
                        f"{_where(src, node)}")


def _value(node: ast.expr, figures: dict, unknown: set[str]):
    if isinstance(node, ast.Name):
        v = figures.get(node.id)
        if v is None:
            unknown.add(node.id)
        return v
    if isinstance(node, ast.UnaryOp):
        return -node.operand.value
    return node.value


def _eval(node: ast.expr, figures: dict, why: list[str], unknown: set[str]) -> bool | None:
    """Three-valued: a comparison with an unknown figure is unknown (None), and unknown stays
    unknown through not/and/or unless the known parts decide (Kleene's logic)."""
    if isinstance(node, ast.BoolOp):
        results = [_eval(v, figures, why, unknown) for v in node.values]  # all: report every reason
        if isinstance(node.op, ast.And):
            return False if False in results else (None if None in results else True)
        return True if True in results else (None if None in results else False)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _eval(node.operand, figures, [], unknown)
        return None if inner is None else not inner
    parts = [node.left, *node.comparators]
    values = [_value(p, figures, unknown) for p in parts]
    if any(v is None for v in values):
        return None
    ok = all(_OPS[type(op)](values[i], values[i + 1]) for i, op in enumerate(node.ops))
    if ok:
        text = " ".join([_show(parts[0], values[0])] + [f"{_SYMBOLS[type(op)]} {_show(p, v)}"
                                                          for op, p, v in zip(node.ops, parts[1:], values[1:])])
        why.append(text)
    return ok


def _show(node, value) -> str:
    return f"{node.id} ({value:.4g})" if isinstance(node, ast.Name) else f"{value:g}"
