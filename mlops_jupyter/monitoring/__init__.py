"""Monitoring: data drift, live model performance from the prediction logs, and the rule that
decides when a job retrains.

    mj.drift("train@v2", "serving:churn@production", since="24h")
    mj.monitor("churn@production", since="7d")
    mj.log_labels(request_ids, y_true)
"""

from __future__ import annotations

from .check import CheckResult, check
from .drift import DriftReport, compute, drift
from .history import checks, load_report, reports
from .perf import MonitorReport, log_labels, monitor

__all__ = ["drift", "compute", "DriftReport", "monitor", "MonitorReport", "log_labels", "check", "CheckResult",
           "reports", "load_report", "checks"]
