"""The model registry: named models, versions v1..vN, free aliases with an audit log.

Refs: ``churn`` (latest), ``churn@v3``, ``churn@production``, ``churn/3``, and MLflow's
``models:/churn/3`` and ``models:/churn@production``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..data.catalog import check_name
from ..exceptions import BadInput, NotFound, PermissionDenied
from .. import events, rendering
from ..store import schema as S
from . import listing

ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not ALIAS.match(alias) or re.fullmatch(r"v\d+", alias) or alias == "latest":
        raise BadInput(f"alias {alias!r:.80} is not allowed: start with a letter, then letters, digits, '_' or '-' "
                       "(at most 64; 'latest' and v<number> are versions)")
    return alias


def parse_model_ref(ref: str) -> tuple[str, int | None, str | None]:
    """-> (name, version or None, alias or None); neither means the latest version."""
    if not isinstance(ref, str) or not ref.strip():
        raise BadInput("name a model version, e.g. churn@v3, churn@production or models:/churn/3")
    ref = ref.strip()
    if ref.startswith("models:/"):
        ref = ref[len("models:/"):]
        if "/" in ref:
            name, _, ver = ref.partition("/")
            if not ver.isdigit():
                raise BadInput(f"models:/{ref}: the part after the name is a version number")
            return check_name(name, "model"), int(ver), None
    if "@" in ref:
        name, _, tail = ref.partition("@")
        check_name(name, "model")
        if tail in ("", "latest"):
            return name, None, None
        m = re.fullmatch(r"v(\d+)", tail)
        if m:
            return name, int(m.group(1)), None
        return name, None, check_alias(tail)
    if "/" in ref:
        name, _, ver = ref.partition("/")
        if ver.isdigit():
            return check_name(name, "model"), int(ver), None
    return check_name(ref, "model"), None, None


@dataclass
class ModelVersion:
    id: int
    name: str
    version: int
    created: float
    run_id: str | None
    username: str | None
    flavor: str
    library: str | None
    library_version: str | None
    model_class: str | None
    digest: str
    size: int
    signature: dict | None
    metrics: dict
    datasets: list[dict]
    trusted: list[str]
    extra: dict
    message: str | None
    aliases: list[str] = field(default_factory=list)
    explanations: list[dict] = field(default_factory=list, repr=False)
    evaluations: list[dict] = field(default_factory=list, repr=False)  # newest first: data, rows, figures
    staged_for: str | None = None  # a job's name: staged as a candidate, not yet a version

    @property
    def ref(self) -> str:
        if self.staged_for:
            return f"{self.name} (candidate of job {self.staged_for})"
        return f"{self.name}@v{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def __str__(self) -> str:
        al = f" [{', '.join(self.aliases)}]" if self.aliases else ""
        return (f"{self.ref}{al} ({self.model_class}, {self.flavor}, {self.size:,} bytes"
                f"{', run ' + self.run_id[:8] if self.run_id else ''})")

    def load(self, allow_pickle: bool = False):
        from . import load

        return load(self.ref, pickle=allow_pickle)

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)


def version_from_row(r, aliases: list[str] | None = None, staged_for: str | None = None) -> ModelVersion:
    """A version from its row (a database row, or a dict of the same columns)."""
    d = dict(r) if isinstance(r, dict) else dict(r._mapping)
    for k, default in (("signature", None), ("metrics", {}), ("datasets", []), ("trusted", []), ("extra", {})):
        d[k] = json.loads(d[k]) if d.get(k) else default
    return ModelVersion(**d, aliases=aliases or [], staged_for=staged_for)


def job_staging(name: str) -> tuple[str, str] | None:
    """(job, execution run) when this process is a job execution that stages models named *name*."""
    import os

    if os.environ.get("MLOPS_JOB_MODEL") == name and os.environ.get("MLOPS_JOB") and os.environ.get("MLOPS_RUN_ID"):
        return os.environ["MLOPS_JOB"], os.environ["MLOPS_RUN_ID"]
    return None


class Registry:
    def __init__(self, store):
        self.store = store
        self.meta = store.meta

    # -- writing ----------------------------------------------------------------
    def register(self, model: Any, name: str, example: Any = None, alias: str | None = None,
                 allow_pickle: bool = False, message: str | None = None, run_id: str | None = None,
                 task: str | None = None) -> ModelVersion:
        check_name(name, "model")
        if alias is not None:
            check_alias(alias)
        fields = self._save(model, example, allow_pickle, message, task)
        staging = job_staging(name)
        if staging is not None:  # inside a job execution: the batch decides what becomes a version
            return self._stage(staging, name, fields, run_id)
        return self._insert(name, fields, run_id, alias)

    def _save(self, model: Any, example: Any, allow_pickle: bool, message: str | None,
              task: str | None = None) -> dict:
        """Save the model's bytes; the fields of its version row (all but name, version, run)."""
        from . import flavors, signature

        saved = flavors.save(model, allow_pickle=allow_pickle, example=example)
        sig = saved.signature if saved.signature is not None else signature.infer(example, model)
        if task is not None:
            from .nets import with_task

            sig = with_task(sig or {}, task)
        extra = dict(saved.extra)
        if saved.flavor == "pickle":  # what loading it would run, read now and kept with the version
            import warnings

            from ..store.pickles import describe, scan_pickle, unsafe

            extra["scan"] = scan_pickle(saved.data)
            if unsafe(extra["scan"]):
                warnings.warn(f"this pickle {describe(extra['scan'])}: loading it will be refused", stacklevel=3)
        digest, size = self.store.blobs.put_bytes(saved.data)
        return dict(flavor=saved.flavor, library=saved.library, library_version=saved.library_version,
                    model_class=saved.model_class, digest=digest, size=size,
                    signature=json.dumps(sig) if sig else None, trusted=json.dumps(saved.trusted),
                    extra=json.dumps(extra), message=message)

    def _insert(self, name: str, fields: dict, run_id: str | None, alias: str | None,
                on_insert=None) -> ModelVersion:
        from ..data.catalog import Catalog
        from ..identity import current_user

        metrics: dict = {}
        datasets: list[dict] = []
        if run_id:
            self.store.writer.flush()
            metrics = {k: v[0] for k, v in self.meta.latest_metrics([run_id]).get(run_id, {}).items()}
            datasets = [{"ref": v.ref, "id": v.id, "direction": d}
                        for d, v in Catalog(self.meta).versions_of_run(run_id)]
        mv = S.model_versions
        user = current_user()
        out: dict = {}

        def work(conn):
            # The model's row, locked: concurrent registrations and alias moves of one model take turns.
            self.meta.lock_row(conn, S.models, {"name": name}, {"created": time.time()})
            last = conn.execute(sa.select(sa.func.max(mv.c.version)).where(mv.c.name == name)).scalar() or 0
            row = dict(fields, name=name, version=last + 1, created=time.time(), run_id=run_id, username=user,
                       metrics=json.dumps(metrics), datasets=json.dumps(datasets))
            vid = conn.execute(mv.insert().values(**row)).inserted_primary_key[0]
            events.publish("model.registered", store=self.store, version_id=vid, conn=conn)
            if alias:  # model.registered carries the version's aliases: no separate alias.moved
                self._move_alias(conn, name, alias, last + 1, user, announce=False)
            if on_insert is not None:
                on_insert(conn, last + 1)
            out["row"] = conn.execute(sa.select(mv).where(mv.c.id == vid)).first()

        self.meta.run_transaction(work)
        return version_from_row(out["row"], [alias] if alias else [])

    # -- job executions: candidates ---------------------------------------------------
    def _stage(self, staging: tuple[str, str], name: str, fields: dict, run_id: str | None) -> ModelVersion:
        job, execution = staging
        mc = S.model_candidates
        now = time.time()

        def work(conn):
            return conn.execute(mc.insert().values(job=job, execution=execution, run_id=run_id, name=name,
                                                   created=now, digest=fields["digest"], fields=json.dumps(fields),
                                                   status="staged")).inserted_primary_key[0]

        cid = self.meta.run_transaction(work)
        return version_from_row(dict(fields, id=-cid, name=name, version=0, created=now, run_id=run_id, username=None,
                         metrics=None, datasets=None), staged_for=job)

    def candidates(self, executions: list[str], name: str | None = None) -> list[dict]:
        """Staged models of these job executions: id, execution, run_id, name, metrics (as now)."""
        mc = S.model_candidates
        with self.meta.read() as conn:
            q = sa.select(mc).where(mc.c.execution.in_(executions), mc.c.status == "staged")
            if name is not None:
                q = q.where(mc.c.name == name)
            rows = [dict(r._mapping) for r in conn.execute(q.order_by(mc.c.id))]
        self.store.writer.flush()
        run_ids = sorted({r["run_id"] for r in rows if r["run_id"]} | {r["execution"] for r in rows})
        latest = self.meta.latest_metrics(run_ids) if run_ids else {}
        for r in rows:
            # The registering run's metrics, then the execution's (a notebook may log to either).
            m = {k: v[0] for k, v in latest.get(r["execution"], {}).items()}
            if r["run_id"]:
                m.update({k: v[0] for k, v in latest.get(r["run_id"], {}).items()})
            r["metrics"] = m
        return rows

    def register_candidate(self, candidate: dict, alias: str | None, passed_over: list[int]) -> ModelVersion:
        """Make *candidate* the next version (moving *alias* to it if given); mark the others."""
        mc = S.model_candidates
        fields = json.loads(candidate["fields"])

        def mark(conn, version):
            conn.execute(mc.update().where(mc.c.id == candidate["id"]).values(status="registered", version=version))
            if passed_over:
                conn.execute(mc.update().where(mc.c.id.in_(passed_over)).values(status="passed-over"))

        return self._insert(candidate["name"], fields, candidate["run_id"] or candidate["execution"], alias,
                            on_insert=mark)

    def _move_alias(self, conn, name: str, alias: str, version: int | None, user: str,
                    announce: bool = True) -> int | None:
        ma = S.model_aliases
        # Every move of one model's aliases takes turns on the model's row (a registration holds it
        # already; taking it twice in one transaction is free), so an empty delete below can only
        # mean the row-level security policy hid the row.
        self.meta.lock_row(conn, S.models, {"name": name})
        cur = conn.execute(sa.select(ma.c.version).where(ma.c.name == name, ma.c.alias == alias)).scalar()
        if cur == version:
            return cur
        if cur is not None:
            gone = conn.execute(ma.delete().where(ma.c.name == name, ma.c.alias == alias)).rowcount
            if gone == 0:  # the row is there but this role may not touch it (row-level security)
                raise PermissionDenied(f"permission denied: {name}@{alias} is a protected alias; only admins move "
                                       "it (the shared store's access control; `mlops access ls`)")
        if version is not None:
            conn.execute(ma.insert().values(name=name, alias=alias, version=version))
        import socket

        eid = conn.execute(S.alias_events.insert().values(
            name=name, alias=alias, from_version=cur, to_version=version, username=user, host=socket.gethostname(),
            at=time.time())).inserted_primary_key[0]
        if announce and version is not None:
            events.publish("alias.moved", store=self.store, event_id=eid, conn=conn)
        from ..store import audit

        audit.record(conn, "alias.move" if version is not None else "alias.delete", f"{name}@{alias}",
                     f"v{cur}" if cur is not None else None, f"v{version}" if version is not None else None,
                     username=user)
        return cur

    def set_alias(self, ref: str, alias: str) -> tuple[ModelVersion, int | None]:
        """Point *alias* at the version *ref* names; returns (version, previous version number)."""
        from ..identity import current_user

        check_alias(alias)
        v = self.get(ref)
        out: dict = {}

        def work(conn):
            out["prev"] = self._move_alias(conn, v.name, alias, v.version, current_user())

        self.meta.run_transaction(work)
        return self.get(v.ref), out["prev"]

    def delete_alias(self, name: str, alias: str) -> int:
        from ..identity import current_user

        check_name(name, "model")
        check_alias(alias)
        out: dict = {}

        def work(conn):
            out["prev"] = self._move_alias(conn, name, alias, None, current_user())

        self.meta.run_transaction(work)
        if out["prev"] is None:
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        return out["prev"]

    # -- reading ----------------------------------------------------------------
    def get(self, ref: str | tuple[str, int | None, str | None]) -> ModelVersion:
        """The version *ref* names: text (``churn@production``) or what :func:`parse_model_ref`
        made of it, so that a caller holding a parsed ref does not parse it again."""
        name, version, alias = ref if isinstance(ref, tuple) else parse_model_ref(ref)
        mv, ma = S.model_versions, S.model_aliases
        with self.meta.read() as conn:
            if alias is not None:
                version = conn.execute(sa.select(ma.c.version).where(ma.c.name == name, ma.c.alias == alias)).scalar()
                if version is None:
                    self._not_found(conn, name, f"no alias {alias!r}")
            q = sa.select(mv).where(mv.c.name == name)
            q = q.where(mv.c.version == version) if version is not None else q.order_by(mv.c.version.desc()).limit(1)
            r = conn.execute(q).first()
            if r is None:
                self._not_found(conn, name, f"no version v{version}" if version is not None else "no versions")
            aliases = sorted(conn.execute(sa.select(ma.c.alias).where(ma.c.name == name, ma.c.version == r.version))
                             .scalars())
            ex = S.explanations
            exps = [dict(x._mapping) for x in conn.execute(
                sa.select(ex.c.key, ex.c.method, ex.c.created, ex.c.data_version_id)
                .where(ex.c.model_version_id == r.id).order_by(ex.c.created))]
            ev, dv = S.evaluations, S.dataset_versions
            evals = [{"key": x.key, "target": x.target, "rows": x.rows, "created": x.created,
                      "figures": json.loads(x.figures or "{}"), "options": json.loads(x.options or "{}"),
                      "data": f"{x.name}@v{x.version}" if x.name else f"a DataFrame (digest {x.data_digest[:12]})",
                      "baseline_version_id": x.baseline_version_id}
                     for x in conn.execute(
                         sa.select(ev.c.key, ev.c.target, ev.c.rows, ev.c.created, ev.c.figures, ev.c.options,
                                   ev.c.data_digest, ev.c.baseline_version_id, dv.c.name, dv.c.version)
                         .select_from(ev.outerjoin(dv, dv.c.id == ev.c.data_version_id))
                         .where(ev.c.model_version_id == r.id).order_by(ev.c.created.desc()))]
        v = version_from_row(r, aliases)
        v.explanations = exps
        v.evaluations = evals
        return v

    def _not_found(self, conn, name: str, what: str):
        mv = S.model_versions
        last = conn.execute(sa.select(sa.func.max(mv.c.version)).where(mv.c.name == name)).scalar()
        if last is None:
            raise NotFound(f"no model {name!r} (see `mlops model ls`)")
        aliases = sorted(conn.execute(sa.select(S.model_aliases.c.alias).where(S.model_aliases.c.name == name))
                         .scalars())
        known = f"v1..v{last}" + (f", aliases {', '.join(aliases)}" if aliases else "")
        raise NotFound(f"model {name!r} has {what} (it has {known})")

    def load(self, ref: str, allow_pickle: bool = False) -> Any:
        return self.load_version(self.get(ref), allow_pickle)

    def load_version(self, v: ModelVersion, allow_pickle: bool = False) -> Any:
        """The model object of a version already looked up."""
        from . import flavors

        if v.flavor == "pickle" and not allow_pickle:  # refuse before reading the file
            flavors.load(b"", "pickle", None, None, allow_pickle=False, label=v.ref)
        data = self.store.blobs.get_bytes(v.digest)
        return flavors.load(data, v.flavor, v.trusted, v.extra, allow_pickle=allow_pickle, label=v.ref)

    def has_model(self, name: str) -> bool:
        with self.meta.read() as conn:
            return conn.execute(sa.select(S.model_versions.c.id).where(S.model_versions.c.name == name)
                                .limit(1)).first() is not None

    def models(self):
        """One row per model (a DataFrame): latest version, aliases, when, by which run."""
        return _frame(self.model_records(), listing.MODEL_COLUMNS)

    def model_records(self) -> list[dict]:
        """:meth:`models` as plain rows (``created`` in seconds since the epoch), without pandas."""
        mv, ma = S.model_versions, S.model_aliases
        latest = sa.select(mv.c.name, sa.func.max(mv.c.version).label("v")).group_by(mv.c.name).subquery()
        with self.meta.read() as conn:
            rows = conn.execute(sa.select(mv).join(latest, sa.and_(mv.c.name == latest.c.name,
                                                                   mv.c.version == latest.c.v))
                                .order_by(mv.c.name)).all()
            al: dict[str, list[str]] = {}
            for r in conn.execute(sa.select(ma).order_by(ma.c.alias)):
                al.setdefault(r.name, []).append(f"{r.alias}->v{r.version}")
        return [listing.model_record(dict(r._mapping), al.get(r.name, [])) for r in rows]

    def versions(self, name: str):
        """The versions of model *name* (a DataFrame), oldest first."""
        return _frame(self.version_records(name), listing.VERSION_COLUMNS)

    def version_records(self, name: str) -> list[dict]:
        """:meth:`versions` as plain rows (``created`` in seconds since the epoch), without pandas."""
        check_name(name, "model")
        mv, ma = S.model_versions, S.model_aliases
        with self.meta.read() as conn:
            rows = conn.execute(sa.select(mv).where(mv.c.name == name).order_by(mv.c.version)).all()
            if not rows:
                raise NotFound(f"no model {name!r} (see `mlops model ls`)")
            al: dict[int, list[str]] = {}
            for r in conn.execute(sa.select(ma).where(ma.c.name == name).order_by(ma.c.alias)):
                al.setdefault(r.version, []).append(r.alias)
        return [listing.version_record(dict(r._mapping), al.get(r.version, [])) for r in rows]

    def describe(self, ref: str, intended_use: str | None = None, limitations: str | None = None) -> dict:
        """Set what version *ref* is for and where it should not be used (its card shows them);
        a part left None keeps its text. Returns the version's notes."""
        from ..identity import current_user

        for what, text in (("intended use", intended_use), ("limitations", limitations)):
            if text is not None and (not isinstance(text, str) or len(text) > 20_000):
                raise BadInput(f"{what} is text of at most 20,000 characters")
        if intended_use is None and limitations is None:
            raise BadInput("say what to set: intended_use=... and/or limitations=...")
        v = self.get(ref)
        mn = S.model_notes

        def work(conn):
            cur = conn.execute(sa.select(mn).where(mn.c.name == v.name, mn.c.version == v.version)).first()
            row = {"intended_use": cur.intended_use if cur else None, "limitations": cur.limitations if cur else None}
            if intended_use is not None:
                row["intended_use"] = intended_use.strip() or None
            if limitations is not None:
                row["limitations"] = limitations.strip() or None
            row.update(updated=time.time(), username=current_user())
            if cur is None:
                conn.execute(mn.insert().values(name=v.name, version=v.version, **row))
            else:
                conn.execute(mn.update().where(mn.c.name == v.name, mn.c.version == v.version).values(**row))
            return row

        return self.meta.run_transaction(work)

    def notes(self, name: str, version: int) -> dict | None:
        """The notes of a version, else of the nearest earlier version that has some (``from`` says
        which); None when no version up to it was described."""
        mn = S.model_notes
        with self.meta.read() as conn:
            r = conn.execute(sa.select(mn).where(mn.c.name == name, mn.c.version <= version)
                             .order_by(mn.c.version.desc()).limit(1)).first()
        if r is None:
            return None
        return {"intended_use": r.intended_use, "limitations": r.limitations, "from": r.version,
                "updated": r.updated, "username": r.username}

    def history(self, name: str):
        import pandas as pd

        check_name(name, "model")
        ev = S.alias_events
        with self.meta.read() as conn:
            rows = conn.execute(sa.select(ev).where(ev.c.name == name).order_by(ev.c.id)).all()
            if not rows and conn.execute(sa.select(S.models.c.name).where(S.models.c.name == name)).first() is None:
                raise NotFound(f"no model {name!r} (see `mlops model ls`)")
        recs = [{"when": pd.Timestamp(r.at, unit="s", tz="UTC"), "alias": r.alias,
                 "from": f"v{r.from_version}" if r.from_version is not None else "",
                 "to": f"v{r.to_version}" if r.to_version is not None else "(removed)",
                 "user": r.username, "host": r.host} for r in rows]
        return _frame(recs, ["when", "alias", "from", "to", "user", "host"])

    def versions_of_run(self, run_id: str) -> list[ModelVersion]:
        mv = S.model_versions
        with self.meta.read() as conn:
            return [version_from_row(r) for r in conn.execute(sa.select(mv).where(mv.c.run_id == run_id).order_by(mv.c.id))]


def _frame(recs: list[dict], cols: list[str]):
    import pandas as pd

    df = pd.DataFrame(recs, columns=cols)
    if "created" in cols:
        df["created"] = pd.to_datetime(df["created"], unit="s", utc=True)
    return df
