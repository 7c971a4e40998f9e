"""Dataset versions in the metadata store: names, refs, versions, files, lineage."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .. import rendering
from ..exceptions import BadInput, NotFound
from ..store import schema as S

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: Any, what: str = "dataset") -> str:
    if not isinstance(name, str) or not NAME.match(name) or ".." in name:
        raise BadInput(f"{what} name {name!r:.80} is not allowed: use letters, digits, '.', '_' and '-' "
                       "(no '/', '..', spaces or control characters; at most 128 characters)")
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``train@v2`` -> ('train', 2); ``train`` or ``train@latest`` -> ('train', None)."""
    if not isinstance(ref, str) or not ref:
        raise BadInput("name a dataset version, e.g. train@v2")
    name, _, ver = ref.partition("@")
    check_name(name)
    if not ver or ver == "latest":
        return name, None
    m = re.fullmatch(r"v?(\d+)", ver)
    if not m:
        raise BadInput(f"{ref!r}: a version is written @v<number> or @latest")
    return name, int(m.group(1))


@dataclass(repr=False)
class DatasetVersion:
    id: int
    name: str
    version: int
    kind: str
    digest: str
    size: int
    n_files: int
    rows: int | None
    message: str | None
    source: str | None
    created: float
    run_id: str | None
    username: str | None
    summary: dict | None = None
    unchanged: bool = False  # set by add() when the content was already the latest version
    files: list[dict] = field(default_factory=list, repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def __str__(self) -> str:
        what = f"{self.rows:,} rows" if self.rows is not None else f"{self.n_files:,} file(s)"
        return f"{self.ref} ({self.kind}, {what}, {self.size:,} bytes, {self.digest[:12]})"

    def __repr__(self) -> str:  # one line (the notebook's text form), not every field
        return f"<DatasetVersion {self}>"

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)

    def _ipython_display_(self) -> None:
        rendering.show(self)


def _row_to_version(r) -> DatasetVersion:
    d = dict(r._mapping)
    d["summary"] = json.loads(d["summary"]) if d.get("summary") else None
    return DatasetVersion(**d)


class Catalog:
    def __init__(self, meta):
        self.meta = meta

    def latest(self, name: str) -> DatasetVersion | None:
        dv = S.dataset_versions
        with self.meta.read() as conn:
            r = conn.execute(sa.select(dv).where(dv.c.name == name).order_by(dv.c.version.desc()).limit(1)).first()
        return _row_to_version(r) if r else None

    def get(self, ref: str, with_files: bool = True) -> DatasetVersion:
        name, version = parse_ref(ref)
        dv = S.dataset_versions
        q = sa.select(dv).where(dv.c.name == name)
        q = q.order_by(dv.c.version.desc()).limit(1) if version is None else q.where(dv.c.version == version)
        with self.meta.read() as conn:
            r = conn.execute(q).first()
            if r is None:
                exists = conn.execute(sa.select(S.datasets.c.name).where(S.datasets.c.name == name)).first()
                if not exists:
                    raise NotFound(f"no dataset {name!r} (see `mlops data ls`)")
                last = conn.execute(sa.select(sa.func.max(dv.c.version)).where(dv.c.name == name)).scalar()
                raise NotFound(f"no version {ref!r}: {name} has v1..v{last}")
            v = _row_to_version(r)
            if with_files:
                vf = S.version_files
                v.files = [dict(x._mapping) for x in conn.execute(
                    sa.select(vf.c.path, vf.c.digest, vf.c.size, vf.c.mode, vf.c.pack, vf.c.pack_offset)
                    .where(vf.c.version_id == v.id)
                    .order_by(vf.c.path))]
        return v

    def create(self, name: str, kind: str, digest: str, files: list[dict], size: int, rows: int | None,
               message: str | None, source: str | None, run_id: str | None, username: str,
               summary: dict | None) -> DatasetVersion:
        """A new version, unless the latest already has this content. Visible all at once."""
        dv = S.dataset_versions
        out: dict = {}

        def work(conn):
            # The dataset's row, locked: writers adding versions of one name take turns (on a shared
            # server two of them would otherwise both read vN and both write vN+1).
            dataset = self.meta.lock_row(conn, S.datasets, {"name": name}, {"kind": kind, "created": time.time()})
            last = conn.execute(sa.select(dv).where(dv.c.name == name).order_by(dv.c.version.desc()).limit(1)).first()
            if last is not None and last.digest == digest:
                out["v"] = _row_to_version(last)
                out["v"].unchanged = True
                return
            if dataset.kind != kind:
                raise BadInput(f"dataset {name!r} holds {dataset.kind} versions; a {kind} cannot be a version of it "
                               "(choose another --name)")
            version = (last.version if last is not None else 0) + 1
            row = dict(name=name, version=version, kind=kind, digest=digest, size=size, n_files=len(files),
                       rows=rows, message=message, source=source, created=time.time(), run_id=run_id,
                       username=username, summary=json.dumps(summary) if summary is not None else None)
            vid = conn.execute(dv.insert().values(**row)).inserted_primary_key[0]
            if files and self.meta.dialect == "sqlite":
                # The driver's executemany on tuples: several times faster than dicts through Core.
                conn.exec_driver_sql(
                    "INSERT INTO version_files (version_id, path, digest, size, mode, pack, pack_offset) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(vid, f["path"], f["digest"], f["size"], f["mode"], f.get("pack"), f.get("pack_offset"))
                     for f in files])
            elif files:
                conn.execute(S.version_files.insert(), [dict(f, version_id=vid) for f in files])
            out["v"] = DatasetVersion(id=vid, **dict(row, summary=summary))

        self.meta.run_transaction(work)
        return out["v"]

    def locate(self, digests: list[str]) -> dict[str, tuple[str | None, int | None]]:
        """Where content already stored for some dataset version lives: digest -> (pack, offset),
        (None, None) for a blob of its own. Digests no version uses are absent."""
        vf = S.version_files
        out: dict[str, tuple[str | None, int | None]] = {}
        if not digests:
            return out
        with self.meta.read() as conn:
            for i in range(0, len(digests), 500):
                for d, pack, off in conn.execute(sa.select(vf.c.digest, vf.c.pack, vf.c.pack_offset)
                                                 .where(vf.c.digest.in_(digests[i:i + 500]))):
                    out[d] = (pack, off)
        return out

    def record_lineage(self, run_id: str, version_id: int, direction: str) -> None:
        row = dict(run_id=run_id, version_id=version_id, direction=direction, created=time.time())
        with self.meta.write() as conn:
            conn.execute(self.meta.insert_statement(S.lineage).on_conflict_do_nothing(), [row])

    def datasets(self) -> list[dict]:
        dv = S.dataset_versions
        latest = sa.select(dv.c.name, sa.func.max(dv.c.version).label("v")).group_by(dv.c.name).subquery()
        q = (sa.select(dv, latest.c.v).join(latest, sa.and_(dv.c.name == latest.c.name, dv.c.version == latest.c.v))
             .order_by(dv.c.name))
        with self.meta.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def versions(self, name: str) -> list[DatasetVersion]:
        return [_row_to_version(r) for r in self._version_rows(name)]

    def version_rows(self, name: str) -> list[dict]:
        """The versions of dataset *name* as its table's rows, oldest first."""
        return [dict(r._mapping) for r in self._version_rows(name)]

    def _version_rows(self, name: str) -> list:
        check_name(name)
        dv = S.dataset_versions
        with self.meta.read() as conn:
            rows = conn.execute(sa.select(dv).where(dv.c.name == name).order_by(dv.c.version)).all()
        if not rows:
            raise NotFound(f"no dataset {name!r} (see `mlops data ls`)")
        return rows

    def runs_of(self, version_id: int) -> list[dict]:
        lin, r = S.lineage, S.runs
        with self.meta.read() as conn:
            return [dict(x._mapping) for x in conn.execute(
                sa.select(lin.c.run_id, lin.c.direction, r.c.name, r.c.status)
                .join(r, r.c.run_id == lin.c.run_id).where(lin.c.version_id == version_id)
                .order_by(lin.c.created))]

    def versions_of_run(self, run_id: str) -> list[tuple[str, DatasetVersion]]:
        lin, dv = S.lineage, S.dataset_versions
        with self.meta.read() as conn:
            rows = conn.execute(sa.select(lin.c.direction, dv).join(dv, dv.c.id == lin.c.version_id)
                                .where(lin.c.run_id == run_id).order_by(lin.c.created)).all()
        out = []
        for r in rows:
            d = dict(r._mapping)
            direction = d.pop("direction")
            d["summary"] = json.loads(d["summary"]) if d.get("summary") else None
            out.append((direction, DatasetVersion(**d)))
        return out
