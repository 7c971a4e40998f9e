"""The audit log: who did what, when, from what to what, for every write that changes what others
see (alias moves, deletions, promotions, access grants). Append-only in the database itself."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import sqlalchemy as sa

from . import schema as S


def record(conn, action: str, target: str, from_value: Any = None, to_value: Any = None,
           detail: dict | None = None, username: str | None = None) -> None:
    """Append one entry inside the caller's transaction (it commits or rolls back with the change)."""
    if username is None:
        from ..identity import current_user

        username = current_user()
    conn.execute(S.audit.insert().values(
        at=time.time(), username=username, host=socket.gethostname(), action=action, target=str(target),
        from_value=None if from_value is None else str(from_value),
        to_value=None if to_value is None else str(to_value),
        detail=json.dumps(detail, default=str) if detail else None))


def entries(store, action: str | None = None, user: str | None = None, since: float | None = None,
            limit: int | None = None):
    """The log, oldest first, as a DataFrame: at, user, host, action, target, from, to, detail."""
    import pandas as pd

    a = S.audit
    q = sa.select(a).order_by(a.c.id)
    if action:
        q = q.where(a.c.action == action) if "." in action else q.where(a.c.action.like(f"{action}.%")
                                                                         | (a.c.action == action))
    if user:
        q = q.where(a.c.username == user)
    if since is not None:
        q = q.where(a.c.at >= since)
    with store.meta.read() as conn:
        rows = conn.execute(q).all()
    if limit:
        rows = rows[-limit:]
    out = [{"at": pd.Timestamp(r.at, unit="s", tz="UTC"), "user": r.username, "host": r.host, "action": r.action,
            "target": r.target, "from": r.from_value, "to": r.to_value,
            "detail": json.loads(r.detail) if r.detail else None} for r in rows]
    return pd.DataFrame(out, columns=["at", "user", "host", "action", "target", "from", "to", "detail"])
