"""MLflow export and import: runs, metric histories, artifacts and registered models, both ways.

    export_mlflow("sqlite:///mlflow.db")          # every run and model version of the project
    export_mlflow("sqlite:///mlflow.db", ["baseline"], experiment="churn")
    import_mlflow("sqlite:///other/mlflow.db")    # every MLflow run not imported before

Export writes each run (name, status, start and end times, params as text, tags, every metric
point with its step and timestamp, the files of the blob store under their recorded paths, parent
runs through ``mlflow.parentRunId``) into an MLflow experiment, and each model version into
MLflow's registry with its aliases. An exported run carries ``mlops.run_id``, a model version
``mlops.model_version`` and ``mlops.digest``: exporting again creates nothing twice, but sends
what changed since (new runs, new metric points, a run that ended, moved aliases).

Import brings MLflow runs in through the same tables our own runs use, each run in one
transaction, with ``mlflow.run_id`` recorded so that importing again skips it.

MLflow is an optional extra, imported only here and only when called.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import posixpath
import re
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator

from ..exceptions import BadInput, MlopsError, NotFound

# Tags an exported MLflow run carries so that the next export knows what it already holds.
T_RUN_ID = "mlops.run_id"  # our run id
T_EXPORT = "mlops.export"  # incomplete until every part of the run is written, then complete
T_CURSOR = "mlops.metrics_cursor"  # the last metrics.id sent
T_ARTIFACTS = "mlops.artifacts"  # hash of the artifact manifest sent
T_RENAMED = "mlops.renamed"  # JSON {kind: {mlflow key: our key}} for keys MLflow does not accept
T_TRUNCATED = "mlops.truncated"  # JSON {kind.key: original length} of values cut to MLflow's limits
T_STATUS = "mlops.status"  # our status when MLflow has no word for it (crashed)
T_MODEL = "mlops.model_version"  # name@vN on an MLflow model version (and the run holding its files)
T_DIGEST = "mlops.digest"  # the model file's BLAKE3 digest, beside T_MODEL
T_ALIASES = "mlops.aliases"  # on a registered model: the aliases this project set
# Bookkeeping of the export, dropped on import (the run's own tags are kept).
_EXPORT_ONLY = {T_EXPORT, T_CURSOR, T_ARTIFACTS, T_RENAMED, T_STATUS}

# On our side: the MLflow run a run was imported from, and its status then (RUNNING is refreshed).
T_MLFLOW_RUN = "mlflow.run_id"
T_MLFLOW_EXPERIMENT = "mlflow.experiment"
T_IMPORTED_STATUS = "mlflow.imported_status"

TO_MLFLOW = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "killed": "KILLED",
             "crashed": "FAILED"}
FROM_MLFLOW = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished", "FAILED": "failed",
               "KILLED": "killed"}

# MLflow's limits (mlflow.utils.validation), fixed across 2.x and 3.x.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
PARAMS_TAGS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
_KEY_OK = re.compile(r"^[/\w.\- :]+$")
_KEY_BAD_CHAR = re.compile(r"[^/\w.\- :]")

# Where model files go inside the run that holds them, and their file name per flavor.
MODEL_DIR = "models"
MODEL_FILES = {"sklearn": "model.skops", "xgboost": "model.ubj", "lightgbm": "model.txt", "pickle": "model.pkl"}
# Artifacts of ours that are not plain files a user logged: their kind, from their path.
KIND_OF_PATH = {"_mlops/notebook.ipynb": "notebook", "_mlops/requirements-freeze.txt": "freeze",
                "_mlops/environment.json": "environment", "_mlops/git.diff": "gitdiff"}


# -- MLflow itself ------------------------------------------------------------------------------
def _require_mlflow():
    try:
        import mlflow
    except ImportError:
        raise BadInput("MLflow is not installed: pip install 'mlops-jupyter[mlflow]'") from None
    return mlflow


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow (and alembic under it) log every table they create and warn about much; hush them."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    bar = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"  # its download bars; ours is *progress*
    bar_was = os.environ.get(bar)
    if bar_was is None:
        os.environ[bar] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if bar_was is None:
            os.environ.pop(bar, None)


def _first_line(e: BaseException) -> str:
    msg = str(getattr(e, "message", None) or e).strip()
    return (msg.splitlines()[0] if msg else type(e).__name__)[:300]


def _local_path(uri: str) -> str | None:
    """The folder of a ``file:`` URI (or a bare path), None for other schemes."""
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path) or "."
    if "://" not in uri and not re.match(r"^[A-Za-z][\w+.-]*:", uri):
        return uri
    return None


def _sqlite_path(uri: str) -> str | None:
    if not uri.startswith("sqlite:"):
        return None
    path = uri.split("///", 1)[1] if "///" in uri else ""
    if not path or path.startswith(":memory:") or path.startswith("file::memory:"):
        raise BadInput(f"{uri}: an in-memory MLflow store keeps nothing; give a file, e.g. sqlite:///mlflow.db")
    return path.split("?", 1)[0]


def _client(uri: Any, create: bool):
    """An MlflowClient on *uri* (tracking and registry), checked by a first request.

    Args:
        uri: the MLflow tracking URI.
        create: True when writing (a new sqlite file and its folder may be made); reading needs
            the store to exist already, as MLflow would otherwise create an empty one.
    """
    mlflow = _require_mlflow()
    if not isinstance(uri, str) or not uri.strip():
        raise BadInput("give an MLflow tracking URI, e.g. sqlite:///mlflow.db")
    uri = uri.strip()
    db = _sqlite_path(uri)
    folder = _local_path(uri)
    if db is not None:
        if create:
            parent = os.path.dirname(os.path.abspath(db))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as e:
                raise BadInput(f"cannot create {parent} for {uri}: {e.strerror}") from None
        elif not os.path.isfile(db):
            raise BadInput(f"no MLflow database at {db} ({uri})")
    elif folder is not None and not create and not os.path.isdir(folder):
        raise BadInput(f"no MLflow file store at {folder} ({uri})")
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as e:
        if "MLFLOW_ALLOW_FILE_STORE" in str(e):
            raise BadInput(f"MLflow {mlflow.__version__} refuses file stores ({uri}) unless "
                           "MLFLOW_ALLOW_FILE_STORE=true is set (its file store is in maintenance mode); set it, "
                           "or use sqlite:///mlflow.db") from None
        raise BadInput(f"cannot use the MLflow tracking store {uri}: {_first_line(e)}") from None
    return client


def _not_found(e: Exception) -> bool:
    return getattr(e, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def _pages(call: Callable, **kw) -> Iterator:
    """Every item of a paged MLflow search."""
    token = None
    while True:
        page = call(page_token=token, **kw)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _ms(t: float | None) -> int | None:
    return None if t is None else int(round(t * 1000))


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _wrap(progress: Callable | None, items: list) -> Iterable:
    return progress(items) if progress is not None else items


# -- keys and values MLflow accepts ----------------------------------------------------------------
def _valid_key(key: str) -> bool:
    if not key or len(key) > MAX_KEY or not _KEY_OK.match(key):
        return False
    norm = posixpath.normpath(key)
    return norm == key and norm != "." and not norm.startswith("..") and not norm.startswith("/")


def _sanitize(key: str) -> str:
    parts = [p for p in _KEY_BAD_CHAR.sub("_", key).split("/") if p not in ("", ".")]
    out = "/".join("__" if p == ".." else p for p in parts)[:MAX_KEY].rstrip("/")
    return out if _valid_key(out) else "_"


class _KeyMap:
    """Our param, metric and tag names as MLflow accepts them, the same from one export to the next.

    A name MLflow refuses (``acc@5``, ``loss (val)``) becomes a similar one (``acc_5``), made unique
    against every name the run uses; the renames are kept in the run's ``mlops.renamed`` tag, read
    back by the next export and by an import."""

    KINDS = ("params", "metrics", "tags")

    def __init__(self, renamed: dict | None = None, taken: dict[str, Iterable[str]] | None = None):
        renamed = renamed if isinstance(renamed, dict) else {}
        self.renamed = {k: dict(renamed.get(k) or {}) for k in self.KINDS}
        self.rev = {k: {orig: m for m, orig in self.renamed[k].items()} for k in self.KINDS}
        self.taken = {k: {x for x in (taken or {}).get(k, ()) if _valid_key(x)} | set(self.renamed[k])
                      for k in self.KINDS}
        self.changed = False

    def __call__(self, kind: str, key: str) -> str:
        if key in self.rev[kind]:
            return self.rev[kind][key]
        if _valid_key(key):
            return key
        base = cand = _sanitize(key)
        i = 2
        while cand in self.taken[kind]:
            suffix = f"_{i}"
            cand = base[:MAX_KEY - len(suffix)] + suffix
            i += 1
        self.taken[kind].add(cand)
        self.renamed[kind][cand] = key
        self.rev[kind][key] = cand
        self.changed = True
        return cand

    def tag_value(self) -> str | None:
        data = {k: v for k, v in self.renamed.items() if v}
        return json.dumps(data, sort_keys=True)[:MAX_TAG_VALUE] if data else None


def _cut(value: str, limit: int, label: str, truncated: dict) -> str:
    if len(value) > limit:
        truncated[label] = len(value)
        return value[:limit]
    return value


def _safe_relpath(path: str) -> str | None:
    """A recorded artifact path as a relative path inside a folder, None if it would leave it."""
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    return p.as_posix()


def _manifest_hash(artifacts: list[dict]) -> str:
    text = "\n".join(f"{a['path']}\t{a['digest']}" for a in sorted(artifacts, key=lambda a: a["path"]))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _parents_first(rows: list[dict], id_of: Callable, parent_of: Callable, start_of: Callable) -> list[dict]:
    """Rows ordered so that a parent comes before its children (then by start time)."""
    by_id = {id_of(r): r for r in rows}
    depth: dict[str, int] = {}

    def depth_of(rid: str) -> int:
        seen = []
        cur = rid
        while cur in by_id and cur not in depth and cur not in seen:
            seen.append(cur)
            cur = parent_of(by_id[cur])
        d = depth.get(cur, -1) if cur in by_id else -1
        for rid_ in reversed(seen):
            d += 1
            depth[rid_] = d
        return depth[rid]

    return sorted(rows, key=lambda r: (depth_of(id_of(r)), start_of(r) or 0))


# -- export ------------------------------------------------------------------------------------------
def export_mlflow(to: str, runs: list[str] | None = None, experiment: str | None = None, models: bool = True,
                  progress: Callable[[Iterable], Iterable] | None = None) -> dict:
    """Write runs and registered models of the project into an MLflow tracking store.

    Each run becomes an MLflow run of *experiment* with its name, status, start and end times,
    params (as text; values over MLflow's 6000 characters are cut and listed in the
    ``mlops.truncated`` tag), tags, every metric point (step, value, timestamp), its files from
    the blob store under their recorded paths, and its parent (``mlflow.parentRunId``; a run's
    parents are exported with it). Each model version becomes an MLflow model version whose
    files (an MLflow-loadable ``MLmodel`` for scikit-learn) are logged to the exported run that
    registered it, or to a run of its own; aliases follow.

    Exporting again creates nothing twice: runs are found by their ``mlops.run_id`` tag and only
    what changed is sent (new metric points, a new status, new params and tags, changed files);
    model versions are found by their ``mlops.model_version`` and ``mlops.digest`` tags; aliases
    are moved (or removed) to match the project.

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

    _require_mlflow()
    store = open_store()
    if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
        raise BadInput(f"an MLflow experiment name must be a non-empty string, got {experiment!r:.60}")
    store.writer.flush()  # points still queued in this process belong in the export
    store.meta.reap_crashed()
    selected = _runs_to_export(store, runs)
    with _quiet():
        client = _client(to, create=True)
        exp_name = (experiment or store.settings.root.name or "mlops").strip()
        exp_id = _export_experiment(client, to, exp_name)
        exporter = _Exporter(client, store, exp_id)
        exporter.summary["experiment"] = exp_name
        try:
            exporter.scan()
            for row in _wrap(progress, selected):
                exporter.export_run(row)
            if models:
                exporter.export_models(None if not runs else {r["run_id"] for r in selected}, progress)
        except MlopsError:
            raise
        except Exception as e:  # MLflow failing between runs (searching, the registry): one line too
            raise MlopsError(f"exporting to MLflow {to} failed: {_first_line(e)}") from e
    return exporter.summary


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
    return _parents_first(rows, lambda r: r["run_id"], lambda r: r["parent_id"], lambda r: r["start_time"])


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
        raise BadInput(f"cannot create MLflow experiment {name!r} at {uri}: {_first_line(e)}") from None


def _artifact_location(uri: str, name: str) -> str | None:
    """Artifacts of a new experiment in a sqlite store go beside the database file.

    MLflow's own default would be ``./mlruns`` under whatever folder the export runs in, which
    ties the store to that folder; next to the database, the two travel together. Other stores
    (a file store, a tracking server) decide for themselves."""
    db = _sqlite_path(uri)
    if db is None:
        return None
    folder = re.sub(r"[^\w.-]", "_", name) or "experiment"
    return (Path(db).resolve().parent / "mlartifacts" / folder).as_uri()


class _Exporter:
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

        for r in _pages(self.client.search_runs, experiment_ids=[self.experiment_id], filter_string="",
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
                raise MlopsError(f"exporting run {row['name']!r} ({rid[:8]}) to MLflow failed: {_first_line(e)}") \
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

    def _keys(self, row: dict, params: dict, user_tags: dict, renamed: dict | None = None, have=None) -> _KeyMap:
        """The run's key map: every name ours or MLflow's run already uses is taken."""
        rid = row["run_id"]
        taken = {"params": list(params), "metrics": list(self.meta.latest_metrics([rid])[rid]),
                 "tags": [*user_tags, *self._system_tags(row)]}
        if have is not None:
            for kind, theirs in (("params", have.params), ("metrics", have.metrics), ("tags", have.tags)):
                taken[kind] += list(theirs)
        return _KeyMap(renamed, taken)

    def _tags(self, row: dict, user: dict, keys: _KeyMap, truncated: dict) -> dict[str, str]:
        out = {}
        for k, v in user.items():
            if k in ("mlflow.runName", "mlflow.parentRunId") or k in _EXPORT_ONLY:
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
        run = self.client.create_run(self.experiment_id, start_time=_ms(row["start_time"]), run_name=row["name"],
                                     tags={**first, T_RUN_ID: rid, T_EXPORT: "incomplete"})
        mid = run.info.run_id
        try:
            plist = [Param(keys("params", k), _cut(v, MAX_PARAM_VALUE, f"params.{keys('params', k)}", truncated))
                     for k, v in params.items()]
            for chunk in _chunks(plist, PARAMS_TAGS_PER_BATCH):
                self.client.log_batch(mid, params=chunk)
            cursor = self._send_points(rid, mid, 0, keys)
            arts = self.meta.artifacts(rid)
            self._upload(mid, arts)
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
                                           end_time=_ms(row["end_time"] or row["start_time"]))
            self.client.set_tag(mid, T_EXPORT, "complete")  # last: the run is whole in MLflow now
        except BaseException as e:
            self._discard(mid)
            if isinstance(e, Exception):
                raise MlopsError(f"exporting run {row['name']!r} ({rid[:8]}) to MLflow failed: {_first_line(e)}") \
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
                warnings.warn(f"mlops: could not remove half-exported MLflow run {mid}: {_first_line(e)}",
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
            self._upload(mid, arts)
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
        end = _ms(row["end_time"] or row["start_time"]) if row["status"] != "running" else None
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

    def _send_points(self, rid: str, mid: str, cursor: int, keys: _KeyMap) -> int:
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
            batch = [Metric(keys("metrics", k), math.nan if v is None else float(v), _ms(t), int(s))
                     for _id, k, s, v, t in rows]
            self.client.log_batch(mid, metrics=batch)
            cursor = rows[-1][0]
            self.summary["metric_points"] += len(rows)

    def _upload(self, mid: str, artifacts: list[dict], under: str | None = None, extra=None) -> None:
        """Copy blobs into a folder laid out as their recorded paths, then log the folder to run *mid*."""
        if not artifacts and extra is None:
            return
        with tempfile.TemporaryDirectory(prefix="mlops-mlflow-") as tmp:
            for a in artifacts:
                rel = _safe_relpath(a["path"])
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

    # -- model versions and aliases ------------------------------------------------------------
    def export_models(self, run_ids: set[str] | None, progress=None) -> None:
        import sqlalchemy as sa

        from ..models.registry import _row
        from ..store import schema as S

        mv, ma = S.model_versions, S.model_aliases
        with self.meta.read() as conn:
            q = sa.select(mv).order_by(mv.c.name, mv.c.version)
            if run_ids is not None:
                q = q.where(mv.c.run_id.in_(sorted(run_ids)))
            versions = [_row(r) for r in conn.execute(q)]
            aliases = conn.execute(sa.select(ma.c.name, ma.c.alias, ma.c.version)).all()
            digests = {(r.name, r.version): r.digest for r in conn.execute(sa.select(mv.c.name, mv.c.version,
                                                                                      mv.c.digest))}
            described = dict(conn.execute(sa.select(S.models.c.name, S.models.c.description)).all())
        names = sorted({v.name for v in versions})
        state = {name: self._registered(name, described.get(name)) for name in names}
        for v in _wrap(progress, versions):
            known = state[v.name]
            key = (f"{v.name}@v{v.version}", v.digest)
            if key in known:
                self.summary["model_versions_skipped"] += 1
                continue
            known[key] = self._export_version(v)
            self.summary["model_versions"] += 1
        for name in names:
            ours = {a.alias: a.version for a in aliases if a.name == name}
            want = {alias: state[name].get((f"{name}@v{version}", digests.get((name, version))))
                    for alias, version in ours.items()}
            self._sync_aliases(name, {a: v for a, v in want.items() if v is not None}, set(ours))

    def _registered(self, name: str, description: str | None) -> dict[tuple, str]:
        """Make sure registered model *name* exists; its versions exported before, by (name@vN, digest)."""
        try:
            self.client.get_registered_model(name)
        except Exception as e:
            if not _not_found(e):
                raise MlopsError(f"MLflow registry: {_first_line(e)}") from e
            self.client.create_registered_model(name, tags={"mlops.model": "true"}, description=description)
        found = {}
        for mv in _pages(self.client.search_model_versions, filter_string=f"name = '{name}'", max_results=1000):
            if T_MODEL in mv.tags:
                found[(mv.tags[T_MODEL], mv.tags.get(T_DIGEST))] = str(mv.version)
        return found

    def _export_version(self, v) -> str:
        ref = f"{v.name}@v{v.version}"
        mid = self.mlflow_id.get(v.run_id) if v.run_id else None
        if mid is None:
            mid = self._model_run(v)
        path = f"{MODEL_DIR}/{v.name}/v{v.version}"
        try:
            self._upload(mid, [], under=path, extra=lambda folder: self._model_files(v, folder, mid, path))
            source = f"{self.artifact_uri[mid].rstrip('/')}/{path}"
            tags = {T_MODEL: ref, T_DIGEST: v.digest, "mlops.flavor": v.flavor,
                    "mlops.class": v.model_class or "", "mlops.library": f"{v.library or ''} {v.library_version or ''}",
                    "mlops.metrics": json.dumps(v.metrics, sort_keys=True, default=str),
                    "mlops.signature": json.dumps(v.signature, default=str) if v.signature else "",
                    "mlops.datasets": json.dumps(v.datasets, default=str)}
            tags = {k: val for k, val in tags.items() if val}
            metrics = ", ".join(f"{k}={x:.4g}" if isinstance(x, float) else f"{k}={x}"
                                for k, x in sorted(v.metrics.items()))
            desc = (f"{v.message}\n\n" if v.message else "") + f"{ref} in mlops-jupyter" + (
                f" (run {v.run_id[:8]})" if v.run_id else "") + (f"; metrics: {metrics}" if metrics else "")
            created = self.client.create_model_version(v.name, source, run_id=mid, tags=tags, description=desc)
        except Exception as e:
            raise MlopsError(f"exporting model {ref} to MLflow failed: {_first_line(e)}") from e
        return str(created.version)

    def _model_run(self, v) -> str:
        """The MLflow run holding the files of a version no exported run registered."""
        ref = f"{v.name}@v{v.version}"
        found = self.model_runs.get((ref, v.digest))
        if found is not None:
            self.artifact_uri[found.info.run_id] = found.info.artifact_uri
            return found.info.run_id
        tags = {T_MODEL: ref, T_DIGEST: v.digest}
        if v.username:
            tags["mlflow.user"] = v.username
        run = self.client.create_run(self.experiment_id, start_time=_ms(v.created), run_name=f"{v.name}-v{v.version}",
                                     tags=tags)
        self.client.set_terminated(run.info.run_id, "FINISHED", end_time=_ms(v.created))
        self.model_runs[(ref, v.digest)] = run
        self.artifact_uri[run.info.run_id] = run.info.artifact_uri
        return run.info.run_id

    def _model_files(self, v, folder: Path, mid: str, path: str) -> None:
        fname = MODEL_FILES.get(v.flavor, "model.bin")
        self.store.blobs.copy_to(v.digest, folder / fname)
        meta = dict(name=v.name, version=v.version, created=v.created, run_id=v.run_id, username=v.username,
                    flavor=v.flavor, library=v.library, library_version=v.library_version,
                    model_class=v.model_class, file=fname, digest=v.digest, size=v.size, signature=v.signature,
                    metrics=v.metrics, datasets=v.datasets, trusted=v.trusted, extra=v.extra, message=v.message)
        (folder / "mlops_model.json").write_text(json.dumps(meta, indent=2, default=str))
        if v.flavor == "sklearn":
            _write_mlmodel(v, folder, fname, mid, path)

    def _sync_aliases(self, name: str, want: dict[str, str], ours: set[str]) -> None:
        """Point MLflow's aliases of *name* where ours point (*want*: alias -> MLflow version); remove
        those this project set before and has dropped since (*ours*: every alias the model has here)."""
        rm = self.client.get_registered_model(name)
        have = {a: str(ver) for a, ver in (rm.aliases or {}).items()}
        try:
            ours_before = set(json.loads(rm.tags.get(T_ALIASES) or "[]"))
        except ValueError:
            ours_before = set()
        for alias, version in sorted(want.items()):
            if have.get(alias) != version:
                self.client.set_registered_model_alias(name, alias, version)
                self.summary["aliases"] += 1
        for alias in sorted(ours_before - ours):
            if alias in have:
                self.client.delete_registered_model_alias(name, alias)
                self.summary["aliases"] += 1
        mine = json.dumps(sorted(set(want) | (ours_before & ours)))
        if rm.tags.get(T_ALIASES) != mine:
            self.client.set_registered_model_tag(name, T_ALIASES, mine)


def _better(a, b) -> bool:
    """Of two MLflow runs claiming the same run of ours: the active, complete one."""
    def rank(r):
        return (r.info.lifecycle_stage == "active", r.data.tags.get(T_EXPORT) == "complete", r.info.start_time or 0)

    return rank(a) > rank(b)


_MLFLOW_TYPES = {"float64": "double", "float32": "float", "int64": "long", "int32": "integer", "bool": "boolean",
                 "object": "string", "string": "string", "str": "string", "datetime64[ns]": "datetime"}


def _mlflow_signature(sig: dict | None):
    """Our signature as MLflow's, when every column type has an MLflow equivalent (else None)."""
    if not sig or "type" not in sig:
        return None
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    if sig["type"] == "dataframe":
        cols = []
        for c in sig.get("columns", []):
            t = _MLFLOW_TYPES.get(str(c.get("dtype")))
            if t is None:
                return None
            cols.append(ColSpec(t, c["name"]))
        return ModelSignature(inputs=Schema(cols)) if cols else None
    import numpy as np

    try:
        dtype = np.dtype(sig.get("dtype"))
    except TypeError:
        return None
    shape = tuple(-1 if s is None else int(s) for s in sig.get("shape") or [])
    return ModelSignature(inputs=Schema([TensorSpec(dtype, shape)]))


def _write_mlmodel(v, folder: Path, fname: str, mid: str, path: str) -> None:
    """An ``MLmodel`` around the skops file as it is, so MLflow can load the version (mlflow.sklearn).

    Written only when this MLflow reads skops files (3.x); the skops file is ours byte for byte,
    loaded by MLflow with the types we recorded as trusted when it was saved."""
    import platform

    import mlflow
    from mlflow import pyfunc
    from mlflow.models import Model

    try:
        import mlflow.sklearn as mlflow_sklearn
    except ImportError:  # pragma: no cover - scikit-learn missing, yet a sklearn model: leave it
        return
    if "skops" not in getattr(mlflow_sklearn, "SUPPORTED_SERIALIZATION_FORMATS", ()):
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        skops_version = version("skops")
    except PackageNotFoundError:  # pragma: no cover
        skops_version = None
    model = Model(artifact_path=path, run_id=mid)
    signature = _mlflow_signature(v.signature)
    if signature is not None:
        model.signature = signature
    pyfunc.add_to_model(model, loader_module="mlflow.sklearn", model_path=fname, python_env="python_env.yaml")
    model.add_flavor("sklearn", pickled_model=fname, sklearn_version=v.library_version,
                     serialization_format="skops", code=None, skops_trusted_types=list(v.trusted or []))
    model.save(str(folder / "MLmodel"))
    reqs = [f"mlflow=={mlflow.__version__}"]
    if v.library_version:
        reqs.append(f"scikit-learn=={v.library_version}")
    if skops_version:
        reqs.append(f"skops=={skops_version}")
    (folder / "requirements.txt").write_text("\n".join(reqs) + "\n")
    (folder / "python_env.yaml").write_text(f"python: {platform.python_version()}\nbuild_dependencies:\n- pip\n"
                                            "dependencies:\n- -r requirements.txt\n")


# -- import ------------------------------------------------------------------------------------------
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

    _require_mlflow()
    store = open_store()
    with _quiet():
        client = _client(from_uri, create=False)
        try:
            exps = _import_experiments(client, from_uri, experiments)
            selected = _import_selection(client, from_uri, exps, runs)
            importer = _Importer(client, from_uri, store, exps)
            importer.summary["experiments"] = len({r.info.experiment_id for r in selected}) if runs else len(exps)
            for r in _wrap(progress, selected):
                importer.import_run(r)
        except MlopsError:
            raise
        except Exception as e:  # MLflow failing while listing experiments or runs: one line too
            raise MlopsError(f"importing from MLflow {from_uri} failed: {_first_line(e)}") from e
    return importer.summary


def _import_experiments(client, uri: str, names: list[str] | None) -> dict[str, str]:
    """experiment id -> name, of the experiments named (every active one when none are)."""
    from mlflow.entities import ViewType

    if isinstance(names, str):
        names = [names]
    if not names:
        return {e.experiment_id: e.name for e in _pages(client.search_experiments, view_type=ViewType.ACTIVE_ONLY,
                                                         max_results=1000)}
    out = {}
    for name in names:
        exp = client.get_experiment_by_name(str(name))
        if exp is None and str(name).isdigit():
            try:
                exp = client.get_experiment(str(name))
            except Exception as e:
                if not _not_found(e):
                    raise
        if exp is None or exp.lifecycle_stage != "active":
            have = [e.name for e in _pages(client.search_experiments, max_results=1000)]
            shown = ", ".join(have[:10]) + (", ..." if len(have) > 10 else "")
            raise NotFound(f"no MLflow experiment {name!r} at {uri} (it has: {shown or 'none'})")
        out[exp.experiment_id] = exp.name
    return out


def _import_selection(client, uri: str, exps: dict[str, str], run_ids: list[str] | None) -> list:
    from mlflow.entities import ViewType

    if isinstance(run_ids, str):
        run_ids = [run_ids]
    if not run_ids:
        found = list(_pages(client.search_runs, experiment_ids=list(exps), filter_string="",
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
    return _parents_first(found, lambda r: r.info.run_id, lambda r: r.data.tags.get("mlflow.parentRunId"),
                          lambda r: r.info.start_time)


def _get_run(client, run_id: str):
    try:
        return client.get_run(run_id)
    except Exception as e:
        if _not_found(e) or getattr(e, "error_code", None) == "INVALID_PARAMETER_VALUE":
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
            raise MlopsError(f"importing MLflow run {r.info.run_name or mid!r} ({mid}) failed: {_first_line(e)}") \
                from e
        self.summary["runs_updated" if replace else "runs_imported"] += 1
        self.summary["metric_points"] += n_points
        self.summary["artifacts"] += n_files

    def _write(self, r, replace: str | None) -> tuple[int, int]:
        from ..store import schema as S
        from ..store.metadata import STATUSES
        from ..tracking import capture

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
            params[key] = _param_value(capture.REDACTED if capture.is_secret(key) else text)
        status = tags.get(T_STATUS) if tags.get(T_STATUS) in STATUSES else FROM_MLFLOW.get(r.info.status, "finished")
        our_tags = {}
        for k, v in tags.items():
            if k in _EXPORT_ONLY:
                continue
            key = ours("tags", k)
            our_tags[key] = capture.REDACTED if capture.is_secret(key) else str(v)
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
                self.meta._write_params(conn, our_id, params)
            self.meta._write_tags(conn, our_id, our_tags)
            if points:
                self.meta.write_points(conn, [(p["run_id"], p["key"], p["step"], p["value"], p["timestamp"])
                                              for p in points])
                conn.execute(S.latest_metrics.insert(), latest)
            if arts:
                conn.execute(S.artifacts.insert(), arts)

        self.meta._retrying(work)  # the whole run, or (on any failure) none of it
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

            name = _safe_relpath(lm.name or "") or lm.model_id
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
                    for lm in _pages(search, experiment_ids=list(self.exps), max_results=100):
                        if lm.source_run_id:
                            self.logged_models.setdefault(lm.source_run_id, []).append(lm)
                except Exception as e:  # a tracking server older than its client: runs' own files only
                    warnings.warn(f"mlops: MLflow logged models not listed ({_first_line(e)}); importing the "
                                  "runs' own files", RuntimeWarning, stacklevel=2)
        return self.logged_models
