"""The promotion gate (job.toml's ``[gate]``): what a challenger must show on the job's evaluation data
before it takes the alias, whichever way the move was proposed (``retrain``, ``tune``, ``monitor check``).

    [gate]
    rule = "auc >= baseline - 0.002 and max_slice_gap(recall, region) <= 0.05"
    data = "test@v2"       # the evaluation data version
    target = "churned"

The rule is written in the retraining rules' language (:mod:`.rule`: parsed, checked, never
executed) over the challenger's evaluation figures (``auc``, ``recall``, ``rmse``, ...), plus:

- ``baseline``: the same figure of the champion on the same rows (``auc >= baseline - 0.002``);
  with no champion yet, a comparison with it holds;
- ``max_slice_gap(figure, column)``, ``slice_ratio(figure, column)``, ``min_slice(figure, column)``,
  ``max_slice(figure, column)``: over the groups of *column* with enough rows;
- ``demographic_parity_difference(column)``, ``equalized_odds_difference(column)``.

A comparison with a figure the evaluation cannot give (no probabilities, so no auc) refuses: a gate
is passed on known figures only. A refusal names each clause that failed with its figures.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import BadInput
from .rule import Rule, RuleError, Vocabulary, parse, term_key, terms_of

FIGURES = {
    "accuracy": "", "precision": "", "recall": "", "f1": "", "roc_auc": "", "auc": "ROC AUC", "pr_auc": "",
    "log_loss": "", "brier": "", "precision_macro": "", "recall_macro": "", "f1_macro": "",
    "precision_weighted": "", "recall_weighted": "", "f1_weighted": "", "mae": "", "rmse": "", "r2": "",
    "mape": "", "selection_rate": "per group only", "true_positive_rate": "per group only",
    "false_positive_rate": "per group only", "baseline": "the champion's value of the figure compared",
}
GROUP_FIGURES = ("selection_rate", "true_positive_rate", "false_positive_rate")  # per group only
FUNCTIONS = {"max_slice_gap": ("figure", "column"), "slice_ratio": ("figure", "column"),
             "min_slice": ("figure", "column"), "max_slice": ("figure", "column"),
             "demographic_parity_difference": ("column",), "equalized_odds_difference": ("column",),
             "baseline": ("figure",)}
GATE = Vocabulary(FIGURES, FUNCTIONS, arithmetic=True,
                  example="auc >= baseline - 0.002 and max_slice_gap(recall, region) <= 0.05")
KEYS = {"rule": "the gate, e.g. \"auc >= baseline - 0.002 and max_slice_gap(recall, region) <= 0.05\"",
        "data": "the evaluation data version, e.g. \"test@v2\"",
        "target": "the column of true labels or values",
        "min_group": "groups with fewer rows are left out of the slice figures (default 30)",
        "resamples": "bootstrap resamples of the baseline comparison (default 200)",
        "seed": "the bootstrap's seed (default 0)",
        "positive": "the positive class of a binary classifier (default: the second class)"}


def parse_gate(text: str, what: str = "[gate] rule") -> Rule:
    """Parse a gate; ``baseline`` alone becomes ``baseline(FIGURE)`` of its comparison's figure."""
    rule = parse(text, what, GATE)
    for cmp in [n for n in ast.walk(rule.tree) if isinstance(n, ast.Compare)]:
        names = [t for side in (cmp.left, *cmp.comparators) for t in terms_of(side) if isinstance(t, ast.Name)]
        if not any(n.id == "baseline" for n in names):
            continue
        figures = {n.id for n in names if n.id != "baseline"}
        if len(figures) != 1:
            raise RuleError(f"{what}: baseline stands for the figure it is compared with; write one figure beside "
                            f"it, e.g. auc >= baseline - 0.002 (in {ast.unparse(cmp)!r})")
        sub = _Baseline(figures.pop())
        cmp.left = sub.visit(cmp.left)
        cmp.comparators = [sub.visit(c) for c in cmp.comparators]
    for n in terms_of(rule.tree):
        if isinstance(n, ast.Name) and n.id in GROUP_FIGURES:
            raise RuleError(f"{what}: {n.id} is a figure of groups: use it in a slice function, e.g. "
                            f"max_slice_gap({n.id}, region)")
    ast.fix_missing_locations(rule.tree)
    return rule


class _Baseline(ast.NodeTransformer):
    """``baseline`` -> ``baseline(FIGURE)`` in one side of a comparison (a call's arguments untouched)."""

    def __init__(self, figure: str):
        self.figure = figure

    def visit_Call(self, node: ast.Call) -> ast.Call:
        return node

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id != "baseline":
            return node
        return ast.Call(func=ast.Name("baseline", ast.Load()), args=[ast.Name(self.figure, ast.Load())], keywords=[])


def columns_of(rule: Rule) -> list[str]:
    """The columns the rule's slice functions group by (the evaluation's ``by``)."""
    out: list[str] = []
    for n in ast.walk(rule.tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in FUNCTIONS:
            kinds = FUNCTIONS[n.func.id]
            for arg, kind in zip(n.args, kinds):
                if kind == "column":
                    out.append(arg.id if isinstance(arg, ast.Name) else arg.value)
    return list(dict.fromkeys(out))


def check_gate(gate: dict[str, Any]) -> dict[str, Any]:
    """Check job.toml's [gate] table (the rule parsed; the data and target named)."""
    out = dict(gate)
    for key in out:
        if key not in KEYS:
            raise BadInput(f"[gate] has no key {key!r}; keys: {', '.join(KEYS)}")
    if not out:
        return out
    for key in ("rule", "data", "target"):
        if not isinstance(out.get(key), str) or not out[key].strip():
            raise BadInput(f"[gate] needs {key}: {KEYS[key]}")
    parse_gate(out["rule"])
    if any(key in out for key in ("min_group", "resamples", "seed")):  # the evaluation's own bounds
        from ..evaluation.evaluate import MIN_GROUP, RESAMPLES, check_options

        try:
            check_options(None, out.get("min_group", MIN_GROUP), out.get("resamples", RESAMPLES), out.get("seed", 0),
                          None)
        except BadInput as e:
            raise BadInput(f"[gate] {e}") from None
    return out


@dataclass
class GateResult:
    rule: str
    holds: bool
    failed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    values: dict[str, float | None] = field(default_factory=dict)
    evaluation: str | None = None  # the stored evaluation's key
    data: str | None = None
    note: str | None = None

    @property
    def reason(self) -> str:
        if self.holds:
            return f"the gate holds on {self.data} ({self.rule})" + (f"; {self.note}" if self.note else "")
        parts = [f"fails: {c}" for c in self.failed] + [f"{u} is unknown on {self.data}" for u in self.unknown]
        return f"the gate ({self.rule}) refuses it on {self.data}: " + "; ".join(parts)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _term(ev, node: ast.expr) -> float | None:
    from ..evaluation.report import ALIASES

    if isinstance(node, ast.Name):
        return ev.figure(node.id)
    name = node.func.id
    args = [a.id if isinstance(a, ast.Name) else a.value for a in node.args]
    if name == "baseline":
        if not ev.baseline:
            return None
        return ev.baseline["figures"].get(ALIASES.get(args[0], args[0]))
    if name in ("demographic_parity_difference", "equalized_odds_difference"):
        return (ev.slice(args[0]).get("fairness") or {}).get(name)
    figure, column = args
    if name == "max_slice_gap":
        return ev.slice_gap(figure, column)
    if name == "slice_ratio":
        return ev.slice_ratio(figure, column)
    figure = ALIASES.get(figure, figure)
    values = [g.get(figure) for g in ev.slice(column)["groups"] if not g["small"] and g.get(figure) is not None]
    if not values:
        return None
    return min(values) if name == "min_slice" else max(values)


def evaluate_gate(gate: dict[str, Any], challenger, champion, progress: bool = False) -> GateResult:
    """Evaluate *challenger* (a ModelVersion) against *champion* (or None) on the gate's data, and the
    rule over its figures."""
    from ..evaluation.evaluate import MIN_GROUP, RESAMPLES, evaluate

    rule = parse_gate(gate["rule"])
    ev = evaluate(challenger, gate["data"], target=gate["target"], by=columns_of(rule), baseline=champion,
                  min_group=gate.get("min_group", MIN_GROUP), resamples=gate.get("resamples", RESAMPLES),
                  seed=gate.get("seed", 0), positive=gate.get("positive"), progress=progress)
    values = {term_key(n): _term(ev, n) for n in rule.terms}
    note = None
    baselines = [n for n in rule.terms if isinstance(n, ast.Call) and n.func.id == "baseline"]
    if champion is None and baselines:
        note = "no champion yet: the comparisons with the baseline hold"
        for n in baselines:  # the figure compared with itself, shifted by the tolerance: it holds
            values[term_key(n)] = ev.figure(n.args[0].id)
    result, failed, unknown = rule.check(values)
    return GateResult(rule=rule.text, holds=result is True, failed=failed, unknown=unknown, values=values,
                      evaluation=ev.key, data=ev.data, note=note)
