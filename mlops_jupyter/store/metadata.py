"""The metadata store: runs, params, tags, metrics, artifacts and captured cells.

SQLite (WAL, ``BEGIN IMMEDIATE`` for writes, a long busy timeout and a retry on
"database is locked") by default; any SQLAlchemy URL otherwise.
"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import sqlalchemy as sa

from .. import events
from ..exceptions import BadInput, NotFound, PermissionDenied, StoreError
from . import schema as S
from .processes import STALE_HEARTBEAT, pid_alive, process_start_time, run_is_dead  # noqa: F401

# PostgreSQL's binary COPY format: a header, per row the field count and (length, bytes) per field
# (-1 for NULL), a trailer. Metric rows: run id, key, step (int8), value and timestamp (float8).
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_COPY_NCOLS = (5).to_bytes(2, "big")
_COPY_ROW = struct.Struct(">iqidid")
_COPY_ROW_NULL = struct.Struct(">iqiid")

ACTIVE = "running"
STATUSES = ("running", "finished", "failed", "killed", "crashed", "pruned")  # pruned: a tuner stopped the trial
# every connection to a project's SQLite file (ours, Optuna's): wait for writers; in WAL, no sync per commit
SQLITE_PRAGMAS = ("PRAGMA busy_timeout=60000", "PRAGMA synchronous=NORMAL")


def _make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 60, "check_same_thread": False},
            pool_size=4,
            max_overflow=8,
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # We issue BEGIN ourselves (pysqlite's own transaction handling is off).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            # Only settings that take no lock: the journal mode is a property of the file, set once
            # by use_wal when the store is opened (here it would fail when processes create the
            # database at the same moment: changing it takes a lock the busy timeout does not cover).
            for pragma in SQLITE_PRAGMAS:
                cur.execute(pragma)
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn):
            # Writers take the write lock up front, so two writers never deadlock on an
            # upgrade from a read lock; readers in WAL mode need no lock at all.
            if conn.get_execution_options().get("readonly"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as e:
        raise StoreError(f"cannot use store URL {url!r}: {e}") from None


def open_engine(url: str) -> sa.Engine:
    """The engine for a store URL; a SQLite database (created if new) is in WAL mode."""
    engine = _make_engine(url)
    if engine.dialect.name == "sqlite" and ":memory:" not in url and url.split("///", 1)[-1]:
        with engine.connect() as conn:
            use_wal(conn.connection.dbapi_connection, safe_url(url))
    return engine


def use_wal(dbapi_conn, where: str = "the store") -> None:
    """Put the SQLite database of *dbapi_conn* (a ``sqlite3`` connection outside a transaction) in
    WAL mode unless it is already: the mode persists in the file, so this is done once, when a
    database is opened.

    Changing the mode needs the database to itself, and SQLite answers "database is locked" at
    once, without waiting out the busy timeout, while another process holds it (processes opening
    a new store together all try): retried like every other write until one of them has done it.
    """
    import sqlite3

    for last, delay in _backoff():
        try:
            mode = dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
            if mode == "wal" or dbapi_conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal":
                return
            if last:  # pragma: no cover - a file system without shared memory (WAL needs it)
                raise StoreError(f"cannot put {where} in WAL mode (it stays in {mode!r} mode)")
        except sqlite3.OperationalError as e:
            if not _is_busy(e) or last:
                raise StoreError(f"cannot open {where}: {e}") from None
        time.sleep(delay)


# PostgreSQL SQLSTATEs after which the server has rolled the transaction back and running it
# again from the start is correct: serialization_failure, deadlock_detected, lock_not_available.
RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
# pg_advisory_xact_lock key that serialises schema migrations of one database ("mlops" in ASCII).
MIGRATION_LOCK = 0x6D6C6F7073


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)  # psycopg 3, psycopg2


def _is_busy(exc: BaseException) -> bool:
    if _sqlstate(exc) in RETRY_SQLSTATES:
        return True
    msg = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in msg or "database is busy" in msg or "deadlock" in msg


def _backoff(tries: int = 40):
    """(is_last_try, delay before the next one): exponential from 50 ms to 1 s, about 30 s in all."""
    delay = 0.05
    for attempt in range(tries):
        yield attempt == tries - 1, delay
        delay = min(delay * 2, 1.0)


def _store_error(e: Exception) -> StoreError:
    if _sqlstate(e) == "42501":  # insufficient_privilege: the shared store's access control said no
        first = str(getattr(e, "orig", e)).strip().splitlines()[0]
        err: StoreError = PermissionDenied(f"permission denied by the shared store: {first} (your role may not do "
                                           "this; `mlops access ls` lists who may)")
    else:
        err = StoreError(f"store write failed: {getattr(e, 'orig', e)}")
    err.busy = _is_busy(e)
    return err


def safe_url(url: str, unparsed: str = "the store") -> str:
    """A database URL as shown to people and kept in reports: its password as ``***``."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return unparsed


def _unreachable(url: str, e: Exception) -> StoreError:
    text = str(getattr(e, "orig", e)).strip()
    return StoreError(f"cannot reach {safe_url(url)}: {text.splitlines()[0] if text else type(e).__name__}")


def json_value(value: Any) -> tuple[str, str, float | None, bool]:
    """Encode a param: (json, text, number, was_repr). NaN and infinity survive."""
    was_repr = False
    try:
        encoded = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        encoded = json.dumps(repr(value))
        value = repr(value)
        was_repr = True
    text = value if isinstance(value, str) else encoded
    num = None
    if isinstance(value, bool):
        num = float(value)
    elif isinstance(value, (int, float)):
        num = float(value)
        if math.isnan(num):
            num = None
    return encoded, text, num, was_repr


def json_safe(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, containers recursively, anything else
    as its text."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def decode_value(encoded: str) -> Any:
    return json.loads(encoded)


def _nan_in(v: float | None) -> float | None:
    return None if v is not None and v != v else v


def _nan_out(v: float | None) -> float:
    return math.nan if v is None else v


class MetadataStore:
    """All reads and writes of run metadata go through here."""

    def __init__(self, url: str):
        self.url = url
        self.engine = open_engine(url)
        self.dialect = self.engine.dialect.name
        self.migrate()

    # -- plumbing -------------------------------------------------------------
    def _begin(self) -> tuple[sa.Connection, sa.RootTransaction]:
        """Open a write transaction; taking the write lock is retried while another process holds it."""
        for last, delay in _backoff():
            try:
                conn = self.engine.connect()
            except sa.exc.OperationalError as e:
                if not _is_busy(e) or last:
                    raise _unreachable(self.url, e) from None
                time.sleep(delay)
                continue
            try:
                return conn, conn.begin()
            except sa.exc.OperationalError as e:
                conn.close()
                if not _is_busy(e) or last:
                    raise _store_error(e) from None
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction. The body runs once (use :meth:`run_transaction` for work that may be re-run).

        Events published with this connection are told again as ``committed`` once it commits."""
        conn, trans = self._begin()
        # events published in this transaction (events.PUBLISHED_KEY); told as `committed` after it commits
        published: list = []
        conn.info[events.PUBLISHED_KEY] = published
        try:
            yield conn
            trans.commit()
        except sa.exc.DBAPIError as e:
            trans.rollback()
            if isinstance(e, sa.exc.OperationalError) or _is_busy(e) or _sqlstate(e) == "42501":
                raise _store_error(e) from None
            raise
        except BaseException:
            trans.rollback()
            raise
        finally:
            conn.info.pop(events.PUBLISHED_KEY, None)
            conn.close()
        if published:
            events.publish("committed", published=published)

    def run_transaction(self, fn, *args):
        """The store's transaction API: run fn(conn, *args) in a write transaction, again from the
        start if the store was busy (SQLite locked; PostgreSQL rolled it back on a deadlock or a
        serialization failure). Returns what *fn* returns."""
        for last, delay in _backoff():
            try:
                with self.write() as conn:
                    return fn(conn, *args)
            except StoreError as e:
                if not getattr(e, "busy", False) or last:
                    raise
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        try:
            conn = self.engine.connect()
        except sa.exc.OperationalError as e:
            raise _unreachable(self.url, e) from None
        with conn.execution_options(readonly=True) as conn:
            with conn.begin():
                yield conn

    def lock_row(self, conn: sa.Connection, table: sa.Table, key: dict, create: dict | None = None):
        """The row of *table* with primary key *key*, locked until *conn*'s transaction ends; with
        *create*, first inserted (key + create) unless it exists. None when it does not exist.

        Work that reads a number and writes the next one (dataset and model versions, alias moves)
        takes this lock on its parent row first, so that concurrent writers queue instead of both
        reading the same number. SQLite needs no lock: ``BEGIN IMMEDIATE`` serialises writers."""
        if create is not None:
            conn.execute(self.insert_statement(table).on_conflict_do_nothing(index_elements=list(key)), [{**key, **create}])
        q = sa.select(table).where(*[table.c[k] == v for k, v in key.items()])
        if self.dialect != "sqlite":
            q = q.with_for_update()
        return conn.execute(q).first()

    def insert_statement(self, table: sa.Table):
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:  # pragma: no cover
            raise StoreError(f"upsert not supported on {self.dialect}")
        return insert(table)

    def upsert_statement(self, table: sa.Table, keys: list[str], update: list[str]):
        stmt = self.insert_statement(table)
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={c: getattr(stmt.excluded, c) for c in update}
        )

    def migrate(self) -> int:
        """Bring the schema to the current version; safe when processes race to do it."""

        def apply(conn):
            if self.dialect == "postgresql":
                # Processes opening a fresh database at once would race to create the same tables.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            S.schema_version.create(conn, checkfirst=True)
            current = conn.execute(sa.select(sa.func.max(S.schema_version.c.version))).scalar() or 0
            if current > S.SCHEMA_VERSION:
                raise StoreError(
                    f"the store has schema v{current}, newer than this mlops-jupyter "
                    f"(v{S.SCHEMA_VERSION}); upgrade the package"
                )
            for version, step in S.MIGRATIONS:
                if version > current:
                    step(conn)
                    conn.execute(S.schema_version.delete())
                    conn.execute(S.schema_version.insert().values(version=version))
                    current = version
            return current

        if self.dialect == "sqlite":
            with self.engine.connect().execution_options(readonly=True) as conn:
                with conn.begin():
                    insp = sa.inspect(conn)
                    if insp.has_table("schema_version"):
                        v = conn.execute(sa.select(sa.func.max(S.schema_version.c.version))).scalar()
                        if v == S.SCHEMA_VERSION:
                            return v
        try:
            return self.run_transaction(apply)
        except PermissionDenied as e:  # a teammate's role may not change the schema: say what is needed
            raise PermissionDenied(f"the shared store needs its schema upgraded to v{S.SCHEMA_VERSION} by the role that owns "
                                   f"its tables (any mlops command run as that role does it, once): {e}") from None

    # -- runs -----------------------------------------------------------------
    def create_run(self, row: dict, params: dict | None = None, tags: dict | None = None) -> None:
        with self.write() as conn:
            conn.execute(S.runs.insert().values(**row))
            if params:
                self.write_params(conn, row["run_id"], params)
            if tags:
                self.write_tags(conn, row["run_id"], tags)

    def write_params(self, conn, run_id: str, params: dict) -> None:
        rows = []
        for k, (encoded, text, num) in params.items():
            rows.append(dict(run_id=run_id, key=k, value=encoded, text=text, num=num))
        conn.execute(self.upsert_statement(S.params, ["run_id", "key"], ["value", "text", "num"]), rows)

    def write_tags(self, conn, run_id: str, tags: dict) -> None:
        rows = [dict(run_id=run_id, key=k, value=v) for k, v in tags.items()]
        conn.execute(self.upsert_statement(S.tags, ["run_id", "key"], ["value"]), rows)

    def log_params(self, run_id: str, params: dict) -> None:
        """*params* maps key -> (json, text, number) as made by :func:`json_value`."""
        if params:
            with self.write() as conn:
                self.write_params(conn, run_id, params)

    def set_tags(self, run_id: str, tags: dict) -> None:
        if tags:
            with self.write() as conn:
                self.write_tags(conn, run_id, tags)

    def end_run(self, run_id: str, status: str, end_time: float, error: str | None = None) -> None:
        with self.write() as conn:
            self.ending(run_id, status, end_time, error)(conn)

    @staticmethod
    def ending(run_id: str, status: str, end_time: float, error: str | None = None):
        """The write that ends a run, as fn(conn): to run alone or with the run's last points."""
        if status not in STATUSES or status == ACTIVE:
            raise BadInput(f"cannot end a run as {status!r}; use one of finished, failed, killed")
        stmt = S.runs.update().where(S.runs.c.run_id == run_id).values(status=status, end_time=end_time, error=error)
        return lambda conn: conn.execute(stmt)

    def heartbeat(self, run_ids: Iterable[str], now: float) -> None:
        ids = list(run_ids)
        if ids:
            with self.write() as conn:
                conn.execute(
                    S.runs.update().where(S.runs.c.run_id.in_(ids)).values(heartbeat=now)
                )

    def reap_crashed(self) -> list[str]:
        """Mark runs whose process died without ending them as ``crashed``."""
        host = socket.gethostname()
        now = time.time()
        with self.read() as conn:
            rows = conn.execute(
                sa.select(S.runs.c.run_id, S.runs.c.host, S.runs.c.pid, S.runs.c.pid_start,
                          S.runs.c.heartbeat, S.runs.c.start_time)
                .where(S.runs.c.status == ACTIVE)
            ).all()
        dead = [r for r in rows if run_is_dead(r, host, now)]
        if dead:
            try:
                self._mark_crashed(dead)
            except PermissionDenied:
                return []  # a viewer cannot mark them; someone who may write will
        return [r.run_id for r in dead]

    def _mark_crashed(self, dead: list) -> None:
        with self.write() as conn:
            for r in dead:
                # The end time is the last sign of life we have.
                conn.execute(
                    S.runs.update()
                    .where(S.runs.c.run_id == r.run_id, S.runs.c.status == ACTIVE)
                    .values(status="crashed", end_time=r.heartbeat or r.start_time,
                            error="the process ended without ending the run")
                )

    # -- metrics --------------------------------------------------------------
    def insert_metrics(self, rows: list[tuple], also=None) -> None:
        """Insert (run_id, key, step, value, timestamp) points and refresh latest values; *also(conn)*,
        when given, runs in the same transaction (a run's end with its last points: one commit)."""
        if not rows:
            return
        latest: dict[tuple, tuple] = {}
        counts: dict[tuple, int] = {}
        for row in rows:
            key = (row[0], row[1])
            latest[key] = row
            counts[key] = counts.get(key, 0) + 1
        lrows = [{"run_id": r, "key": k, "step": s, "value": _nan_in(v), "timestamp": t, "count": counts[(r, k)]}
                 for (r, k, s, v, t) in latest.values()]

        def work(conn):
            self.write_points(conn, rows)
            ins = self.insert_statement(S.latest_metrics)
            ins = ins.on_conflict_do_update(
                index_elements=["run_id", "key"],
                set_={
                    "step": ins.excluded.step,
                    "value": ins.excluded.value,
                    "timestamp": ins.excluded.timestamp,
                    "count": S.latest_metrics.c.count + ins.excluded.count,
                },
            )
            conn.execute(ins, lrows)
            if also is not None:
                also(conn)

        self.run_transaction(work)

    def write_points(self, conn: sa.Connection, rows: list[tuple]) -> None:
        """Append (run_id, key, step, value, timestamp) rows to metrics in the caller's transaction, the
        fastest way the database takes them (NaN or None: NULL). Latest values are the caller's."""
        if not rows:
            return
        if self.dialect == "sqlite":
            # The driver's executemany on tuples: several times faster than dicts through Core.
            conn.exec_driver_sql("INSERT INTO metrics (run_id, key, step, value, timestamp) VALUES (?, ?, ?, ?, ?)",
                                 rows)
        elif conn.dialect.driver == "psycopg":
            self._copy_metrics(conn, rows)
        else:
            conn.execute(S.metrics.insert(), [{"run_id": r, "key": k, "step": s, "value": _nan_in(v), "timestamp": t}
                                              for (r, k, s, v, t) in rows])

    def _copy_metrics(self, conn: sa.Connection, rows: list[tuple]) -> None:
        """PostgreSQL through psycopg 3: binary COPY into metrics, in the caller's transaction (about
        four times the rows per second of a multi-row INSERT). The rows bypass Core and psycopg's
        per-row adaptation: each is packed here, run id and key encoded once per distinct pair (the
        key with its column type's own conversion, NUL's stand-in). NULL stands for NaN, as on SQLite."""
        bind = S.metrics.c.key.type.bind_processor(conn.dialect)
        heads: dict[tuple, bytes] = {}
        pack, pack_null = _COPY_ROW.pack, _COPY_ROW_NULL.pack
        out = [_COPY_HEADER]
        add = out.append
        for r, k, s, v, t in rows:
            head = heads.get((r, k))
            if head is None:
                rb = r.encode()
                kb = (bind(k) if bind else k).encode()
                head = heads[(r, k)] = b"".join((_COPY_NCOLS, len(rb).to_bytes(4, "big"), rb,
                                                 len(kb).to_bytes(4, "big"), kb))
            add(head)
            if v is None or v != v:
                add(pack_null(8, s, -1, 8, float(t)))
            else:
                add(pack(8, s, 8, float(v), 8, float(t)))
        out.append(_COPY_TRAILER)
        with conn.connection.dbapi_connection.cursor() as cur:
            with cur.copy("COPY metrics (run_id, key, step, value, timestamp) FROM STDIN (FORMAT BINARY)") as cp:
                cp.write(b"".join(out))

    def metric_history(self, run_id: str, key: str | None = None, after_step: int | None = None) -> list[tuple]:
        """(key, step, value, timestamp) rows in step order."""
        m = S.metrics
        q = sa.select(m.c.key, m.c.step, m.c.value, m.c.timestamp).where(m.c.run_id == run_id)
        if key is not None:
            q = q.where(m.c.key == key)
        if after_step is not None:
            q = q.where(m.c.step > after_step)
        q = q.order_by(m.c.key, m.c.step, m.c.id)
        with self.read() as conn:
            return [(k, s, _nan_out(v), t) for k, s, v, t in conn.execute(q)]

    def latest_metrics(self, run_ids: list[str]) -> dict[str, dict[str, tuple]]:
        out: dict[str, dict[str, tuple]] = {r: {} for r in run_ids}
        lm = S.latest_metrics
        with self.read() as conn:
            for chunk in _chunks(run_ids, 500):
                for r in conn.execute(
                    sa.select(lm.c.run_id, lm.c.key, lm.c.value, lm.c.step, lm.c.count)
                    .where(lm.c.run_id.in_(chunk))
                ):
                    out[r.run_id][r.key] = (_nan_out(r.value), r.step, r.count)
        return out

    # -- artifacts and cells ----------------------------------------------------
    def add_artifacts(self, rows: list[dict], run_id: str | None = None, run_values: dict | None = None) -> None:
        """Record artifacts (dicts with run_id, path, digest, size and kind); in the same
        transaction, set *run_values* on run *run_id* when given."""
        if not rows and not run_values:
            return
        now = time.time()
        rows = [dict(r, created=r.get("created", now)) for r in rows]
        with self.write() as conn:
            if rows:
                conn.execute(
                    self.upsert_statement(S.artifacts, ["run_id", "path"], ["digest", "size", "kind", "created"]), rows
                )
            if run_values:
                conn.execute(S.runs.update().where(S.runs.c.run_id == run_id).values(**run_values))

    def artifacts(self, run_id: str) -> list[dict]:
        a = S.artifacts
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(a).where(a.c.run_id == run_id).order_by(a.c.created, a.c.path))]

    def add_cells(self, rows: list[dict]) -> None:
        if rows:
            self.run_transaction(lambda conn: conn.execute(S.cells.insert(), rows))

    def cells(self, run_id: str) -> list[dict]:
        c = S.cells
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(c).where(c.c.run_id == run_id).order_by(c.c.seq))]

    def next_cell_seq(self, run_id: str) -> int:
        with self.read() as conn:
            n = conn.execute(sa.select(sa.func.max(S.cells.c.seq)).where(S.cells.c.run_id == run_id)).scalar()
        return (n or 0) + 1

    # -- reading runs -----------------------------------------------------------
    def run_row(self, run_id: str) -> dict:
        with self.read() as conn:
            r = conn.execute(sa.select(S.runs).where(S.runs.c.run_id == run_id)).first()
        if r is None:
            raise NotFound(f"no run {run_id!r}")
        return dict(r._mapping)

    def resolve(self, ref: str) -> str:
        """A run id from a full id, a unique id prefix (4+ chars), ``last``, or a run name."""
        ref = (ref or "").strip()
        if not ref:
            raise BadInput("name a run (its id, an id prefix, its name, or 'last')")
        r = S.runs
        with self.read() as conn:
            if ref == "last":
                got = conn.execute(sa.select(r.c.run_id).order_by(r.c.start_time.desc()).limit(1)).scalar()
                if got is None:
                    raise NotFound("there are no runs yet")
                return got
            if conn.execute(sa.select(r.c.run_id).where(r.c.run_id == ref)).scalar():
                return ref
            if len(ref) >= 4 and all(ch in "0123456789abcdef" for ch in ref):
                found = conn.execute(
                    sa.select(r.c.run_id).where(r.c.run_id.like(ref + "%")).limit(2)).scalars().all()
                if len(found) == 1:
                    return found[0]
                if len(found) > 1:
                    raise BadInput(f"run id prefix {ref!r} is ambiguous; give more characters")
            got = conn.execute(
                sa.select(r.c.run_id).where(r.c.name == ref).order_by(r.c.start_time.desc()).limit(1)
            ).scalar()
        if got is None:
            raise NotFound(f"no run {ref!r} (give a run id, an id prefix, a run name, or 'last')")
        return got

    def select_runs(self, where=None, order_by=None, limit: int | None = None, offset: int = 0) -> list[dict]:
        q = sa.select(S.runs)
        if where is not None:
            q = q.where(where)
        q = q.order_by(*(order_by or [S.runs.c.start_time.desc()]))
        if limit is not None:
            q = q.limit(limit)
        if offset:
            q = q.offset(offset)
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def count_runs(self, where=None) -> int:
        q = sa.select(sa.func.count()).select_from(S.runs)
        if where is not None:
            q = q.where(where)
        with self.read() as conn:
            return conn.execute(q).scalar()

    def params_of(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {r: {} for r in run_ids}
        p = S.params
        with self.read() as conn:
            for chunk in _chunks(run_ids, 500):
                for r in conn.execute(sa.select(p.c.run_id, p.c.key, p.c.value).where(p.c.run_id.in_(chunk))):
                    out[r.run_id][r.key] = decode_value(r.value)
        return out

    def tags_of(self, run_ids: list[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {r: {} for r in run_ids}
        t = S.tags
        with self.read() as conn:
            for chunk in _chunks(run_ids, 500):
                for r in conn.execute(sa.select(t.c.run_id, t.c.key, t.c.value).where(t.c.run_id.in_(chunk))):
                    out[r.run_id][r.key] = r.value
        return out

    def children(self, run_id: str) -> list[str]:
        with self.read() as conn:
            return list(conn.execute(
                sa.select(S.runs.c.run_id).where(S.runs.c.parent_id == run_id)).scalars())

    def delete_runs(self, run_ids: list[str]) -> int:
        from . import audit

        with self.write() as conn:
            for r in conn.execute(sa.select(S.runs.c.run_id, S.runs.c.name, S.runs.c.status)
                                  .where(S.runs.c.run_id.in_(run_ids))):
                audit.record(conn, "run.delete", r.run_id, r.name, None, {"status": r.status})
            for table in (S.metrics, S.latest_metrics, S.params, S.tags, S.artifacts, S.cells, S.lineage):
                conn.execute(table.delete().where(table.c.run_id.in_(run_ids)))
            conn.execute(S.runs.update().where(S.runs.c.parent_id.in_(run_ids)).values(parent_id=None))
            return conn.execute(S.runs.delete().where(S.runs.c.run_id.in_(run_ids))).rowcount

    def referenced_digests(self) -> set[str]:
        out: set[str] = set()
        with self.read() as conn:
            for table, col, cond in S.BLOB_REFERENCES:
                q = sa.select(col).distinct()
                out.update(conn.execute(q if cond is None else q.where(cond)).scalars())
        return out

    def blob_users(self, digest: str) -> list[str]:
        """Human-readable names of what uses a blob (for fsck reports)."""
        a, vf, dv = S.artifacts, S.version_files, S.dataset_versions
        with self.read() as conn:
            users = [f"run {r.run_id[:8]} artifact {r.path}" for r in conn.execute(
                sa.select(a.c.run_id, a.c.path).where(a.c.digest == digest))]
            users += [f"dataset {r.name}@v{r.version} file {r.path}" for r in conn.execute(
                sa.select(dv.c.name, dv.c.version, vf.c.path).join(dv, dv.c.id == vf.c.version_id)
                .where(vf.c.digest == digest, vf.c.pack.is_(None)))]
            in_pack = conn.execute(
                sa.select(dv.c.name, dv.c.version, sa.func.count(), sa.func.min(vf.c.path))
                .join(dv, dv.c.id == vf.c.version_id).where(vf.c.pack == digest)
                .group_by(dv.c.name, dv.c.version).order_by(dv.c.name, dv.c.version)).all()
            users += [f"dataset {name}@v{version} ({n} packed files, e.g. {first})" if n > 1
                      else f"dataset {name}@v{version} file {first}" for name, version, n, first in in_pack]
            mv = S.model_versions
            users += [f"model {r.name}@v{r.version}" for r in conn.execute(
                sa.select(mv.c.name, mv.c.version).where(mv.c.digest == digest))]
            ef = S.explanation_files
            users += [f"explanation {r.key[:12]} file {r.name}" for r in conn.execute(
                sa.select(ef.c.key, ef.c.name).where(ef.c.digest == digest))]
        return users

    def close(self) -> None:
        self.engine.dispose()


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]
