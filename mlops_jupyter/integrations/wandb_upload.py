"""The W&B side of the mirror: one item (a run, a data version, a model version, an alias move) made
into W&B runs and Artifacts.

A run is followed live from the store while it runs (params, tags, metrics with their steps and
timestamps); when it ends, its files, the data versions it used or made and the models it
registered become W&B Artifacts, BLAKE3 digests in their metadata. Every W&B call is watched
(:attr:`Mirror.calls`) so that the mirror process can give up on one that does not come back.
wandb is imported only here, only inside the methods that call it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

from ..exceptions import BadInput, MlopsError
from ..store import schema as S
from .wandb_queue import mark_done, target, update_item

POLL = float(os.environ.get("MLOPS_WANDB_POLL", "1.0"))  # how often a running run is read from the store


def call_timeout() -> float:
    """Seconds a W&B call (init, finish) may take."""
    return float(os.environ.get("MLOPS_WANDB_TIMEOUT", "90"))


def _split(project: str) -> tuple[str | None, str]:
    entity, _, name = project.rpartition("/")
    return entity or None, name


def _artifact_name(text: str) -> str:
    """W&B artifact names: letters, digits, dashes, underscores, dots."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:120] or "item"


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
                                        x_save_requirements=False, silent=True, init_timeout=call_timeout(),
                                        finish_timeout=call_timeout(), disable_git=True)
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
            update_item(self.store, row.id, status="done", remote=remote, error=None, owner=None)
        except Exception as e:  # W&B's errors are many and not ours to enumerate: record, tell, go on
            msg = f"{type(e).__name__}: {e}".strip().splitlines()[0][:500] if str(e) else type(e).__name__
            try:
                update_item(self.store, row.id, status="failed", error=msg, owner=None)
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
        update_item(self.store, row.id, remote=remote)
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
                    update_item(self.store, row.id, cursor=cursor)
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
            update_item(self.store, row.id, cursor=cursor)
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
            mark_done(self.store, "data", v.id)

    def _model_artifact(self, v, tmp: str):
        import wandb

        from ..models.flavors import file_name

        fname = file_name(v.flavor)
        meta = {"blake3": v.digest, "mlops_ref": v.ref, "flavor": v.flavor, "library": v.library,
                "library_version": v.library_version, "class": v.model_class, "signature": v.signature,
                "metrics": v.metrics, "datasets": v.datasets, "run_id": v.run_id, "file": fname}
        if (v.extra or {}).get("runs_code"):  # a Keras model with Lambda or custom layers: not safe-mode loadable
            meta["runs_code"] = True
        art = wandb.Artifact(_artifact_name(v.name), type="model", description=v.message or None, metadata=meta)
        dest = Path(tmp) / fname
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
            mark_done(self.store, "model", v.id)

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


