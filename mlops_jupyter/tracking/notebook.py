"""Where the code comes from: the notebook a kernel runs (papermill, Jupyter's sessions), its saved
text, the parameters papermill injected.

Nothing here imports IPython: the kernel-side facts (user namespace, cell sources) are handed in by
the magics.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Callable

from ..registry import Registry


#: How to find the notebook a kernel runs when nothing in its environment says, tried in order of
#: name: each returns a path or None. The faces that know the Jupyter server register theirs by
#: entry point (``mlops_jupyter.notebook_finders``: ``lab.kernel_context``).
kernel_notebook_finders: Registry[Callable[[], str | None]] = Registry(
    "notebook finder", entry_point_group="mlops_jupyter.notebook_finders")


def in_kernel_process() -> bool:
    """True inside a running Jupyter kernel (not merely a process that imported ipykernel)."""
    app = sys.modules.get("ipykernel.kernelapp")
    try:
        return app is not None and app.IPKernelApp.initialized()
    except Exception:
        return False


def notebook_path(user_ns: dict | None = None) -> str | None:
    """The notebook (or script) being run, without asking the user.

    Order: ``MLOPS_NOTEBOOK_PATH``; ``JPY_SESSION_NAME`` (set by Jupyter Server for
    each kernel); VS Code's ``__vsc_ipynb_file__``; papermill's input path when the
    job runner exported it; papermill's command line; the finders the faces registered in
    :data:`kernel_notebook_finders` (the Jupyter servers' sessions matched by kernel id); for
    plain Python, the script path (never ``ipykernel_launcher.py``).
    """
    env = os.environ
    for var in ("MLOPS_NOTEBOOK_PATH", "JPY_SESSION_NAME", "PAPERMILL_INPUT_PATH"):
        p = env.get(var)
        if p and p.endswith((".ipynb", ".py")):
            return _abspath(p)
    if user_ns and isinstance(user_ns.get("__vsc_ipynb_file__"), str):
        return user_ns["__vsc_ipynb_file__"]
    if in_kernel_process():
        found = _from_papermill_cli()
        for name in sorted(kernel_notebook_finders.names()):
            if found:
                break
            try:
                found = kernel_notebook_finders.get(name)()
            except Exception as e:  # a finder that fails is one source fewer, not an error
                import logging  # not at import: `import mlops_jupyter` stays light

                logging.getLogger(__name__).debug("notebook finder %s failed: %s", name, e)
        return found
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    if script and not script.endswith(("ipykernel_launcher.py", "ipython", "-c")) and os.path.exists(script):
        return os.path.abspath(script)
    return None


def _from_papermill_cli() -> str | None:
    """The kernel's parent is `papermill IN.ipynb OUT.ipynb ...`: IN is the notebook."""
    ppid = os.getppid()
    try:
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        cwd = os.readlink(f"/proc/{ppid}/cwd")
    except OSError:
        return None
    if not any(os.path.basename(a) == "papermill" or a.endswith("/papermill") for a in argv[:3]):
        return None
    for a in argv[1:]:
        if a.endswith(".ipynb") and not a.startswith("-"):
            return a if os.path.isabs(a) else os.path.normpath(os.path.join(cwd, a))
    return None


def _abspath(p: str) -> str:
    return p if os.path.isabs(p) else os.path.abspath(p)


def read_notebook(path: str | None) -> tuple[str | None, str | None]:
    """The notebook as saved on disk, code cells redacted, as JSON text.

    Args:
        path: the run's notebook (or script) path.

    Returns:
        ``(text, None)`` when there is a notebook worth keeping; ``(None, why)`` when the
        notebook was never saved; ``(None, None)`` when there is no notebook at all (a script)
        or it cannot be read (a warning says why).

    "Never saved" has two shapes in Jupyter. JupyterLab's launcher writes ``Untitled.ipynb``
    with ``"cells": []`` and keeps what is typed in the browser until a save: that file has
    no cell with any source. Or the file is not there: the path came from
    ``MLOPS_NOTEBOOK_PATH`` before the file was written, or the notebook was renamed after
    its kernel started (``JPY_SESSION_NAME`` keeps the old name).
    """
    import json

    from .redact import redact_source  # loaded with the notebook, not with the package

    if not path or not path.endswith(".ipynb"):
        return None, None
    if not os.path.isfile(path):
        return None, "is not on disk (not saved yet, or renamed since the kernel started)"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = data.get("cells", [])
        if not any("".join(c.get("source", "")).strip() for c in cells):
            return None, "was never saved (the file on disk has no cells)"
        for cell in cells:
            if cell.get("cell_type") == "code":
                cell["source"] = redact_source("".join(cell.get("source", "")))
        return json.dumps(data, indent=1, ensure_ascii=False), None
    except (OSError, ValueError, AttributeError, TypeError) as e:
        warnings.warn(f"mlops: could not snapshot {path} ({e})", RuntimeWarning)
        return None, None


def default_run_name(notebook: str | None) -> str:
    if notebook:
        p = Path(notebook)
        return p.parent.name if p.stem == "__main__" else p.stem  # python -m pkg: the package
    return "run"


PAPERMILL_HEADER = "# Parameters"


def papermill_parameters(source: str) -> dict | None:
    """Parameters from a cell papermill injected (it starts with ``# Parameters``)."""
    if source.lstrip().split("\n", 1)[0].rstrip() != PAPERMILL_HEADER:
        return None
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                out[node.targets[0].id] = ast.unparse(node.value)
    return out
