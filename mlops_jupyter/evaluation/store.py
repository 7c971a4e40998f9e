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


def of_version(store, version_id: int) -> list[dict]:
    """The evaluations of a model version, newest first: key, data, rows, figures, options, when."""
    e, dv = S.evaluations, S.dataset_versions
    with store.meta.read() as conn:
        rows = conn.execute(
            sa.select(e.c.key, e.c.task, e.c.target, e.c.rows, e.c.created, e.c.figures, e.c.options,
                      e.c.data_digest, e.c.baseline_version_id, dv.c.name, dv.c.version)
            .select_from(e.outerjoin(dv, dv.c.id == e.c.data_version_id))
            .where(e.c.model_version_id == version_id).order_by(e.c.created.desc())).all()
    return [{"key": r.key, "task": r.task, "target": r.target, "rows": r.rows, "created": r.created,
             "data": f"{r.name}@v{r.version}" if r.name else f"a DataFrame (digest {r.data_digest[:12]})",
             "figures": json.loads(r.figures or "{}"), "options": json.loads(r.options or "{}"),
             "baseline_version_id": r.baseline_version_id} for r in rows]


def latest(store, version_id: int, data_version_id: int | None = None) -> Evaluation | None:
    """The newest evaluation of a version (on one data version when given)."""
    e = S.evaluations
    q = sa.select(e.c.key).where(e.c.model_version_id == version_id)
    if data_version_id is not None:
        q = q.where(e.c.data_version_id == data_version_id)
    with store.meta.read() as conn:
        key = conn.execute(q.order_by(e.c.created.desc()).limit(1)).scalar()
    return load(store, key) if key else None
