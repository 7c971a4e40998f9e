import json
import math
import time

import pytest

import mlops_jupyter as mj
from mlops_jupyter.exceptions import BadInput, MlopsError

from .conftest import stored_bytes, untitled_notebook


def test_context_manager_run_records_everything(store, project):
    art = project / "confusion.txt"
    art.write_text("tp fp\nfn tn\n")
    with mj.start_run("baseline", params={"lr": 0.1, "layers": [64, 32]}, tags={"team": "fraud"}) as run:
        for step in range(100):
            run.log_metrics({"loss": 1 / (step + 1)}, step=step)
        run.log_artifact(art)
    assert run.status == "finished"
    rec = mj.get_run(run.run_id)
    assert rec.status == "finished"
    assert rec.params == {"lr": 0.1, "layers": [64, 32]}
    assert rec.tags == {"team": "fraud"}
    assert rec.metrics["loss"] == pytest.approx(1 / 100)
    assert rec.metric_counts["loss"] == 100
    assert [p[0] for p in rec.history()["loss"]] == list(range(100))
    paths = {a["path"]: a for a in rec.artifacts}
    assert rec.artifact_bytes("confusion.txt") == art.read_bytes()
    assert "_mlops/requirements-freeze.txt" in paths and "_mlops/environment.json" in paths
    assert rec.env["python"] and rec.env["host"] and "SQLAlchemy" in rec.env["packages"]
    assert rec.row["end_time"] >= rec.row["start_time"]


def test_exception_marks_failed_and_keyboardinterrupt_killed(store):
    with pytest.raises(ZeroDivisionError):
        with mj.start_run("boom") as run:
            1 / 0
    assert mj.get_run(run.run_id).status == "failed"
    assert "ZeroDivisionError" in mj.get_run(run.run_id).row["error"]
    with pytest.raises(KeyboardInterrupt):
        with mj.start_run("stop") as run2:
            raise KeyboardInterrupt
    assert mj.get_run(run2.run_id).status == "killed"
    assert mj.active_run() is None


def test_nested_runs_record_parent(store):
    outer = mj.start_run("outer")
    inner = mj.start_run("inner")  # no "already active" error: a child run
    assert inner.parent_id == outer.run_id and mj.active_run() is inner
    inner.end()
    assert mj.active_run() is outer
    child2 = mj.start_run("inner2")
    outer.end()  # ends the still-active child too
    assert child2.status == "finished" and mj.active_run() is None
    assert sorted(mj.get_run(outer.run_id).children) == sorted([inner.run_id, child2.run_id])


def test_fluent_log_autostarts_a_run(store):
    mj.log(loss=0.3, step=3)
    run = mj.active_run()
    # named after the script (here pytest's entry point), never ipykernel_launcher or __main__
    assert run is not None and run.name == "pytest"
    mj.log_param("lr", 0.01)
    mj.log_metric("acc", 0.9)
    mj.log_metrics({"acc": 0.95})
    mj.set_tag("k", "v")
    run.end()
    rec = mj.get_run(run.run_id)
    assert rec.metrics == {"loss": 0.3, "acc": 0.95}
    assert [s for s, _ in rec.history()["acc"]] == [0, 1]  # auto-incremented steps
    assert rec.params == {"lr": 0.01} and rec.tags["mlops.autostarted"] == "true"


def test_fluent_log_joins_a_job_run(store, monkeypatch):
    job = mj.start_run("job-execution")
    job_id = job.run_id
    from mlops_jupyter.tracking import run as tracking

    tracking._stack.clear()  # as if this were the notebook process the job runner started
    monkeypatch.setenv("MLOPS_RUN_ID", job_id)
    mj.log(acc=0.7)
    assert mj.active_run().run_id == job_id
    mj.active_run()._writer.flush()
    tracking._stack.clear()
    job.end()
    assert mj.get_run(job_id).metrics == {"acc": 0.7}


def test_secrets_are_redacted(store, monkeypatch):
    monkeypatch.setenv("MY_API_TOKEN", "tok-123456")
    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql://etl:pg-pass-77@db.internal/dw")  # a password in a URL
    with mj.start_run("s", params={"api_key": "sk-live-abc", "lr": 0.1, "source": "s3://ak:s3-pass-88@bucket/x"},
                      tags={"auth_header": "Bearer x", "mirror": "https://me:gh-pass-99@git.example/r.git"}) as run:
        run.log_param("client_secret", "shh")
    rec = mj.get_run(run.run_id)
    assert rec.params["api_key"] == "***REDACTED***" and rec.params["client_secret"] == "***REDACTED***"
    assert rec.tags["auth_header"] == "***REDACTED***"
    assert rec.params["lr"] == 0.1
    assert rec.params["source"] == "s3://ak:***REDACTED***@bucket/x"  # the rest of a URL stays readable
    assert rec.tags["mirror"] == "https://me:***REDACTED***@git.example/r.git"
    envvars = json.loads(rec.artifact_bytes("_mlops/environment.json"))
    assert envvars["MY_API_TOKEN"] == "***REDACTED***" and envvars["DB_PASSWORD"] == "***REDACTED***"
    assert envvars["WAREHOUSE_URL"] == "postgresql://etl:***REDACTED***@db.internal/dw"
    # nothing secret anywhere in the database file
    db = stored_bytes(store)
    for secret in (b"sk-live-abc", b"shh", b"tok-123456", b"hunter2", b"Bearer x", b"pg-pass-77", b"s3-pass-88",
                   b"gh-pass-99"):
        assert secret not in db


def test_odd_values(store):
    class Opaque:
        def __repr__(self):
            return "<Opaque thing>"

    name = "weird\tname\x1b[31m ünïcode 🚀"
    with pytest.warns(UserWarning, match="not JSON-serialisable"):
        run = mj.start_run(name, params={"obj": Opaque(), "nan": math.nan}, tags={"t\n": "v\x00"})
    run.end()
    rec = mj.get_run(run.run_id)
    assert rec.name == name  # stored as given
    assert rec.params["obj"] == "<Opaque thing>" and math.isnan(rec.params["nan"])
    assert rec.tags == {"t\n": "v\x00"}
    html = rec._repr_html_()
    assert "\\x1b" in html and "\x1b" not in html  # shown escaped


def test_bad_metric_values(store):
    run = mj.start_run("bad")
    with pytest.raises(BadInput, match="must be a number"):
        run.log_metric("acc", "high")
    with pytest.raises(BadInput):
        run.log_metric("", 1.0)
    with pytest.raises(BadInput, match="step"):
        run.log_metric("acc", 1.0, step="x")
    run.end()
    with pytest.raises(MlopsError, match="has ended"):
        run.log_metric("acc", 1.0)


def test_points_durable_right_after_end(store):
    run = mj.start_run("durable")
    for i in range(10_000):
        run.log_metric("x", float(i), i)
    t = time.perf_counter()
    run.end()
    assert time.perf_counter() - t < 30  # generous: real bound is measured in bench/
    from mlops_jupyter.store.metadata import MetadataStore

    fresh = MetadataStore(store.settings.store_url)  # another connection sees them all
    assert len(fresh.metric_history(run.run_id, "x")) == 10_000


def test_backpressure_bounds_the_queue(store):
    w = store.writer
    old = w.high_water
    w.high_water = 1000
    try:
        run = mj.start_run("bp")
        run._high = 1000
        peak = 0
        for i in range(20_000):
            run.log_metric("x", i)
            peak = max(peak, len(w.points))
        run.end()
        assert peak <= 1001
        assert store.meta.latest_metrics([run.run_id])[run.run_id]["x"][2] == 20_000
    finally:
        w.high_water = old


def test_start_run_rejects_bad_names(store):
    with pytest.raises(BadInput):
        mj.start_run("   ")
    with pytest.raises(BadInput):
        mj.start_run("ok", params={"": 1})
    assert mj.active_run() is None


def test_notebook_snapshot_is_redacted(store, project, monkeypatch):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('API_TOKEN = "abc-secret-123"\nlr = 0.1')]
    path = project / "train.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setenv("MLOPS_NOTEBOOK_PATH", str(path))
    with mj.start_run() as run:
        pass
    assert run.name == "train" and run.notebook == str(path)
    snap = mj.get_run(run.run_id).artifact_bytes("_mlops/notebook.ipynb").decode()
    assert "abc-secret-123" not in snap and "***REDACTED***" in snap and "lr = 0.1" in snap


def test_git_commit_and_dirty_diff_are_captured(store, project):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "dev@example.invalid")
    git("config", "user.name", "dev")
    (project / "train.py").write_text("lr = 0.1\n")
    git("add", "train.py")
    git("commit", "-qm", "first")
    (project / "train.py").write_text("lr = 0.2\n")
    with mj.start_run("git") as run:
        pass
    assert run.wait_captured()
    rec = mj.get_run(run.run_id)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    assert rec.env["git"]["commit"] == head and rec.env["git"]["dirty"] is True
    assert b"+lr = 0.2" in rec.artifact_bytes("_mlops/git.diff")


@pytest.mark.parametrize("call", [
    lambda: mj.log(loss="abc"),
    lambda: mj.log(loss=0.1, acc="high"),
    lambda: mj.log(loss=0.1, step="three"),
    lambda: mj.log_metric("", 1.0),
    lambda: mj.log_metrics({"loss": None}),
    lambda: mj.log_param("", 1),
    lambda: mj.set_tag("", "v"),
    lambda: mj.log_artifact("missing.txt"),
], ids=["value", "second-value", "step", "metric-name", "none", "param-name", "tag-name", "artifact"])
def test_fluent_bad_input_starts_no_run(store, call):
    with pytest.raises(MlopsError):
        call()
    assert mj.active_run() is None and mj.runs().empty


def test_bad_metric_logs_none_of_the_call(store):
    with mj.start_run("all-or-nothing") as run:
        with pytest.raises(BadInput, match="'b' must be a number"):
            run.log_metrics({"a": 1.0, "b": "x"})
        with pytest.raises(BadInput, match="step must be an integer"):
            mj.log(a=2.0, step="x")
    assert mj.get_run(run.run_id).metrics == {}


def test_script_is_told_once_where_its_run_came_from(store, capsys):
    mj.log(loss=0.3)
    mj.log(loss=0.2)
    err = capsys.readouterr().err
    run = mj.active_run()
    assert err.count("was started") == 1 and f"run 'pytest' ({run.run_id[:8]}) was started" in err
    assert "end it with mj.end_run()" in err
    mj.end_run()


def _empty_notebook_as_jupyterlab_makes_it(folder) -> str:
    """JupyterLab's launcher asks the server for a new notebook: Untitled.ipynb, with no cells."""
    return str(untitled_notebook(folder))


def test_never_saved_notebook_is_not_snapshot(store, project, monkeypatch, capsys):
    path = _empty_notebook_as_jupyterlab_makes_it(project)
    monkeypatch.setenv("MLOPS_NOTEBOOK_PATH", path)
    with mj.start_run() as run:
        pass
    rec = mj.get_run(run.run_id)
    assert not any(a["kind"] == "notebook" for a in rec.artifacts)  # no 71-byte empty notebook
    err = capsys.readouterr().err
    assert ("mlops: Untitled.ipynb was never saved (the file on disk has no cells): run 'Untitled' keeps no "
            "notebook snapshot; no executed cells were recorded either") in err


def test_missing_notebook_is_not_snapshot(store, project, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_NOTEBOOK_PATH", str(project / "renamed.ipynb"))
    with mj.start_run() as run:
        pass
    assert not any(a["kind"] == "notebook" for a in mj.get_run(run.run_id).artifacts)
    assert "renamed.ipynb is not on disk" in capsys.readouterr().err


def test_saved_notebook_is_snapshot_without_a_word(store, project, monkeypatch, capsys):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("lr = 0.1")]
    nbformat.write(nb, project / "train.ipynb")
    monkeypatch.setenv("MLOPS_NOTEBOOK_PATH", str(project / "train.ipynb"))
    with mj.start_run() as run:
        pass
    assert b"lr = 0.1" in mj.get_run(run.run_id).artifact_bytes("_mlops/notebook.ipynb")
    assert "mlops" not in capsys.readouterr().err
