"""The Weights & Biases mirror, with W&B itself in offline mode (no network): what it wrote is
read back from W&B's own run files. A W&B server that accepts connections and never answers
stands in for a hang; the notebook does not wait for it, and `mlops wandb sync` pushes later."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from .conftest import run_cell

pytest.importorskip("wandb")

pytestmark = pytest.mark.slow


# -- W&B's run file (a LevelDB-style log of protobuf records) -------------------------------------------
def wandb_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    pos, block, buf, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


class Written:
    """What W&B wrote for one of its runs (all offline directories of that run id together)."""

    def __init__(self, root: Path, wandb_id: str):
        files = sorted(root.glob(f"wandb/offline-run-*-{wandb_id}/run-{wandb_id}.wandb"))
        assert files, f"no W&B run files for {wandb_id} under {root / 'wandb'}"
        self.records = [r for f in files for r in wandb_records(f)]
        kinds = [r.WhichOneof("record_type") for r in self.records]
        self.run = next(r.run for r, k in zip(self.records, kinds) if k == "run")
        self.config = {}
        for r, k in zip(self.records, kinds):
            if k == "run":
                self.config.update({u.key: json.loads(u.value_json) for u in r.run.config.update})
            elif k == "config":
                self.config.update({u.key: json.loads(u.value_json) for u in r.config.update})
        self.history = [{(i.key or ".".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
                        for r, k in zip(self.records, kinds) if k == "history"]
        self.artifacts = [r.artifact for r, k in zip(self.records, kinds) if k == "artifact"]
        self.metric_axes = {r.metric.name: r.metric.step_metric for r, k in zip(self.records, kinds) if k == "metric"}
        self.exits = [r.exit.exit_code for r, k in zip(self.records, kinds) if k == "exit"]

    def series(self, key: str) -> list[tuple[int, float, float]]:
        return [(h["step"], h[key], h["_timestamp"]) for h in self.history if key in h]

    def artifact(self, type_: str, name: str | None = None):
        found = [a for a in self.artifacts if a.type == type_ and (name is None or a.name == name)]
        assert found, (type_, name, [(a.type, a.name) for a in self.artifacts])
        return found[-1]


def manifest_paths(art) -> list[str]:
    return sorted(e.path for e in art.manifest.contents)


def wait_mirrored(store, timeout: float = 90.0, kinds=None) -> list:
    """Wait (bounded) until no mirror item is pending or active; returns the items."""
    import sqlalchemy as sa

    from mlops_jupyter.store import schema as S

    deadline = time.time() + timeout
    while True:
        with store.meta.read() as conn:
            rows = conn.execute(sa.select(S.mirrors).order_by(S.mirrors.c.id)).all()
        rows = [r for r in rows if kinds is None or r.kind in kinds]
        if rows and all(r.status in ("done", "failed") for r in rows):
            return rows
        if time.time() > deadline:
            raise AssertionError(f"mirror still busy after {timeout} s: {[(r.kind, r.status) for r in rows]}")
        time.sleep(0.2)


@pytest.fixture
def wandb_env(project, monkeypatch):
    """W&B offline, the mirror quick to poll and to leave; its process stopped by PID at the end."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("MLOPS_WANDB_PROJECT", raising=False)
    monkeypatch.setenv("MLOPS_WANDB_IDLE", "2")
    monkeypatch.setenv("MLOPS_WANDB_POLL", "0.2")
    yield project
    pid_file = project / ".mlops" / "mirror" / "wandb.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("the mirror process did not exit when idle")


def test_notebook_runs_mirror_to_wandb_offline(ip, wandb_env, capsys):
    import mlops_jupyter as mj
    from mlops_jupyter.store import open_store

    project = wandb_env
    run_cell(ip, "%mlops init --wandb team-x/churn")
    assert "mirrored to W&B team-x/churn (WANDB_MODE=offline" in capsys.readouterr().out
    assert 'project = "team-x/churn"' in (project / ".mlops" / "config.toml").read_text()
    with pytest.raises(UsageError, match="W&B project must be"):
        ip.run_line_magic("mlops", "init --wandb 'two/slashes/here'")
    (project / "notes.txt").write_text("what this run was about\n")
    cells = [
        "import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\nimport mlops_jupyter as mj\n"
        "X = pd.DataFrame({'a': [0.0, 1, 2, 3, 4, 5], 'b': [1.0, 0, 1, 0, 1, 0]}); y = [0, 0, 0, 1, 1, 1]",
        "%mlops track start churn-baseline --param lr=0.1 --param api_token=hunter2 --tag team=fraud",
        "for s in range(5):\n    %mlops log acc={0.5 + s / 10} --step $s",
        "for s in range(3):\n    %mlops log loss={1 - s / 4} --step $s",  # a second key, its own steps, logged later
        "%mlops log precision=0.7 recall=0.6 --step 7",
        "%mlops artifact notes.txt",
        "%mlops data add X --name churn-train",
        "mj.data.add(X.assign(score=1.0), name='churn-scored', output=True)",
        "with mj.start_run('fold-1') as child:\n    child.log_metric('acc', 0.9)",
        "model = LogisticRegression().fit(X, y)\n%mlops model register model --name churn --example X --alias staging",
        "%mlops track stop",
    ]
    for c in cells:
        res = run_cell(ip, c)
        assert res.success, (c, res.error_in_exec)
    store = open_store()
    run = mj.get_run("churn-baseline")
    child = mj.get_run("fold-1")
    items = wait_mirrored(store)
    assert {(r.kind, r.status) for r in items} == {("run", "done"), ("model", "done")}, \
        [(r.kind, r.key, r.status, r.error) for r in items]
    assert len([r for r in items if r.kind == "run"]) == 2

    w = Written(project, run.run_id)
    assert (w.run.entity, w.run.project, w.run.display_name) == ("team-x", "churn", "churn-baseline")
    assert list(w.run.tags) == ["team=fraud"]
    assert w.config["lr"] == 0.1 and w.config["api_token"] != "hunter2" and "REDACTED" in w.config["api_token"]
    assert w.config["mlops"]["run_id"] == run.run_id
    # every point, with its own step and the time it was logged
    for key in ("acc", "loss", "precision", "recall"):
        ours = [(step, value, ts) for _k, step, value, ts in store.meta.metric_history(run.run_id, key)]
        theirs = w.series(key)
        assert [(s, v) for s, v, _ in theirs] == [(s, v) for s, v, _ in ours], key
        assert all(abs(a[2] - b[2]) < 1e-3 for a, b in zip(theirs, ours)), key
        assert w.metric_axes[key] == "step"
    assert [h for h in w.history if "precision" in h][0]["recall"] == 0.6  # logged together: one row
    # the run's files, its data and its model, as artifacts with their BLAKE3 digests
    files = w.artifact("run-files")
    meta = json.loads(files.metadata)
    ours_files = {a["path"]: a["digest"] for a in store.meta.artifacts(run.run_id)}
    assert {p: m["blake3"] for p, m in meta["files"].items()} == ours_files and "notes.txt" in ours_files
    assert "notes.txt" in manifest_paths(files)
    train = w.artifact("dataset", "churn-train")
    tmeta = json.loads(train.metadata)
    version = mj.data.get("churn-train@v1")
    assert tmeta["blake3"] == version.digest and tmeta["mlops_ref"] == "churn-train@v1" and tmeta["rows"] == 6
    assert tmeta["direction"] == "input"  # offline W&B runs cannot `use` artifacts; the direction is kept
    assert manifest_paths(train) == ["churn-train.parquet"]
    scored = json.loads(w.artifact("dataset", "churn-scored").metadata)
    assert scored["direction"] == "output" and scored["columns"]["score"] == "float64"
    model = w.artifact("model", "churn")
    mmeta = json.loads(model.metadata)
    mv = mj.models.get("churn@v1")
    assert mmeta["blake3"] == mv.digest and mmeta["mlops_ref"] == "churn@v1" and mmeta["flavor"] == "sklearn"
    assert set(model.aliases) >= {"staging", "mlops-v1"}
    assert manifest_paths(model) == ["mlops-model.json", "model.skops"]
    assert w.exits == [0]
    # the child run is grouped under its parent
    wc = Written(project, child.run_id)
    assert wc.run.run_group == f"churn-baseline-{run.run_id[:8]}" and wc.series("acc")[0][:2] == (0, 0.9)

    # an alias moved later: the model artifact is logged again carrying it
    run_cell(ip, "%mlops model alias churn@v1 production")
    items = wait_mirrored(store)
    alias_item = [r for r in items if r.kind == "alias"]
    assert len(alias_item) == 1 and alias_item[0].status == "done"
    wa = Written(project, f"alias-{alias_item[0].key}")
    assert "production" in wa.artifact("model", "churn").aliases
    # a data version added outside any run goes on its own
    run_cell(ip, "%mlops data add X --name churn-holdout")
    items = wait_mirrored(store)
    data_item = [r for r in items if r.kind == "data"]
    assert len(data_item) == 1 and data_item[0].status == "done", data_item
    wd = Written(project, data_item[0].remote.rsplit("/", 1)[1])
    assert json.loads(wd.artifact("dataset", "churn-holdout").metadata)["mlops_ref"] == "churn-holdout@v1"
    status = subprocess.run([sys.executable, "-m", "mlops_jupyter.cli", "wandb", "status"], cwd=project,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "churn-baseline" in status.stdout and "failed" not in status.stdout


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung W&B)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list = []
        self.stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                continue

    def close(self):
        self.stop = True
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


def test_a_hung_wandb_never_blocks_the_notebook_and_sync_pushes_later(ip, wandb_env, monkeypatch, capsys):
    import sqlalchemy as sa

    import mlops_jupyter as mj
    from mlops_jupyter.store import open_store
    from mlops_jupyter.store import schema as S

    project = wandb_env
    hole = BlackHole()
    try:
        monkeypatch.setenv("WANDB_MODE", "online")
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{hole.port}")
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
        monkeypatch.setenv("MLOPS_WANDB_TIMEOUT", "4")
        monkeypatch.setenv("MLOPS_WANDB_RETRIES", "0")
        monkeypatch.setenv("MLOPS_WANDB_PROJECT", "team-x/churn")
        for c in ["%mlops track start hung", "for s in range(50):\n    %mlops log acc={s / 50} --step $s",
                  "%mlops track stop"]:
            assert run_cell(ip, c).success
        store = open_store()
        run = mj.get_run("hung")
        assert run.status == "finished" and len(run.history()["acc"]) == 50  # the local store is complete
        with store.meta.read() as conn:
            st = conn.execute(sa.select(S.mirrors.c.status).where(S.mirrors.c.key == run.run_id)).scalar()
        assert st in ("pending", "active")  # W&B still has not answered; the cells are done anyway
        items = wait_mirrored(store, timeout=120)
        assert items[0].status == "failed" and items[0].error, items
        # the next run tells the user, once
        capsys.readouterr()
        assert run_cell(ip, "%mlops track start after\n%mlops track stop").success
        err = capsys.readouterr().err
        assert f"W&B mirror of run {run.run_id[:8]} failed" in err and "mlops wandb sync" in err
        assert run_cell(ip, "%mlops track start again\n%mlops track stop").success
        assert "W&B mirror of run" not in capsys.readouterr().err
    finally:
        hole.close()
    # W&B back (offline here): push what did not go
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_BASE_URL", "WANDB_API_KEY")}
    env["WANDB_MODE"] = "offline"
    wait_mirrored(store, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "mlops_jupyter.cli", "wandb", "sync"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "W&B team-x/churn: 3 mirrored" in proc.stdout, proc.stdout
    w = Written(project, run.run_id)
    assert [s for s, _, _ in w.series("acc")] == list(range(50))
    again = subprocess.run([sys.executable, "-m", "mlops_jupyter.cli", "wandb", "sync", "hung"], cwd=project,
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "1 already mirrored" in again.stdout, again.stdout + again.stderr


def test_wandb_disabled_mirrors_nothing(project, monkeypatch):
    import mlops_jupyter as mj
    from mlops_jupyter.store import open_store

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("MLOPS_WANDB_PROJECT", "team-x/churn")
    with mj.start_run("quiet") as r:
        r.log_metric("acc", 1.0)
    from mlops_jupyter.integrations.wandb_mirror import status

    assert status(open_store()).empty
    assert not (project / ".mlops" / "mirror" / "wandb.pid").exists()
    proc = subprocess.run([sys.executable, "-m", "mlops_jupyter.cli", "wandb", "sync"], cwd=project,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "WANDB_MODE=disabled" in proc.stderr
    monkeypatch.delenv("MLOPS_WANDB_PROJECT")
    monkeypatch.setenv("WANDB_MODE", "offline")
    proc = subprocess.run([sys.executable, "-m", "mlops_jupyter.cli", "wandb", "sync"], cwd=project,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "mlops init --wandb" in proc.stderr
