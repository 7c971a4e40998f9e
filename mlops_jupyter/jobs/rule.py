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
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Vocabulary:
    """What a kind of rule may name: its figures, its functions (name -> the kinds of their
    arguments: ``figure`` or ``column``) and whether ``+``/``-`` may shift a figure by a number."""

    figures: dict
    functions: dict = field(default_factory=dict)
    arithmetic: bool = False
    example: str = "drift_share > 0.3 or accuracy < 0.8"


RETRAIN = Vocabulary(FIGURES)


@dataclass
class Rule:
    text: str
    tree: ast.expr

    @property
    def names(self) -> list[str]:
        return sorted({n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name)})

    @property
    def terms(self) -> list[ast.expr]:
        """The figures and function calls the rule reads (not a call's own arguments)."""
        return terms_of(self.tree)

    def evaluate(self, figures: dict) -> tuple[bool, list[str]]:
        """(does it fire, the comparisons that made it so / unknown figures)."""
        why: list[str] = []
        unknown: set[str] = set()
        fired = _eval(self.tree, figures, why, unknown) is True
        return fired, why + [f"{n} unknown in this window (a rule fires only when the known figures decide it)"
                             for n in sorted(unknown)]

    def check(self, values: dict) -> tuple[bool | None, list[str], list[str]]:
        """(True, False or None when unknown decide it; the comparisons that failed, with their
        figures; the unknown terms). *values* are keyed by each term's text (``auc``,
        ``max_slice_gap(recall, region)``)."""
        failed: list[str] = []
        unknown: set[str] = set()
        result = _eval(self.tree, values, [], unknown, failed)
        return result, failed, sorted(unknown)


def terms_of(node: ast.AST) -> list[ast.expr]:
    """The figures (names) and function calls *node* reads, in order; a call's arguments are its own."""
    if isinstance(node, (ast.Name, ast.Call)):
        return [node]
    return [t for child in ast.iter_child_nodes(node) for t in terms_of(child)]


def _where(text: str, node_or_col) -> str:
    col = node_or_col if isinstance(node_or_col, int) else getattr(node_or_col, "col_offset", 0)
    near = text[col:col + 24].strip()
    return f"at column {col + 1}" + (f" (near {near!r})" if near else " (at the end)")


def parse(text: str, what: str = "retrain_when", vocabulary: Vocabulary = RETRAIN) -> Rule:
    """Parse and check a rule against *vocabulary*; a RuleError names the position of the problem."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError(f"{what} is empty: write a rule such as \"{vocabulary.example}\"")
    src = text.strip()
    if "\n" in src:
        raise RuleError(f"{what}: a rule is one line")
    try:
        tree = ast.parse(src, mode="eval").body
    except SyntaxError as e:
        raise RuleError(f"{what} does not parse ({e.msg}) {_where(src, max((e.offset or 1) - 1, 0))}") from None
    _check(tree, src, what, vocabulary, top=True)
    return Rule(src, tree)


def _check(node: ast.AST, src: str, what: str, vocab: Vocabulary, top: bool = False) -> None:
    figures = vocab.figures
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, src, what, vocab, top=True)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, src, what, vocab, top=True)
    elif isinstance(node, ast.Compare):
        if not top:
            raise RuleError(f"{what}: a comparison cannot be compared again {_where(src, node)}")
        parts = [node.left, *node.comparators]
        for op in node.ops:
            if type(op) not in _OPS:
                raise RuleError(f"{what}: only < <= > >= == != compare figures {_where(src, node)}")
        for p in parts:
            _check(p, src, what, vocab)
        if not any(isinstance(n, (ast.Name, ast.Call)) for p in parts for n in ast.walk(p)):
            first = next(iter(figures))
            raise RuleError(f"{what}: a comparison needs a figure such as {first} {_where(src, node)}")
    elif isinstance(node, ast.Name):
        if top:
            raise RuleError(f"{what}: {node.id} alone is not a condition; compare it, e.g. {node.id} > 0.3 "
                            f"{_where(src, node)}")
        _known(node.id, figures, "figure", src, what, node)
    elif isinstance(node, ast.Call) and vocab.functions and not top:
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        _known(name, vocab.functions, "function", src, what, node)
        kinds = vocab.functions[name]
        if node.keywords or len(node.args) != len(kinds):
            raise RuleError(f"{what}: {name} takes {len(kinds)} argument(s): {name}({', '.join(kinds)}) "
                            f"{_where(src, node)}")
        for arg, kind in zip(node.args, kinds):
            if kind == "figure":
                if not isinstance(arg, ast.Name):
                    raise RuleError(f"{what}: {name}'s {kind} is a figure name such as recall {_where(src, arg)}")
                _known(arg.id, {k: v for k, v in figures.items() if k != "baseline"}, "figure", src, what, arg)
            elif not (isinstance(arg, ast.Name) or (isinstance(arg, ast.Constant) and isinstance(arg.value, str))):
                raise RuleError(f"{what}: {name}'s {kind} is a column name (quote it if it is not a word) "
                                f"{_where(src, arg)}")
    elif isinstance(node, ast.BinOp) and vocab.arithmetic and isinstance(node.op, (ast.Add, ast.Sub)) and not top:
        _check(node.left, src, what, vocab)
        _check(node.right, src, what, vocab)
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
        extra = ", + and -" if vocab.arithmetic else ""
        raise RuleError(f"{what}: operator {op!r} is not allowed (figures, numbers, < <= > >= == !=, and/or/not, "
                        f"parentheses{extra}) {_where(src, col)}")
    else:
        raise RuleError(f"{what}: only figures, numbers, comparisons, and/or/not and parentheses are allowed "
                        f"{_where(src, node)}")


def _known(name: str, allowed: dict, kind: str, src: str, what: str, node) -> None:
    if name in allowed:
        return
    import difflib

    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {close[0]}?)" if close else f"; {kind}s: {', '.join(allowed)}"
    raise RuleError(f"{what}: unknown {kind} {name!r}{hint} {_where(src, node)}")


def term_key(node: ast.expr) -> str:
    """How a figure or a call is named in the values a rule is evaluated over."""
    return node.id if isinstance(node, ast.Name) else ast.unparse(node)


def _value(node: ast.expr, figures: dict, unknown: set[str]):
    if isinstance(node, (ast.Name, ast.Call)):
        key = term_key(node)
        v = figures.get(key)
        if v is None:
            unknown.add(key)
        return v
    if isinstance(node, ast.BinOp):
        a, b = _value(node.left, figures, unknown), _value(node.right, figures, unknown)
        if a is None or b is None:
            return None
        return a + b if isinstance(node.op, ast.Add) else a - b
    if isinstance(node, ast.UnaryOp):
        return -node.operand.value
    return node.value


def _eval(node: ast.expr, figures: dict, why: list[str], unknown: set[str],
          failed: list[str] | None = None) -> bool | None:
    """Three-valued: a comparison with an unknown figure is unknown (None), and unknown stays
    unknown through not/and/or unless the known parts decide (Kleene's logic)."""
    if isinstance(node, ast.BoolOp):
        results = [_eval(v, figures, why, unknown, failed) for v in node.values]  # all: report every reason
        if isinstance(node.op, ast.And):
            return False if False in results else (None if None in results else True)
        return True if True in results else (None if None in results else False)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _eval(node.operand, figures, [], unknown, failed)
        return None if inner is None else not inner
    parts = [node.left, *node.comparators]
    values = [_value(p, figures, unknown) for p in parts]
    if any(v is None for v in values):
        return None
    ok = all(_OPS[type(op)](values[i], values[i + 1]) for i, op in enumerate(node.ops))
    text = " ".join([_show(parts[0], values[0], figures)] + [f"{_SYMBOLS[type(op)]} {_show(p, v, figures)}"
                                                             for op, p, v in zip(node.ops, parts[1:], values[1:])])
    if ok:
        why.append(text)
    elif failed is not None:
        failed.append(text)
    return ok


def _show(node, value, figures: dict) -> str:
    if isinstance(node, (ast.Name, ast.Call)):
        return f"{term_key(node)} ({value:.4g})"
    if isinstance(node, ast.BinOp):
        left = _show(node.left, _value(node.left, figures, set()), figures)
        right = _show(node.right, _value(node.right, figures, set()), figures)
        return f"{left} {'+' if isinstance(node.op, ast.Add) else '-'} {right} = {value:.4g}"
    return f"{value:g}"
