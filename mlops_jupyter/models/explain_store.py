"""Explanations in the store: the values as .npy, the explained rows as Parquet, what each row is
(its index, label, predicted probabilities) and LIME's rows as JSON, the standard pictures as SVG;
one ``explanations`` row keyed by the model's content, the rows' content and the options, so the
same call is answered from the store."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import numpy as np

from ..exceptions import MlopsError


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _jsonable(xs):
    if xs is None:
        return None
    return [x.item() if hasattr(x, "item") else x for x in xs]


def save(store, ex, model_digest: str, data_digest: str, options: dict, model_version) -> None:
    """Store explanation *ex* under ``ex.key``, linked to the model and data versions and the
    active run (its files are also the run's artifacts)."""
    from ..data import frames
    from ..store import schema as S
    from ..tracking.run import active_run

    files: dict[str, bytes] = {"data.parquet": frames.to_parquet(frames.to_arrow(ex.data))}
    arrays = {"values.npy": ex.values, "base_values.npy": ex.base_values, "proba.npy": ex.proba,
              "prediction.npy": ex.prediction}
    for name, a in arrays.items():
        if a is not None:
            files[name] = _npy(np.asarray(a, dtype=np.float64))
    if ex.predicted is not None:
        files["predicted.npy"] = _npy(np.asarray(ex.predicted, dtype=np.int64))
    files["rows.json"] = json.dumps({"index": ex.index, "labels": _jsonable(ex.labels)}).encode()
    if ex.lime:
        files["lime.json"] = json.dumps({str(k): v for k, v in ex.lime.items()}).encode()
    pictures = ex.standard_pictures()  # file name -> (picture key, SVG)
    files.update({name: svg.encode() for name, (_key, svg) in pictures.items()})
    stored = {name: store.blobs.put_bytes(b) for name, b in files.items()}
    meta = {"explainer": ex.explainer, "features": ex.features, "classes": _jsonable(ex.classes),
            "output": ex.output, "notes": ex.notes, "row": ex.row, "seed": ex.seed,
            "pictures": {name: key for name, (key, _svg) in pictures.items()}}
    run = active_run()
    data_version_id = None
    if ex.data_version:
        from ..data.api import get as data_get

        try:
            data_version_id = data_get(ex.data_version).id
        except MlopsError:
            data_version_id = None
    row = dict(key=ex.key, method=ex.method, model_digest=model_digest, data_digest=data_digest,
               model_version_id=model_version.id if model_version else None, data_version_id=data_version_id,
               run_id=run.run_id if run else None, created=time.time(), options=json.dumps(options),
               meta=json.dumps(meta))

    def work(conn):
        ins = store.meta.insert_statement(S.explanations).on_conflict_do_nothing()
        conn.execute(ins, [row])
        conn.execute(S.explanation_files.delete().where(S.explanation_files.c.key == ex.key))
        conn.execute(S.explanation_files.insert(), [dict(key=ex.key, name=n, digest=d, size=s)
                                                    for n, (d, s) in stored.items()])

    store.meta.run_transaction(work)
    if run is not None:
        run.store.meta.add_artifacts([dict(run_id=run.run_id, path=f"explanations/{ex.key[:12]}/{n}", digest=d,
                                           size=s, kind="file") for n, (d, s) in stored.items()])


def load(store, key: str) -> dict[str, Any] | None:
    """The fields of the explanation stored under *key* (for ``Explanation(**fields)``), or None
    when there is none or it is damaged (then it is computed again)."""
    import sqlalchemy as sa

    from ..data import frames
    from ..store import schema as S

    with store.meta.read() as conn:
        r = conn.execute(sa.select(S.explanations).where(S.explanations.c.key == key)).first()
        if r is None:
            return None
        files = {f.name: f.digest for f in conn.execute(
            sa.select(S.explanation_files).where(S.explanation_files.c.key == key))}
    try:
        meta = json.loads(r.meta)

        def npy(name):
            return np.load(io.BytesIO(store.blobs.get_bytes(files[name])), allow_pickle=False) if name in files \
                else None

        rows = json.loads(store.blobs.get_bytes(files["rows.json"])) if "rows.json" in files else {}
        fields: dict[str, Any] = dict(
            method=r.method, explainer=meta["explainer"], features=meta["features"],
            data=frames.read_parquet(store.blobs.get_bytes(files["data.parquet"])), values=npy("values.npy"),
            base_values=npy("base_values.npy"), classes=meta["classes"], output=meta["output"], notes=meta["notes"],
            row=meta["row"], seed=meta.get("seed", 0), predicted=npy("predicted.npy"), proba=npy("proba.npy"),
            prediction=npy("prediction.npy"), index=rows.get("index"), labels=rows.get("labels"), key=key,
            cached=True)
        if "lime.json" in files:
            fields["lime"] = {int(k): {**v, "weights": [tuple(w) for w in v["weights"]]}
                              for k, v in json.loads(store.blobs.get_bytes(files["lime.json"])).items()}
        fields["images"] = {pkey: store.blobs.get_bytes(files[name]).decode()
                            for name, pkey in meta.get("pictures", {}).items() if name in files}
        return fields
    except (MlopsError, KeyError, ValueError):
        return None
