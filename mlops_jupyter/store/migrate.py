"""``mlops migrate --from .mlops --to URL``: copy a local project into a shared store.

Nothing is lost and nothing is duplicated, and running it again is a no-op: blobs are content
addressed (copied when the target lacks them, verified by their digest); runs are copied whole,
one transaction each, and skipped when the target has them (run ids are UUIDs); data and model
versions are matched by name and version number and must hold the same content (a clash with a
different content stops the migration before anything of that version is written, naming it);
rows without a natural key (alias events, audit entries, drift reports, checks) are matched by
their content. Runs still running are left for a later migrate. Aliases the target already points
elsewhere are kept as they are in the shared store and reported.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import sqlalchemy as sa

from ..exceptions import BadInput, MlopsError
from . import schema as S

CHUNK = 5000


@dataclass
class MigrationReport:
    source: str
    target: str
    artifacts: str
    counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def skip(self, what: str, n: int = 1) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + n

    @property
    def nothing_to_do(self) -> bool:
        return not any(self.counts.values())

    def __str__(self) -> str:
        done = ", ".join(f"{n:,} {k}" for k, n in self.counts.items() if n) or "nothing new"
        there = ", ".join(f"{n:,} {k}" for k, n in self.skipped.items() if n)
        lines = [f"migrated {self.source} -> {self.target} (blobs: {self.artifacts}): {done}"]
        if there:
            lines.append(f"  already there: {there}")
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)


def _source_settings(path: str):
    from ..config import CONFIG_FILE, MLOPS_DIR, Settings, read_toml

    p = Path(path).expanduser().resolve()
    mdir = p if p.name == MLOPS_DIR else p / MLOPS_DIR
    if not (mdir / CONFIG_FILE).is_file() and not (mdir / "mlops.db").is_file():
        raise BadInput(f"no mlops project at {path} (expected {mdir}/ with mlops.db)")
    data = read_toml(mdir / CONFIG_FILE)
    return Settings(root=mdir.parent, store_url=data.get("store_url") or f"sqlite:///{mdir / 'mlops.db'}",
                    artifacts_url=data.get("artifacts_url") or str(mdir / "objects"), extra=data)


def migrate(source: str, to: str, artifacts: str | None = None, progress: Callable | None = None,
            out: Callable[[str], None] | None = None) -> MigrationReport:
    """Copy the project at *source* (a folder or its ``.mlops/``) into the store at *to*, its blobs
    into *artifacts* (default ``MLOPS_ARTIFACTS_URL``)."""
    from .blobs import BlobStore
    from .metadata import MetadataStore, safe_url

    if not to or "://" not in to:
        raise BadInput(f"--to takes a database URL (postgresql+psycopg://user:pw@host/db), got {to!r}")
    src_cfg = _source_settings(source)
    artifacts = artifacts or os.environ.get("MLOPS_ARTIFACTS_URL")
    if not artifacts:
        raise BadInput("say where the blobs go: --artifacts s3://bucket/prefix (or set MLOPS_ARTIFACTS_URL)")
    if to == src_cfg.store_url:
        raise BadInput(f"{to} is the source store itself")
    from .crypto import load_key

    key = load_key(src_cfg)  # the key the local blobs were written with (MLOPS_ENCRYPTION_KEY, or its file)
    src_meta = MetadataStore(src_cfg.store_url)
    src_blobs = BlobStore(src_cfg.artifacts_url, key=key)
    try:
        dst_meta = MetadataStore(to)
    except MlopsError:
        raise
    except Exception as e:  # a driver's own error for an unreachable or refusing server
        raise BadInput(f"cannot open {to}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    dst_blobs = BlobStore(artifacts, key=key)  # with a key, encrypted before they leave the machine
    report = MigrationReport(src_cfg.store_url, safe_url(to, to), artifacts)
    say = out or (lambda text: None)
    try:
        m = _Migration(src_meta, src_blobs, dst_meta, dst_blobs, report, progress, say)
        m.check_conflicts()
        m.blobs()
        m.datasets()
        m.runs()
        m.lineage()
        m.models()
        m.rest()
        if not report.nothing_to_do:
            from . import audit

            dst_meta.run_transaction(lambda c: audit.record(c, "migrate", report.target, report.source, None,
                                                      {"copied": {k: n for k, n in report.counts.items() if n}}))
    finally:
        src_meta.close()
        dst_meta.close()
    return report


class _Migration:
    def __init__(self, src, src_blobs, dst, dst_blobs, report: MigrationReport, progress, say):
        self.src, self.src_blobs, self.dst, self.dst_blobs = src, src_blobs, dst, dst_blobs
        self.report, self.progress, self.say = report, progress, say
        self.version_ids: dict[int, int] = {}  # source dataset_versions.id -> target id
        self.model_ids: dict[int, int] = {}

    def _rows(self, meta, query) -> list:
        with meta.read() as conn:
            return conn.execute(query).all()

    # -- clashes, before anything is written --------------------------------------------------------
    def check_conflicts(self) -> None:
        clashes = []
        for table, what in ((S.dataset_versions, "data version"), (S.model_versions, "model version")):
            src = {(r.name, r.version): r.digest for r in self._rows(self.src, sa.select(table.c.name, table.c.version,
                                                                                          table.c.digest))}
            if not src:
                continue
            dst = {(r.name, r.version): r.digest for r in self._rows(
                self.dst, sa.select(table.c.name, table.c.version, table.c.digest)
                .where(table.c.name.in_(sorted({n for n, _ in src}))))}
            clashes += [f"{what} {n}@v{v}" for (n, v), d in src.items() if (n, v) in dst and dst[(n, v)] != d]
        kinds = {r.name: r.kind for r in self._rows(self.src, sa.select(S.datasets))}
        if kinds:
            for r in self._rows(self.dst, sa.select(S.datasets).where(S.datasets.c.name.in_(sorted(kinds)))):
                if r.kind != kinds[r.name]:
                    clashes.append(f"dataset {r.name} ({kinds[r.name]} here, {r.kind} in the shared store)")
        if clashes:
            more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
            raise BadInput(f"the shared store already has other content under {', '.join(clashes[:5])}{more}; "
                           "rename those in the local project first (nothing was copied)")

    # -- blobs ----------------------------------------------------------------------------------------
    def blobs(self) -> None:
        wanted = sorted(self.src.referenced_digests())
        items = self.progress(wanted) if self.progress else wanted
        with tempfile.TemporaryDirectory(prefix="mlops-migrate-") as tmp:
            for digest in items:
                if self.dst_blobs.exists(digest):
                    self.report.skip("blobs")
                    continue
                if not self.src_blobs.exists(digest):
                    self.report.notes.append(f"blob {digest[:12]} is missing in the source (run mlops fsck there)")
                    continue
                f = Path(tmp) / digest
                self.src_blobs.copy_to(digest, f)  # verified against its digest on the way out
                got, _ = self.dst_blobs.put_file(f)
                f.unlink()
                if got != digest:  # pragma: no cover - copy_to verifies; a second line of defence
                    raise MlopsError(f"blob {digest[:12]} changed while copying")
                self.report.add("blobs")

    # -- data versions --------------------------------------------------------------------------------
    def datasets(self) -> None:
        dv, vf = S.dataset_versions, S.version_files
        for d in self._rows(self.src, sa.select(S.datasets)):
            self.dst.run_transaction(lambda c, d=d: _insert_missing(c, S.datasets, [dict(d._mapping)], ["name"]))

        def files_of(row: dict):
            files = [dict(f._mapping) for f in self._rows(self.src, sa.select(vf).where(vf.c.version_id == row["id"]))]

            def insert(conn, new_id: int) -> None:
                for i in range(0, len(files), CHUNK):
                    conn.execute(vf.insert(), [dict(f, version_id=new_id) for f in files[i:i + CHUNK]])
            return insert

        self._versions(dv, self.version_ids, "data versions", files_of)

    def _versions(self, table: sa.Table, ids: dict, what: str, dependents=None) -> None:
        """Copy the numbered versions (name + version) of *table* the shared store lacks, each in one
        transaction with what *dependents(row)* inserts under its new id; map source ids to shared ones."""
        for v in self._rows(self.src, sa.select(table).order_by(table.c.id)):
            row = dict(v._mapping)
            after = dependents(row) if dependents else None  # read from the source before the transaction

            def work(conn, row=row, after=after):
                have = conn.execute(sa.select(table.c.id).where(table.c.name == row["name"],
                                                                table.c.version == row["version"])).scalar()
                if have is not None:
                    return have, False
                new = conn.execute(table.insert().values(**{k: x for k, x in row.items() if k != "id"})
                                   ).inserted_primary_key[0]
                if after is not None:
                    after(conn, new)
                return new, True

            new_id, added = self.dst.run_transaction(work)
            ids[row["id"]] = new_id
            (self.report.add if added else self.report.skip)(what)

    # -- runs -----------------------------------------------------------------------------------------------
    def runs(self) -> None:
        r = S.runs
        src_runs = self._rows(self.src, sa.select(r).order_by(r.c.start_time))
        there = {x for x, in self._rows(self.dst, sa.select(r.c.run_id).where(
            r.c.run_id.in_([x.run_id for x in src_runs])))} if src_runs else set()
        for run in src_runs:
            if run.run_id in there:
                self.report.skip("runs")
                continue
            if run.status == "running":
                self.report.skip("runs still running (migrate again when they end)")
                continue
            rid = run.run_id
            parts = {t: [dict(x._mapping) for x in self._rows(self.src, sa.select(t).where(t.c.run_id == rid))]
                     for t in (S.params, S.tags, S.latest_metrics, S.artifacts, S.cells)}
            metrics = self._rows(self.src, sa.select(S.metrics.c.run_id, S.metrics.c.key, S.metrics.c.step,
                                                     S.metrics.c.value, S.metrics.c.timestamp)
                                 .where(S.metrics.c.run_id == rid).order_by(S.metrics.c.id))

            def work(conn, run=run, parts=parts, metrics=metrics):
                conn.execute(r.insert().values(**dict(run._mapping)))
                for t, rows in parts.items():
                    if rows:
                        conn.execute(t.insert(), rows)
                for i in range(0, len(metrics), CHUNK):
                    self.dst.write_points(conn, [tuple(m) for m in metrics[i:i + CHUNK]])

            self.dst.run_transaction(work)
            self.report.add("runs")
            self.report.add("metric points", len(metrics))

    def lineage(self) -> None:
        lin = S.lineage
        rows = self._rows(self.src, sa.select(lin))
        out = [dict(x._mapping, version_id=self.version_ids[x.version_id]) for x in rows
               if x.version_id in self.version_ids]
        n = self.dst.run_transaction(lambda c: _insert_missing(c, lin, out, ["run_id", "version_id", "direction"],
                                                         exists_only=("run_id", S.runs)))
        self.report.add("lineage links", n)

    # -- models --------------------------------------------------------------------------------------------
    def models(self) -> None:
        mv, ma = S.model_versions, S.model_aliases
        for m in self._rows(self.src, sa.select(S.models)):
            self.dst.run_transaction(lambda c, m=m: _insert_missing(c, S.models, [dict(m._mapping)], ["name"]))
        self._versions(mv, self.model_ids, "model versions")
        for a in self._rows(self.src, sa.select(ma)):
            def work(conn, a=a):
                cur = conn.execute(sa.select(ma.c.version).where(ma.c.name == a.name, ma.c.alias == a.alias)).scalar()
                if cur is None:
                    conn.execute(ma.insert().values(name=a.name, alias=a.alias, version=a.version))
                    return "set"
                return "same" if cur == a.version else f"kept {a.name}@{a.alias} -> v{cur} (here: v{a.version})"

            what = self.dst.run_transaction(work)
            if what == "set":
                self.report.add("aliases")
            elif what == "same":
                self.report.skip("aliases")
            else:
                self.report.notes.append(f"alias clash: the shared store {what}")

    # -- the rest -------------------------------------------------------------------------------------------
    def rest(self) -> None:
        def remap(row: dict) -> dict:
            if row.get("model_version_id") is not None:
                row["model_version_id"] = self.model_ids.get(row["model_version_id"])
            if row.get("data_version_id") is not None:
                row["data_version_id"] = self.version_ids.get(row["data_version_id"])
            return row

        def remap_evaluation(row: dict) -> dict:
            row = remap(row)
            if row.get("baseline_version_id") is not None:
                row["baseline_version_id"] = self.model_ids.get(row["baseline_version_id"])
            return row

        plans = [
            (S.alias_events, ["name", "alias", "at", "to_version"], "alias events", None),
            (S.explanations, ["key"], "explanations", remap),
            (S.explanation_files, ["key", "name"], None, None),
            (S.evaluations, ["key"], "evaluations", remap_evaluation),
            (S.model_notes, ["name", "version"], "model notes", None),
            (S.predictions, ["request_id"], "logged predictions", None),
            (S.prediction_labels, ["request_id", "row"], None, None),
            (S.model_candidates, ["execution", "name", "created"], None, None),
            (S.drift_reports, ["created", "reference", "current"], "drift reports", None),
            (S.monitor_checks, ["job", "at"], "monitor checks", None),
            (S.audit, ["at", "action", "target"], "audit entries", None),
        ]
        for table, keys, label, fn in plans:
            rows = [dict(x._mapping) for x in self._rows(self.src, sa.select(table))]
            if fn:
                rows = [fn(x) for x in rows]
            for x in rows:
                if "id" in x and "id" in table.c and table.c.id.primary_key:
                    x.pop("id")  # a new number in the target; the row is matched by its content
            n = self.dst.run_transaction(lambda c, t=table, rows=rows, keys=keys: _insert_missing(c, t, rows, keys))
            if label:
                self.report.add(label, n)


def _insert_missing(conn, table, rows: list[dict], keys: list[str], exists_only=None) -> int:
    """Insert the rows whose *keys* the table does not hold yet; returns how many."""
    if not rows:
        return 0
    existing = set()
    for i in range(0, len(rows), 500):
        part = rows[i:i + 500]
        cond = sa.or_(*[sa.and_(*[table.c[k] == r[k] if r[k] is not None else table.c[k].is_(None) for k in keys])
                        for r in part])
        existing |= {tuple(x) for x in conn.execute(sa.select(*[table.c[k] for k in keys]).where(cond))}
    new = [r for r in rows if tuple(r[k] for k in keys) not in existing]
    if exists_only is not None:
        col, parent = exists_only
        have = {x for x, in conn.execute(sa.select(parent.c[col]).where(parent.c[col].in_({r[col] for r in new})))}
        new = [r for r in new if r[col] in have]
    for i in range(0, len(new), CHUNK):
        conn.execute(table.insert(), new[i:i + CHUNK])
    return len(new)
