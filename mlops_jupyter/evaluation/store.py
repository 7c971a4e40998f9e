"""Evaluations in the store: the document as one JSON blob, one ``evaluations`` row keyed by the
model's content, the data's content and the options, so that the same evaluation is answered from
the store; the row keeps the headline figures for listings."""

from __future__ import annotations

import json
import time

import orjson
import sqlalchemy as sa

from ..exceptions import MlopsError
from ..store import schema as S
from .report import FORMAT, Evaluation


def save(store, ev: Evaluation, model_digest: str, baseline_version_id: int | None) -> None:
    """Store *ev* under ``ev.key`` (atomic: the blob first, then its row; a repeat keeps the first)."""
    from ..identity import current_user

    data = orjson.dumps(ev.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
    digest, size = store.blobs.put_bytes(data)
    row = dict(key=ev.key, model_version_id=ev.model_version_id, model_digest=model_digest,
               data_version_id=ev.data_version_id, data_digest=ev.data_digest, baseline_version_id=baseline_version_id,
               task=ev.task, target=ev.target, rows=ev.rows, run_id=ev.run_id, username=current_user(),
               created=ev.created or time.time(), figures=json.dumps(ev.headline), options=json.dumps(ev.options),
               digest=digest, size=size)

    def work(conn):
        conn.execute(S.evaluations.delete().where(S.evaluations.c.key == ev.key))
        conn.execute(S.evaluations.insert(), [row])

    store.meta.run_transaction(work)


def load(store, key: str) -> Evaluation | None:
    """The evaluation stored under *key*, or None (none, damaged, or of an older format: computed again)."""
    with store.meta.read() as conn:
        r = conn.execute(sa.select(S.evaluations.c.digest).where(S.evaluations.c.key == key)).first()
    if r is None:
        return None
    try:
        d = orjson.loads(store.blobs.get_bytes(r.digest))
    except (MlopsError, ValueError, OSError):
        return None
    if d.get("format") != FORMAT:
        return None
    return Evaluation.from_dict(d, cached=True)
