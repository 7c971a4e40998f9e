"""MLflow export and import against real MLflow stores (sqlite, once a file store), read back with MlflowClient."""

import json
import os
import re
import subprocess
import sys
import time

import pandas as pd
import pytest

import mlops_jupyter as mj
from mlops_jupyter.exceptions import BadInput, MlopsError, NotFound

from .conftest import PY, python_env

mlflow = pytest.importorskip("mlflow")

T0 = 1_700_000_000.0  # metric timestamps we choose, so they can be compared exactly


def data(n=200, seed=0):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=5, n_informative=3, random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(5)]), y


def client_for(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def exported_runs(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return {r.data.tags.get("mlops.run_id") or r.data.tags["mlops.model_version"]: r for r in runs}


def history(client, run_id, key):
    return sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, key))


def download(client, run_id, path, dest):
    with open(client.download_artifacts(run_id, path, str(dest)), "rb") as f:
        return f.read()


def test_export_runs_models_aliases_then_only_what_changed(project, tmp_path, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from mlops_jupyter.integrations.mlflow_export import export_mlflow
    from mlops_jupyter.store import open_store

    X, y = data()
    (project / "confusion.txt").write_text("tp fp\nfn tn\n")
    (project / "plots").mkdir()
    (project / "plots" / "roc.svg").write_text("<svg/>")
    with mj.start_run("outer", params={"lr": 0.1, "layers": [64, 32], "note": "x" * 7000},
                      tags={"team": "fraud"}) as outer:
        for step in range(1500):  # two batches of MLflow's 1000
            outer.log_metric("loss", 1 / (step + 1), step=step, timestamp=T0 + step * 0.5)
        outer.log_metric("acc_5", 0.7, step=0, timestamp=T0)
        outer.log_metric("acc@5", 0.5, step=0, timestamp=T0)  # a name MLflow refuses, and its cleaned form is taken
        outer.log_artifact(project / "confusion.txt")
        outer.log_artifact(project / "plots", name="figures")
        with mj.start_run("child") as child:
            clf = LogisticRegression().fit(X, y)
            child.log_metric("acc", clf.score(X, y), step=0, timestamp=T0)
            mj.models.register(clf, name="churn", example=X, alias="production", message="first")
            mj.models.alias("churn@v1", "staging")
    with pytest.raises(ZeroDivisionError):
        with mj.start_run("boom") as boom:
            1 / 0
    clf2 = LogisticRegression(C=0.1).fit(X, y)
    mj.models.register(clf2, name="churn")  # no run: its files go to a run of their own
    live = mj.start_run("live")
    live.log_metric("m", 1.0, step=0, timestamp=T0)
    for r in (outer, child, boom, live):
        assert r.wait_captured()
    store = open_store()
    ours = {r.run_id: store.meta.artifacts(r.run_id) for r in (outer, child, boom, live)}

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    s = export_mlflow(uri)
    assert s == dict(experiment=project.name, experiment_id=s["experiment_id"], runs_exported=4, runs_updated=0,
                     runs_skipped=0, metric_points=1504, artifacts=sum(map(len, ours.values())),
                     model_versions=2, model_versions_skipped=0, aliases=2)
    c = client_for(uri)
    got = exported_runs(c, project.name)
    assert set(got) == {outer.run_id, child.run_id, boom.run_id, live.run_id, "churn@v2"}
    o = got[outer.run_id]
    row = mj.get_run(outer.run_id).row
    assert o.info.run_name == "outer" and o.info.status == "FINISHED"
    assert (o.info.start_time, o.info.end_time) == (round(row["start_time"] * 1000), round(row["end_time"] * 1000))
    assert o.data.params == {"lr": "0.1", "layers": "[64, 32]", "note": "x" * 6000}
    assert json.loads(o.data.tags["mlops.truncated"]) == {"params.note": 7000}
    assert json.loads(o.data.tags["mlops.renamed"]) == {"metrics": {"acc_5_2": "acc@5"}}
    assert o.data.tags["team"] == "fraud" and o.data.tags["mlflow.source.type"] == "LOCAL"
    assert history(c, o.info.run_id, "loss") == [(s_, 1 / (s_ + 1), round((T0 + s_ * 0.5) * 1000)) for s_ in range(1500)]
    assert history(c, o.info.run_id, "acc_5") == [(0, 0.7, T0 * 1000)]
    assert history(c, o.info.run_id, "acc_5_2") == [(0, 0.5, T0 * 1000)]
    assert download(c, o.info.run_id, "confusion.txt", tmp_path / "d1") == b"tp fp\nfn tn\n"
    assert download(c, o.info.run_id, "figures/roc.svg", tmp_path / "d2") == b"<svg/>"
    assert download(c, o.info.run_id, "_mlops/requirements-freeze.txt", tmp_path / "d3") == \
        mj.get_run(outer.run_id).artifact_bytes("_mlops/requirements-freeze.txt")
    ch = got[child.run_id]
    assert ch.data.tags["mlflow.parentRunId"] == o.info.run_id and ch.info.run_name == "child"
    assert got[boom.run_id].info.status == "FAILED" and "ZeroDivisionError" in got[boom.run_id].data.tags["mlops.error"]
    lv = got[live.run_id]
    assert lv.info.status == "RUNNING" and lv.info.end_time is None
    # the registry: versions with their runs, files MLflow can load, aliases
    versions = {mv.tags["mlops.model_version"]: mv for mv in c.search_model_versions("name = 'churn'")}
    assert set(versions) == {"churn@v1", "churn@v2"}
    v1, v2 = versions["churn@v1"], versions["churn@v2"]
    assert (v1.version, v2.version) == ("1", "2") or (int(v1.version), int(v2.version)) == (1, 2)
    assert v1.run_id == ch.info.run_id and v1.source.endswith("/models/churn/v1")
    assert v2.run_id == got["churn@v2"].info.run_id and got["churn@v2"].info.status == "FINISHED"
    assert json.loads(v1.tags["mlops.metrics"]) == {"acc": pytest.approx(clf.score(X, y))}
    assert [col["name"] for col in json.loads(v1.tags["mlops.signature"])["columns"]] == list(X.columns)
    assert v1.description.startswith("first")
    assert {k: int(v) for k, v in c.get_registered_model("churn").aliases.items()} == {"production": 1, "staging": 1}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    loaded = mlflow.sklearn.load_model("models:/churn@production")
    assert (loaded.predict_proba(X) == clf.predict_proba(X)).all()
    assert (mlflow.pyfunc.load_model(v2.source).predict(X) == clf2.predict(X)).all()
    meta = json.loads(download(c, ch.info.run_id, "models/churn/v1/mlops_model.json", tmp_path / "d4"))
    assert meta["digest"] == mj.models.get("churn@v1").digest and meta["flavor"] == "sklearn"

    # again: nothing new
    s = export_mlflow(uri)
    assert (s["runs_exported"], s["runs_updated"], s["runs_skipped"], s["metric_points"], s["artifacts"],
            s["model_versions"], s["model_versions_skipped"], s["aliases"]) == (0, 0, 4, 0, 0, 0, 2, 0)
    assert len(c.search_runs([s["experiment_id"]])) == 5 and len(c.search_model_versions("name = 'churn'")) == 2

    # what changed since: a run that went on and ended, a new run, an alias moved, one removed
    live.log_metric("m", 2.0, step=1, timestamp=T0 + 1)
    live.end()
    with mj.start_run("after") as after:
        after.log_metric("m", 3.0, step=0, timestamp=T0)
    after.wait_captured()
    mj.models.alias("churn@v2", "production")
    mj.models.unalias("churn", "staging")
    s = export_mlflow(uri)
    assert (s["runs_exported"], s["runs_updated"], s["runs_skipped"], s["metric_points"], s["model_versions"],
            s["aliases"]) == (1, 1, 3, 2, 0, 2)
    got = exported_runs(c, project.name)
    assert len(got) == 6
    lv = got[live.run_id]
    assert lv.info.status == "FINISHED" and lv.info.end_time == round(mj.get_run(live.run_id).row["end_time"] * 1000)
    assert history(c, lv.info.run_id, "m") == [(0, 1.0, T0 * 1000), (1, 2.0, (T0 + 1) * 1000)]
    assert history(c, got[after.run_id].info.run_id, "m") == [(0, 3.0, T0 * 1000)]
    assert {k: int(v) for k, v in c.get_registered_model("churn").aliases.items()} == {"production": int(v2.version)}
    assert (mlflow.sklearn.load_model("models:/churn@production").predict(X) == clf2.predict(X)).all()

    # imported back here, all of it is recognised as ours: the runs, and the run holding churn@v2's files
    from mlops_jupyter.integrations.mlflow_import import import_mlflow

    s = import_mlflow(uri, experiments=[project.name])
    assert (s["runs_imported"], s["runs_skipped"]) == (0, 6) and len(mj.runs()) == 5


def test_export_to_a_file_store_takes_a_run_with_its_parents(project, tmp_path, monkeypatch):
    from mlops_jupyter.integrations.mlflow_export import export_mlflow

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(BadInput, match="MLFLOW_ALLOW_FILE_STORE=true"):
        export_mlflow(uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    with mj.start_run("parent") as parent:
        with mj.start_run("kid") as kid:
            kid.log_metric("loss", 0.25, step=7, timestamp=T0)
    with mj.start_run("other"):
        pass
    s = export_mlflow(uri, runs=["kid"], experiment="picked", models=False)
    assert (s["experiment"], s["runs_exported"], s["metric_points"], s["model_versions"]) == ("picked", 2, 1, 0)
    c = client_for(uri)
    got = exported_runs(c, "picked")
    assert set(got) == {parent.run_id, kid.run_id}
    assert got[kid.run_id].data.tags["mlflow.parentRunId"] == got[parent.run_id].info.run_id
    assert history(c, got[kid.run_id].info.run_id, "loss") == [(7, 0.25, T0 * 1000)]
    assert export_mlflow(uri, runs=[kid.run_id[:8]], experiment="picked")["runs_skipped"] == 2


def test_import_mlflow_runs_whole_once_and_refreshes_running_ones(project, tmp_path, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from mlops_jupyter.integrations.mlflow_export import export_mlflow
    from mlops_jupyter.integrations.mlflow_import import import_mlflow
    from mlops_jupyter.store import open_store

    uri = f"sqlite:///{tmp_path}/source.db"
    c = client_for(uri)
    eid = c.create_experiment("legacy", artifact_location=(tmp_path / "mlartifacts").as_uri())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # MLflow's fluent API, as its users log
    X, y = data()
    with mlflow.start_run(experiment_id=eid, run_name="outer") as o:
        mlflow.log_params({"lr": 0.01, "depth": 5, "kind": "rf", "flag": True, "api_key": "hunter2"})
        mlflow.set_tag("team", "fraud")
        for step in range(5):
            mlflow.log_metric("loss", 1 / (step + 1), step=step, timestamp=int(T0 * 1000) + step)
        mlflow.log_text("hello", "notes/readme.txt")
        mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", pip_requirements=["scikit-learn"])
        with mlflow.start_run(run_name="inner", nested=True) as i:
            mlflow.log_metric("acc", 0.9, step=3, timestamp=int(T0 * 1000))
    broken = mlflow.start_run(experiment_id=eid, run_name="broken")
    mlflow.end_run("FAILED")
    going = c.create_run(eid, run_name="going", start_time=int(T0 * 1000))
    c.log_metric(going.info.run_id, "m", 1.0, timestamp=int(T0 * 1000), step=0)

    s = import_mlflow(uri, progress=list)
    assert s == dict(experiments=2, runs_imported=4, runs_updated=0, runs_skipped=0, metric_points=7,
                     artifacts=s["artifacts"])
    rec = mj.get_run(o.info.run_id)  # MLflow's id is kept as ours
    src = c.get_run(o.info.run_id)
    assert rec.name == "outer" and rec.status == "finished" and rec.row["source"] == "mlflow"
    assert (rec.row["start_time"], rec.row["end_time"]) == (src.info.start_time / 1000, src.info.end_time / 1000)
    assert rec.params == {"lr": 0.01, "depth": 5, "kind": "rf", "flag": "True", "api_key": "***REDACTED***"}
    assert rec.tags["team"] == "fraud" and rec.tags["mlflow.run_id"] == o.info.run_id
    assert rec.tags["mlflow.experiment"] == "legacy" and rec.tags["mlflow.user"] == src.data.tags["mlflow.user"]
    store = open_store()
    assert store.meta.metric_history(rec.run_id, "loss") == [
        ("loss", step, 1 / (step + 1), (int(T0 * 1000) + step) / 1000) for step in range(5)]
    assert rec.artifact_bytes("notes/readme.txt") == b"hello"
    assert b"sklearn" in rec.artifact_bytes("model/MLmodel")  # MLflow 3 keeps logged models apart from run files
    assert s["artifacts"] == len(rec.artifacts)
    inner = mj.get_run(i.info.run_id)
    assert inner.row["parent_id"] == rec.run_id and inner.history() == {"acc": [(3, 0.9)]}
    assert mj.get_run(broken.info.run_id).status == "failed"
    g = mj.get_run(going.info.run_id)
    assert g.status == "running" and g.tags["mlflow.imported_status"] == "RUNNING"
    assert list(mj.runs(where="params.depth > 3 and tags.team = 'fraud'")["name"]) == ["outer"]

    # again: nothing twice; a run still running then is brought up to date
    s = import_mlflow(uri)
    assert (s["runs_imported"], s["runs_updated"], s["runs_skipped"]) == (0, 1, 3)
    c.log_metric(going.info.run_id, "m", 2.0, timestamp=int(T0 * 1000) + 1, step=1)
    c.set_terminated(going.info.run_id, "KILLED", end_time=int(T0 * 1000) + 5)
    s = import_mlflow(uri)
    assert (s["runs_imported"], s["runs_updated"], s["runs_skipped"], s["metric_points"]) == (0, 1, 3, 2)
    g = mj.get_run(going.info.run_id)
    assert g.status == "killed" and g.row["end_time"] == T0 + 0.005 and g.history() == {"m": [(0, 1.0), (1, 2.0)]}
    assert "mlflow.imported_status" not in g.tags
    assert (import_mlflow(uri)["runs_imported"], import_mlflow(uri)["runs_updated"]) == (0, 0)
    assert len(mj.runs()) == 4

    # runs exported from here come back as what they are: ours, skipped
    export_mlflow(uri, experiment="roundtrip", models=False)
    s = import_mlflow(uri, experiments=["roundtrip"])
    assert (s["runs_imported"], s["runs_skipped"]) == (0, 4)

    # one named run (with its parent), names that do not exist
    assert import_mlflow(uri, runs=[i.info.run_id])["runs_skipped"] == 2
    with pytest.raises(NotFound, match=r"no MLflow experiment 'nope' .*legacy"):
        import_mlflow(uri, experiments=["nope"])
    with pytest.raises(NotFound, match="no MLflow run 'deadbeef"):
        import_mlflow(uri, runs=["deadbeef" * 4])

    # a run that cannot be read whole leaves nothing behind
    ghost = c.create_run(eid, run_name="ghost")
    c.log_param(ghost.info.run_id, "p", "1")
    c.log_metric(ghost.info.run_id, "m", 1.0)
    c.create_logged_model(eid, name="missing", source_run_id=ghost.info.run_id)  # its files were never written
    with pytest.raises(MlopsError, match="importing MLflow run 'ghost'"):
        import_mlflow(uri, runs=[ghost.info.run_id])
    with pytest.raises(NotFound):
        mj.get_run(ghost.info.run_id)
    assert store.meta.metric_history(ghost.info.run_id) == [] and len(mj.runs()) == 4


def test_bad_input_is_one_line(project, tmp_path, monkeypatch):
    from mlops_jupyter.integrations.mlflow_export import export_mlflow
    from mlops_jupyter.integrations.mlflow_import import import_mlflow

    with pytest.raises(BadInput, match="cannot use the MLflow tracking store nosuch://x"):
        export_mlflow("nosuch://x")
    with pytest.raises(BadInput, match="no MLflow database at"):
        import_mlflow(f"sqlite:///{tmp_path}/missing.db")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(BadInput, match="no MLflow file store"):
        import_mlflow((tmp_path / "nowhere").as_uri())
    with pytest.raises(BadInput, match="in-memory"):
        export_mlflow("sqlite:///:memory:")
    with pytest.raises(BadInput, match="tracking URI"):
        import_mlflow("  ")
    with pytest.raises(NotFound, match="no run 'nope'"):
        export_mlflow(f"sqlite:///{tmp_path}/never.db", runs=["nope"])
    assert not (tmp_path / "never.db").exists()  # refused before MLflow was touched
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as when the extra is not installed
    with pytest.raises(BadInput, match=r"pip install 'mlops-jupyter\[mlflow\]'"):
        export_mlflow(f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(BadInput, match=r"pip install 'mlops-jupyter\[mlflow\]'"):
        import_mlflow(f"sqlite:///{tmp_path}/x.db")


def test_mlflow_is_imported_only_when_called():
    code = ("import sys, mlops_jupyter, mlops_jupyter.integrations.mlflow_export, "
            "mlops_jupyter.integrations.mlflow_import, mlops_jupyter.integrations.mlflow_autoexport; "
            "assert 'mlflow' not in sys.modules, 'mlflow imported'")
    subprocess.run([PY, "-c", code], check=True, env=python_env(), timeout=60)


def test_keys_mlflow_refuses_are_renamed_stably():
    from mlops_jupyter.integrations.mlflow_common import KeyMap, valid_key

    keys = KeyMap(taken={"metrics": ["acc_5", "loss (val)"]})
    assert keys("metrics", "acc_5") == "acc_5" and keys("metrics", "acc@5") == "acc_5_2"
    assert keys("metrics", "loss (val)") == "loss _val_" and keys("metrics", "a//b/../c") == "a/b/__/c"
    assert all(valid_key(k) for k in keys.renamed["metrics"])
    again = KeyMap(json.loads(keys.tag_value()), taken={"metrics": ["acc_5", "acc_5_2"]})
    assert again("metrics", "acc@5") == "acc_5_2" and not again.changed


def test_the_terminal_face_exports_and_imports(project, tmp_path):
    import mlops_jupyter as mj

    with mj.start_run("cli-run", params={"lr": 0.1}) as r:
        for s in range(3):
            r.log_metric("acc", 0.5 + s / 10, step=s)
    uri = f"sqlite:///{tmp_path}/cli-mlflow.db"
    env = python_env()
    out = subprocess.run([PY, "-m", "mlops_jupyter.cli", "export", "mlflow", "--to", uri], cwd=project, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"MLflow {uri}:" in out.stdout and "runs exported 1" in out.stdout and "metric points 3" in out.stdout
    again = subprocess.run([PY, "-m", "mlops_jupyter.cli", "export", "mlflow", "--to", uri], cwd=project, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "runs exported 0" in again.stdout and "runs skipped 1" in again.stdout, \
        again.stdout + again.stderr
    bad = subprocess.run([PY, "-m", "mlops_jupyter.cli", "import", "mlflow", "--from", "nosuch://x"], cwd=project,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nosuch://x" in bad.stderr, bad.stderr
    missing = subprocess.run([PY, "-m", "mlops_jupyter.cli", "export", "mlflow"], cwd=project, env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--to" in missing.stderr


# -- each run that ends, exported in the background (integrations.mlflow_autoexport) --------------------------
def export_each_run_to(project, uri):
    """Set ``[mlflow] export_uri`` in the project's config file, as a user would."""
    cfg = project / ".mlops" / "config.toml"
    cfg.write_text(cfg.read_text() + f"\n[mlflow]\nexport_uri = {json.dumps(uri)}\n")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_exports(project, timeout=240.0):
    """Wait (bounded) until the background exports started in *project* have exited; returns their log.

    Their pids are in the log; on timeout the ones still running are killed."""
    log = project / ".mlops" / "mlflow" / "export.log"
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text() if log.exists() else ""
        pids = [int(p) for p in re.findall(r" pid (\d+): ", text)]
        running = [p for p in pids if alive(p)]
        if pids and not running:
            return text
        if time.monotonic() > deadline:
            for pid in running:
                os.kill(pid, 9)
            raise AssertionError(f"background MLflow export not done after {timeout} s; its log:\n{text}")
        time.sleep(0.5)


def test_a_run_that_ends_is_exported_to_the_configured_uri_in_the_background(project, tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_MLFLOW_EXPORT_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/tracking/mlflow.db"
    export_each_run_to(project, uri)
    with mj.start_run("auto", params={"lr": 0.1}) as run:
        run.log_metric("loss", 0.5, step=0, timestamp=T0)
        run.log_metric("loss", 0.25, step=1, timestamp=T0 + 1)
    log = wait_exports(project)
    assert f"mlops export mlflow {run.run_id} --to {uri}" in log and "runs exported 1" in log, log
    c = client_for(uri)
    got = exported_runs(c, project.name)
    assert set(got) == {run.run_id}, log
    exported = got[run.run_id]
    assert exported.info.status == "FINISHED" and exported.info.run_name == "auto"
    assert exported.data.params == {"lr": "0.1"} and exported.data.tags["mlops.export"] == "complete"
    assert history(c, exported.info.run_id, "loss") == [(0, 0.5, T0 * 1000), (1, 0.25, (T0 + 1) * 1000)]


def test_without_an_export_uri_no_export_is_started(project, monkeypatch):
    from mlops_jupyter import events

    monkeypatch.delenv("MLOPS_MLFLOW_EXPORT_URI", raising=False)
    assert "mlops_jupyter.integrations.mlflow_autoexport" in {
        fn.__module__ for fn in events.bus.subscribers("run.ended")}  # installed through its entry point
    started = []

    class Recording(subprocess.Popen):
        def __init__(self, args, *rest, **kw):
            if isinstance(args, (list, tuple)) and "mlflow" in args:
                started.append(args)
            super().__init__(args, *rest, **kw)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    with mj.start_run("plain") as run:
        run.log_metric("m", 1.0)
    assert run.wait_captured()
    assert started == [] and not (project / ".mlops" / "mlflow").exists()


def test_the_export_uri_comes_from_the_environment_then_the_config_file(project, monkeypatch):
    from mlops_jupyter.config import settings
    from mlops_jupyter.integrations.mlflow_autoexport import export_uri

    monkeypatch.delenv("MLOPS_MLFLOW_EXPORT_URI", raising=False)
    assert export_uri(settings()) is None
    export_each_run_to(project, "sqlite:///mlflow.db")
    assert export_uri(settings()) == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLOPS_MLFLOW_EXPORT_URI", "http://tracking:5000")
    assert export_uri(settings()) == "http://tracking:5000"
    monkeypatch.setenv("MLOPS_MLFLOW_EXPORT_URI", "")  # set and empty: off
    assert export_uri(settings()) is None
    monkeypatch.delenv("MLOPS_MLFLOW_EXPORT_URI")
    (project / ".mlops" / "config.toml").write_text("version = 1\n[mlflow]\nexport_uri = 5000\n")
    with pytest.raises(BadInput, match=r"\[mlflow\] export_uri must be a string"):
        export_uri(settings())


def test_a_kernel_ending_a_run_imports_no_mlflow_and_starts_the_export_command(project, tmp_path):
    uri = f"sqlite:///{tmp_path}/not-written.db"
    code = f"""if True:
        import subprocess, sys
        started = []

        class Recording(subprocess.Popen):  # the export command is recorded, and a no-op run instead
            def __init__(self, args, *rest, **kw):
                if isinstance(args, list) and "mlflow" in args:
                    started.append(list(args))
                    args = [sys.executable, "-c", "pass"]
                super().__init__(args, *rest, **kw)

        subprocess.Popen = Recording
        import mlops_jupyter as mj

        with mj.start_run("in-a-kernel") as run:
            run.log_metric("m", 1.0)
        assert "mlflow" not in sys.modules, "mlflow imported"
        assert started == [[sys.executable, "-m", "mlops_jupyter.cli", "export", "mlflow", run.run_id,
                            "--to", {uri!r}]], started
    """
    proc = subprocess.run([PY, "-c", code], cwd=project, env=python_env(MLOPS_MLFLOW_EXPORT_URI=uri),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
