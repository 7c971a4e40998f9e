"""Tables of the metadata store and the migrations that create them.

SQLAlchemy Core only, so the same tables live in SQLite (the embedded default) and in
PostgreSQL. Each migration is a function of a connection; ``schema_version`` records
the last one applied. A new table or column is a new migration appended to
``MIGRATIONS``, never an edit of an old one.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
)
from sqlalchemy import String as _String
from sqlalchemy import Text as _Text
from sqlalchemy.types import TypeDecorator

# PostgreSQL's text cannot hold NUL (a tag value, a run name may). There, NUL is stored as
# U+10FFFE (a Unicode noncharacter nobody types) and turned back on reading; SQLite gets the text as
# it is, with no conversion cost at all.
_NUL, _STAND_IN = "\x00", "\U0010fffe"


class _NulSafe(TypeDecorator):
    cache_ok = True

    def bind_processor(self, dialect):
        if dialect.name != "postgresql":
            return self.impl_instance.bind_processor(dialect)
        inner = self.impl_instance.bind_processor(dialect)

        def process(value):
            if value is not None and _NUL in value:
                value = value.replace(_NUL, _STAND_IN)
            return inner(value) if inner else value

        return process

    def result_processor(self, dialect, coltype):
        if dialect.name != "postgresql":
            return self.impl_instance.result_processor(dialect, coltype)

        def process(value):
            if value is not None and _STAND_IN in value:
                value = value.replace(_STAND_IN, _NUL)
            return value

        return process


class String(_NulSafe):
    impl = _String
    cache_ok = True


class Text(_NulSafe):
    impl = _Text
    cache_ok = True

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", Float, nullable=False),
    Column("end_time", Float),
    Column("parent_id", String(32)),
    Column("notebook", Text),
    Column("username", String(128)),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("pid_start", Float),
    Column("heartbeat", Float),
    Column("source", String(32)),
    Column("error", Text),
    Column("env", Text),
)
Index("ix_runs_start_time", runs.c.start_time)
Index("ix_runs_status", runs.c.status)
Index("ix_runs_name", runs.c.name)
Index("ix_runs_parent", runs.c.parent_id)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),  # JSON of the value as given
    Column("text", Text, nullable=False),  # what people read and compare strings against
    Column("num", Float),  # the value as a number when it is one
    PrimaryKeyConstraint("run_id", "key"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
)

# NULL in ``value`` stands for NaN: SQLite turns NaN into NULL on insert, so we say so.
metrics = Table(
    "metrics",
    metadata,
    # 64-bit on PostgreSQL (a team store outgrows 2**31 points); SQLite's INTEGER is the rowid already.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("value", Float),
    Column("timestamp", Float, nullable=False),
)
Index("ix_metrics_run_key_step", metrics.c.run_id, metrics.c.key, metrics.c.step)  # PostgreSQL: see v10

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("value", Float),
    Column("timestamp", Float, nullable=False),
    Column("count", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("run_id", "key"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # artifact | notebook | freeze | gitdiff | environment
    Column("created", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "path"),
)
Index("ix_artifacts_digest", artifacts.c.digest)

cells = Table(
    "cells",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("execution_count", Integer),
    Column("source", Text, nullable=False),
    Column("started", Float, nullable=False),
    Column("duration", Float),
    Column("status", String(8), nullable=False),  # ok | error
    Column("error", Text),
    PrimaryKeyConstraint("run_id", "seq"),
)

# -- v2: data versioning -------------------------------------------------------------------
datasets = Table(
    "datasets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),  # file | dir | table
    Column("created", Float, nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("digest", String(64), nullable=False),  # BLAKE3 of the canonical manifest
    Column("size", BigInteger, nullable=False),
    Column("n_files", Integer, nullable=False),
    Column("rows", BigInteger),
    Column("message", Text),
    Column("source", Text),  # the path or variable it was added from
    Column("created", Float, nullable=False),
    Column("run_id", String(32)),
    Column("username", String(128)),
    Column("summary", Text),  # JSON: schema and per-column statistics (tables)
    UniqueConstraint("name", "version", name="uq_dataset_version"),
)
Index("ix_dataset_versions_name", dataset_versions.c.name, dataset_versions.c.version)

version_files = Table(
    "version_files",
    metadata,
    Column("version_id", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mode", Integer, nullable=False),
    # Small files added many at a time live inside a pack (a blob holding many files):
    # bytes [pack_offset, pack_offset + size) of blob *pack*. NULL: the file is a blob of its own.
    Column("pack", String(64)),
    Column("pack_offset", BigInteger),
    PrimaryKeyConstraint("version_id", "path"),
)
Index("ix_version_files_digest", version_files.c.digest)

lineage = Table(
    "lineage",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("direction", String(8), nullable=False),  # input | output
    Column("created", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "version_id", "direction"),
)
Index("ix_lineage_version", lineage.c.version_id)

# -- v4: model registry and explanations ------------------------------------------------------
models = Table(
    "models",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("created", Float, nullable=False),
    Column("description", Text),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created", Float, nullable=False),
    Column("run_id", String(32)),
    Column("username", String(128)),
    Column("flavor", String(16), nullable=False),  # sklearn | xgboost | lightgbm | keras | torch | pickle
    Column("library", String(64)),
    Column("library_version", String(64)),
    Column("model_class", Text),
    Column("digest", String(64), nullable=False),  # the saved model's blob
    Column("size", BigInteger, nullable=False),
    Column("signature", Text),  # JSON: input columns and dtypes, or array shape and dtype; classes
    Column("metrics", Text),  # JSON: the run's metrics when the version was registered
    Column("datasets", Text),  # JSON: dataset versions the run used
    Column("trusted", Text),  # JSON: types skops may build when loading (recorded when saving)
    Column("extra", Text),  # JSON: what the flavor needs to rebuild the object
    Column("message", Text),
    UniqueConstraint("name", "version", name="uq_model_version"),
)
Index("ix_model_versions_run", model_versions.c.run_id)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(128), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("name", "alias"),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("username", String(128)),
    Column("host", String(256)),
    Column("at", Float, nullable=False),
)
Index("ix_alias_events_name", alias_events.c.name, alias_events.c.id)

explanations = Table(
    "explanations",
    metadata,
    Column("key", String(64), primary_key=True),  # BLAKE3 of model content, data content, options
    Column("method", String(8), nullable=False),
    Column("model_digest", String(64), nullable=False),
    Column("data_digest", String(64), nullable=False),
    Column("model_version_id", Integer),
    Column("data_version_id", Integer),
    Column("run_id", String(32)),
    Column("created", Float, nullable=False),
    Column("options", Text),
    Column("meta", Text),  # JSON: explainer, notes, feature names, classes, shapes
)
Index("ix_explanations_model_version", explanations.c.model_version_id)

explanation_files = Table(
    "explanation_files",
    metadata,
    Column("key", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    PrimaryKeyConstraint("key", "name"),
)

# -- v5: prediction logs of the model server, and labels posted for them later ------------------
predictions = Table(
    "predictions",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("route", String(32)),
    Column("n_rows", Integer, nullable=False),
    Column("latency", Float),  # seconds spent predicting, as the server measured it
    Column("inputs", Text, nullable=False),  # JSON {"columns": [...], "data": [[...], ...]} as sent
    Column("outputs", Text, nullable=False),  # JSON {"predictions": [...], "probabilities": [...]?}
)
Index("ix_predictions_model_at", predictions.c.model, predictions.c.at)

prediction_labels = Table(
    "prediction_labels",
    metadata,
    Column("request_id", String(32), nullable=False),
    Column("row", Integer, nullable=False),
    Column("label", Text, nullable=False),  # JSON value
    Column("at", Float, nullable=False),
    PrimaryKeyConstraint("request_id", "row"),
)

# A model a job execution registered, held back until the batch picks its best (the challenger).
model_candidates = Table(
    "model_candidates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    Column("execution", String(32), nullable=False),  # the execution's run
    Column("run_id", String(32)),  # the run active when the notebook registered it
    Column("name", String(128), nullable=False),
    Column("created", Float, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("fields", Text, nullable=False),  # JSON: what a model_versions row needs besides name/version/run
    Column("status", String(16), nullable=False),  # staged | registered | passed-over
    Column("version", Integer),  # the version it became, when registered
    Index("ix_model_candidates_execution", "execution"),
)

# -- v7: monitoring: drift reports, and the checks that decide about retraining ------------------
drift_reports = Table(
    "drift_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created", Float, nullable=False),
    Column("username", String(128)),
    Column("run_id", String(32)),  # the run active when it was computed
    Column("model", String(128)),  # the model version it concerns (serving traffic, or named)
    Column("version", Integer),
    Column("reference", Text, nullable=False),  # how each side was described
    Column("current", Text, nullable=False),
    Column("datasets", Text),  # JSON: data version refs involved
    Column("window_start", Float),  # the window of serving traffic, when a side was one
    Column("window_end", Float),
    Column("n_ref", BigInteger, nullable=False),
    Column("n_cur", BigInteger, nullable=False),
    Column("n_compared", Integer, nullable=False),
    Column("n_drifted", Integer, nullable=False),
    Column("drift_share", Float),
    Column("dataset_drift", Boolean, nullable=False),
    Column("summary", Text, nullable=False),  # JSON: the whole summary
    Column("features", Text, nullable=False),  # JSON: per-feature rows
    Column("histograms", Text),  # JSON: the display histograms
)
Index("ix_drift_reports_model", drift_reports.c.model, drift_reports.c.created)

monitor_checks = Table(
    "monitor_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("username", String(128)),
    Column("rule", Text, nullable=False),
    Column("figures", Text, nullable=False),  # JSON: every figure the rule can name, null when unknown
    Column("fired", Boolean, nullable=False),
    Column("drift_report", Integer),  # drift_reports.id
    Column("outcome", Text),  # what happened: not fired, retrained (new champion or not), failed, dry run
)
Index("ix_monitor_checks_job", monitor_checks.c.job, monitor_checks.c.at)

# -- v8: what has been mirrored to other tools (Weights & Biases), item by item ------------------
mirrors = Table(
    "mirrors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target", String(16), nullable=False),  # wandb
    Column("kind", String(8), nullable=False),  # run | data | model | alias
    Column("key", String(64), nullable=False),  # run id, data version id, model version id, alias event id
    Column("status", String(8), nullable=False),  # pending | active | done | failed
    Column("owner", String(300)),  # host:pid of the process mirroring it
    Column("heartbeat", Float),  # the owner's last sign of life
    Column("cursor", BigInteger, nullable=False, default=0),  # metrics.id mirrored up to (runs)
    Column("remote", Text),  # where it went (the W&B run path)
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("reported", Boolean, nullable=False, default=False),  # a failure the user was told about
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    UniqueConstraint("target", "kind", "key", name="uq_mirrors_item"),
)
Index("ix_mirrors_status", mirrors.c.target, mirrors.c.status)

# -- v9: the audit log: every write that changes what others see; append-only ----------------------
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("username", String(128), nullable=False),
    Column("host", String(255)),
    Column("action", String(32), nullable=False),  # alias.move alias.delete run.delete gc promote access.grant ...
    Column("target", Text, nullable=False),  # what it was done to: churn@production, a run id, a job, a user
    Column("from_value", Text),
    Column("to_value", Text),
    Column("detail", Text),  # JSON: anything else worth keeping
)
Index("ix_audit_at", audit.c.at)


# -- v11: evaluations of model versions on labelled data (figures, curves, slices, a baseline) ----------
evaluations = Table(
    "evaluations",
    metadata,
    Column("key", String(64), primary_key=True),  # BLAKE3 of model content, data content, options
    Column("model_version_id", Integer),
    Column("model_digest", String(64), nullable=False),
    Column("data_version_id", Integer),
    Column("data_digest", String(64), nullable=False),
    Column("baseline_version_id", Integer),
    Column("task", String(16), nullable=False),
    Column("target", String(256), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("run_id", String(32)),
    Column("username", String(128)),
    Column("created", Float, nullable=False),
    Column("figures", Text),  # JSON: the headline figures, for listings without the document
    Column("options", Text),  # JSON: by, min_group, resamples, seed, positive
    Column("digest", String(64), nullable=False),  # the whole evaluation document (JSON) in the blob store
    Column("size", BigInteger, nullable=False),
)
Index("ix_evaluations_model_version", evaluations.c.model_version_id)


# -- v12: what a model version is for, in its owners' words (its card's intended use and limits) --------
model_notes = Table(
    "model_notes",
    metadata,
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("intended_use", Text),
    Column("limitations", Text),
    Column("updated", Float, nullable=False),
    Column("username", String(128)),
    PrimaryKeyConstraint("name", "version"),
)


def _append_only(conn) -> None:
    """Refuse UPDATE and DELETE on the audit table in the database itself (a trigger), so no client
    (ours or another) rewrites history; on PostgreSQL roles can be granted INSERT and SELECT only."""
    audit.create(conn, checkfirst=True)
    if conn.dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(f"CREATE TRIGGER IF NOT EXISTS audit_no_{verb.lower()} BEFORE {verb} ON audit "
                                 "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("CREATE OR REPLACE FUNCTION mlops_audit_append_only() RETURNS trigger AS $$ "
                             "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql")
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_append_only ON audit")
        conn.exec_driver_sql("CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit "
                             "FOR EACH STATEMENT EXECUTE FUNCTION mlops_audit_append_only()")


# Every (table, column, condition) that names a stored blob: ``gc`` keeps what any of them names.
BLOB_REFERENCES: list[tuple[Table, Column, object]] = [
    (artifacts, artifacts.c.digest, None),
    (version_files, version_files.c.digest, version_files.c.pack.is_(None)),
    (version_files, version_files.c.pack, version_files.c.pack.isnot(None)),
    (model_versions, model_versions.c.digest, None),
    (explanation_files, explanation_files.c.digest, None),
    (model_candidates, model_candidates.c.digest, None),
    (evaluations, evaluations.c.digest, None),
]

V1_TABLES = [runs, params, tags, metrics, latest_metrics, artifacts, cells]
V2_TABLES = [datasets, dataset_versions, version_files, lineage]
V4_TABLES = [models, model_versions, model_aliases, alias_events, explanations, explanation_files]
V5_TABLES = [predictions, prediction_labels]


def _create(tables: list[Table]):
    """A migration that creates *tables* (kept as they are if a racing process made them first)."""

    def migrate(conn) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return migrate


def _add_columns(table: Table, names: list[str]):
    """A migration that adds columns (already in *table*'s definition) to an existing table."""

    def migrate(conn) -> None:
        from sqlalchemy import inspect
        from sqlalchemy.schema import CreateColumn

        have = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for name in names:
            if name not in have:
                ddl = CreateColumn(table.c[name]).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")

    return migrate


def _lean_metrics(conn) -> None:
    """PostgreSQL: the metrics table keeps one index, on (run_id, key). The primary key and the
    step in the index made each point cost three B-tree inserts; a history is read by run and key
    and sorted by step in memory, and ``id`` stays unique by its sequence (now 64-bit). Replica
    identity FULL keeps the table publishable for logical replication without a key. SQLite:
    nothing (its rowid is the key for free)."""
    if conn.dialect.name != "postgresql":
        return
    for sql in ("ALTER TABLE metrics DROP CONSTRAINT IF EXISTS metrics_pkey",
                "ALTER TABLE metrics ALTER COLUMN id TYPE bigint",
                "ALTER SEQUENCE IF EXISTS metrics_id_seq AS bigint",
                "DROP INDEX IF EXISTS ix_metrics_run_key_step",
                "CREATE INDEX IF NOT EXISTS ix_metrics_run_key ON metrics (run_id, key)",
                "ALTER TABLE metrics REPLICA IDENTITY FULL"):
        conn.exec_driver_sql(sql)


MIGRATIONS = [
    (1, _create(V1_TABLES)),
    (2, _create(V2_TABLES)),
    (3, _add_columns(version_files, ["pack", "pack_offset"])),
    (4, _create(V4_TABLES)),
    (5, _create(V5_TABLES)),
    (6, _create([model_candidates])),
    (7, _create([drift_reports, monitor_checks])),
    (8, _create([mirrors])),
    (9, _append_only),
    (10, _lean_metrics),
    (11, _create([evaluations])),
    (12, _create([model_notes])),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
