"""`mlops migrate`: a local project copied into PostgreSQL + S3 (moto on 127.0.0.1), checked
item by item; again is a no-op; clashes stop it before anything is written."""

import os
import subprocess

import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression

import mlops_jupyter as mj
from mlops_jupyter.store import schema as S

from .conftest import PY, python_env, run_cli

pytestmark = pytest.mark.slow


def _cli(args, cwd, env):
    return run_cli(*args, cwd=cwd, env=env, timeout=300)


def _snapshot(url: str) -> dict:
    """What a store holds, table by table, ids aside (they are renumbered)."""
    eng = sa.create_engine(url)
    out = {}
    with eng.connect() as conn:
        for t in (S.runs, S.params, S.tags, S.metrics, S.latest_metrics, S.artifacts, S.cells, S.datasets,
                  S.dataset_versions, S.models, S.model_versions, S.model_aliases, S.alias_events):
            cols = [c for c in t.c if c.name not in ("id", "version_id")]
            out[t.name] = sorted(tuple(map(repr, r)) for r in conn.execute(sa.select(*cols)))
        out["version_files"] = sorted(
            (r.name, r.version, r.path, r.digest, r.size) for r in conn.execute(
                sa.select(S.dataset_versions.c.name, S.dataset_versions.c.version, S.version_files.c.path,
                          S.version_files.c.digest, S.version_files.c.size)
                .join(S.dataset_versions, S.dataset_versions.c.id == S.version_files.c.version_id)))
    eng.dispose()
    return out


def test_migrate_a_local_project_into_postgres_and_s3(project, postgres_url, s3_url, monkeypatch):
    X = pd.DataFrame({"a": [0.0, 1, 2, 3, 4, 5], "b": [1.0, 0, 1, 0, 1, 0]})
    raw = project / "raw"
    (raw / "d").mkdir(parents=True)
    for i in range(40):
        (raw / "d" / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))  # small files: packed
    (raw / "big.bin").write_bytes(os.urandom(2 << 20))
    (project / "notes.txt").write_text("notes")
    with mj.start_run("parent", params={"lr": 0.1}, tags={"team": "fraud"}) as parent:
        for s in range(300):
            parent.log_metric("loss", 1 / (s + 1), step=s)
        parent.log_artifact(project / "notes.txt")
        mj.data.add(X, name="train")
        mj.data.add(raw, name="raw")
        with mj.start_run("child") as child:
            child.log_metric("acc", 0.9)
        mj.models.register(LogisticRegression().fit(X, [0, 0, 0, 1, 1, 1]), name="churn", example=X,
                           alias="production")
    mj.models.register(LogisticRegression(C=3).fit(X, [0, 0, 0, 1, 1, 1]), name="churn", example=X, alias="staging")
    running = mj.start_run("still-going")
    running.log_metric("x", 1.0)
    running._writer.flush()
    local_url = f"sqlite:///{project / '.mlops' / 'mlops.db'}"
    before = _snapshot(local_url)

    env = python_env()
    for var in ("MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL"):
        env.pop(var, None)
    out = _cli(["migrate", "--from", ".mlops", "--to", postgres_url, "--artifacts", s3_url], project, env)
    assert out.returncode == 0, out.stderr
    assert "2 runs" in out.stdout and "mlops_test:***@" in out.stdout, out.stdout
    assert "still running" in out.stdout
    after = _snapshot(postgres_url)
    # everything but the running run, byte for byte
    for table, rows in before.items():
        if table in ("runs", "metrics", "latest_metrics", "params", "tags", "artifacts", "cells"):
            rows = [r for r in rows if repr(running.run_id) not in r]
        assert after[table] == rows, table

    # the shared store works as the project did: histories, data content, models
    shared = dict(env, MLOPS_STORE_URL=postgres_url, MLOPS_ARTIFACTS_URL=s3_url)
    code = ("import mlops_jupyter as mj, hashlib, pathlib, sys\n"
            "r = mj.get_run('parent'); assert len(r.history()['loss']) == 300 and r.params['lr'] == 0.1\n"
            "assert r.artifact_bytes('notes.txt') == b'notes'\n"
            "mj.data.checkout('raw@v1', sys.argv[1]); assert mj.data.load('train@v1').shape == (6, 2)\n"
            "m = mj.models.load('churn@production'); print(type(m).__name__, mj.models.get('churn@staging').version)\n")
    got = subprocess.run([PY, "-c", code, str(project / "back")], cwd=project / "raw", env=shared,
                         capture_output=True, text=True, timeout=300)
    assert got.returncode == 0 and got.stdout.split() == ["LogisticRegression", "2"], got.stderr
    for f in raw.rglob("*"):
        if f.is_file():
            assert (project / "back" / f.relative_to(raw)).read_bytes() == f.read_bytes()

    # again: nothing new, nothing duplicated
    again = _cli(["migrate", "--to", postgres_url, "--artifacts", s3_url], project, env)
    assert again.returncode == 0 and "nothing new" in again.stdout, again.stdout + again.stderr
    assert _snapshot(postgres_url) == after
    # the running run ends; the next migrate takes it, and only it
    running.end()
    third = _cli(["migrate", "--to", postgres_url, "--artifacts", s3_url], project, env)
    assert third.returncode == 0 and "1 runs" in third.stdout, third.stdout
    assert len(_snapshot(postgres_url)["runs"]) == len(before["runs"])
    eng = sa.create_engine(postgres_url)
    with eng.connect() as conn:
        audit = conn.execute(sa.select(S.audit.c.action)).scalars().all()
    eng.dispose()
    assert audit.count("migrate") == 2  # the no-op run wrote nothing

    # a teammate's shared alias is not clobbered, and is reported
    with sa.create_engine(postgres_url).begin() as conn:
        conn.execute(S.model_aliases.update().where(S.model_aliases.c.alias == "production").values(version=2))
    clash = _cli(["migrate", "--to", postgres_url, "--artifacts", s3_url], project, env)
    assert clash.returncode == 0 and "alias clash" in clash.stdout and "churn@production -> v2" in clash.stdout


def test_migrate_refuses_clashing_content_and_bad_input(project, postgres_url, s3_url, tmp_path):
    mj.data.add(pd.DataFrame({"x": [1, 2, 3]}), name="train")
    env = python_env()
    for var in ("MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL"):
        env.pop(var, None)
    assert _cli(["migrate", "--to", postgres_url, "--artifacts", s3_url], project, env).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    r = subprocess.run([PY, "-c", "import mlops_jupyter as mj, pandas as pd; mj.init(); "
                        "mj.data.add(pd.DataFrame({'x': [9, 9]}), name='train'); mj.start_run('mine').end()"],
                       cwd=other, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    before = _snapshot(postgres_url)
    out = _cli(["migrate", "--to", postgres_url, "--artifacts", s3_url], other, env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "data version train@v1" in out.stderr, out.stderr
    assert _snapshot(postgres_url) == before  # nothing was copied
    for args, needle in ((["migrate", "--to", "nonsense"], "--to takes a database URL"),
                         (["migrate", "--from", str(tmp_path / "nowhere"), "--to", postgres_url, "--artifacts",
                           s3_url], "no mlops project at"),
                         (["migrate", "--to", postgres_url], "--artifacts")):
        bad = _cli(args, project, env)
        assert bad.returncode == 2 and needle in bad.stderr and bad.stderr.count("\n") == 1, (args, bad.stderr)
