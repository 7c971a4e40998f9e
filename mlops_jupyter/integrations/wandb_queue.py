"""The W&B mirror's items: which project they go to, and their queue in the store's ``mirrors`` table.

An item is a run, a data version, a model version or an alias move waiting to be mirrored
(``pending``), taken by a mirror process (``active``, kept alive by its heartbeat), ``done``, or
``failed`` with the reason (retried a few times, then left to ``mlops wandb sync``). Items are
added in the caller's transaction, so what the store commits is what gets mirrored.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

import sqlalchemy as sa

from ..exceptions import MlopsError
from ..store import schema as S

TARGET = "wandb"
STALE = 60.0  # an active item whose owner has been silent this long can be taken over
RETRIES = int(os.environ.get("MLOPS_WANDB_RETRIES", "2"))  # automatic retries of a failed item
BACKOFF = float(os.environ.get("MLOPS_WANDB_BACKOFF", "60"))


# -- configuration --------------------------------------------------------------------------------------------
def target(cfg) -> str | None:
    """The W&B project runs are mirrored to (``ENTITY/PROJECT`` or ``PROJECT``), or None."""
    value = os.environ.get("MLOPS_WANDB_PROJECT")
    if value is None:
        section = (cfg.extra or {}).get("wandb") if cfg is not None else None
        value = section.get("project") if isinstance(section, dict) else None
    return value or None


def enabled(cfg) -> bool:
    """Whether the project mirrors to W&B (a project is named and ``WANDB_MODE`` is not ``disabled``)."""
    return target(cfg) is not None and os.environ.get("WANDB_MODE", "").lower() != "disabled"


def say(text: str) -> None:
    """Tell the user (the notebook shows a kernel's stderr under the cell)."""
    print(text, file=sys.stderr, flush=True)


# -- adding items ---------------------------------------------------------------------------------------------
def enqueue(conn, kind: str, key: Any) -> None:
    """Add an item inside the caller's transaction (a no-op when it is already queued)."""
    m = S.mirrors
    key = str(key)
    if conn.execute(sa.select(m.c.id).where(m.c.target == TARGET, m.c.kind == kind, m.c.key == key)).first():
        return
    now = time.time()
    conn.execute(m.insert().values(target=TARGET, kind=kind, key=key, status="pending", cursor=0, attempts=0,
                                   reported=False, created=now, updated=now))


# -- taking and updating items --------------------------------------------------------------------------------
def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claimable(store, kinds: tuple[str, ...] | None = None, keys: list[str] | None = None,
              manual: bool = False) -> list:
    """Items this process may take now: pending ones, orphaned active ones (their owner went
    silent), and failed ones due for a retry (all failed ones when *manual*: ``mlops wandb sync``)."""
    m = S.mirrors
    now = time.time()
    q = sa.select(m).where(m.c.target == TARGET, m.c.status != "done")
    if kinds:
        q = q.where(m.c.kind.in_(kinds))
    if keys is not None:
        q = q.where(m.c.key.in_(keys))
    with store.meta.read() as conn:
        rows = conn.execute(q.order_by(m.c.id)).all()
    out = []
    for r in rows:
        if r.status == "active":
            if (r.heartbeat or 0) < now - STALE:
                out.append(r)
        elif r.status == "pending" or manual:
            out.append(r)
        elif r.status == "failed" and r.attempts <= RETRIES and now - r.updated >= BACKOFF * r.attempts:
            out.append(r)
    return out


def claim(store, row) -> bool:
    """Take item *row* for this process; False when another process took it first."""
    m = S.mirrors
    now = time.time()

    def work(conn):
        res = conn.execute(m.update().where(m.c.id == row.id, m.c.status == row.status, m.c.updated == row.updated)
                           .values(status="active", owner=_owner(), heartbeat=now, updated=now,
                                   attempts=m.c.attempts + 1, error=None, reported=False))
        return res.rowcount == 1

    return bool(store.meta.run_transaction(work))


def update_item(store, item_id: int, **values) -> None:
    """Set columns of an item (its ``updated`` and ``heartbeat`` to now unless given)."""
    m = S.mirrors
    now = time.time()
    values.setdefault("updated", now)
    values.setdefault("heartbeat", now)
    store.meta.run_transaction(lambda c: c.execute(m.update().where(m.c.id == item_id).values(**values)))


def mark_done(store, kind: str, key: Any) -> None:
    """An item mirrored as part of another (a run's data and models): done, unless a process has it."""
    m = S.mirrors
    now = time.time()
    store.meta.run_transaction(lambda c: c.execute(
        m.update().where(m.c.target == TARGET, m.c.kind == kind, m.c.key == str(key), m.c.status != "active")
        .values(status="done", updated=now, error=None)))


def beat(store, item_id: int) -> None:
    """The owner of active item *item_id* is alive (best effort: a missed beat is the next one's)."""
    m = S.mirrors
    now = time.time()
    try:
        store.meta.run_transaction(lambda c: c.execute(m.update().where(m.c.id == item_id, m.c.status == "active")
                                                 .values(heartbeat=now)))
    except MlopsError:
        pass


def covered_by_run(store, row) -> bool:
    """A model or data version made inside a run that is still being mirrored."""
    table = S.model_versions if row.kind == "model" else S.dataset_versions
    m = S.mirrors
    with store.meta.read() as conn:
        run_id = conn.execute(sa.select(table.c.run_id).where(table.c.id == int(row.key))).scalar()
        if not run_id:
            return False
        st = conn.execute(sa.select(m.c.status).where(m.c.target == TARGET, m.c.kind == "run",
                                                      m.c.key == run_id)).scalar()
    return st in ("pending", "active")


def item(store, item_id: int):
    """Item *item_id* as it is in the store now."""
    m = S.mirrors
    with store.meta.read() as conn:
        return conn.execute(sa.select(m).where(m.c.id == item_id)).first()


# -- what the user sees ---------------------------------------------------------------------------------------
def report_failures(store) -> None:
    """Print, once each, the items W&B refused since the last time (the store keeps everything)."""
    m = S.mirrors
    try:
        with store.meta.read() as conn:
            rows = conn.execute(sa.select(m.c.id, m.c.kind, m.c.key, m.c.error).where(
                m.c.target == TARGET, m.c.status == "failed", m.c.reported.is_(False))).all()
        if not rows:
            return
        ids = [r.id for r in rows]
        store.meta.run_transaction(lambda c: c.execute(m.update().where(m.c.id.in_(ids)).values(reported=True)))
    except MlopsError:
        return
    for r in rows[:5]:
        what = f"run {r.key[:8]}" if r.kind == "run" else f"{r.kind} {r.key}"
        say(f"mlops: W&B mirror of {what} failed: {r.error}; the local store has everything "
            f"(`mlops wandb sync` pushes it again)")
    if len(rows) > 5:
        say(f"mlops: ... and {len(rows) - 5} more W&B mirror failures (`mlops wandb status`)")


def status(store):
    """The mirror's items as a DataFrame: kind, what, status, attempts, W&B path, error."""
    import pandas as pd

    m = S.mirrors
    with store.meta.read() as conn:
        rows = conn.execute(sa.select(m).where(m.c.target == TARGET).order_by(m.c.id)).all()
        names = dict(conn.execute(sa.select(S.runs.c.run_id, S.runs.c.name).where(
            S.runs.c.run_id.in_([r.key for r in rows if r.kind == "run"]))).all())
    out = [{"kind": r.kind, "item": f"{names.get(r.key, '?')} ({r.key[:8]})" if r.kind == "run" else r.key,
            "status": r.status, "attempts": r.attempts, "remote": r.remote or "", "error": r.error or "",
            "updated": pd.Timestamp(r.updated, unit="s", tz="UTC")} for r in rows]
    return pd.DataFrame(out, columns=["kind", "item", "status", "attempts", "remote", "error", "updated"])
