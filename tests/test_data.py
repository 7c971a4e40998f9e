import os
import shutil
import signal
import subprocess
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import mlops_jupyter as mj
from mlops_jupyter.exceptions import BadInput, IntegrityError, NotFound

from .conftest import PY, python_env, run_cell, tamper


def make_tree(root, files):
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def frame(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n),
        "age": rng.integers(18, 90, n),
        "income": rng.normal(50_000, 12_000, n),
        "city": pd.Categorical(rng.choice(["paris", "lyon", "nice"], n)),
        "name": [f"user{i}" for i in range(n)],
        "joined": pd.date_range("2024-01-01", periods=n, freq="h"),
        "churn": rng.random(n) < 0.2,
    })


def test_add_folder_versions_dedupes_and_checks_out(store, project):
    raw = make_tree(project / "raw", {"a.csv": "x,y\n1,2\n", "sub/b.bin": os.urandom(5000), "sub/copy.csv": "x,y\n1,2\n"})
    os.chmod(raw / "a.csv", 0o750)
    v1 = mj.data.add(raw, name="raw", message="October export")
    assert (v1.ref, v1.kind, v1.n_files, v1.unchanged) == ("raw@v1", "dir", 3, False)
    # identical files are stored once
    assert len({f["digest"] for f in v1.files}) == 2
    again = mj.data.add(raw, name="raw")
    assert again.unchanged and again.ref == "raw@v1"
    (raw / "sub" / "b.bin").write_bytes(os.urandom(6000))
    (raw / "new.txt").write_text("hello")
    v2 = mj.data.add(raw, name="raw")
    assert v2.ref == "raw@v2" and v2.n_files == 4
    d = mj.data.diff("raw@v1", "raw@v2")
    assert [p for p, _ in d.added] == ["new.txt"] and [p for p, *_ in d.changed] == ["sub/b.bin"]
    assert d.unchanged == 2 and not d.removed
    assert "new.txt" in d._repr_html_()
    report = mj.data.checkout("raw@v1", project / "restore")
    assert sorted(report.written) == ["a.csv", "sub/b.bin", "sub/copy.csv"]
    for f in v1.files:
        p = project / "restore" / f["path"]
        assert (os.stat(p).st_mode & 0o777) == f["mode"]
    assert (os.stat(project / "restore" / "a.csv").st_mode & 0o777) == 0o750
    assert (project / "restore" / "a.csv").read_bytes() == b"x,y\n1,2\n"
    # refuses to overwrite files that differ, and says which
    with pytest.raises(BadInput, match=r"sub/b\.bin.*--force"):
        mj.data.checkout("raw@v2", project / "restore")
    r2 = mj.data.checkout("raw@v2", project / "restore", force=True)
    assert r2.overwritten == ["sub/b.bin"] and (project / "restore" / "new.txt").read_text() == "hello"
    assert sorted(mj.data.versions("raw")["ref"]) == ["raw@v1", "raw@v2"]
    ls = mj.data.datasets()
    assert list(ls["name"]) == ["raw"] and list(ls["latest"]) == ["v2"]


def test_readd_unchanged_reads_no_content(store, project, monkeypatch):
    raw = make_tree(project / "raw", {f"f{i}.txt": f"content {i}" for i in range(50)})
    time.sleep(0.1)  # files changed within the clock tick of hashing are hashed again (racily clean)
    mj.data.add(raw, name="raw")
    from mlops_jupyter.store.blobs import BlobStore

    def boom(*a, **k):
        raise AssertionError("file content was read")

    with monkeypatch.context() as m:
        from mlops_jupyter.data import files

        for name in ("put_file", "put_small"):
            m.setattr(BlobStore, name, boom)
        m.setattr(files, "_pack", boom)
        assert mj.data.add(raw, name="raw").unchanged
    # same size and mtime but new content: the changed ctime/inode gives it away
    p = raw / "f3.txt"
    st = os.stat(p)
    p.write_text("CONTENT 3")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert mj.data.add(raw, name="raw").ref == "raw@v2"


def test_single_file_and_load(store, project):
    df = frame(50)
    df.to_csv(project / "train.csv", index=False)
    v = mj.data.add(project / "train.csv")
    assert v.ref == "train.csv@v1" and v.kind == "file"
    back = mj.data.load("train.csv@v1")
    assert list(back.columns) == list(df.columns) and len(back) == 50
    mj.data.checkout("train.csv", project / "out")
    assert (project / "out" / "train.csv").read_bytes() == (project / "train.csv").read_bytes()
    mj.data.checkout("train.csv@v1", project / "renamed.csv")
    assert (project / "renamed.csv").read_bytes() == (project / "train.csv").read_bytes()


def test_dataframe_versions_are_deterministic_and_round_trip(store):
    df = frame(2000)
    df.loc[3, "income"] = np.nan
    v1 = mj.data.add(df, name="train")
    assert v1.kind == "table" and v1.rows == 2000
    assert mj.data.add(frame(2000).assign(income=df["income"]), name="train").unchanged  # same content, same hash
    back = mj.data.load("train@v1")
    pd.testing.assert_frame_equal(back, df)
    s = v1.summary["columns"]
    assert s["age"]["min"] >= 18 and s["age"]["max"] <= 89 and s["income"]["nulls"] == 1
    assert s["city"]["categories"] == ["lyon", "nice", "paris"] and s["city"]["distinct"] == 3
    assert s["churn"]["kind"] == "bool" and s["joined"]["kind"] == "time"
    assert abs(s["income"]["mean"] - df["income"].mean()) < 1e-6
    assert abs(s["income"]["std"] - df["income"].std()) < 1e-6
    assert "Columns" in mj.data.show("train@v1")._repr_html_()


def test_table_diff_schema_stats_and_keys(store):
    a = frame(1000)
    b = a.drop(columns=["name"]).assign(score=1.0)
    b["age"] = b["age"].astype("float64")
    b = b[b["id"] >= 10].copy()  # 10 removed
    b.loc[b["id"] == 500, "income"] = -1.0  # 1 changed
    b = pd.concat([b, a.drop(columns=["name"]).iloc[:3].assign(id=[5000, 5001, 5002], score=1.0,
                                                                age=[20.0, 30.0, 40.0])])  # 3 added
    mj.data.add(a, name="t")
    mj.data.add(b, name="t")
    d = mj.data.diff("t@v1", "t@v2", key="id")
    assert d.added_columns == ["score"] and d.removed_columns == ["name"]
    assert ("age", "int64", "float64") in d.type_changes
    assert d.rows == (1000, 993)
    assert (d.rows_added, d.rows_removed, d.rows_changed) == (3, 10, 1)
    changed = {(s["column"], s["stat"]) for s in d.stats if s["changed"]}
    assert ("income", "mean") in changed and ("city", "null_fraction") not in changed
    assert "rows 1,000 -> 993" in str(d) and "score" in d._repr_html_()
    with pytest.raises(BadInput, match="not unique"):
        mj.data.add(pd.DataFrame({"id": [1, 1]}), name="dup")
        mj.data.diff("dup@v1", "dup@v1", key="id")


def test_check_lists_each_violation(store):
    ref = frame(500)
    mj.data.add(ref, name="train")
    assert mj.data.check("train@v1", ref.sample(300, random_state=1)).ok  # new rows drawn from the same data
    bad = frame(300, seed=2).drop(columns=["name"])
    bad["age"] = bad["age"] + 100
    bad["income"] = bad["income"].astype("float32")
    bad["city"] = pd.Categorical(["paris"] * 299 + ["berlin"])
    bad["churn"] = bad["churn"].astype("boolean")
    bad.loc[0, "churn"] = pd.NA
    report = mj.data.check("train@v1", bad)
    msgs = dict(report.violations)
    assert not report.ok
    assert msgs["name"] == "missing column"
    assert "outside the version's range" in msgs["age"]
    assert "dtype float32, expected float64" in msgs["income"]
    assert "berlin" in msgs["city"]
    assert "churn" in msgs
    assert "violation" in str(report) and "✗" in report._repr_html_()


def test_lineage_data_run_data(store):
    raw = frame(100)
    with mj.start_run("prep") as run:
        mj.data.add(raw, name="raw")
        mj.data.add(raw.head(80), name="train", output=True)
    with mj.start_run("fit") as fit:
        mj.data.load("train@v1")
    g = mj.data.lineage("train@v1")
    labels = {g.nodes[a][1]: g.nodes[b][1] for a, b in g.edges if g.nodes[a][0] == "run"}
    assert labels == {f"prep ({run.run_id[:8]})": "train@v1"}
    assert any(g.nodes[b][1] == f"fit ({fit.run_id[:8]})" for a, b in g.edges if g.nodes[a][1] == "train@v1")
    gr = mj.data.lineage(run.run_id)
    assert str(gr).splitlines() == [f"raw@v1 -> prep ({run.run_id[:8]})", f"prep ({run.run_id[:8]}) -> train@v1"]
    assert "<svg" in gr._repr_html_() and "train@v1" in gr._repr_html_()
    with pytest.raises(NotFound):
        mj.data.lineage("nothing-like-this")


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "x\x00y", "bad name", "", ".hidden", "x" * 200])
def test_bad_dataset_names(store, project, name):
    (project / "f.txt").write_text("x")
    with pytest.raises(BadInput, match="not allowed"):
        mj.data.add(project / "f.txt", name=name)


def test_bad_inputs(store, project):
    with pytest.raises(NotFound, match="no such file"):
        mj.data.add(project / "missing")
    with pytest.raises(BadInput, match="cannot version a int"):
        mj.data.add(42, name="x")
    mj.data.add(frame(10), name="train")
    with pytest.raises(NotFound, match="train has v1..v1"):
        mj.data.load("train@v9")
    with pytest.raises(NotFound, match="no dataset"):
        mj.data.load("nope@v1")
    with pytest.raises(BadInput, match="@v<number>"):
        mj.data.load("train@latest2")
    (project / "d").mkdir()
    (project / "d" / "x").write_text("1")
    with pytest.raises(BadInput, match="holds table versions"):
        mj.data.add(project / "d", name="train")


def test_fsck_names_the_dataset_of_a_corrupted_blob(store, project):
    from mlops_jupyter.store.maintenance import fsck, gc

    make_tree(project / "raw", {"a.txt": "alpha"})
    v = mj.data.add(project / "raw", name="raw")
    assert gc(store).removed == 0  # dataset blobs are referenced
    tamper(store, v.files[0]["digest"], lambda b: b"beta")
    rep = fsck(store)
    assert not rep.ok and "dataset raw@v1 file a.txt" in str(rep)


def test_many_small_files_go_into_packs(store, project):
    from mlops_jupyter.store.maintenance import fsck, gc

    files = {f"d{i % 3}/f{i:03d}.bin": os.urandom(100 + i) for i in range(200)}
    files.update({"same1.txt": "twin", "same2.txt": "twin", "big.bin": os.urandom(300 << 10)})
    raw = make_tree(project / "raw", files)
    v1 = mj.data.add(raw, name="raw")
    packs = {f["pack"] for f in v1.files if f["pack"]}
    assert len(packs) == 1 and sum(1 for f in v1.files if f["pack"]) == 202
    assert next(f for f in v1.files if f["path"] == "big.bin")["pack"] is None  # large files stay blobs
    twins = [f for f in v1.files if f["path"].startswith("same")]
    assert twins[0]["pack_offset"] == twins[1]["pack_offset"]  # identical content stored once
    before = set(store.blobs.digests())
    # the same content under another path and name adds no bytes to the store
    shutil.copytree(raw, project / "copy")
    v = mj.data.add(project / "copy", name="copy")
    assert set(store.blobs.digests()) == before and {f["pack"] for f in v.files if f["pack"]} == packs
    # a changed file makes a new version that reuses the old pack for the rest
    (raw / "d0" / "f000.bin").write_bytes(b"changed")
    (raw / "d1" / "extra.bin").write_bytes(b"new")
    v2 = mj.data.add(raw, name="raw")
    assert v2.ref == "raw@v2" and len(set(store.blobs.digests()) - before) <= 2
    mj.data.checkout("raw@v1", project / "back")
    for rel, content in files.items():
        data = content if isinstance(content, bytes) else content.encode()
        assert (project / "back" / rel).read_bytes() == data
    assert gc(store).removed == 0 and fsck(store).ok
    # a corrupted pack is named with the versions that use it; checkout refuses its bytes
    tamper(store, packs.pop(), lambda b: b[:150] + b"\0\0\0\0" + b[154:])
    rep = fsck(store)
    assert not rep.ok and "dataset raw@v1 (" in str(rep) and "dataset copy@v1 (" in str(rep)
    with pytest.raises(IntegrityError):
        mj.data.checkout("raw@v1", project / "again")


def test_store_of_schema_v2_is_migrated(project, backend):
    import sqlite3

    if backend != "sqlite":
        pytest.skip("a store as schema v2 left it is an SQLite file")

    from mlops_jupyter.store import close_store, open_store

    open_store()
    close_store()
    db = project / ".mlops" / "mlops.db"
    con = sqlite3.connect(db)  # back to how v2 left it
    con.executescript("ALTER TABLE version_files DROP COLUMN pack; ALTER TABLE version_files DROP COLUMN pack_offset;"
                      "UPDATE schema_version SET version = 2;")
    con.close()
    open_store()
    cols = [r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(version_files)")]
    assert cols[-2:] == ["pack", "pack_offset"]


def test_interrupted_add_leaves_no_version(store, project, monkeypatch):
    raw = make_tree(project / "raw", {f"f{i}.txt": f"c{i}" for i in range(40)})
    from mlops_jupyter.store.blobs import PackWriter

    real = PackWriter.add
    calls = []

    def flaky(self, data):
        calls.append(data)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return real(self, data)

    with monkeypatch.context() as m:
        m.setattr(PackWriter, "add", flaky)
        with pytest.raises(KeyboardInterrupt):
            mj.data.add(raw, name="raw")
    with pytest.raises(NotFound):
        mj.data.get("raw")
    v = mj.data.add(raw, name="raw")
    assert v.ref == "raw@v1" and v.n_files == 40


@pytest.mark.slow
def test_sigkill_during_add_then_add_again(store, project):
    raw = project / "raw"
    raw.mkdir()
    for i in range(3000):
        (raw / f"f{i:05d}.bin").write_bytes(os.urandom(2048))
    code = textwrap.dedent(f"""
        import mlops_jupyter as mj
        from mlops_jupyter.store.blobs import PackWriter
        import time
        real = PackWriter.add
        def slow(self, data):
            time.sleep(0.002)
            return real(self, data)
        PackWriter.add = slow
        print("go", flush=True)
        mj.data.add({str(raw)!r}, name="raw")
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([PY, "-c", code], cwd=project, env=python_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "go"
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    from mlops_jupyter.store import close_store

    close_store()
    with pytest.raises(NotFound):
        mj.data.get("raw")  # nothing half-written is visible
    v = mj.data.add(raw, name="raw")
    assert v.ref == "raw@v1" and v.n_files == 3000
    mj.data.checkout("raw@v1", project / "back")
    assert (project / "back" / "f01234.bin").read_bytes() == (raw / "f01234.bin").read_bytes()


def test_data_magics(ip, capsys):
    ip.user_ns["train_df"] = frame(100)
    run_cell(ip, "%mlops data add train_df --name train -m first")
    assert "added train@v1" in capsys.readouterr().out
    run_cell(ip, "%mlops data add train_df --name train")
    assert "unchanged, still train@v1" in capsys.readouterr().out
    ip.user_ns["train_df"] = frame(120)
    run_cell(ip, "%mlops data add train_df")  # the variable name is the default dataset name
    assert mj.data.get("train_df").rows == 120
    run_cell(ip, "%mlops data add train_df --name train")
    r = run_cell(ip, "df = %mlops data load train@v2")
    assert r.success and len(ip.user_ns["df"]) == 120
    d = ip.run_line_magic("mlops", "data diff train@v1 train@v2 --key id")
    assert d.rows_added == 20
    rep = ip.run_line_magic("mlops", "data check train@v1 df")
    assert not rep.ok  # ids and rows beyond the v1 ranges
    assert ip.run_line_magic("mlops", "data show train").ref == "train@v2"
    ip.run_line_magic("mlops", "data ls")
    ip.run_line_magic("mlops", "data ls train")
    g = ip.run_line_magic("mlops", "lineage train@v2")
    assert "train@v2" in str(g) or "no recorded lineage" in str(g)
    for line, msg in (("data add nosuchvar --name x", "neither a variable"),
                      ("data add train_df --name a/b", "not allowed"),
                      ("data load train@v9", "train has v1..v2"),
                      ("data checkout train@v1", "--to"),
                      ("data diff train@v1", "required")):
        with pytest.raises(UsageError) as e:
            ip.run_line_magic("mlops", line)
        assert msg in str(e.value) and "\n" not in str(e.value)


def test_data_cli(project):
    make_tree(project / "raw", {"a.txt": "a", "b/c.txt": "c"})

    def cli(*args):
        return subprocess.run([PY, "-m", "mlops_jupyter.cli", *args], capture_output=True, text=True, cwd=project,
                              env=python_env(), timeout=120)

    assert "added raw@v1" in cli("data", "add", "raw", "-m", "first").stdout
    assert "unchanged, still raw@v1" in cli("data", "add", "raw").stdout
    assert "raw@v1" in cli("data", "show", "raw@v1").stdout
    assert cli("data", "ls").returncode == 0
    r = cli("data", "checkout", "raw@v1", "--to", "out")
    assert r.returncode == 0 and (project / "out" / "b" / "c.txt").read_text() == "c"
    pd.DataFrame({"x": [1, 2]}).to_parquet(project / "t.parquet")
    r = cli("data", "check", "raw@v1", "t.parquet")
    assert r.returncode == 2 and "schema checks apply to table versions" in r.stderr
    r = cli("data", "add", "missing/")
    assert r.returncode == 2 and "no such file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_polars_frames(store):
    pl = pytest.importorskip("polars", reason="polars is an optional extra")
    df = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    v = mj.data.add(df, name="pl")
    assert v.kind == "table" and v.rows == 3 and v.summary["columns"]["b"]["nulls"] == 1
    assert mj.data.add(pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]}), name="pl").unchanged
    back = mj.data.load("pl@v1")
    assert list(back["a"]) == [1, 2, 3]


def test_large_file_path_round_trips(store, project):
    """Files past the small-file limit take the kernel-copy + memory-map path."""
    big = project / "big.bin"
    data = os.urandom(3 * (64 << 20) // 2 + 12345)  # more than one hashing window
    big.write_bytes(data)
    time.sleep(0.06)
    v = mj.data.add(big, name="big")
    from mlops_jupyter.store.blobs import hash_bytes

    assert v.files[0]["digest"] == hash_bytes(data)
    mj.data.checkout("big@v1", project / "out")
    assert (project / "out" / "big.bin").read_bytes() == data
    assert mj.data.add(big, name="big").unchanged
