"""Export runs, metric histories, files and registered models to an MLflow tracking store.

    export_mlflow("sqlite:///mlflow.db")          # every run and model version of the project
    export_mlflow("sqlite:///mlflow.db", ["baseline"], experiment="churn")

Each run is written (name, status, start and end times, params as text, tags, every metric point
with its step and timestamp, the files of the blob store under their recorded paths, parent runs
through ``mlflow.parentRunId``) into an MLflow experiment, and each model version into MLflow's
registry with its aliases. Exporting again creates nothing twice, but sends what changed since
(new runs, new metric points, a run that ended, moved aliases): what was sent is recorded in the
MLflow run's tags (:mod:`.mlflow_common`).

MLflow is an optional extra, imported only inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..exceptions import BadInput, MlopsError, NotFound
from .mlflow_common import (EXPORT_ONLY, MAX_PARAM_VALUE, MAX_TAG_VALUE, METRICS_PER_BATCH, PARAMS_TAGS_PER_BATCH,
                            T_ARTIFACTS, T_CURSOR, T_EXPORT, T_DIGEST, T_MODEL, T_RENAMED, T_RUN_ID, T_STATUS,
                            T_TRUNCATED, TO_MLFLOW, KeyMap, first_line, millis, open_client, pages, parents_first,
                            quiet_mlflow, require_mlflow, safe_relpath, sqlite_path, with_progress)
from .mlflow_export_models import ModelVersionExporter


def export_mlflow(to: str, runs: list[str] | None = None, experiment: str | None = None, models: bool = True,
                  progress: Callable[[Iterable], Iterable] | None = None) -> dict:
    """Write runs and registered models of the project into an MLflow tracking store.

    Each run becomes an MLflow run of *experiment* with its name, status, start and end times,
    params (as text; values over MLflow's 6000 characters are cut and listed in the
    ``mlops.truncated`` tag), tags, every metric point (step, value, timestamp), its files from
    the blob store under their recorded paths, and its parent (``mlflow.parentRunId``; a run's
    parents are exported with it). Each model version becomes an MLflow model version whose
    files (with an ``MLmodel`` MLflow loads without pickle for scikit-learn, Keras and PyTorch:
    :mod:`.mlflow_models`) are logged to the exported run that registered it, or to a run of its
    own; aliases follow.

    Exporting again creates nothing twice: runs are found by their ``mlops.run_id`` tag and only
    what changed is sent (new metric points, a new status, new params and tags, changed files);
    model versions are found by their ``mlops.model_version`` and ``mlops.digest`` tags; aliases
    are moved (or removed) to match the project. Exports of one project on one machine run one
    at a time (a second waits for the first).

    Args:
        to: MLflow tracking URI (also used as registry URI): ``sqlite:///mlflow.db``,
            ``file:./mlruns``, ``http://host:5000``, ...
        runs: run refs (ids, id prefixes, names, ``last``); None or empty: every run.
        experiment: MLflow experiment name (created if missing); default: the project folder's name.
        models: also export model versions and aliases (with *runs*: the versions those runs
            registered).
        progress: wraps an iterable to show progress (``tqdm``-like).

    Returns:
        A summary: ``experiment``, ``experiment_id``, ``runs_exported``, ``runs_updated``,
        ``runs_skipped``, ``metric_points``, ``artifacts``, ``model_versions``,
        ``model_versions_skipped``, ``aliases``.

    Raises:
        BadInput: MLflow missing, a URI MLflow cannot use, a deleted experiment of that name.
        NotFound: a run ref that names no run.
        MlopsError: MLflow failed while writing a run (that run is removed from MLflow again).
    """
    from ..store import open_store

    require_mlflow()
    store = open_store()
    if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
        raise BadInput(f"an MLflow experiment name must be a non-empty string, got {experiment!r:.60}")
    store.writer.flush()  # points still queued in this process belong in the export
    with _one_export_at_a_time(store.settings):
        store.meta.reap_crashed()
        selected = _runs_to_export(store, runs)
        with quiet_mlflow():
            client = open_client(to, create=True)
            exp_name = (experiment or store.settings.root.name or "mlops").strip()
            exp_id = _export_experiment(client, to, exp_name)
            exporter = RunExporter(client, store, exp_id)
            exporter.summary["experiment"] = exp_name
            try:
                exporter.scan()
                for row in with_progress(progress, selected):
                    exporter.export_run(row)
                if models:
                    ModelVersionExporter(exporter).export(None if not runs else {r["run_id"] for r in selected},
                                                          progress)
            except MlopsError:
                raise
            except Exception as e:  # MLflow failing between runs (searching, the registry): one line too
                raise MlopsError(f"exporting to MLflow {to} failed: {first_line(e)}") from e
    return exporter.summary


@contextmanager
def _one_export_at_a_time(cfg) -> Iterator[None]:
    """Exports of a project on this machine wait for one another.

    Two at once would each find a run missing in MLflow and each create it: the background
    export of a child run and of its parent ending just after (:mod:`.mlflow_autoexport`), or a
    user's own export meanwhile. Without ``fcntl`` (Windows) exports are not serialised."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is None:
        yield
        return
    folder = cfg.mlops_dir / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "export.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        yield


def _runs_to_export(store, refs: list[str] | None) -> list[dict]:
    meta = store.meta
    if isinstance(refs, str):
        refs = [refs]
    if not refs:
        rows = meta.select_runs()
    else:
        rows_by_id: dict[str, dict] = {}
        for ref in refs:
            rid = meta.resolve(str(ref))
            while rid and rid not in rows_by_id:  # the run, then its parents
                try:
                    row = meta.run_row(rid)
                except NotFound:
                    break
                rows_by_id[rid] = row
                rid = row["parent_id"]
        rows = list(rows_by_id.values())
    return parents_first(rows, lambda r: r["run_id"], lambda r: r["parent_id"], lambda r: r["start_time"])


def _export_experiment(client, uri: str, name: str) -> str:
    try:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                raise BadInput(f"MLflow experiment {name!r} at {uri} is deleted; restore it (mlflow experiments "
                               "restore) or export to another experiment")
            return exp.experiment_id
        return client.create_experiment(name, artifact_location=_artifact_location(uri, name))
    except MlopsError:
        raise
    except Exception as e:
        raise BadInput(f"cannot create MLflow experiment {name!r} at {uri}: {first_line(e)}") from None


def _artifact_location(uri: str, name: str) -> str | None:
    """Artifacts of a new experiment in a sqlite store go beside the database file.

    MLflow's own default would be ``./mlruns`` under whatever folder the export runs in, which
    ties the store to that folder; next to the database, the two travel together. Other stores
    (a file store, a tracking server) decide for themselves."""
    db = sqlite_path(uri)
    if db is None:
        return None
    folder = re.sub(r"[^\w.-]", "_", name) or "experiment"
    return (Path(db).resolve().parent / "mlartifacts" / folder).as_uri()


class RunExporter:
    """Writes runs of one store into one MLflow experiment, sending only what changed since the last export."""

    def __init__(self, client, store, experiment_id: str):
        self.client = client
        self.store = store
        self.meta = store.meta
        self.experiment_id = experiment_id
        self.by_run: dict[str, Any] = {}  # our run id -> MLflow run found in the experiment
        self.model_runs: dict[tuple, Any] = {}  # (name@vN, digest) -> MLflow run holding its files
        self.mlflow_id: dict[str, str] = {}  # our run id -> MLflow run id, as exported
        self.artifact_uri: dict[str, str] = {}  # MLflow run id -> artifact URI
        self.summary: dict[str, Any] = dict(experiment=None, experiment_id=experiment_id, runs_exported=0,
                                            runs_updated=0, runs_skipped=0, metric_points=0, artifacts=0,
                                            model_versions=0, model_versions_skipped=0, aliases=0)

    # -- what the experiment holds already ------------------------------------------------------
    def scan(self) -> None:
        from mlflow.entities import ViewType

        for r in pages(self.client.search_runs, experiment_ids=[self.experiment_id], filter_string="",
                        run_view_type=ViewType.ALL, max_results=1000):
            tags = r.data.tags
            if T_RUN_ID in tags:
                prev = self.by_run.get(tags[T_RUN_ID])
                if prev is None or _better(r, prev):
                    self.by_run[tags[T_RUN_ID]] = r
            elif T_MODEL in tags and r.info.lifecycle_stage == "active":
                self.model_runs[(tags[T_MODEL], tags.get(T_DIGEST))] = r

    # -- one run ---------------------------------------------------------------------------------
    def export_run(self, row: dict) -> None:
        rid = row["run_id"]
        existing = self.by_run.get(rid)
        if existing is not None and existing.data.tags.get(T_EXPORT) != "complete":
            # A previous export stopped half-way through this run: start it again from nothing.
            self._discard(existing.info.run_id)
            existing = None
        if existing is None:
            self._create(row)
        elif existing.info.lifecycle_stage != "active":
            self.summary["runs_skipped"] += 1  # deleted in MLflow by someone: left so
            self._remember(rid, existing)
        else:
            self._remember(rid, existing)
            try:
                changed = self._update(row, existing)
            except Exception as e:
                raise MlopsError(f"exporting run {row['name']!r} ({rid[:8]}) to MLflow failed: {first_line(e)}") \
                    from e
            self.summary["runs_updated" if changed else "runs_skipped"] += 1

    def _remember(self, rid: str, mlflow_run) -> None:
        self.mlflow_id[rid] = mlflow_run.info.run_id
        self.artifact_uri[mlflow_run.info.run_id] = mlflow_run.info.artifact_uri

    def _params(self, rid: str) -> dict[str, str]:
        import sqlalchemy as sa

        from ..store import schema as S

        p = S.params
        with self.meta.read() as conn:
            return dict(conn.execute(sa.select(p.c.key, p.c.text).where(p.c.run_id == rid).order_by(p.c.key)).all())

    def _system_tags(self, row: dict) -> dict[str, str]:
        """MLflow's own tags for what the run row knows: user, source, git, parent; ours: status, error."""
        tags = {T_RUN_ID: row["run_id"]}
        if row.get("source") != "mlflow":  # an imported run keeps the mlflow.* tags it came with
            if row.get("username"):
                tags["mlflow.user"] = row["username"]
            src = row.get("source") or ""
            tags["mlflow.source.type"] = ("NOTEBOOK" if src == "notebook" else "JOB" if src == "job" else "LOCAL")
            if row.get("notebook"):
                tags["mlflow.source.name"] = row["notebook"]
            try:
                git = (json.loads(row["env"]) if row.get("env") else {}).get("git") or {}
            except ValueError:
                git = {}
            for ours, theirs in (("commit", "mlflow.source.git.commit"), ("branch", "mlflow.source.git.branch"),
                                 ("remote", "mlflow.source.git.repoURL")):
                if git.get(ours):
                    tags[theirs] = str(git[ours])
        if row.get("host"):
            tags["mlops.host"] = row["host"]
        if row["status"] not in TO_MLFLOW or TO_MLFLOW[row["status"]].lower() != row["status"]:
            tags[T_STATUS] = row["status"]
        if row.get("error"):
            tags["mlops.error"] = row["error"]
        parent = row.get("parent_id")
        if parent and parent in self.mlflow_id:
            tags["mlflow.parentRunId"] = self.mlflow_id[parent]
        return tags

    def _keys(self, row: dict, params: dict, user_tags: dict, renamed: dict | None = None, have=None) -> KeyMap:
        """The run's key map: every name ours or MLflow's run already uses is taken."""
        rid = row["run_id"]
        taken = {"params": list(params), "metrics": list(self.meta.latest_metrics([rid])[rid]),
                 "tags": [*user_tags, *self._system_tags(row)]}
        if have is not None:
            for kind, theirs in (("params", have.params), ("metrics", have.metrics), ("tags", have.tags)):
                taken[kind] += list(theirs)
        return KeyMap(renamed, taken)

    def _tags(self, row: dict, user: dict, keys: KeyMap, truncated: dict) -> dict[str, str]:
        out = {}
        for k, v in user.items():
            if k in ("mlflow.runName", "mlflow.parentRunId") or k in EXPORT_ONLY:
                continue  # MLflow's from our row, ours written at the end
            key = keys("tags", k)
            out[key] = _cut(str(v), MAX_TAG_VALUE, f"tags.{key}", truncated)
        for k, v in self._system_tags(row).items():
            out[k] = _cut(str(v), MAX_TAG_VALUE, f"tags.{k}", truncated)
        return out

    def _create(self, row: dict) -> None:
        from mlflow.entities import Param, RunTag

        rid = row["run_id"]
        params = self._params(rid)
        user_tags = self.meta.tags_of([rid])[rid]
        keys = self._keys(row, params, user_tags)
        truncated: dict[str, int] = {}
        tags = self._tags(row, user_tags, keys, truncated)
        first = {k: tags[k] for k in ("mlflow.user",) if k in tags}
        run = self.client.create_run(self.experiment_id, start_time=millis(row["start_time"]), run_name=row["name"],
                                     tags={**first, T_RUN_ID: rid, T_EXPORT: "incomplete"})
        mid = run.info.run_id
        try:
            plist = [Param(keys("params", k), _cut(v, MAX_PARAM_VALUE, f"params.{keys('params', k)}", truncated))
                     for k, v in params.items()]
            for chunk in _chunks(plist, PARAMS_TAGS_PER_BATCH):
                self.client.log_batch(mid, params=chunk)
            cursor = self._send_points(rid, mid, 0, keys)
            arts = self.meta.artifacts(rid)
            self.upload(mid, arts)
            final = dict(tags)
            final.update({T_CURSOR: str(cursor), T_ARTIFACTS: _manifest_hash(arts)})
            if keys.tag_value():
                final[T_RENAMED] = keys.tag_value()
            if truncated:
                final[T_TRUNCATED] = json.dumps(truncated, sort_keys=True)[:MAX_TAG_VALUE]
            for chunk in _chunks([RunTag(k, v) for k, v in final.items()], PARAMS_TAGS_PER_BATCH):
                self.client.log_batch(mid, tags=chunk)
            if row["status"] != "running":
                self.client.set_terminated(mid, TO_MLFLOW.get(row["status"], "FAILED"),
                                           end_time=millis(row["end_time"] or row["start_time"]))
            self.client.set_tag(mid, T_EXPORT, "complete")  # last: the run is whole in MLflow now
        except BaseException as e:
            self._discard(mid)
            if isinstance(e, Exception):
                raise MlopsError(f"exporting run {row['name']!r} ({rid[:8]}) to MLflow failed: {first_line(e)}") \
                    from e
            raise
        self.mlflow_id[rid] = mid
        self.artifact_uri[mid] = run.info.artifact_uri
        self.summary["runs_exported"] += 1
        self.summary["artifacts"] += len(arts)

    def _discard(self, mid: str) -> None:
        """Take a half-written run out of MLflow (deleted, and no longer found as ours)."""
        for step in (lambda: self.client.delete_tag(mid, T_RUN_ID),
                     lambda: self.client.set_tag(mid, T_EXPORT, "abandoned"),
                     lambda: self.client.delete_run(mid)):
            try:
                step()
            except Exception as e:  # the original failure matters more; say this one too
                warnings.warn(f"mlops: could not remove half-exported MLflow run {mid}: {first_line(e)}",
                              RuntimeWarning, stacklevel=2)

    def _update(self, row: dict, mlr) -> bool:
        """Send what changed since the last export; True if anything did."""
        from mlflow.entities import Param, RunTag

        rid, mid = row["run_id"], mlr.info.run_id
        have = mlr.data
        try:
            renamed = json.loads(have.tags.get(T_RENAMED) or "{}")
        except ValueError:
            renamed = {}
        params = self._params(rid)
        user_tags = self.meta.tags_of([rid])[rid]
        keys = self._keys(row, params, user_tags, renamed, have)
        try:
            truncated = json.loads(have.tags.get(T_TRUNCATED) or "{}")
        except ValueError:
            truncated = {}
        n_trunc = len(truncated)
        changed = False
        params = [Param(keys("params", k), _cut(v, MAX_PARAM_VALUE, f"params.{keys('params', k)}", truncated))
                  for k, v in params.items() if keys("params", k) not in have.params]
        for chunk in _chunks(params, PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(mid, params=chunk)
        changed |= bool(params)
        cursor = int(have.tags.get(T_CURSOR) or 0)
        new_cursor = self._send_points(rid, mid, cursor, keys)
        changed |= new_cursor != cursor
        arts = self.meta.artifacts(rid)
        manifest = _manifest_hash(arts)
        if manifest != have.tags.get(T_ARTIFACTS):
            self.upload(mid, arts)
            self.summary["artifacts"] += len(arts)
            changed = True
        tags = self._tags(row, user_tags, keys, truncated)
        tags.update({T_CURSOR: str(new_cursor), T_ARTIFACTS: manifest})
        if keys.tag_value():
            tags[T_RENAMED] = keys.tag_value()
        if len(truncated) != n_trunc:
            tags[T_TRUNCATED] = json.dumps(truncated, sort_keys=True)[:MAX_TAG_VALUE]
        send = [RunTag(k, v) for k, v in tags.items() if have.tags.get(k) != v]
        for chunk in _chunks(send, PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(mid, tags=chunk)
        changed |= any(t.key not in (T_CURSOR, T_ARTIFACTS) for t in send)
        status = TO_MLFLOW.get(row["status"], "FAILED")
        end = millis(row["end_time"] or row["start_time"]) if row["status"] != "running" else None
        if status != mlr.info.status or (end is not None and end != mlr.info.end_time):
            if status == "RUNNING":
                self.client.update_run(mid, status="RUNNING")
            else:
                self.client.set_terminated(mid, status, end_time=end)
            changed = True
        if row["name"] != mlr.info.run_name:
            self.client.update_run(mid, name=row["name"])
            changed = True
        return changed

    def _send_points(self, rid: str, mid: str, cursor: int, keys: KeyMap) -> int:
        """Every metric point of run *rid* after metrics.id *cursor*, in batches; returns the new cursor."""
        import sqlalchemy as sa
        from mlflow.entities import Metric

        from ..store import schema as S

        m = S.metrics
        while True:
            with self.meta.read() as conn:
                rows = conn.execute(sa.select(m.c.id, m.c.key, m.c.step, m.c.value, m.c.timestamp)
                                    .where(m.c.run_id == rid, m.c.id > cursor).order_by(m.c.id)
                                    .limit(METRICS_PER_BATCH)).all()
            if not rows:
                return cursor
            batch = [Metric(keys("metrics", k), math.nan if v is None else float(v), millis(t), int(s))
                     for _id, k, s, v, t in rows]
            self.client.log_batch(mid, metrics=batch)
            cursor = rows[-1][0]
            self.summary["metric_points"] += len(rows)

    def upload(self, mid: str, artifacts: list[dict], under: str | None = None, extra=None) -> None:
        """Copy blobs into a folder laid out as their recorded paths, then log the folder to run *mid*."""
        if not artifacts and extra is None:
            return
        with tempfile.TemporaryDirectory(prefix="mlops-mlflow-") as tmp:
            for a in artifacts:
                rel = safe_relpath(a["path"])
                if rel is None:
                    warnings.warn(f"mlops: artifact path {a['path']!r} leaves the run's folder; not exported",
                                  RuntimeWarning, stacklevel=2)
                    continue
                dest = Path(tmp, rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.store.blobs.copy_to(a["digest"], dest)
            if extra is not None:
                extra(Path(tmp))
            self.client.log_artifacts(mid, tmp, artifact_path=under)


def _better(a, b) -> bool:
    """Of two MLflow runs claiming the same run of ours: the active, complete one."""
    def rank(r):
        return (r.info.lifecycle_stage == "active", r.data.tags.get(T_EXPORT) == "complete", r.info.start_time or 0)

    return rank(a) > rank(b)


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _cut(value: str, limit: int, label: str, truncated: dict) -> str:
    if len(value) > limit:
        truncated[label] = len(value)
        return value[:limit]
    return value


def _manifest_hash(artifacts: list[dict]) -> str:
    text = "\n".join(f"{a['path']}\t{a['digest']}" for a in sorted(artifacts, key=lambda a: a["path"]))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
