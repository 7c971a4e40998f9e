"""Notebooks as jobs: execute with papermill (tracked), promote into a job folder, run,
retrain in parallel with a champion/challenger step, build the container image."""

from .execute import execute_notebook

__all__ = ["execute_notebook", "promote_notebook", "run_job", "retrain", "build_image"]


def __getattr__(name: str):
    if name == "promote_notebook":
        from .promote import promote_notebook

        return promote_notebook
    if name in ("run_job", "retrain"):
        from . import runner

        return getattr(runner, name)
    if name == "build_image":
        from .build import build_image

        return build_image
    raise AttributeError(name)
