"""A notebook's parameters as papermill sees them.

A cell tagged ``parameters`` is read with papermill's own inspection (``papermill.inspect_notebook``:
its Python translator knows annotations, ``# type:`` comments, lists spread over lines, and the
comment that is a parameter's help), then checked here where papermill does not check: names must
be identifiers, a default must be a literal ``ast.literal_eval`` reads, and what papermill skips
(``d = a == 3``: two '=' on a line) is read from the cell's syntax tree. An assignment whose value
is an expression stays a parameter (papermill overrides it all the same) with the expression's
text as its default.

Without a tagged cell, the literal assignments of the first code cell become the parameters
(:func:`first_cell_parameters`).
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from typing import Any

from ..exceptions import BadInput
from .cells import cell_python, parse_salvaging
from .params import Parameter, check_identifier, is_literal, type_of_annotation

PYTHON_KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


@dataclass
class Assignment:
    """A top-level ``name = value`` (or ``name: annotation = value``) of a cell."""

    name: str
    value: ast.expr
    annotation: str | None  # as written, quotes kept: the cell evaluates it
    source: str  # the value as written
    lines: range  # 1-based

    def literal(self) -> tuple[bool, Any]:
        """(True, value) when the value is a literal papermill can pass, else (False, None)."""
        return _literal(self.value)


def _literal(node: ast.expr | str) -> tuple[bool, Any]:
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None
    return (True, value) if is_literal(value) else (False, None)  # a tuple, set, bytes...: not for papermill


def assignments(tree: ast.Module, code: str) -> list[Assignment]:
    """The top-level assignments to plain names in *tree* (parsed from *code*), in order."""
    out = []
    for node in tree.body:
        annotation = None
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            names = [t.id for t in node.targets]  # type: ignore[attr-defined]
        elif isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
            names = [node.target.id]
            annotation = ast.get_source_segment(code, node.annotation)
        else:
            continue
        source = ast.get_source_segment(code, node.value) or ast.unparse(node.value)
        lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
        out += [Assignment(n, node.value, annotation, source, lines) for n in names]
    return out


def papermill_parameters(source: str) -> dict[str, dict]:
    """papermill's inspection of *source* as a Python parameters cell: by name, ``name``,
    ``inferred_type_name`` ("None" when unknown), ``default`` (text) and ``help``."""
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": PYTHON_KERNEL})
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})]
    logger = logging.getLogger("papermill")
    level = logger.level
    # papermill warns of each line it cannot read; the caller reads those lines itself and says
    # what became of them in promote's notes.
    logger.setLevel(logging.ERROR)
    try:
        return papermill.inspect_notebook(nb)
    finally:
        logger.setLevel(level)


def infer_parameters(source: str) -> tuple[dict[str, Parameter], list[str]]:
    """The parameters of a cell tagged ``parameters``, and notes for the user.

    Args:
        source: the cell's source.

    Returns:
        Parameters by name in the cell's order; notes on what was read how (None defaults,
        expressions, lines that are not Python, names left out).

    Raises:
        BadInput: a default that contradicts the annotation on its line.
    """
    inferred = papermill_parameters(source)
    tree, broken, code = parse_salvaging(source)
    found = {a.name: a for a in assignments(tree, code)}
    order: dict[str, float] = {}
    params: dict[str, Parameter] = {}
    skipped: list[str] = []
    for i, (name, ip) in enumerate(inferred.items()):
        try:
            check_identifier(name)
        except BadInput:
            skipped.append(name)
            continue
        a = found.get(name)
        declared = ip["inferred_type_name"] if ip["inferred_type_name"] != "None" else None
        params[name] = _parameter(name, ip["default"], a, ip["help"], declared)
        order[name] = a.lines.start if a else 1e9 + i
    for a in found.values():  # what papermill's line-by-line reading skipped
        if a.name not in params:
            params[a.name] = _parameter(a.name, None, a, "", a.annotation)
            order[a.name] = a.lines.start
    params = dict(sorted(params.items(), key=lambda kv: order[kv[0]]))
    return params, _notes(params, broken, skipped)


def _parameter(name: str, default_text: str | None, a: Assignment | None, help_: str,
               declared: str | None) -> Parameter:
    ok, value = _literal(default_text) if default_text is not None else (False, None)
    if not ok and a is not None:  # papermill's text for a default can be cut short; the tree's is whole
        ok, value = a.literal()
    annotation = a.annotation if a is not None else None
    declared = declared or annotation
    if ok:
        where = f"the parameters cell annotates {name} as {declared}: " if declared else ""
        try:
            return Parameter.from_default(name, value, help_, annotation=annotation, declared=declared,
                                          source=a.source if a else None)
        except BadInput as e:
            raise BadInput(f"{where}{e}") from None
    expression = a.source if a is not None else (default_text or "None")
    return Parameter(name, type_of_annotation(declared) or "any", None, help_, expression, annotation)


def _notes(params: dict[str, Parameter], broken: list[tuple[int, str]], skipped: list[str]) -> list[str]:
    notes = []
    nones = [p.name for p in params.values() if p.expression is None and p.default is None]
    if nones:
        notes.append(f"{', '.join(nones)} default{'s' if len(nones) == 1 else ''} to None: "
                     f"{'it takes' if len(nones) == 1 else 'they take'} any value papermill passes "
                     "(a number, text, true/false, None, a list or a mapping)"
                     if all(params[n].type == "any" for n in nones) else
                     f"{', '.join(nones)} default to None (None passes too)")
    for p in params.values():
        if p.expression is not None:
            checked = "any value" if p.type == "any" else f"{p.type} values (its annotation)"
            notes.append(f"{p.name}'s default is an expression the notebook evaluates ({p.expression}): job.toml "
                         f"keeps its text; -p {p.name} VALUE overrides it with {checked}")
    for n, text in broken:
        notes.append(f"line {n} of the parameters cell is not Python ({text.strip() or 'unreadable'}): papermill "
                     "reads the parameters around it, but executions fail at that cell until it is fixed")
    if skipped:
        notes.append(f"papermill reads {', '.join(skipped)} as parameters, but they are not Python names: left out")
    return notes


def first_cell_parameters(source: str) -> tuple[dict[str, Parameter], set[int]]:
    """The literal assignments of a cell (no parameters cell: the first code cell's), as
    parameters, and the lines they span; help from papermill's reading of their comments."""
    code = cell_python(source)
    if code is None:
        return {}, set()
    helps = {name: ip["help"] for name, ip in papermill_parameters(source).items()}
    params: dict[str, Parameter] = {}
    lines: set[int] = set()
    for a in assignments(ast.parse(code), code):
        ok, value = a.literal()
        if not ok:
            continue
        try:
            params[a.name] = Parameter.from_default(a.name, value, helps.get(a.name, ""), annotation=a.annotation,
                                                    source=a.source)
        except BadInput:  # a default its annotation refuses: left where it is, not a parameter
            continue
        lines.update(a.lines)
    return params, lines


def parameters_source(parameters: dict[str, Parameter]) -> str:
    """A parameters cell assigning each parameter its default."""
    lines = ["# Parameters (papermill and `mlops job run -p NAME VALUE` override these)"]
    return "\n".join(lines + [p.source_line() for p in parameters.values()])
