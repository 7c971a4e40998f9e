"""Experiment tracking: runs, params, metrics, artifacts and what actually ran.

The names below load on first use: importing one module of the package (``tracking.notebook``)
does not load the run machinery."""

_RUN_NAMES = (
    "Run", "active_run", "attach_run", "end_run", "log", "log_artifact", "log_metric",
    "log_metrics", "log_param", "log_params", "set_tag", "set_tags", "start_run",
)

__all__ = list(_RUN_NAMES)


def __getattr__(name: str):
    if name in _RUN_NAMES:
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
