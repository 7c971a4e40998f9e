"""A model card per version: what the model is, what it is for and not for, the data and code it came
from, how it was evaluated, what drives it, how it does in service, and where its aliases have been.

Everything is read from the store (nothing is computed again): the version's registry record, its
notes (``mlops model describe``), its run, its stored evaluations and explanations, the drift reports
and logged predictions of its serving, its alias moves, and its audit. The faces draw it
(``widgets/card_view.py``): HTML in the notebook, the panel and ``GET /card`` of the model server;
Markdown and a self-contained HTML page from ``mlops model card``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from .. import rendering
from ..exceptions import BadInput, MlopsError
from ..store import schema as S

EVALUATIONS = 3  # the newest evaluations shown, one per data version
MARKDOWN = "markdown"  # the rendering format of a card as Markdown
PAGE = "page"  # ... and as a self-contained HTML page
TOP_FEATURES = 10


@dataclass
class ModelCard:
    version: Any  # ModelVersion
    notes: dict | None
    run: dict | None
    evaluations: list = field(default_factory=list)  # Evaluation documents, newest first
    explanation: dict | None = None
    monitoring: dict | None = None
    history: list[dict] = field(default_factory=list)  # alias moves to or from this version
    audit: Any = None  # AuditReport
    seconds: float = 0.0
    pictures_dir: str | None = None  # Markdown: where its charts are written as SVG files (None: left out)

    @property
    def title(self) -> str:
        return f"Model card: {self.version.ref}"

    def markdown(self, pictures: str | None = None) -> str:
        """The card as Markdown; with *pictures* (a folder), its charts are written there as SVG files
        and linked (else they are left out)."""
        self.pictures_dir = pictures
        try:
            return rendering.render(self, MARKDOWN)
        finally:
            self.pictures_dir = None

    def html(self) -> str:
        return rendering.render(self, rendering.HTML)

    def save(self, path) -> str:
        """Write the card as a self-contained HTML page (``.html``) or as Markdown (``.md``, its
        pictures as SVG files in ``NAME_files/`` beside it), atomically; returns the path."""
        import os
        from pathlib import Path

        from ..store.blobs import save_file

        p = Path(os.fspath(path))
        low = p.name.lower()
        if low.endswith((".html", ".htm")):
            data = rendering.render(self, PAGE).encode()
        elif low.endswith(".md"):
            folder = p.with_name(p.stem + "_files")
            data = self.markdown(str(folder)).encode()
        else:
            raise BadInput(f"a card is written as .html or .md, not {p.name!r}")
        return save_file(p, data)

    def _repr_html_(self) -> str:
        return self.html()

    def __str__(self) -> str:
        return rendering.render(self, rendering.TEXT)


def build(ref: str, store=None) -> ModelCard:
    """The card of version *ref* (``churn@v3``, ``churn@production``)."""
    from ..models.registry import Registry
    from ..store import open_store

    started = time.perf_counter()
    store = store or open_store()
    reg = Registry(store)
    v = reg.get(ref)
    card = ModelCard(version=v, notes=reg.notes(v.name, v.version), run=_run(store, v.run_id))
    card.evaluations = _evaluations(store, v)
    card.explanation = _explanation(store, v)
    card.monitoring = _monitoring(store, v)
    card.history = _history(store, v)
    from .audit import audit

    card.audit = audit(v.ref, store=store, dependencies=False)
    card.seconds = time.perf_counter() - started
    return card


def _run(store, run_id: str | None) -> dict | None:
    """What the card says of the run that registered the version (its record, as ``mlops show`` reads it)."""
    if not run_id:
        return None
    from ..exceptions import NotFound
    from ..tracking.query import RunRecord

    try:
        rec = RunRecord(store, store.meta.run_row(run_id))
    except NotFound:
        return None
    row = rec.row
    return {"run_id": run_id, "name": rec.name, "status": rec.status, "started": row.get("start_time"),
            "params": rec.params, "metrics": rec.metrics, "source": row.get("notebook"), "kind": row.get("source"),
            "git": rec.env.get("git"), "python": rec.env.get("python"),
            "notebook": next((a["path"] for a in rec.artifacts if a["path"].endswith(".ipynb")), None),
            "cells": len(rec.cells())}


def _evaluations(store, v) -> list:
    """The newest evaluation on each data version (at most EVALUATIONS)."""
    from ..evaluation import store as evstore

    seen, out = set(), []
    for row in v.evaluations:
        if row["data"] in seen:
            continue
        seen.add(row["data"])
        ev = evstore.load(store, row["key"])
        if ev is not None:
            out.append(ev)
        if len(out) == EVALUATIONS:
            break
    return out


def _explanation(store, v) -> dict | None:
    """The newest stored SHAP explanation (else the newest of any kind): its method, the features by
    mean |value|, its global picture. LIME explains single rows, so SHAP's global view comes first."""
    import io

    ex, ef = S.explanations, S.explanation_files
    with store.meta.read() as conn:
        r = conn.execute(sa.select(ex).where(ex.c.model_version_id == v.id)
                         .order_by(sa.case((ex.c.method == "shap", 0), else_=1), ex.c.created.desc()).limit(1)).first()
        if r is None:
            return None
        files = {f.name: f.digest for f in conn.execute(sa.select(ef).where(ef.c.key == r.key))}
    meta = json.loads(r.meta or "{}")
    out: dict[str, Any] = {"method": r.method, "explainer": meta.get("explainer"), "output": meta.get("output"),
                           "created": r.created, "top": [], "svg": None, "rows": None}
    try:
        if "values.npy" in files:
            values = np.load(io.BytesIO(store.blobs.get_bytes(files["values.npy"])), allow_pickle=False)
            out["rows"] = int(values.shape[0])
            mean = np.abs(values).mean(axis=0)
            if mean.ndim == 2:  # features x classes: the classes together
                mean = mean.mean(axis=1)
            names = meta.get("features") or [f"x{i}" for i in range(len(mean))]
            order = np.argsort(-mean)[:TOP_FEATURES]
            out["top"] = [(str(names[i]), float(mean[i])) for i in order]
        if "global_importance.svg" in files:
            out["svg"] = store.blobs.get_bytes(files["global_importance.svg"]).decode()
    except (MlopsError, ValueError, OSError):
        pass
    return out


def _monitoring(store, v) -> dict | None:
    """Its serving: requests and live figures over the last 7 days, and the newest drift report."""
    dr, pr = S.drift_reports, S.predictions
    with store.meta.read() as conn:
        served = conn.execute(sa.select(sa.func.count(), sa.func.max(pr.c.at))
                              .where(pr.c.model == v.name, pr.c.version == v.version)).first()
        drift = conn.execute(sa.select(dr.c.id, dr.c.created, dr.c.drift_share, dr.c.dataset_drift, dr.c.n_compared,
                                       dr.c.n_drifted, dr.c.reference, dr.c.current)
                             .where(dr.c.model == v.name, dr.c.version == v.version)
                             .order_by(dr.c.created.desc()).limit(1)).first()
    requests = int(served[0] or 0)
    if not requests and drift is None:
        return None
    out: dict[str, Any] = {"requests": requests, "last_request": served[1], "figures": {}, "drift": None}
    if requests:
        from ..monitoring.perf import monitor

        try:
            rep = monitor(f"{v.name}@v{v.version}", since="7d")
            out["figures"] = {k: x for k, x in rep.figures(v.version).items() if x is not None}
            out["span"] = rep.describe_span()
        except MlopsError as e:
            out["note"] = str(e)
    if drift is not None:
        out["drift"] = dict(drift._mapping)
    return out


def _history(store, v) -> list[dict]:
    ev = S.alias_events
    with store.meta.read() as conn:
        rows = conn.execute(sa.select(ev).where(ev.c.name == v.name, sa.or_(ev.c.to_version == v.version,
                                                                              ev.c.from_version == v.version))
                            .order_by(ev.c.id)).all()
    return [{"at": r.at, "alias": r.alias, "from": r.from_version, "to": r.to_version, "user": r.username}
            for r in rows]
