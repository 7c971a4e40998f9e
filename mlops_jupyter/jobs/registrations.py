"""Which models a notebook registers, read from its code without running it.

Seen: ``mj.models.register(model, name="iris")`` (and ``mlops_jupyter.models.register``, or
``register`` imported from ``mlops_jupyter.models``, under any alias), the magic
``%mlops model register VAR --name iris`` (also inside a ``%%mlops`` cell), and autologging that
registers every fitted model: ``%mlops autolog --register iris``,
``mj.autolog(registered_model_name="iris")``. Cells are read as IPython
runs them (magics become calls; see :mod:`.cells`), then with ``ast``. A name given as a variable
resolves when the notebook assigns that variable one literal text (a parameter, typically).
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass

from .cells import cell_python

REGISTER = "mlops_jupyter.models.register"
AUTOLOG = ("mlops_jupyter.autolog", "mlops_jupyter.autologging.autolog")
_EXPAND = re.compile(r"\{(\w+)\}|\$(\w+)")  # IPython expands {name} and $name in a magic's line


@dataclass
class Registration:
    """A model registration found in a notebook."""

    name: str | None  # None: computed (an f-string, a call...): only running the notebook tells
    cell: int  # 1-based, counting every cell
    how: str  # as written: "mj.models.register" or "%mlops model register"


def registrations(nb) -> list[Registration]:
    """The model registrations *nb* (an nbformat notebook) visibly makes, in cell order.

    Args:
        nb: the notebook.

    Returns:
        One :class:`Registration` per call or magic that registers a model.
    """
    trees = []
    for i, cell in enumerate(nb.cells, 1):
        code = cell_python(cell.source) if cell.cell_type == "code" else None
        if code is not None:
            trees.append((i, ast.parse(code)))
    names = _modules(tree for _, tree in trees)
    texts = _texts(tree for _, tree in trees)
    out: list[Registration] = []
    for i, tree in trees:
        out += _scan(tree, i, names, texts)
    return out


def _modules(trees) -> dict[str, str]:
    """Local name -> the dotted module or function it is bound to by the notebook's imports."""
    bound: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        bound[a.asname] = a.name
                    else:  # `import a.b` binds `a`
                        top = a.name.split(".")[0]
                        bound[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
    return bound


def _texts(trees) -> dict[str, str]:
    """Top-level names the notebook assigns exactly one literal text (``model_name = "iris"``)."""
    seen: dict[str, set] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = node.value
                for t in targets:
                    if isinstance(t, ast.Name):
                        text = value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) \
                            else None
                        seen.setdefault(t.id, set()).add(text)
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1 and None not in v}


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, names)
        return f"{base}.{node.attr}" if base else None
    return None


def _scan(tree: ast.AST, cell: int, names: dict[str, str], texts: dict[str, str]) -> list[Registration]:
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if _dotted(node.func, names) == REGISTER:
            arg = next((k.value for k in node.keywords if k.arg == "name"), node.args[1] if len(node.args) > 1
                       else None)
            out.append(Registration(_value(arg, texts), cell, ast.unparse(node.func)))
            continue
        if _dotted(node.func, names) in AUTOLOG:
            arg = next((k.value for k in node.keywords if k.arg == "registered_model_name"), None)
            if arg is not None and not (isinstance(arg, ast.Constant) and arg.value is None):
                out.append(Registration(_value(arg, texts), cell, f"{ast.unparse(node.func)}(registered_model_name=)"))
            continue
        magic = _magic(node)
        if magic is not None:
            line, body = magic
            name = _magic_registers(line, texts)
            if name is not False:
                how = "%mlops autolog --register" if line.split()[:1] == ["autolog"] else "%mlops model register"
                out.append(Registration(name, cell, how))
            code = cell_python(body) if body else None
            if code is not None:
                out += _scan(ast.parse(code), cell, names, texts)
    return out


def _value(node: ast.expr | None, texts: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return texts.get(node.id)
    return None


def _magic(node: ast.Call) -> tuple[str, str | None] | None:
    """(line, cell body or None) of a ``get_ipython().run_line_magic('mlops', ...)`` or
    ``run_cell_magic`` call, as IPython's transformer writes ``%mlops`` and ``%%mlops``."""
    f = node.func
    if not (isinstance(f, ast.Attribute) and f.attr in ("run_line_magic", "run_cell_magic")
            and isinstance(f.value, ast.Call) and isinstance(f.value.func, ast.Name)
            and f.value.func.id == "get_ipython"):
        return None
    args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args]
    if len(args) < 2 or args[0] != "mlops" or args[1] is None:
        return None
    return args[1], (args[2] if f.attr == "run_cell_magic" and len(args) > 2 else None)


def _magic_registers(line: str, texts: dict[str, str]) -> str | None | bool:
    """The model name ``model register VAR --name NAME`` (or ``autolog --register NAME``) registers;
    None when it is computed; False when the line is another command (or autologging that
    registers nothing)."""
    def expand(m: re.Match) -> str:
        var = m.group(1) or m.group(2)
        return texts.get(var, m.group(0))

    try:
        words = shlex.split(_EXPAND.sub(expand, line))
    except ValueError:
        return False
    if words[:1] == ["autolog"]:
        options, found = ("--register",), False
    elif words[:2] == ["model", "register"]:
        options, found = ("--name", "-n"), None
    else:
        return False
    for i, w in enumerate(words):
        if w in options and i + 1 < len(words):
            name = words[i + 1]
        elif w.startswith(f"{options[0]}="):
            name = w.split("=", 1)[1]
        else:
            continue
        return None if _EXPAND.search(name) else name
    return found
