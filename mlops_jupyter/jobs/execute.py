"""Execute a notebook with papermill so that the runs it tracks know where they came from."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute_notebook(
    notebook: str | os.PathLike,
    output: str | os.PathLike,
    parameters: dict[str, Any] | None = None,
    cwd: str | os.PathLike | None = None,
    progress: bool = True,
    kernel_name: str | None = None,
    timeout: float | None = None,
) -> Any:
    """Run *notebook* through papermill into *output*.

    The kernel is told the notebook's path (``MLOPS_NOTEBOOK_PATH``) so runs record
    the real notebook rather than ``ipykernel_launcher.py``; papermill's parameters
    are recorded from the cell it injects.
    """
    import papermill as pm

    from .kernels import kernel_manager_class

    nb = Path(notebook).resolve()
    with _env(MLOPS_NOTEBOOK_PATH=str(nb)):
        return pm.execute_notebook(
            str(nb), str(output), parameters=parameters or {}, cwd=str(cwd) if cwd else str(nb.parent),
            progress_bar=progress, kernel_name=kernel_name, execution_timeout=timeout,
            kernel_manager_class=kernel_manager_class(),
        )
