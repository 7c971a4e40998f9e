"""Notebook cells as Python: magics turned into the calls IPython makes of them, then parsed with
``ast``. What promote learns about a notebook (its parameters, what it imports, which models it
registers) is read from these trees rather than from the raw text, so a magic, a comment or a
string that happens to look like code is never mistaken for it.
"""

from __future__ import annotations

import ast
import logging

log = logging.getLogger(__name__)

MAX_BROKEN_LINES = 20  # past this many unparseable lines a cell is not worth salvaging


def cell_python(source: str) -> str | None:
    """A cell's source as Python, with magics turned into ``get_ipython().run_*_magic(...)`` calls.

    Args:
        source: the cell's source.

    Returns:
        The transformed code, or None when it does not parse.
    """
    code = transform(source)
    if code is None:
        return None
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    return code


def transform(source: str) -> str | None:
    """IPython's transformation of a cell (magics, ``!shell``, ``?help``), unchecked; None when
    IPython cannot transform it."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(source)
    except Exception as e:  # a transformer that chokes on the cell: the cell is unreadable, not fatal
        log.debug("IPython could not transform a cell: %s", e)
        return None


def parse_salvaging(source: str) -> tuple[ast.Module, list[tuple[int, str]], str]:
    """Parse a cell, leaving out the lines that make it unparseable.

    papermill reads a parameters cell line by line, so a cell with one broken line still has
    parameters for it; this reads the rest of the cell the same way ``ast`` would.

    Args:
        source: the cell's source.

    Returns:
        The module parsed from the cell without its broken lines, those lines as ``(1-based line
        number, text)``, and the code the module was parsed from (for ``ast.get_source_segment``).
        A cell that cannot be salvaged gives an empty module.
    """
    code = transform(source)
    if code is None:
        return ast.Module(body=[], type_ignores=[]), [(1, source.strip().splitlines()[0] if source.strip() else "")], ""
    original = source.splitlines()
    lines = code.splitlines()
    broken: list[tuple[int, str]] = []
    while True:
        try:
            code = "\n".join(lines)
            return ast.parse(code), broken, code
        except (SyntaxError, ValueError) as e:
            n = getattr(e, "lineno", None) or 0
            broken.append((max(n, 1), original[n - 1] if 0 < n <= len(original) else ""))
            if not 0 < n <= len(lines) or not lines[n - 1].strip() or len(broken) > MAX_BROKEN_LINES:
                return ast.Module(body=[], type_ignores=[]), broken, ""
            # Blank rather than drop the line: the other statements keep their line numbers.
            lines[n - 1] = ""
