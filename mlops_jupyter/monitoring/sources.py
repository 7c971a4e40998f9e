"""What drift compares: a DataFrame, a data version (``train@v2``), or the logged traffic of a
served model version over a time window (``serving:churn@production`` with ``since``)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..config import parse_duration
from ..exceptions import BadInput

SERVING = "serving:"
META_COLUMNS = ("prediction", "probabilities", "request_id", "row", "version", "at", "label")


def parse_time(value: str | float | int | datetime | None, what: str = "--since", now: float | None = None) -> float | None:
    """A point in time: a duration ago (``24h``), an ISO date/time, a datetime or a Unix timestamp."""
    if value is None:
        return None
    now = time.time() if now is None else now
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?[smhdw]", text):
        return now - parse_duration(text, what)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{what} {value!r} is neither a duration ago (24h, 7d) nor an ISO date (2026-11-20 or "
                       "2026-11-20T08:00)") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


@dataclass
class Side:
    frame: Any  # pandas DataFrame
    label: str  # how the report names it
    dataset: str | None = None  # a data version's ref
    model: str | None = None
    version: int | None = None
    window: tuple[float | None, float | None] | None = None
    notes: list[str] = field(default_factory=list)


def resolve(obj: Any, since: float | None = None, until: float | None = None, what: str = "current") -> Side:
    import pandas as pd

    if isinstance(obj, Side):
        return obj
    if isinstance(obj, pd.DataFrame):
        from ..data.api import version_of

        ref = version_of(obj)
        return Side(obj, f"DataFrame ({len(obj):,} rows{', ' + ref if ref else ''})", dataset=ref)
    if isinstance(obj, pd.Series):
        return resolve(obj.to_frame(), since, until, what)
    if hasattr(obj, "__array__") and not isinstance(obj, str):
        import numpy as np

        arr = np.asarray(obj)
        if arr.ndim != 2:
            raise BadInput(f"{what}: an array needs two dimensions (rows x features), got shape {arr.shape}")
        return Side(pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])]), f"array {arr.shape}")
    if not isinstance(obj, str):
        raise BadInput(f"{what} should be a DataFrame, a data version (train@v2) or serving:MODEL@ALIAS, "
                       f"not {type(obj).__name__}")
    if obj.startswith(SERVING):
        return serving(obj[len(SERVING):], since, until, what)
    if obj.lower().endswith((".csv", ".tsv", ".parquet", ".pq")) and "@" not in obj:
        import os

        if not os.path.isfile(obj):
            raise BadInput(f"{what}: no file {obj}")
        from ..data.frames import read_table_file

        frame = read_table_file(obj, obj)
        return Side(frame, f"{obj} ({len(frame):,} rows)")
    from .. import data

    return Side(data.load(obj), f"{data.get(obj).ref}", dataset=data.get(obj).ref)


def serving(ref: str, since: float | None, until: float | None, what: str) -> Side:
    from ..models.registry import Registry
    from ..serving import predlog
    from ..store import open_store

    store = open_store()
    v = Registry(store).get(ref)
    frame = predlog.read(store.meta, v.name, version=v.version, since=since, until=until, with_labels=False)
    frame = frame.drop(columns=[c for c in META_COLUMNS if c in frame.columns])
    span = _span(since, until)
    shown = v.ref if ref.strip() == v.ref else f"{ref.strip()} (v{v.version})"
    side = Side(frame, f"traffic of {shown} {span} ({len(frame):,} rows)", model=v.name, version=v.version,
                window=(since, until))
    if not len(frame):
        side.notes.append(f"{what}: no logged requests of {v.ref} {span}")
    return side


def _span(since: float | None, until: float | None) -> str:
    def fmt(t):
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")

    if since is None and until is None:
        return "(all time)"
    if until is None:
        return f"since {fmt(since)}"
    if since is None:
        return f"until {fmt(until)}"
    return f"{fmt(since)} – {fmt(until)}"
