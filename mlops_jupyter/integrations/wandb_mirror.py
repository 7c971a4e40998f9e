"""Mirror runs, data versions and models to Weights & Biases, without ever blocking a notebook.

The kernel never imports wandb. When a project names a W&B project (``%mlops init --wandb
ENTITY/PROJECT``, ``[wandb] project`` in ``.mlops/config.toml`` or ``MLOPS_WANDB_PROJECT``), each
new run, data version (added outside a run), model version and alias move becomes an item in the
store's ``mirrors`` table, and a background process per project (``python -m
mlops_jupyter.integrations.wandb_mirror``, started on demand, gone when idle) mirrors them: a
running run is followed live from the store (params, tags, metrics with their steps and
timestamps), and when it ends its files, the data versions it used or made and the models it
registered become W&B Artifacts (BLAKE3 digests in their metadata). W&B failing, hanging or having
no network costs the notebook nothing: the item is marked failed with the reason, the user is told
once, and ``mlops wandb sync`` pushes it again later. ``WANDB_MODE`` (``offline``, ``disabled``)
and W&B's other settings are W&B's own: the mirror passes them through.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

from ..exceptions import BadInput, MlopsError
from ..store import schema as S

TARGET = "wandb"
_PROJECT_RE = re.compile(r"^(?:[A-Za-z0-9_.-]{1,64}/)?[A-Za-z0-9_.-]{1,128}$")
STALE = 60.0  # an active item whose owner has been silent this long can be taken over
RETRIES = int(os.environ.get("MLOPS_WANDB_RETRIES", "2"))  # automatic retries of a failed item
BACKOFF = float(os.environ.get("MLOPS_WANDB_BACKOFF", "60"))
POLL = float(os.environ.get("MLOPS_WANDB_POLL", "1.0"))


def _timeout() -> float:
    return float(os.environ.get("MLOPS_WANDB_TIMEOUT", "90"))


def _idle() -> float:
    return float(os.environ.get("MLOPS_WANDB_IDLE", "30"))


# -- configuration --------------------------------------------------------------------------------------------
def check_project(value: str) -> str:
    value = str(value).strip()
    if not _PROJECT_RE.match(value):
        raise BadInput(f"W&B project must be PROJECT or ENTITY/PROJECT (letters, digits, - _ .), got {value!r:.80}")
    return value


def target(cfg) -> str | None:
    """The W&B project runs are mirrored to (``ENTITY/PROJECT`` or ``PROJECT``), or None."""
    value = os.environ.get("MLOPS_WANDB_PROJECT")
    if value is None:
        section = (cfg.extra or {}).get("wandb") if cfg is not None else None
        value = section.get("project") if isinstance(section, dict) else None
    return value or None


def enabled(cfg) -> bool:
    return target(cfg) is not None and os.environ.get("WANDB_MODE", "").lower() != "disabled"


def _split(project: str) -> tuple[str | None, str]:
    entity, _, name = project.rpartition("/")
    return entity or None, name


# -- the queue: items in the store ----------------------------------------------------------------------------
def enqueue(conn, kind: str, key: Any) -> None:
    """Add an item inside the caller's transaction (a no-op when it is already queued)."""
    m = S.mirrors
    key = str(key)
    if conn.execute(sa.select(m.c.id).where(m.c.target == TARGET, m.c.kind == kind, m.c.key == key)).first():
        return
    now = time.time()
    conn.execute(m.insert().values(target=TARGET, kind=kind, key=key, status="pending", cursor=0, attempts=0,
                                   reported=False, created=now, updated=now))


_warned: set[str] = set()


def notify(store, kind: str, key: Any, conn=None) -> None:
    """Queue an item for the mirror when the project mirrors to W&B, and make sure the mirror runs.

    With *conn* the item is added in that transaction and the mirror is started by :func:`kick`
    after it commits; without, here and now."""
    if not enabled(store.settings):
        return
    if conn is not None:
        enqueue(conn, kind, key)
        return
    store.meta._retrying(lambda c: enqueue(c, kind, key))
    kick(store)


def kick(store) -> None:
    """Start the project's mirror process unless one is running; tell the user about failures.

    Never raises: the mirror is a convenience, the notebook's work is not to be broken by it."""
    if not enabled(store.settings):
        return
    try:
        _kick(store)
    except Exception as e:
        if "kick" not in _warned:
            _warned.add("kick")
            _say(f"mlops: could not start the W&B mirror ({type(e).__name__}: {e}); everything is kept here and "
                 "`mlops wandb sync` pushes it later")


def _kick(store) -> None:
    report_failures(store)
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        if "missing" not in _warned:
            _warned.add("missing")
            _say(f"mlops: runs are to be mirrored to W&B ({target(store.settings)}) but wandb is not installed "
                 "(pip install 'mlops-jupyter[wandb]'); everything is kept here and `mlops wandb sync` pushes it "
                 "later")
        return
    ensure_daemon(store.settings)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


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
        store.meta._retrying(lambda c: c.execute(m.update().where(m.c.id.in_(ids)).values(reported=True)))
    except MlopsError:
        return
    for r in rows[:5]:
        what = f"run {r.key[:8]}" if r.kind == "run" else f"{r.kind} {r.key}"
        _say(f"mlops: W&B mirror of {what} failed: {r.error}; the local store has everything "
             f"(`mlops wandb sync` pushes it again)")
    if len(rows) > 5:
        _say(f"mlops: ... and {len(rows) - 5} more W&B mirror failures (`mlops wandb status`)")


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


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claimable(store, kinds: tuple[str, ...] | None = None, keys: list[str] | None = None,
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


def _claim(store, row) -> bool:
    m = S.mirrors
    now = time.time()

    def work(conn):
        res = conn.execute(m.update().where(m.c.id == row.id, m.c.status == row.status, m.c.updated == row.updated)
                           .values(status="active", owner=_owner(), heartbeat=now, updated=now,
                                   attempts=m.c.attempts + 1, error=None, reported=False))
        return res.rowcount == 1

    return bool(store.meta._retrying(work))


def _set(store, item_id: int, **values) -> None:
    m = S.mirrors
    now = time.time()
    values.setdefault("updated", now)
    values.setdefault("heartbeat", now)
    store.meta._retrying(lambda c: c.execute(m.update().where(m.c.id == item_id).values(**values)))


# -- what goes to W&B -----------------------------------------------------------------------------------------
def _artifact_name(text: str) -> str:
    """W&B artifact names: letters, digits, dashes, underscores, dots."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:120] or "item"


_MODEL_FILE = {"sklearn": "model.skops", "xgboost": "model.ubj", "lightgbm": "model.txt", "pickle": "model.pkl"}


def _upload_limit(cfg) -> int:
    section = (cfg.extra or {}).get("wandb") or {}
    mb = os.environ.get("MLOPS_WANDB_UPLOAD_LIMIT_MB", section.get("upload_limit_mb", 512))
    return int(float(mb) * 1024 * 1024)


class Mirror:
    """Mirrors items of one store to W&B; one W&B run per thread at a time, W&B calls watched."""

    def __init__(self, store, project: str | None = None, out: Callable[[str], None] | None = None):
        self.store = store
        self.project = project or target(store.settings)
        if not self.project:
            raise BadInput("no W&B project: run `mlops init --wandb ENTITY/PROJECT` or set MLOPS_WANDB_PROJECT")
        self.entity, self.project_name = _split(self.project)
        self.out = out or (lambda text: None)
        self.calls: dict[int, tuple[str, float]] = {}  # thread id -> (W&B call, started) while in one

    # -- watched W&B calls ---------------------------------------------------------------------------------
    def _call(self, what: str, fn, *args, **kwargs):
        tid = threading.get_ident()
        self.calls[tid] = (what, time.time())
        try:
            return fn(*args, **kwargs)
        finally:
            self.calls.pop(tid, None)

    def _init(self, run_id: str, name: str, job_type: str, config: dict | None = None, tags=None, group=None,
              notes=None, program=None, git: dict | None = None):
        import wandb

        settings: dict[str, Any] = dict(console="off", x_disable_stats=True, x_disable_meta=True, save_code=False,
                                        x_save_requirements=False, silent=True, init_timeout=_timeout(),
                                        finish_timeout=_timeout(), disable_git=True)
        if program:
            settings["program"] = program
        if git and git.get("commit"):
            settings["git_commit"] = git["commit"]
            if git.get("remote"):
                settings["git_remote_url"] = git["remote"]
        kwargs: dict[str, Any] = {}
        if not os.environ.get("WANDB_DIR"):
            kwargs["dir"] = str(self.store.settings.root)
        return self._call("init", wandb.init, id=run_id, name=name, project=self.project_name, entity=self.entity,
                          job_type=job_type, config=config or {}, tags=tags or None, group=group, notes=notes,
                          resume="allow", reinit="create_new", settings=wandb.Settings(**settings), **kwargs)

    def _finish(self, wb, exit_code: int = 0) -> None:
        self._call("finish", wb.finish, exit_code=exit_code)

    @contextmanager
    def _finishing(self, wb):
        """Finish *wb* when the block ends (exit code 1 if it raised; ``state["exit_code"]`` else)."""
        state = {"exit_code": 0}
        try:
            yield state
        except BaseException:
            try:
                self._finish(wb, exit_code=1)
            except Exception:
                pass
            raise
        self._finish(wb, exit_code=state["exit_code"])

    # -- items -----------------------------------------------------------------------------------------------
    def process(self, row, follow: bool = True) -> None:
        """Mirror one claimed item; marks it done, or failed with the reason (never raises)."""
        try:
            if row.kind == "run":
                remote = self._run(row, follow)
            elif row.kind == "data":
                remote = self._standalone_data(int(row.key))
            elif row.kind == "model":
                remote = self._standalone_model(int(row.key))
            elif row.kind == "alias":
                remote = self._alias(int(row.key))
            else:
                raise MlopsError(f"unknown mirror item kind {row.kind!r}")
            _set(self.store, row.id, status="done", remote=remote, error=None, owner=None)
        except Exception as e:  # W&B's errors are many and not ours to enumerate: record, tell, go on
            msg = f"{type(e).__name__}: {e}".strip().splitlines()[0][:500] if str(e) else type(e).__name__
            try:
                _set(self.store, row.id, status="failed", error=msg, owner=None)
            except MlopsError:
                pass
            self.out(f"W&B mirror of {row.kind} {row.key[:8]} failed: {msg}")

    def _run(self, row, follow: bool) -> str:
        meta = self.store.meta
        run_id = row.key
        rec = meta.run_row(run_id)
        params = meta.params_of([run_id]).get(run_id, {})
        tags = meta.tags_of([run_id]).get(run_id, {})
        env = json.loads(rec.get("env") or "{}") if rec.get("env") else {}
        group = None
        if rec.get("parent_id"):
            try:
                parent = meta.run_row(rec["parent_id"])
                group = f"{parent['name']}-{rec['parent_id'][:8]}"
            except MlopsError:
                group = rec["parent_id"][:8]
        config = dict(params)
        config["mlops"] = {"run_id": run_id, "notebook": rec.get("notebook"), "user": rec.get("username"),
                           "host": rec.get("host"), "source": rec.get("source")}
        wb = self._init(run_id, rec["name"], job_type=rec.get("source") or "notebook", config=config,
                        tags=_tags(tags), group=group, notes=rec.get("notebook"), program=rec.get("notebook"),
                        git=env.get("git") if isinstance(env, dict) else None)
        remote = f"{self.project}/{run_id}"
        _set(self.store, row.id, remote=remote)
        cursor = int(row.cursor or 0)
        seen_params = dict(params)
        defined: set[str] = set()
        last_beat = time.time()
        with self._finishing(wb) as state:
            while True:
                status = meta.run_row(run_id)["status"]
                cursor = self._metrics(wb, run_id, cursor, defined)
                now = time.time()
                if now - last_beat >= 5:
                    _set(self.store, row.id, cursor=cursor)
                    last_beat = now
                if status != "running" or not follow:
                    break
                fresh = meta.params_of([run_id]).get(run_id, {})
                if fresh != seen_params:
                    self._call("config", wb.config.update, fresh, allow_val_change=True)
                    seen_params = fresh
                time.sleep(POLL)
            # the run has ended: everything it wrote is in the store now
            cursor = self._metrics(wb, run_id, cursor, defined)
            _set(self.store, row.id, cursor=cursor)
            final = meta.params_of([run_id]).get(run_id, {})
            if final != seen_params:
                self._call("config", wb.config.update, final, allow_val_change=True)
            latest = meta.latest_metrics([run_id]).get(run_id, {})
            for k, v in latest.items():
                wb.summary[k] = v[0]
            end = meta.run_row(run_id)
            wb.summary["mlops_status"] = end["status"]
            self._run_files(wb, run_id, rec["name"])
            self._run_data(wb, run_id)
            self._run_models(wb, run_id)
            state["exit_code"] = 0 if end["status"] == "finished" else 1
        return remote

    def _metrics(self, wb, run_id: str, cursor: int, defined: set[str]) -> int:
        """Log the run's points after *cursor* (metrics.id) as W&B history rows; returns the new cursor.

        Every metric is charted against our step (``define_metric(key, step_metric="step")``), so
        keys logged with independent steps, in any order, keep their steps; points logged together
        (same step and time) make one row; ``_timestamp`` is the time they were logged."""
        mt = S.metrics
        while True:
            with self.store.meta.read() as conn:
                rows = conn.execute(sa.select(mt.c.id, mt.c.key, mt.c.step, mt.c.value, mt.c.timestamp)
                                    .where(mt.c.run_id == run_id, mt.c.id > cursor).order_by(mt.c.id)
                                    .limit(20000)).all()
            if not rows:
                return cursor
            for r in rows:
                if r.key not in defined:
                    self._call("define_metric", wb.define_metric, r.key, step_metric="step")
                    defined.add(r.key)
            row: dict = {}
            for r in rows:
                if row and (r.step != row["step"] or r.timestamp != row["_timestamp"] or r.key in row):
                    self._call("log", wb.log, row)
                    row = {}
                if not row:
                    row = {"step": int(r.step), "_timestamp": float(r.timestamp)}
                row[r.key] = r.value if r.value is not None else float("nan")
            if row:
                self._call("log", wb.log, row)
            cursor = rows[-1].id

    def _run_files(self, wb, run_id: str, name: str) -> None:
        import wandb

        files = self.store.meta.artifacts(run_id)
        if not files:
            return
        art = wandb.Artifact(_artifact_name(f"run-{name}-{run_id[:8]}"), type="run-files",
                             metadata={"mlops_run_id": run_id,
                                       "files": {f["path"]: {"blake3": f["digest"], "size": f["size"],
                                                             "kind": f["kind"]} for f in files[:1000]}})
        with tempfile.TemporaryDirectory(prefix="mlops-wandb-") as tmp:
            for f in files:
                rel = _safe_rel(f["path"])
                dest = Path(tmp) / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.store.blobs.copy_to(f["digest"], dest)
                art.add_file(str(dest), name=rel)
            self._call("log_artifact", wb.log_artifact, art)

    def _data_artifact(self, v, tmp: str):
        import wandb

        from ..data.api import checkout

        summary = v.summary or {}
        meta = {"blake3": v.digest, "mlops_ref": v.ref, "kind": v.kind, "size": v.size, "files": v.n_files,
                "rows": v.rows, "message": v.message, "source": v.source}
        if summary.get("columns"):
            meta["columns"] = {c: s.get("dtype") for c, s in summary["columns"].items()}
        art = wandb.Artifact(_artifact_name(v.name), type="dataset", description=v.message or None, metadata=meta)
        if v.size <= _upload_limit(self.store.settings):
            dest = Path(tmp) / _artifact_name(f"{v.name}-v{v.version}")
            checkout(v.ref, dest)
            if dest.is_dir():
                art.add_dir(str(dest))
            else:
                art.add_file(str(dest), name=f"{v.name}.parquet" if v.kind == "table" else Path(v.source or v.name).name)
        else:  # too big to upload by default: a reference W&B tracks, the content stays in our store
            art.add_reference(f"mlops://{v.ref}", name=v.name, checksum=False)
        return art

    def _run_data(self, wb, run_id: str) -> None:
        from ..data.catalog import Catalog

        for direction, v in Catalog(self.store.meta).versions_of_run(run_id):
            with tempfile.TemporaryDirectory(prefix="mlops-wandb-") as tmp:
                art = self._data_artifact(v, tmp)
                if direction == "input" and not _offline(wb):
                    self._call("use_artifact", wb.use_artifact, art, aliases=[f"mlops-v{v.version}"])
                else:  # offline runs cannot use artifacts: logged, with the direction in its metadata
                    art.metadata["direction"] = direction
                    self._call("log_artifact", wb.log_artifact, art, aliases=[f"mlops-v{v.version}"])
            self._mark_done("data", v.id)

    def _model_artifact(self, v, tmp: str):
        import wandb

        meta = {"blake3": v.digest, "mlops_ref": v.ref, "flavor": v.flavor, "library": v.library,
                "library_version": v.library_version, "class": v.model_class, "signature": v.signature,
                "metrics": v.metrics, "datasets": v.datasets, "run_id": v.run_id}
        art = wandb.Artifact(_artifact_name(v.name), type="model", description=v.message or None, metadata=meta)
        dest = Path(tmp) / _MODEL_FILE.get(v.flavor, "model.bin")
        self.store.blobs.copy_to(v.digest, dest)
        art.add_file(str(dest))
        card = Path(tmp) / "mlops-model.json"
        card.write_text(json.dumps(meta, indent=2, default=str))
        art.add_file(str(card))
        return art

    def _model_aliases(self, v) -> list[str]:
        return [*sorted(v.aliases), f"mlops-v{v.version}"]

    def _run_models(self, wb, run_id: str) -> None:
        from ..models.registry import Registry

        reg = Registry(self.store)
        mv = S.model_versions
        with self.store.meta.read() as conn:
            refs = [f"{r.name}@v{r.version}" for r in conn.execute(
                sa.select(mv.c.name, mv.c.version).where(mv.c.run_id == run_id).order_by(mv.c.id))]
        for ref in refs:
            v = reg.get(ref)
            with tempfile.TemporaryDirectory(prefix="mlops-wandb-") as tmp:
                self._call("log_artifact", wb.log_artifact, self._model_artifact(v, tmp), aliases=self._model_aliases(v))
            self._mark_done("model", v.id)

    def _mark_done(self, kind: str, key: Any) -> None:
        m = S.mirrors
        now = time.time()
        self.store.meta._retrying(lambda c: c.execute(
            m.update().where(m.c.target == TARGET, m.c.kind == kind, m.c.key == str(key), m.c.status != "active")
            .values(status="done", updated=now, error=None)))

    def _standalone(self, wb_id: str, name: str, job_type: str, log) -> str:
        wb = self._init(wb_id, name, job_type=job_type)
        with self._finishing(wb):
            log(wb)
        return f"{self.project}/{wb_id}"

    def _standalone_data(self, version_id: int) -> str:
        from ..data.catalog import Catalog

        dv = S.dataset_versions
        with self.store.meta.read() as conn:
            r = conn.execute(sa.select(dv.c.name, dv.c.version).where(dv.c.id == version_id)).first()
        v = Catalog(self.store.meta).get(f"{r.name}@v{r.version}")

        def log(wb):
            with tempfile.TemporaryDirectory(prefix="mlops-wandb-") as tmp:
                self._call("log_artifact", wb.log_artifact, self._data_artifact(v, tmp), aliases=[f"mlops-v{v.version}"])

        return self._standalone(f"data-{version_id}-{v.digest[:12]}", f"data {v.ref}", "mlops-data", log)

    def _standalone_model(self, version_id: int) -> str:
        from ..models.registry import Registry

        mv = S.model_versions
        with self.store.meta.read() as conn:
            r = conn.execute(sa.select(mv.c.name, mv.c.version, mv.c.run_id).where(mv.c.id == version_id)).first()
        reg = Registry(self.store)
        v = reg.get(f"{r.name}@v{r.version}")

        def log(wb):
            with tempfile.TemporaryDirectory(prefix="mlops-wandb-") as tmp:
                self._call("log_artifact", wb.log_artifact, self._model_artifact(v, tmp), aliases=self._model_aliases(v))

        return self._standalone(f"model-{version_id}-{v.digest[:12]}", f"register {v.ref}", "mlops-model", log)

    def _alias(self, event_id: int) -> str | None:
        """An alias moved: log the version's model artifact again with the alias (W&B keeps one
        artifact per content, so this moves the alias there)."""
        from ..models.registry import Registry

        ev = S.alias_events
        with self.store.meta.read() as conn:
            e = conn.execute(sa.select(ev).where(ev.c.id == event_id)).first()
        if e is None or e.to_version is None:
            return None  # a deleted alias: W&B artifacts keep theirs until moved (noted in the docs)
        v = Registry(self.store).get(f"{e.name}@v{e.to_version}")

        def log(wb):
            with tempfile.TemporaryDirectory(prefix="mlops-wandb-") as tmp:
                self._call("log_artifact", wb.log_artifact, self._model_artifact(v, tmp),
                           aliases=[e.alias, f"mlops-v{v.version}"])

        return self._standalone(f"alias-{event_id}", f"{e.name}@{e.alias} -> v{e.to_version}", "mlops-alias", log)


def _offline(wb) -> bool:
    return str(getattr(wb.settings, "mode", "")).lower() in ("offline", "dryrun")


def _tags(tags: dict) -> list[str]:
    """Our key=value tags as W&B's labels (at most 64 characters each); ``mlops.*`` stay in config."""
    out = []
    for k, v in sorted(tags.items()):
        if k.startswith("mlops.") or k.startswith("mlflow."):
            continue
        out.append((f"{k}={v}" if v not in ("", None) else k)[:64])
    return out


def _safe_rel(path: str) -> str:
    parts = [p for p in Path(str(path)).parts if p not in ("", ".", "..", "/")]
    return "/".join(parts) or "file"


# -- the background process ----------------------------------------------------------------------------------
def _lock_path(cfg) -> Path:
    d = cfg.mlops_dir / "mirror"
    d.mkdir(parents=True, exist_ok=True)
    return d / "wandb.lock"


def _try_lock(path: Path):
    """An exclusive lock on *path* (fd), or None when another process holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def ensure_daemon(cfg) -> int | None:
    """Start the mirror process for this project unless one holds the lock; returns its pid."""
    import subprocess

    lock = _lock_path(cfg)
    fd = _try_lock(lock)
    if fd is None:
        return None  # running
    os.close(fd)
    log = open(lock.with_name("wandb.log"), "ab")
    env = dict(os.environ, WANDB_SILENT="true", MLOPS_HOME=str(cfg.root), PYTHONUNBUFFERED="1")
    env.pop("MLOPS_RUN_ID", None)
    env.pop("MLOPS_PARENT_RUN_ID", None)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mlops_jupyter.integrations.wandb_mirror", str(cfg.root)],
                                cwd=str(cfg.root), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    finally:
        log.close()
    # reaped when it exits, so no zombie is left in a long-lived kernel
    threading.Thread(target=proc.wait, name="mlops-wandb-reaper", daemon=True).start()
    return proc.pid


def daemon_pid(cfg) -> int | None:
    p = _lock_path(cfg).with_name("wandb.pid")
    try:
        pid = int(p.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def serve(root: str) -> int:
    """The mirror process: hold the project's lock, follow items until idle, then exit."""
    from ..config import settings
    from ..store import open_store

    cfg = settings(Path(root), create=False)
    lock = _lock_path(cfg)
    fd = _try_lock(lock)
    if fd is None:
        return 0  # another mirror process has it
    lock.with_name("wandb.pid").write_text(str(os.getpid()))
    store = open_store(cfg)
    said = threading.Lock()

    def say(text: str) -> None:
        with said:
            print(time.strftime("%H:%M:%S"), text, flush=True)

    mirror = Mirror(store, out=say)
    print(time.strftime("%H:%M:%S"), f"mirroring {cfg.root} to W&B {mirror.project} "
          f"(WANDB_MODE={os.environ.get('WANDB_MODE', 'online')})", flush=True)
    threads: dict[int, threading.Thread] = {}
    idle_since = time.time()
    abandoned = False
    while True:
        for item_id, t in list(threads.items()):
            if not t.is_alive():
                del threads[item_id]
        # a W&B call that does not come back: give up on that item (its thread is left behind)
        for tid, (what, started) in list(mirror.calls.items()):
            if time.time() - started > _timeout() + 30:
                for item_id, t in list(threads.items()):
                    if t.ident == tid:
                        _set(store, item_id, status="failed", owner=None,
                             error=f"W&B {what} did not return within {_timeout() + 30:.0f} s")
                        del threads[item_id]
                        abandoned = True
                mirror.calls.pop(tid, None)
        try:
            rows = [r for r in _claimable(store) if r.id not in threads]
        except MlopsError as e:
            print(time.strftime("%H:%M:%S"), f"store: {e}", flush=True)
            rows = []
        for r in rows:
            if r.kind in ("model", "data") and _covered_by_run(store, r):
                continue  # the run that made it logs it when it ends
            if not _claim(store, r):
                continue
            t = threading.Thread(target=mirror.process, args=(r,), name=f"mirror-{r.kind}-{r.key[:8]}",
                                 daemon=True)
            threads[r.id] = t
            t.start()
        if threads:
            idle_since = time.time()
            for item_id in list(threads):
                _beat(store, item_id)
        elif time.time() - idle_since > _idle():
            os.close(fd)  # let the next kernel start a fresh one; then look once more (a race)
            if _claimable(store):
                fd = _try_lock(lock)
                if fd is not None:
                    idle_since = time.time()
                    continue
            break
        time.sleep(POLL)
    print(time.strftime("%H:%M:%S"), "idle: exiting", flush=True)
    from ..store import close_store

    close_store()
    if abandoned:
        os._exit(0)  # threads stuck in W&B calls must not keep the process alive
    return 0


def _beat(store, item_id: int) -> None:
    m = S.mirrors
    now = time.time()
    try:
        store.meta._retrying(lambda c: c.execute(m.update().where(m.c.id == item_id, m.c.status == "active")
                                                 .values(heartbeat=now)))
    except MlopsError:
        pass


def _covered_by_run(store, row) -> bool:
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


# -- mlops wandb sync ---------------------------------------------------------------------------------------
def sync(store, runs: list[str] | None = None, progress=None, out: Callable[[str], None] = print) -> dict:
    """Push what was not mirrored (or the runs named) now, in this process; returns counts.

    Runs still running are left to the background mirror; runs already mirrored are skipped."""
    import importlib.util

    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        raise BadInput("WANDB_MODE=disabled: nothing is mirrored (unset it, or set WANDB_MODE=offline)")
    if importlib.util.find_spec("wandb") is None:
        raise BadInput("wandb is not installed: pip install 'mlops-jupyter[wandb]'")
    mirror = Mirror(store, out=out)
    meta = store.meta
    keys = None
    if runs:
        keys = [meta.resolve(r) for r in runs]
        store.meta._retrying(lambda c: [enqueue(c, "run", k) for k in keys])
    rows = _claimable(store, kinds=("run",) if keys else None, keys=keys, manual=True)
    counts = {"mirrored": 0, "failed": 0, "running": 0, "already mirrored": 0}
    if keys:
        counts["already mirrored"] = len(set(keys) - {r.key for r in rows})
    for r in (progress(rows) if progress else rows):
        if r.kind == "run" and meta.run_row(r.key)["status"] == "running":
            counts["running"] += 1
            continue
        if r.kind in ("model", "data") and _covered_by_run(store, r):
            continue
        if not _claim(store, r):
            counts["running"] += 1
            continue
        mirror.process(r, follow=False)
        counts["mirrored" if _reload(store, r.id).status == "done" else "failed"] += 1
    if counts["running"]:
        ensure_daemon(store.settings)
    return {**counts, "project": mirror.project}


def _reload(store, item_id: int):
    m = S.mirrors
    with store.meta.read() as conn:
        return conn.execute(sa.select(m).where(m.c.id == item_id)).first()


if __name__ == "__main__":  # the background mirror process
    sys.exit(serve(sys.argv[1]))
