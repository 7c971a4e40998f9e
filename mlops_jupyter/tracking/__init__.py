"""Experiment tracking: runs, params, metrics, artifacts and what actually ran."""

from .run import (
    Run,
    active_run,
    attach_run,
    end_run,
    log,
    log_artifact,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_tag,
    set_tags,
    start_run,
)

__all__ = [
    "Run", "active_run", "attach_run", "end_run", "log", "log_artifact", "log_metric",
    "log_metrics", "log_param", "log_params", "set_tag", "set_tags", "start_run",
]
