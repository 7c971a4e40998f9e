import math
import os
import stat

import pytest

from mlops_jupyter.exceptions import BadInput, IntegrityError, NotFound
from mlops_jupyter.store.blobs import BlobStore, hash_bytes

from .conftest import tamper


def test_blob_roundtrip_and_dedupe(tmp_path):
    blobs = BlobStore(str(tmp_path / "objects"))
    d1, n1 = blobs.put_bytes(b"hello")
    d2, _ = blobs.put_bytes(b"hello")
    assert d1 == d2 == hash_bytes(b"hello") and n1 == 5
    assert list(blobs.digests()) == [d1]
    assert blobs.get_bytes(d1) == b"hello"
    f = tmp_path / "big.bin"
    data = os.urandom(3 * (1 << 20) + 17)
    f.write_bytes(data)
    d3, n3 = blobs.put_file(f)
    assert n3 == len(data) and d3 == hash_bytes(data)
    out = tmp_path / "out" / "copy.bin"
    blobs.copy_to(d3, out)
    assert out.read_bytes() == data
    # blobs are read-only on disk and no temporary files are left behind
    assert not os.stat(blobs.path(d3)).st_mode & stat.S_IWUSR
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []


def test_blob_corruption_is_detected(tmp_path):
    blobs = BlobStore(str(tmp_path / "objects"))
    d, _ = blobs.put_bytes(b"some content")
    p = blobs.path(d)
    os.chmod(p, 0o644)
    with open(p, "wb") as f:
        f.write(b"tampered")
    with pytest.raises(IntegrityError):
        blobs.get_bytes(d)
    assert not blobs.verify(d)
    with pytest.raises(NotFound):
        blobs.get_bytes("0" * 64)
    with pytest.raises(BadInput):
        blobs.path("../../etc/passwd")


def test_store_schema_version_and_wal(store):
    import sqlalchemy as sa

    from mlops_jupyter.store import schema

    with store.meta.engine.connect() as conn:
        if store.meta.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.execute(sa.select(schema.schema_version.c.version)).scalar() == schema.SCHEMA_VERSION
    # opening again is a no-op migration
    from mlops_jupyter.store.metadata import MetadataStore

    again = MetadataStore(store.settings.store_url)
    assert again.migrate() == schema.SCHEMA_VERSION


def test_v10_metrics_migration_keeps_every_point(store):
    """A v9 store (on PostgreSQL: metrics with a 32-bit primary key and a (run, key, step) index)
    opens as the current version (v10's metrics migration, then v11's evaluations and v12's model
    notes) with every point in order, and logging goes on."""
    import sqlalchemy as sa

    import mlops_jupyter as mj
    from mlops_jupyter.store import schema
    from mlops_jupyter.store.metadata import MetadataStore

    with mj.start_run("before") as run:
        for step, value in ((0, 1.0), (1, 0.5), (1, 0.4), (2, 0.3)):  # step 1 twice: both kept, in order
            run.log_metric("loss", value, step)
        run.log_metric("acc", float("nan"), 0)
    history = store.meta.metric_history(run.run_id)
    pg = store.meta.dialect == "postgresql"
    with store.meta.write() as conn:
        if pg:  # back to the v9 shape
            conn.exec_driver_sql("DROP INDEX ix_metrics_run_key")
            conn.exec_driver_sql("ALTER TABLE metrics ALTER COLUMN id TYPE integer, ADD PRIMARY KEY (id)")
            conn.exec_driver_sql("CREATE INDEX ix_metrics_run_key_step ON metrics (run_id, key, step)")
        conn.execute(schema.schema_version.update().values(version=9))
    again = MetadataStore(store.settings.store_url)
    with again.engine.connect() as conn:
        assert conn.execute(sa.select(schema.schema_version.c.version)).scalar() == schema.SCHEMA_VERSION == 12
        if pg:
            idx = dict(conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'metrics'").all())
            assert list(idx) == ["ix_metrics_run_key"] and "(run_id, key)" in idx["ix_metrics_run_key"]
            assert conn.exec_driver_sql("SELECT data_type FROM information_schema.columns WHERE table_name = 'metrics' "
                                        "AND column_name = 'id'").scalar() == "bigint"
    assert again.metric_history(run.run_id) == history and len(history) == 5
    assert [(s, v) for k, s, v, t in history if k == "loss"] == [(0, 1.0), (1, 0.5), (1, 0.4), (2, 0.3)]
    again.engine.dispose()
    with mj.start_run("after") as r2:
        for i in range(3000):
            r2.log_metric("loss", i * 1e-3, i)
    h2 = store.meta.metric_history(r2.run_id, "loss")
    assert [s for _, s, _, _ in h2] == list(range(3000)) and h2[-1][2] == 2.999


def test_newer_schema_is_refused(store):

    from mlops_jupyter.exceptions import StoreError
    from mlops_jupyter.store import schema
    from mlops_jupyter.store.metadata import MetadataStore

    with store.meta.write() as conn:
        conn.execute(schema.schema_version.update().values(version=99))
    with pytest.raises(StoreError, match="newer"):
        MetadataStore(store.settings.store_url)
    with store.meta.write() as conn:
        conn.execute(schema.schema_version.update().values(version=schema.SCHEMA_VERSION))


def test_gc_and_fsck(store, project):
    import mlops_jupyter as mj
    from mlops_jupyter.store.maintenance import fsck, gc

    f = project / "a.txt"
    f.write_text("artifact one")
    with mj.start_run("r") as run:
        digest = run.log_artifact(f)
    orphan, _ = store.blobs.put_bytes(b"nobody uses me")
    assert gc(store, dry_run=True).removed == 1
    assert store.blobs.exists(orphan)
    report = gc(store)
    assert report.removed == 1 and not store.blobs.exists(orphan) and store.blobs.exists(digest)
    assert fsck(store).ok
    tamper(store, digest, lambda b: b + b"!")
    rep = fsck(store)
    assert not rep.ok
    assert rep.corrupted[0][0] == digest
    assert any("a.txt" in u for u in rep.corrupted[0][1])


def test_init_adds_gitignore(tmp_path, monkeypatch):
    from mlops_jupyter.config import find_root, init_project

    (tmp_path / ".git").mkdir()
    sub = tmp_path / "notebooks" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    monkeypatch.chdir(sub)
    root = init_project()
    assert root == tmp_path
    assert ".mlops/" in (tmp_path / ".gitignore").read_text().splitlines()
    init_project()
    assert (tmp_path / ".gitignore").read_text().count(".mlops/") == 1
    assert find_root() == tmp_path  # found by walking up, as git does


def test_nan_and_inf_stored_as_such(store):
    import mlops_jupyter as mj

    with mj.start_run("n") as run:
        run.log_metrics({"a": math.nan, "b": math.inf, "c": -math.inf}, step=0)
        run.log_metric("a", 1.0, step=1)
        run.log_metric("a", math.nan, step=2)
    hist = store.meta.metric_history(run.run_id)
    got = {(k, s): v for k, s, v, _ in hist}
    assert math.isnan(got[("a", 0)]) and got[("a", 1)] == 1.0 and math.isnan(got[("a", 2)])
    assert got[("b", 0)] == math.inf and got[("c", 0)] == -math.inf
    rec = mj.get_run(run.run_id)
    assert math.isnan(rec.metrics["a"]) and rec.metrics["b"] == math.inf


def test_blob_store_through_fsspec_url(tmp_path):
    """A non-local URL goes through fsspec (here its in-memory filesystem)."""
    blobs = BlobStore("memory://mlops-test/objects")
    d, n = blobs.put_bytes(b"remote bytes")
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 5000)
    d2, n2 = blobs.put_file(f)
    assert blobs.exists(d) and blobs.get_bytes(d) == b"remote bytes" and n2 == 5000
    assert sorted(blobs.digests()) == sorted([d, d2])
    blobs.copy_to(d2, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == b"x" * 5000
    blobs.fs.pipe_file(blobs.path(d2), b"y" * 5000)
    assert not blobs.verify(d2)


def test_init_with_store_url_is_used(tmp_path, monkeypatch):
    from mlops_jupyter.cli import main
    from mlops_jupyter.config import settings
    from mlops_jupyter.store import close_store

    for var in ("MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL", "MLOPS_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "elsewhere" / "meta.db"
    assert main(["init", "--store", f"sqlite:///{other}", "--artifacts", str(tmp_path / "blobs")]) == 0
    cfg = settings()
    assert cfg.store_url == f"sqlite:///{other}" and cfg.artifacts_url == str(tmp_path / "blobs")
    import mlops_jupyter as mj

    with mj.start_run("elsewhere"):
        pass
    assert other.exists() and (tmp_path / "blobs").is_dir()
    monkeypatch.setenv("MLOPS_STORE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert settings().store_url.endswith("env.db")  # the environment wins over the config file
    close_store()


def test_empty_leftover_of_a_killed_write_is_replaced(tmp_path):
    """A writer killed between creating a small blob and writing it leaves an empty file."""
    blobs = BlobStore(str(tmp_path / "objects"))
    data = b"payload that was never written"
    digest = hash_bytes(data)
    p = blobs.path(digest)
    os.makedirs(os.path.dirname(p))
    open(p, "wb").close()
    assert not blobs.exists(digest)
    assert blobs.put_bytes(data) == (digest, len(data))
    assert blobs.get_bytes(digest) == data
    empty, n = blobs.put_bytes(b"")
    assert n == 0 and blobs.exists(empty) and blobs.get_bytes(empty) == b""
