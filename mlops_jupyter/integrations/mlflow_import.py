"""Import runs, metric histories and files from an MLflow tracking store.

    import_mlflow("sqlite:///other/mlflow.db")    # every MLflow run not imported before

MLflow runs come in through the same tables our own runs use, each run in one transaction, with
``mlflow.run_id`` recorded so that importing again skips it; runs exported from this project
(:mod:`.mlflow_export`) are recognised by their tags and skipped.

MLflow is an optional extra, imported only inside the functions that need it.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from ..exceptions import MlopsError, NotFound
from .mlflow_common import (EXPORT_ONLY, FROM_MLFLOW, T_DIGEST, T_MODEL, T_RENAMED, T_RUN_ID, T_STATUS, first_line,
                            is_not_found, open_client, pages, parents_first, quiet_mlflow, require_mlflow,
                            safe_relpath, with_progress)


# On our side: the MLflow run a run was imported from, and its status then (RUNNING is refreshed).
T_MLFLOW_RUN = "mlflow.run_id"
T_MLFLOW_EXPERIMENT = "mlflow.experiment"
T_IMPORTED_STATUS = "mlflow.imported_status"

# Artifacts of ours that are not plain files a user logged: their kind, from their path.
KIND_OF_PATH = {"_mlops/notebook.ipynb": "notebook", "_mlops/requirements-freeze.txt": "freeze",
                "_mlops/environment.json": "environment", "_mlops/git.diff": "gitdiff"}


def import_mlflow(from_uri: str, experiments: list[str] | None = None, runs: list[str] | None = None,
                  progress: Callable[[Iterable], Iterable] | None = None) -> dict:
    """Bring MLflow runs into the project.

    Each run arrives whole, in one transaction of the store: name, status, start and end times,
    params (numbers, booleans and lists given as text become values again; the text is kept),
    tags (MLflow's ``mlflow.*`` ones under their names), every metric point with its step and
    timestamp, its files (and, with MLflow 3, the files of models logged by the run, under the
    model's name) as run artifacts, and its parent. The MLflow run id is kept in the
    ``mlflow.run_id`` tag (and as our run id when free): importing again skips runs imported
    before, and runs that were exported from this project. A run still RUNNING in MLflow is
    imported as running and brought up to date by the next import.

    Args:
        from_uri: MLflow tracking URI (``sqlite:///mlflow.db``, ``file:./mlruns``, ``http://...``).
        experiments: experiment names (or ids); None: every active experiment.
        runs: MLflow run ids; None: every active run of those experiments (a run's parents come
            with it).
        progress: wraps an iterable to show progress (``tqdm``-like).

    Returns:
        A summary: ``experiments``, ``runs_imported``, ``runs_updated``, ``runs_skipped``,
        ``metric_points``, ``artifacts``.

    Raises:
        BadInput: MLflow missing, a URI MLflow cannot use or holding no store.
        NotFound: an experiment or run id MLflow does not have.
    """
    from ..store import open_store

    require_mlflow()
    store = open_store()
    with quiet_mlflow():
        client = open_client(from_uri, create=False)
        try:
            exps = _import_experiments(client, from_uri, experiments)
            selected = _import_selection(client, from_uri, exps, runs)
            importer = _Importer(client, from_uri, store, exps)
            importer.summary["experiments"] = len({r.info.experiment_id for r in selected}) if runs else len(exps)
            for r in with_progress(progress, selected):
                importer.import_run(r)
        except MlopsError:
            raise
        except Exception as e:  # MLflow failing while listing experiments or runs: one line too
            raise MlopsError(f"importing from MLflow {from_uri} failed: {first_line(e)}") from e
    return importer.summary


def _import_experiments(client, uri: str, names: list[str] | None) -> dict[str, str]:
    """experiment id -> name, of the experiments named (every active one when none are)."""
    from mlflow.entities import ViewType

    if isinstance(names, str):
        names = [names]
    if not names:
        return {e.experiment_id: e.name for e in pages(client.search_experiments, view_type=ViewType.ACTIVE_ONLY,
                                                         max_results=1000)}
    out = {}
    for name in names:
        exp = client.get_experiment_by_name(str(name))
        if exp is None and str(name).isdigit():
            try:
                exp = client.get_experiment(str(name))
            except Exception as e:
                if not is_not_found(e):
                    raise
        if exp is None or exp.lifecycle_stage != "active":
            have = [e.name for e in pages(client.search_experiments, max_results=1000)]
            shown = ", ".join(have[:10]) + (", ..." if len(have) > 10 else "")
            raise NotFound(f"no MLflow experiment {name!r} at {uri} (it has: {shown or 'none'})")
        out[exp.experiment_id] = exp.name
    return out


def _import_selection(client, uri: str, exps: dict[str, str], run_ids: list[str] | None) -> list:
    from mlflow.entities import ViewType

    if isinstance(run_ids, str):
        run_ids = [run_ids]
    if not run_ids:
        found = list(pages(client.search_runs, experiment_ids=list(exps), filter_string="",
                            run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)) if exps else []
    else:
        by_id: dict[str, Any] = {}
        for rid in run_ids:
            run = _get_run(client, str(rid).strip())
            if run is None:
                raise NotFound(f"no MLflow run {rid!r} at {uri}")
            if run.info.experiment_id not in exps:
                raise NotFound(f"MLflow run {rid!r} is not in experiment(s) {', '.join(exps.values())}")
            while run is not None and run.info.run_id not in by_id:  # the run, then its parents
                by_id[run.info.run_id] = run
                parent = run.data.tags.get("mlflow.parentRunId")
                run = _get_run(client, parent) if parent else None
        found = list(by_id.values())
    return parents_first(found, lambda r: r.info.run_id, lambda r: r.data.tags.get("mlflow.parentRunId"),
                          lambda r: r.info.start_time)


def _get_run(client, run_id: str):
    try:
        return client.get_run(run_id)
    except Exception as e:
        if is_not_found(e) or getattr(e, "error_code", None) == "INVALID_PARAMETER_VALUE":
            return None
        raise


def _param_value(text: str) -> tuple[str, str, float | None]:
    """An MLflow param (always text) as we store params: (json, text, number).

    Numbers, booleans, null and JSON lists or objects are read back as values (what our export
    wrote as text comes back as it was); anything else stays the text."""
    from ..store.metadata import json_value

    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    encoded, _text, num, _ = json_value(text if isinstance(parsed, str) else parsed)
    return encoded, text, num


class _Importer:
    def __init__(self, client, uri: str, store, exps: dict[str, str]):
        import sqlalchemy as sa

        from ..store import schema as S

        self.client = client
        self.uri = uri
        self.store = store
        self.meta = store.meta
        self.exps = exps
        t = S.tags
        with self.meta.read() as conn:
            self.ours = set(conn.execute(sa.select(S.runs.c.run_id)).scalars())
            self.imported = dict((v, r) for r, v in conn.execute(
                sa.select(t.c.run_id, t.c.value).where(t.c.key == T_MLFLOW_RUN)).all())
            self.was_running = set(conn.execute(sa.select(t.c.run_id).where(
                t.c.key == T_IMPORTED_STATUS, t.c.value.in_(["RUNNING", "SCHEDULED"]))).scalars())
            mv = S.model_versions
            self.our_models = {(f"{r.name}@v{r.version}", r.digest)
                               for r in conn.execute(sa.select(mv.c.name, mv.c.version, mv.c.digest))}
        self.our_id: dict[str, str] = {}  # MLflow run id -> our run id
        self.logged_models: dict[str, list] | None = None
        self.summary: dict[str, Any] = dict(experiments=0, runs_imported=0, runs_updated=0, runs_skipped=0,
                                            metric_points=0, artifacts=0)

    def import_run(self, r) -> None:
        mid = r.info.run_id
        replace = None
        if mid in self.imported and self.imported[mid] in self.ours:
            ours = self.imported[mid]
            self.our_id[mid] = ours
            if ours not in self.was_running:
                self.summary["runs_skipped"] += 1
                return
            replace = ours  # imported while it was running: bring it up to date
        elif r.data.tags.get(T_RUN_ID) in self.ours:
            self.our_id[mid] = r.data.tags[T_RUN_ID]  # exported from here: it is ours already
            self.summary["runs_skipped"] += 1
            return
        elif (r.data.tags.get(T_MODEL), r.data.tags.get(T_DIGEST)) in self.our_models:
            self.summary["runs_skipped"] += 1  # the files of one of our model versions, exported from here
            return
        try:
            n_points, n_files = self._write(r, replace)
        except MlopsError:
            raise
        except Exception as e:
            raise MlopsError(f"importing MLflow run {r.info.run_name or mid!r} ({mid}) failed: {first_line(e)}") \
                from e
        self.summary["runs_updated" if replace else "runs_imported"] += 1
        self.summary["metric_points"] += n_points
        self.summary["artifacts"] += n_files

    def _write(self, r, replace: str | None) -> tuple[int, int]:
        from ..store import schema as S
        from ..store.metadata import STATUSES
        from ..tracking import redact

        mid = r.info.run_id
        tags = dict(r.data.tags)
        try:
            renamed = json.loads(tags.get(T_RENAMED) or "{}")
            renamed = renamed if isinstance(renamed, dict) else {}
        except ValueError:
            renamed = {}

        def ours(kind: str, key: str) -> str:
            return (renamed.get(kind) or {}).get(key, key)

        if replace:
            our_id = replace
        elif re.fullmatch(r"[0-9a-f]{32}", mid) and mid not in self.ours:
            our_id = mid  # MLflow's id is a uuid4 hex like ours: keep it, so both sides name the run alike
        else:
            our_id = uuid.uuid4().hex
        params = {}
        for k, text in r.data.params.items():
            key = ours("params", k)
            params[key] = _param_value(redact.REDACTED if redact.is_secret(key) else text)
        status = tags.get(T_STATUS) if tags.get(T_STATUS) in STATUSES else FROM_MLFLOW.get(r.info.status, "finished")
        our_tags = {}
        for k, v in tags.items():
            if k in EXPORT_ONLY:
                continue
            key = ours("tags", k)
            our_tags[key] = redact.REDACTED if redact.is_secret(key) else str(v)
        our_tags[T_MLFLOW_RUN] = mid
        our_tags[T_MLFLOW_EXPERIMENT] = self.exps.get(r.info.experiment_id, r.info.experiment_id)
        if status == "running":
            our_tags[T_IMPORTED_STATUS] = r.info.status
        else:
            our_tags.pop(T_IMPORTED_STATUS, None)
        points, latest = [], []
        for k in sorted(r.data.metrics):
            history = sorted(self.client.get_metric_history(mid, k), key=lambda m: (m.step, m.timestamp))
            key = ours("metrics", k)
            rows = [dict(run_id=our_id, key=key, step=int(m.step),
                         value=None if m.value is None or math.isnan(m.value) else float(m.value),
                         timestamp=m.timestamp / 1000.0) for m in history]
            if rows:
                points += rows
                latest.append(dict(rows[-1], count=len(rows)))
        parent = tags.get("mlflow.parentRunId")
        parent_id = self.our_id.get(parent) or (self.imported.get(parent) if parent else None)
        start = r.info.start_time / 1000.0 if r.info.start_time else (
            min(p["timestamp"] for p in points) if points else time.time())
        end = r.info.end_time / 1000.0 if r.info.end_time and status != "running" else None
        row = dict(run_id=our_id, name=r.info.run_name or tags.get("mlflow.runName") or mid[:8], status=status,
                   start_time=start, end_time=end, parent_id=parent_id, notebook=None,
                   username=tags.get("mlflow.user") or r.info.user_id or None, host=tags.get("mlops.host"),
                   pid=None, pid_start=None, heartbeat=time.time() if status == "running" else None,
                   source="mlflow", error=tags.get("mlops.error"), env=None)
        with tempfile.TemporaryDirectory(prefix="mlops-mlflow-") as tmp:
            files = self._download(r, Path(tmp))
            now = time.time()
            arts = []
            for rel, local in files:
                digest, size = self.store.blobs.put_file(local)
                arts.append(dict(run_id=our_id, path=rel, digest=digest, size=size,
                                 kind=KIND_OF_PATH.get(rel, "artifact"), created=now))

        def work(conn) -> None:
            if replace:
                for table in (S.metrics, S.latest_metrics, S.params, S.tags, S.artifacts, S.cells):
                    conn.execute(table.delete().where(table.c.run_id == our_id))
                conn.execute(S.runs.delete().where(S.runs.c.run_id == our_id))
            conn.execute(S.runs.insert().values(**row))
            if params:
                self.meta.write_params(conn, our_id, params)
            self.meta.write_tags(conn, our_id, our_tags)
            if points:
                self.meta.write_points(conn, [(p["run_id"], p["key"], p["step"], p["value"], p["timestamp"])
                                              for p in points])
                conn.execute(S.latest_metrics.insert(), latest)
            if arts:
                conn.execute(S.artifacts.insert(), arts)

        self.meta.run_transaction(work)  # the whole run, or (on any failure) none of it
        self.ours.add(our_id)
        self.imported[mid] = our_id
        self.our_id[mid] = our_id
        return len(points), len(arts)

    def _download(self, r, tmp: Path) -> list[tuple[str, Path]]:
        """The run's files (and those of models it logged, MLflow 3) as (artifact path, local file)."""
        mid = r.info.run_id
        out: list[tuple[str, Path]] = []
        if self.client.list_artifacts(mid):
            root = Path(self.client.download_artifacts(mid, "", str(tmp / "run")))
            out += [(f.relative_to(root).as_posix(), f) for f in sorted(root.rglob("*")) if f.is_file()]
        taken = {rel.split("/", 1)[0] for rel, _ in out}
        for i, lm in enumerate(self._logged_models(r.info.experiment_id).get(mid, [])):
            from mlflow.artifacts import download_artifacts

            name = safe_relpath(lm.name or "") or lm.model_id
            prefix = name if name not in taken else f"{name}-{lm.model_id}"
            taken.add(prefix)
            root = Path(download_artifacts(artifact_uri=lm.artifact_location, dst_path=str(tmp / f"model{i}"),
                                           tracking_uri=self.uri))
            if root.is_file():
                out.append((f"{prefix}/{root.name}", root))
            else:
                out += [(f"{prefix}/{f.relative_to(root).as_posix()}", f) for f in sorted(root.rglob("*"))
                        if f.is_file()]
        return out

    def _logged_models(self, experiment_id: str) -> dict[str, list]:
        """MLflow 3 keeps a model logged in a run apart from the run's files: by source run id."""
        if self.logged_models is None:
            self.logged_models = {}
            search = getattr(self.client, "search_logged_models", None)
            if search is not None and self.exps:
                try:
                    for lm in pages(search, experiment_ids=list(self.exps), max_results=100):
                        if lm.source_run_id:
                            self.logged_models.setdefault(lm.source_run_id, []).append(lm)
                except Exception as e:  # a tracking server older than its client: runs' own files only
                    warnings.warn(f"mlops: MLflow logged models not listed ({first_line(e)}); importing the "
                                  "runs' own files", RuntimeWarning, stacklevel=2)
        return self.logged_models
