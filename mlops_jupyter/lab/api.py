"""What the JupyterLab panel shows, as JSON-ready dicts, from the same core API the magics and
the CLI use. The tornado handlers in ``handlers.py`` are a thin layer over these functions."""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import rendering
from ..exceptions import BadInput
from ..store.metadata import json_safe as clean

PAGE = 50
MAX_PAGE = 500
SPARK_POINTS = 60


def _store():
    from ..store import open_store

    return open_store()


# -- runs -------------------------------------------------------------------------------------------
def runs(offset: int = 0, limit: int = PAGE, where: str | None = None, sort: str | None = None) -> dict:
    """A page of runs (newest first unless *sort*), each with params, last metrics and tags; running
    runs carry a sparkline of their main metric (the first metric key)."""
    from ..tracking.query import compile_where, search_runs

    if not 0 < limit <= MAX_PAGE:
        raise BadInput(f"limit is 1 to {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise BadInput(f"offset must be 0 or more, got {offset}")
    store = _store()
    rows = search_runs(store, where=where, order_by=sort, limit=limit, offset=offset)
    total = store.meta.count_runs(compile_where(where))
    out = []
    for r in rows:
        item = {k: r.get(k) for k in ("run_id", "name", "status", "start_time", "end_time", "parent_id",
                                      "notebook", "username")}
        item.update(params=r["params"], metrics=r["metrics"], tags=r["tags"])
        if r["status"] == "running" and r["metrics"]:
            key = sorted(r["metrics"])[0]
            hist = store.meta.metric_history(r["run_id"], key)
            item["spark"] = {"key": key, "values": [v for _, _, v, _ in hist[-SPARK_POINTS:]]}
        out.append(item)
    return clean({"total": total, "offset": offset, "limit": limit, "runs": out})


def run(ref: str) -> dict:
    """One run: attributes, params, metrics with their series, tags, artifacts, captured cells, and
    the same HTML view a notebook shows."""
    from ..tracking.query import get_run

    rec = get_run(ref)
    d = rec.to_dict()
    d["history"] = {k: [[s, v] for s, v in pts] for k, pts in rec.history().items()}
    d["cells"] = rec.cells()
    d["html"] = rendering.render(rec, rendering.HTML)
    return clean(d)


def compare(refs: list[str]) -> dict:
    from ..tracking.query import compare as core_compare

    if len(refs) < 2:
        raise BadInput("compare needs two runs or more")
    comp = core_compare(refs)
    return clean({"runs": [{"run_id": r.run_id, "name": r.name, "status": r.status} for r in comp.runs],
                  "params": [{"key": k, "values": vals, "differs": differs} for k, vals, differs in comp.param_rows],
                  "metrics": {r.run_id: {k: [[s, v] for s, v in pts] for k, pts in r.history().items()}
                              for r in comp.runs},
                  "html": rendering.render(comp, rendering.HTML)})


# -- data ----------------------------------------------------------------------------------------------
def datasets() -> dict:
    from ..data.catalog import Catalog

    cat = Catalog(_store().meta)
    return clean({"datasets": [{"name": d["name"], "latest": d["version"], "kind": d["kind"], "size": d["size"],
                                "rows": d["rows"], "created": d["created"]} for d in cat.datasets()]})


def dataset(name: str) -> dict:
    from ..data.catalog import Catalog

    cat = Catalog(_store().meta)
    versions = []
    for v in cat.versions(name):
        versions.append({"ref": v.ref, "version": v.version, "kind": v.kind, "size": v.size, "rows": v.rows,
                         "files": v.n_files, "created": v.created, "message": v.message, "digest": v.digest,
                         "runs": cat.runs_of(v.id)})
    return clean({"name": name, "versions": versions})


# -- models --------------------------------------------------------------------------------------------
def models() -> dict:
    from ..models.registry import Registry

    reg = Registry(_store())
    out = []
    for name in [r["name"] for r in reg.models().to_dict("records")]:
        out.append(model(name, reg=reg))
    return clean({"models": out})


def model(name: str, reg=None) -> dict:
    import sqlalchemy as sa

    from ..models.registry import Registry, version_from_row
    from ..store import schema as S

    reg = reg or Registry(_store())
    from ..data.catalog import check_name

    check_name(name, "model")
    mv, ma = S.model_versions, S.model_aliases
    with reg.meta.read() as conn:
        rows = conn.execute(sa.select(mv).where(mv.c.name == name).order_by(mv.c.version.desc())).all()
        aliases = {r.alias: r.version for r in conn.execute(sa.select(ma).where(ma.c.name == name))}
    if not rows:
        from ..exceptions import NotFound

        raise NotFound(f"no model {name!r} (see `mlops model ls`)")
    versions = []
    for r in rows:
        v = version_from_row(r)
        versions.append({"version": v.version, "ref": v.ref, "aliases": sorted(a for a, n in aliases.items()
                                                                               if n == v.version),
                         "metrics": v.metrics, "run_id": v.run_id, "created": v.created, "flavor": v.flavor,
                         "class": (v.model_class or "").rsplit(".", 1)[-1],
                         "datasets": [d["ref"] for d in v.datasets]})
    return clean({"name": name, "aliases": aliases, "versions": versions})


def set_alias(name: str, alias: str, version: Any) -> dict:
    from ..models.registry import Registry

    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadInput("version should be a whole number from 1")
    v, prev = Registry(_store()).set_alias(f"{name}@v{version}", alias)
    return {"name": v.name, "alias": alias, "version": v.version, "previous": prev}


# -- jobs ----------------------------------------------------------------------------------------------
_RUNNING: dict[str, dict] = {}
_RUNNING_LOCK = threading.Lock()


def jobs() -> dict:
    from ..jobs.spec import iter_jobs
    from ..tracking.query import search_runs

    store = _store()
    out = []
    for folder, spec, problem in iter_jobs():
        if spec is None:
            out.append({"name": folder, "problem": problem})
            continue
        last = search_runs(store, where=f"tags.`mlops.job` = '{spec.name}' and parent_id is null",
                           order_by="-start_time", limit=1)
        out.append({"name": spec.name, "model": f"{spec.model}@{spec.alias}" if spec.model else None,
                    "metric": spec.metric, "parameters": {p.name: {"type": p.type, "default": p.default}
                                                          for p in spec.parameters.values()},
                    "rule": spec.retrain.get("retrain_when"),
                    "last": ({k: last[0].get(k) for k in ("run_id", "name", "status", "start_time", "end_time")}
                             if last else None),
                    "running": _RUNNING.get(spec.name)})
    return clean({"jobs": out})


def run_job_now(name: str) -> dict:
    """Start one execution of the job on a background thread; the panel follows it as a run."""
    from ..jobs.runner import run_job
    from ..jobs.spec import find_job

    spec = find_job(name)
    with _RUNNING_LOCK:
        if name in _RUNNING and _RUNNING[name]["status"] == "running":
            raise BadInput(f"job {name} is already running (started {time.ctime(_RUNNING[name]['started'])})")
        state = _RUNNING[name] = {"status": "running", "started": time.time(), "error": None}

    def work():
        try:
            run_job(spec, progress=False, out=lambda _line: None)
            state["status"] = "finished"
        except Exception as e:  # the run records the failure; the panel shows the message
            state.update(status="failed", error=str(e).splitlines()[0][:300] if str(e) else type(e).__name__)

    threading.Thread(target=work, name=f"mlops-job-{name}", daemon=True).start()
    return {"job": name, "status": "started"}


# -- promote -------------------------------------------------------------------------------------------
def promote_preview(path: str) -> dict:
    """What the Promote dialog proposes for a notebook: detected parameters, a job name, the
    registered models (to pick the job's model) and their metrics."""
    import re

    import nbformat

    from ..jobs.promote import prepare_notebook
    from ..models.registry import Registry

    nb_path = _notebook(path)
    nb = nbformat.read(str(nb_path), as_version=4)
    _, params, notes = prepare_notebook(nb, {})
    reg = Registry(_store())
    ms = reg.models().to_dict("records")
    name = re.sub(r"[^a-z0-9-]+", "-", nb_path.stem.lower()).strip("-")[:40] or "job"
    return clean({"path": path, "name": name, "parameters": {p.name: {"type": p.type, "default": p.default}
                                                              for p in params.values()},
                  "notes": notes, "models": [{"name": m["name"], "metrics": m["metrics"]} for m in ms]})


def promote(path: str, name: str, model: str | None = None, metric: str | None = None,
            params: dict | None = None, retrain_when: str | None = None, force: bool = False) -> dict:
    from ..jobs.promote import promote_notebook

    p = promote_notebook(_notebook(path), name, model=model or None, metric=metric or None,
                         params=dict(params or {}), retrain_when=retrain_when or None, force=force)
    return clean({"job": p.spec.name, "folder": str(p.folder), "files": sorted(p.files), "notes": p.notes,
                  "text": str(p)})


def _notebook(path: str):
    """A notebook path from the browser, inside the server's root folder (never outside it)."""
    from pathlib import Path

    from ..config import find_root

    if not isinstance(path, str) or not path.endswith(".ipynb"):
        raise BadInput("path should name a notebook (.ipynb) relative to the Jupyter root")
    root = Path(ROOT or (find_root() or Path.cwd())).resolve()
    full = (root / path).resolve()
    if root != full and root not in full.parents:
        raise BadInput(f"{path} is outside the Jupyter root")
    if not full.is_file():
        from ..exceptions import NotFound

        raise NotFound(f"no notebook {path}")
    return full


ROOT: str | None = None  # the Jupyter server's root folder, set when the extension loads
