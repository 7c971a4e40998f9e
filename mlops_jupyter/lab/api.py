"""What the JupyterLab panel shows of runs and jobs, as JSON-ready dicts, from the same core API the
magics and the CLI use (data versions and models: :mod:`.assets`). The tornado handlers in
``handlers.py`` are a thin layer over these functions.

Times go out as seconds since the epoch; the panel writes them in one format."""

from __future__ import annotations

import mimetypes
import threading
import time
from typing import Any

from ..exceptions import BadInput, NotFound
from ..store.metadata import json_safe as clean

PAGE = 50
MAX_PAGE = 500
SPARK_POINTS = 60
MAX_EXECUTIONS = 100
MAX_CELLS = 200

# Artifacts the panel previews inline (an <img>); everything else downloads.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".svg": "image/svg+xml"}


def store():
    from ..store import open_store

    return open_store()


def flag(value: Any, name: str) -> bool:
    """A yes/no query argument: 1/0, true/false, yes/no."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise BadInput(f"{name} is 1 or 0 (true or false), got {value!r}")


# -- runs -------------------------------------------------------------------------------------------
def runs(offset: int = 0, limit: int = PAGE, where: str | None = None, sort: str | None = None) -> dict:
    """A page of runs (newest first unless *sort*), each with params, last metrics and tags, and a
    sparkline: the last points of its main metric (the one logged most often)."""
    from ..tracking.query import compile_where, search_runs

    if not 0 < limit <= MAX_PAGE:
        raise BadInput(f"limit is 1 to {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise BadInput(f"offset must be 0 or more, got {offset}")
    st = store()
    rows = search_runs(st, where=where, order_by=sort, limit=limit, offset=offset)
    total = st.meta.count_runs(compile_where(where))
    sparks = sparklines(st, [r["run_id"] for r in rows])
    out = []
    for r in rows:
        item = {k: r.get(k) for k in ("run_id", "name", "status", "start_time", "end_time", "parent_id",
                                      "notebook", "username")}
        item.update(params=r["params"], metrics=r["metrics"], tags=r["tags"])
        if r["run_id"] in sparks:
            item["spark"] = sparks[r["run_id"]]
        out.append(item)
    return clean({"total": total, "offset": offset, "limit": limit, "runs": out})


def sparklines(st, run_ids: list[str], points: int = SPARK_POINTS) -> dict[str, dict]:
    """run id -> ``{"key", "values"}``: the last *points* values of the run's main metric (the key
    with the most points; ties by name), for runs whose main metric has two points or more."""
    import sqlalchemy as sa

    from ..store import schema as S

    latest = st.meta.latest_metrics(run_ids)
    main: dict[str, str] = {}
    for rid, keys in latest.items():
        curves = [(k, v[2] or 0) for k, v in keys.items() if (v[2] or 0) >= 2]
        if curves:
            main[rid] = min(curves, key=lambda kc: (-kc[1], kc[0]))[0]
    m = S.metrics
    out: dict[str, dict] = {}
    with st.meta.read() as conn:
        for rid, key in main.items():
            q = (sa.select(m.c.step, m.c.value).where(m.c.run_id == rid, m.c.key == key)
                 .order_by(m.c.step.desc(), m.c.id.desc()).limit(points))
            values = [v for _, v in reversed(conn.execute(q).all())]
            out[rid] = {"key": key, "values": values}
    return out


def run(ref: str) -> dict:
    """One run: attributes, params, metrics (last value and how many points), tags, artifacts
    (images marked for preview), captured cells, its data versions in and out, the model versions
    it registered, its parent and children."""
    from ..data.catalog import Catalog
    from ..models.registry import Registry
    from ..tracking.query import get_run

    rec = get_run(ref)
    st = rec.store
    d = rec.to_dict()
    d["metric_points"] = rec.metric_counts
    d["artifacts"] = [{"path": a["path"], "size": a["size"], "kind": a["kind"], "created": a["created"],
                       "image": suffix_type(a["path"]) is not None} for a in rec.artifacts]
    cells = rec.cells()
    d["cells"] = [{k: c.get(k) for k in ("seq", "execution_count", "source", "started", "duration", "status",
                                         "error")} for c in cells[-MAX_CELLS:]]
    d["cells_total"] = len(cells)
    d["datasets"] = [{"direction": direction, "ref": v.ref, "name": v.name, "version": v.version,
                      "kind": v.kind, "rows": v.rows, "size": v.size}
                     for direction, v in Catalog(st.meta).versions_of_run(rec.run_id)]
    d["models"] = [{"ref": v.ref, "name": v.name, "version": v.version, "flavor": v.flavor}
                   for v in Registry(st).versions_of_run(rec.run_id)]
    related = [i for i in [rec.row.get("parent_id"), *rec.children] if i]
    names = {r["run_id"]: r for r in (st.meta.run_row(i) for i in related[:200])}
    d["parent"] = ({"run_id": d["parent_id"], "name": names[d["parent_id"]]["name"]}
                   if d.get("parent_id") in names else None)
    d["children"] = [{"run_id": i, "name": names[i]["name"], "status": names[i]["status"]}
                     for i in rec.children if i in names]
    d.pop("pid_start", None)
    return clean(d)


def run_chart(ref: str, x: str = "step", log_y: Any = False, keys: str | None = None) -> dict:
    """The run's metric curves as a Vega-Lite spec (None when it logged no metric); *x* is
    ``step``, ``time`` or ``relative``; *keys*: comma-separated metric names (default: the
    metrics logged more than once, since a single value is no curve; all when none is)."""
    from ..tracking.query import get_run

    log = flag(log_y, "log_y")
    rec = get_run(ref)
    wanted = [k for k in (keys or "").split(",") if k] or None
    if wanted:
        missing = [k for k in wanted if k not in rec.metrics]
        if missing:
            raise BadInput(f"run {rec.name} has no metric {missing[0]!r}; it has: "
                           f"{', '.join(sorted(rec.metrics)) or 'none'}")
    if not rec.metrics:
        return {"spec": None, "x": x, "log_y": log}
    chart = rec.chart(wanted or curves([rec]), x=x, log_y=log)
    return clean({"spec": chart.spec, "x": x, "log_y": log})


def curves(records) -> list[str] | None:
    """The metrics some of *records* logged more than once (None, meaning all, when there are
    none)."""
    keys = sorted({k for r in records for k, n in r.metric_counts.items() if (n or 0) >= 2})
    return keys or None


def suffix_type(path: str) -> str | None:
    """The image type of an artifact's name (None: not previewed)."""
    dot = path.rfind(".")
    return IMAGE_TYPES.get(path[dot:].lower()) if dot >= 0 else None


def artifact(ref: str, path: str) -> dict:
    """Where one artifact of a run is: ``{"name", "size", "type", "digest", "blobs"}``. *path* must
    be one of the run's artifact names exactly; it is looked up, never opened as a file."""
    from ..tracking.query import get_run

    if not isinstance(path, str) or not path or len(path) > 1024:
        raise BadInput("name an artifact of the run (1 to 1024 characters)")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise BadInput("an artifact name has no control characters")
    rec = get_run(ref)
    for a in rec.artifacts:
        if a["path"] == path:
            kind = suffix_type(path) or mimetypes.guess_type(path)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind in ("application/json", "application/javascript"):
                kind = "text/plain; charset=utf-8"  # shown as text, never run as a page
            return {"name": path.rsplit("/", 1)[-1], "size": a["size"], "type": kind, "digest": a["digest"],
                    "image": suffix_type(path) is not None, "blobs": rec.store.blobs}
    raise NotFound(f"run {rec.name} ({rec.run_id[:8]}) has no artifact {path!r}")


def compare(refs: list[str], x: str = "step", log_y: Any = False, metric: str | None = None) -> dict:
    """Runs side by side: params (which differ), last metric values with the best of each marked,
    and three pictures as Vega-Lite specs: the metric curves, parallel coordinates over the params
    that differ and *metric*, and *metric* against each param."""
    from ..charts.spec import finite, lower_is_better
    from ..tracking.pictures import labels
    from ..tracking.query import compare as core_compare

    log = flag(log_y, "log_y")
    if len(refs) < 2:
        raise BadInput("compare needs two runs or more")
    comp = core_compare(refs)
    names = labels(comp.runs)
    metrics = []
    for key in comp.metric_keys:
        values = [r.metrics.get(key) for r in comp.runs]
        nums = [v for v in values if finite(v)]
        low = lower_is_better(key)
        best = (min if low else max)(nums) if len(nums) > 1 else None
        metrics.append({"key": key, "values": values, "lower_is_better": low, "best": best})
    charts: dict[str, Any] = {"curves": comp.chart(curves(comp.runs), x=x, log_y=log).spec
                              if comp.metric_keys else None}
    notes = []
    for what in ("parallel", "scatter"):
        try:
            charts[what] = getattr(comp, what)(metric or None).spec
        except BadInput as e:
            if metric:
                raise
            charts[what] = None
            notes.append(str(e))
    if not any(d for _, _, d in comp.param_rows):
        notes.append("no param differs between these runs")
    return clean({"runs": [{"run_id": r.run_id, "name": r.name, "label": lab, "status": r.status,
                            "start_time": r.row["start_time"], "end_time": r.row.get("end_time")}
                           for r, lab in zip(comp.runs, names)],
                  "params": [{"key": k, "values": vals, "differs": differs} for k, vals, differs in comp.param_rows],
                  "metrics": metrics, "charts": charts, "x": x, "log_y": log, "notes": notes})


# -- jobs ----------------------------------------------------------------------------------------------
_RUNNING: dict[str, dict] = {}
_RUNNING_LOCK = threading.Lock()


def alias_move(spec, reg=None) -> dict | None:
    """What running *spec* may do to its model's alias: ``{"model", "alias", "version" (the
    champion's, None when unset), "metric", "direction", "value" (the champion's metric)}``; None
    for a job that registers no model."""
    if not spec.model:
        return None
    from ..models.registry import Registry

    reg = reg or Registry(store())
    try:
        champ = reg.get(f"{spec.model}@{spec.alias}")
    except (NotFound, BadInput):
        champ = None
    return {"model": spec.model, "alias": spec.alias, "version": champ.version if champ else None,
            "metric": spec.metric, "direction": spec.direction,
            "value": champ.metrics.get(spec.metric) if champ and spec.metric else None}


def jobs() -> dict:
    from ..jobs.spec import iter_jobs
    from ..models.registry import Registry
    from ..tracking.query import search_runs

    st = store()
    reg = Registry(st)
    out = []
    for folder, spec, problem in iter_jobs():
        if spec is None:
            out.append({"name": folder, "problem": problem})
            continue
        last = search_runs(st, where=f"tags.`mlops.job` = '{spec.name}' and parent_id is null",
                           order_by="-start_time", limit=1)
        out.append({"name": spec.name, "model": f"{spec.model}@{spec.alias}" if spec.model else None,
                    "metric": spec.metric, "parameters": {p.name: {"type": p.type, "default": p.default}
                                                          for p in spec.parameters.values()},
                    "rule": spec.retrain.get("retrain_when"), "schedule": spec.schedule,
                    "moves": alias_move(spec, reg),
                    "last": ({k: last[0].get(k) for k in ("run_id", "name", "status", "start_time", "end_time")}
                             if last else None),
                    "running": _RUNNING.get(spec.name)})
    return clean({"jobs": out})


def job(name: str) -> dict:
    """One job: its parameters, model and alias (what a run may move), retraining rule, schedule,
    and its executions, newest first (batches and their executions, with the decision taken)."""
    from ..jobs.spec import check_job_name, find_job
    from ..tracking.query import compile_where, search_runs

    spec = find_job(check_job_name(name))
    st = store()
    where = f"tags.`mlops.job` = '{spec.name}'"
    rows = search_runs(st, where=where, order_by="-start_time", limit=MAX_EXECUTIONS)
    total = st.meta.count_runs(compile_where(where))
    executions = []
    for r in rows:
        tags = r["tags"]
        executions.append({
            "run_id": r["run_id"], "name": r["name"], "status": r["status"], "start_time": r["start_time"],
            "end_time": r.get("end_time"), "parent_id": r.get("parent_id"), "error": r.get("error"),
            "kind": tags.get("mlops.kind", "execution"), "trigger": tags.get("mlops.trigger"),
            "decision": tags.get("mlops.decision"), "challenger": tags.get("mlops.challenger"),
            "params": {k.removeprefix("papermill."): v for k, v in r["params"].items()},
            "metric": r["metrics"].get(spec.metric) if spec.metric else None})
    return clean({
        "name": spec.name, "folder": str(spec.folder), "source": spec.source, "image": spec.image,
        "schedule": spec.schedule, "model": spec.model, "alias": spec.alias, "metric": spec.metric,
        "direction": spec.direction, "moves": alias_move(spec),
        "parameters": [{"name": p.name, "type": p.type, "default": p.default,
                        "help": p.help or None} for p in spec.parameters.values()],
        "retrain": spec.retrain, "smoke": spec.smoke, "executions": executions, "executions_total": total,
        "running": _RUNNING.get(spec.name)})


def run_job_now(name: str) -> dict:
    """Start one execution of the job on a background thread; the panel follows it as a run."""
    from ..jobs.runner import run_job
    from ..jobs.spec import check_job_name, find_job

    spec = find_job(check_job_name(name))
    with _RUNNING_LOCK:
        if name in _RUNNING and _RUNNING[name]["status"] == "running":
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(_RUNNING[name]["started"]))
            raise BadInput(f"job {name} is already running (started {started})")
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

    nb_path = notebook(path)
    nb = nbformat.read(str(nb_path), as_version=4)
    _, params, notes = prepare_notebook(nb, {})
    reg = Registry(store())
    ms = reg.models().to_dict("records")
    name = re.sub(r"[^a-z0-9-]+", "-", nb_path.stem.lower()).strip("-")[:40] or "job"
    return clean({"path": path, "name": name, "parameters": {p.name: {"type": p.type, "default": p.default}
                                                              for p in params.values()},
                  "notes": notes, "models": [{"name": m["name"], "metrics": m["metrics"]} for m in ms]})


def promote(path: str, name: str, model: str | None = None, metric: str | None = None,
            params: dict | None = None, retrain_when: str | None = None, force: bool = False) -> dict:
    from ..jobs.promote import promote_notebook

    p = promote_notebook(notebook(path), name, model=model or None, metric=metric or None,
                         params=dict(params or {}), retrain_when=retrain_when or None, force=force)
    return clean({"job": p.spec.name, "folder": str(p.folder), "files": sorted(p.files), "notes": p.notes,
                  "text": str(p)})


def notebook(path: str):
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
        raise NotFound(f"no notebook {path}")
    return full


ROOT: str | None = None  # the Jupyter server's root folder, set when the extension loads
