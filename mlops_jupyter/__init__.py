"""mlops-jupyter: the model lifecycle from notebook cells, with no server to stand up.

    import mlops_jupyter as mj
    with mj.start_run("baseline", params={"lr": 0.1}) as run:
        run.log_metrics({"loss": 0.3}, step=1)
    mj.runs(where="metrics.loss < 0.5")

In IPython or Jupyter: ``%load_ext mlops_jupyter`` then ``%mlops help``.

Names are loaded on first use so that ``import mlops_jupyter`` stays fast.
"""

from __future__ import annotations

from importlib import import_module

from ._version import __version__
from .exceptions import BadInput, MlopsError, NotFound, StoreError

_LAZY = {
    "start_run": "tracking.run",
    "active_run": "tracking.run",
    "end_run": "tracking.run",
    "attach_run": "tracking.run",
    "log": "tracking.run",
    "log_metric": "tracking.run",
    "log_metrics": "tracking.run",
    "log_param": "tracking.run",
    "log_params": "tracking.run",
    "set_tag": "tracking.run",
    "log_artifact": "tracking.run",
    "Run": "tracking.run",
    "runs": "tracking.query",
    "get_run": "tracking.query",
    "compare": "tracking.query",
    "init": "config:init_project",
    "data": "data:",
    "models": "models:",
    "jobs": "jobs:",
    "monitoring": "monitoring:",
    "explain": "models.explain:explain",
    "drift": "monitoring.drift:drift",
    "monitor": "monitoring.perf:monitor",
    "log_labels": "monitoring.perf:log_labels",
    "autolog": "autologging:autolog",
    "lightning_logger": "autologging.lightning:lightning_logger",
    "tune": "tuning:tune",
    "study": "tuning.report:study",
    "evaluate": "evaluation.evaluate:evaluate",
    "evaluation": "evaluation:",
    "model_card": "governance.card:build",
    "model_audit": "governance.audit:audit",
}

__all__ = ["__version__", "MlopsError", "BadInput", "NotFound", "StoreError", *_LAZY,
           "load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'mlops_jupyter' has no attribute {name!r}")
    module, colon, attr = target.partition(":")
    mod = import_module(f".{module}", __name__)
    value = mod if colon and not attr else getattr(mod, attr or name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def _jupyter_server_extension_points():
    """The Jupyter server extension (the panel's REST routes)."""
    return [{"module": "mlops_jupyter.lab"}]


def _jupyter_labextension_paths():
    """The prebuilt JupyterLab extension (the panel), for ``jupyter labextension develop``."""
    return [{"src": "labextension", "dest": "mlops-jupyter"}]


def load_ipython_extension(ipython) -> None:
    """``%load_ext mlops_jupyter``: registers ``%mlops`` / ``%%mlops`` and cell capture."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .magics import unload

    unload(ipython)


def _wire_faces() -> None:
    # The composition root: faces plug what only they know into the layers below (cheap imports).
    from .widgets import renderers

    renderers.register_all()  # how each result type displays; by name, nothing heavy is imported


_wire_faces()
