"""What may be logged: names, metric values, steps, params and tags, checked and encoded.

Everything a call logs is checked here before anything is written, and before a run is
started for it: bad input leaves no run behind and nothing half-written.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..exceptions import BadInput
from . import redact


def check_name(kind: str, key: Any) -> str:
    """*key* as the name of a metric, param or tag (*kind*), or BadInput."""
    if not isinstance(key, str) or not key or len(key) > 250:
        raise BadInput(f"{kind} name must be a non-empty string of at most 250 characters, got {key!r:.60}")
    return key


def metric_value(key: str, value: Any) -> float:
    """*value* as a float, or BadInput naming the metric (strings are refused, even "0.3")."""
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise BadInput(f"metric {key!r} must be a number, got {type(value).__name__} {value!r:.60}") from None


def checked_metrics(metrics: dict[str, Any], step: Any = None) -> tuple[dict[str, float], int | None]:
    """Every metric name and value, and the step, checked and converted before any is logged.

    Returns:
        ``(values, step)``: the metrics as floats, the step as an int (or None).

    Raises:
        BadInput: on the first bad name, value or step.
    """
    values = {}
    for key, value in metrics.items():
        check_name("metric", key)
        values[key] = value if type(value) is float else metric_value(key, value)
    return values, check_step(step)


def check_step(step: Any) -> int | None:
    """*step* as an int (None stays None: the next step), or BadInput."""
    if step is None or type(step) is int:
        return step
    try:
        return int(step)
    except (TypeError, ValueError):
        raise BadInput(f"step must be an integer, got {step!r:.40}") from None


def encode_params(params: dict) -> dict:
    """Redact secret-looking names; store non-JSON values as their repr with a warning."""
    from ..store.metadata import json_value

    out = {}
    for k, v in params.items():
        check_name("param", k)
        if redact.is_secret(k):
            v = redact.REDACTED
        elif isinstance(v, str):
            v = redact.redact_urls(v)
        encoded, text, num, was_repr = json_value(v)
        if was_repr:
            warnings.warn(f"param {k!r} is not JSON-serialisable; stored as its repr {text!r:.80}",
                          UserWarning, stacklevel=4)
        out[k] = (encoded, text, num)
    return out


def encode_tags(tags: dict) -> dict:
    """Tags as strings; secret-looking names redacted, as are passwords inside URLs."""
    out = {}
    for k, v in tags.items():
        check_name("tag", k)
        out[k] = redact.REDACTED if redact.is_secret(k) else redact.redact_urls(str(v))
    return out
