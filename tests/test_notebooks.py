"""The example notebooks (notebooks/*.ipynb), each executed through papermill on a fresh kernel in a
fresh project folder, judged by what they leave in the store; `mlops demo`, which runs the main job
through them; and the notebooks as committed (clean) and as shipped in the wheel."""

import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

import mlops_jupyter as mj
from mlops_jupyter.cli import main
from mlops_jupyter.demo import JOB, MODEL, NOTEBOOKS

from .conftest import PY, SRC, python_env
from .saved_views import assert_views_survive_saving, pictures_in

EXAMPLES = Path(SRC) / "notebooks"
SHIFTED = 20  # monitoring.ipynb scales the 10 `mean ...` and 10 `worst ...` columns of 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_closed(port: int) -> None:
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def execute(project: Path, name: str, notebook=None, **parameters):
    """Copy notebooks/NAME into *project* (or write *notebook* there) and run it with papermill on a new
    kernel, the project as working directory (through mj.jobs.execute_notebook, which also tells the
    kernel the notebook's path); the executed notebook."""
    from mlops_jupyter.jobs import execute_notebook
    from mlops_jupyter.store import close_store

    path = project / name
    if notebook is None:
        shutil.copyfile(EXAMPLES / name, path)
    else:
        nbformat.write(notebook, str(path))
    out = project / f"executed-{name}"
    close_store()
    t0 = time.perf_counter()
    try:
        execute_notebook(path, out, parameters=parameters, cwd=project, kernel_name="python3", progress=False)
    finally:
        close_store()
        print(f"{name}: {time.perf_counter() - t0:.1f} s")
    return nbformat.read(str(out), as_version=4)


def text_of(nb) -> str:
    """Everything the notebook printed or showed as text."""
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def widgets_in(cell) -> bool:
    return any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.get("outputs", []))


def cell_starting(nb, prefix: str):
    return next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(prefix))


def kernel_children() -> set:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


# -- as committed and as shipped -----------------------------------------------------------------------------
def test_every_example_is_committed_without_outputs():
    paths = sorted(EXAMPLES.glob("*.ipynb"))
    assert set(NOTEBOOKS) <= {p.name for p in paths}
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3", path.name
        assert not {"widgets", "papermill"} & set(nb.metadata), f"{path.name}: run-time metadata committed"
        for i, cell in enumerate(nb.cells):
            assert "papermill" not in cell.metadata and "execution" not in cell.metadata, (path.name, i)
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name}: cell {i + 1} has outputs"
                assert cell.execution_count is None, f"{path.name}: cell {i + 1} has an execution count"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and tagged[0].cell_type == "code", f"{path.name}: one parameters cell"
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), path.name


def test_the_wheel_ships_the_notebooks_demo_runs():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    data = tomllib.loads((Path(SRC) / "pyproject.toml").read_text())
    shipped = data["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for name in NOTEBOOKS:
        assert shipped.get(f"notebooks/{name}") == f"mlops_jupyter/examples/{name}", name


@pytest.mark.slow
def test_a_built_wheel_holds_the_notebooks(tmp_path):
    """The wheel as pip builds it (the prebuilt lab extension is reused when there)."""
    pytest.importorskip("hatchling")
    pytest.importorskip("hatch_jupyter_builder")
    r = subprocess.run([PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                        SRC], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = tmp_path.glob("mlops_jupyter-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in NOTEBOOKS:
            assert f"mlops_jupyter/examples/{name}" in names
            assert z.read(f"mlops_jupyter/examples/{name}") == (EXAMPLES / name).read_bytes()


def test_demo_says_when_the_notebooks_are_missing(project, monkeypatch, capsys):
    from mlops_jupyter import demo

    monkeypatch.setattr(demo, "NOTEBOOKS", ("quickstart.ipynb", "nowhere.ipynb"))
    assert main(["demo", "--dir", str(project / "demo")]) == 2
    err = capsys.readouterr().err
    assert "example notebooks" in err and "not installed" in err and len(err.strip().splitlines()) == 1
    assert main(["demo", "--workers", "0"]) == 2


# -- quickstart ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_quickstart(project):
    from mlops_jupyter.serving.predlog import requests
    from mlops_jupyter.store import open_store

    port = free_port()
    nb = execute(project, "quickstart.ipynb", n_estimators=40, port=port)
    # one finished run, with the papermill parameters, a metric curve and the notebook it came from
    runs = mj.runs()
    assert list(runs["name"]) == ["quickstart"] and runs.iloc[0]["status"] == "finished"
    rec = mj.get_run("quickstart")
    assert rec.params["n_estimators"] == 40 and rec.params["papermill.n_estimators"] == 40
    assert rec.metrics["auc"] > 0.95 and rec.metrics["acc"] > 0.9 and rec.metrics["trees"] == 40
    assert len(rec.history()["auc"]) == 4  # 10, 20, 30, 40 trees
    assert rec.row["notebook"] == str(project / "quickstart.ipynb")
    # the live chart, ending as the final picture; every view of the notebook survives saving
    assert "svg" in pictures_in(cell_starting(nb, "%mlops track start"))
    assert_views_survive_saving(nb)
    # the data version, the run's input
    train = mj.data.get("breast-cancer-train@v1")
    assert train.rows == 426 and train.run_id == rec.run_id
    # registered, explained with SHAP and LIME, promoted
    v = mj.models.get(f"{MODEL}@production")
    assert v.version == 1 and sorted(v.aliases) == ["production", "staging"] and v.run_id == rec.run_id
    assert v.metrics["auc"] == rec.metrics["auc"] and [d["ref"] for d in v.datasets] == ["breast-cancer-train@v1"]
    assert {e["method"] for e in v.explanations} == {"shap", "lime"}
    # evaluated on the held-out rows by tumour size, and its card written beside the notebook
    (ev,) = v.evaluations
    assert ev["rows"] == 143 and ev["options"]["by"] == ["size"] and ev["figures"]["roc_auc"] > 0.95
    page = (project / "breast-cancer-card.html").read_text()
    assert 'data-section="Evaluation"' in page and "by size" in page and page.count("<svg") >= 5
    moves = mj.models.history(MODEL)
    assert list(zip(moves["alias"], moves["to"])) == [("staging", "v1"), ("production", "v1")]
    # served: the request was answered and logged, and the server is gone
    logged = requests(open_store().meta, MODEL)
    assert list(logged["n_rows"]) == [3] and list(logged["version"]) == [1]
    answer = "".join(o.get("text", "") for o in cell_starting(nb, "import json").outputs)
    assert f"model:     {MODEL}@v1" in answer and "predicted: [" in answer
    assert_closed(port)


@pytest.mark.slow
def test_a_failing_cell_leaves_no_server_or_kernel_behind(project):
    """The model server runs on a thread of the notebook's kernel: a cell failing while it is up ends
    the run, and papermill's kernel shutdown takes the server with it."""
    import papermill as pm

    nb = nbformat.read(str(EXAMPLES / "quickstart.ipynb"), as_version=4)
    at = nb.cells.index(cell_starting(nb, "%mlops serve "))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("raise RuntimeError('a cell failed while serving')"))
    port = free_port()
    before = kernel_children()
    with pytest.raises(pm.PapermillExecutionError, match="a cell failed while serving"):
        execute(project, "quickstart.ipynb", notebook=nb, n_estimators=10, port=port)
    assert_closed(port)
    assert kernel_children() - before == set()
    assert mj.models.get(f"{MODEL}@production").version == 1  # what ran before the failure is kept


# -- retraining ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_retraining_by_hand(project):
    nb = execute(project, "retraining.ipynb")
    df = mj.runs()
    assert set(df["name"]) == {"baseline", "forest"} and set(df["status"]) == {"finished"}
    assert (df["metrics.auc"] > 0.9).all()
    forest = mj.get_run("forest")
    assert forest.row["notebook"] == str(project / "retraining.ipynb") and forest.row["source"] == "notebook"
    assert len(forest.history()["auc"]) == 12  # 5, 10, ..., 60 trees
    cells = forest.cells()
    assert cells[0]["source"].startswith("%mlops track start forest") and cells[-1]["source"] == "%mlops track stop"
    assert any(a["path"] == "_mlops/notebook.ipynb" for a in forest.artifacts)
    assert "scikit-learn" in forest.env["packages"]
    assert "svg" in pictures_in(cell_starting(nb, "%mlops track start forest"))  # the live chart's final picture
    # data -> run -> model, and the explanation linked to the version
    v = mj.models.get(f"{MODEL}@staging")
    assert v.run_id == forest.run_id and v.metrics["auc"] == forest.metrics["auc"]
    assert [d["ref"] for d in v.datasets] == ["breast-cancer-train@v1"] and v.explanations
    assert widgets_in(cell_starting(nb, "%mlops explain forest"))
    assert "breast-cancer-train@v1" in text_of(nb) and f"{MODEL}@v1" in text_of(nb)  # the lineage picture


@pytest.mark.slow
def test_retraining_as_a_promoted_job(project, capsys):
    """What `mlops demo` and a monitor check do with it: promote, then a grid whose best execution's
    model challenges the champion."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.dummy import DummyClassifier

    shutil.copyfile(EXAMPLES / "retraining.ipynb", project / "retraining.ipynb")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with mj.start_run("champion") as r:
        r.log_metric("auc", 0.5)
        mj.models.register(DummyClassifier().fit(X, y), name=MODEL, example=X, alias="production")
    assert main(["promote", "retraining.ipynb", "--name", JOB, "--model", MODEL, "--metric", "auc"]) == 0
    assert (project / "jobs" / JOB / "notebook.ipynb").is_file()
    capsys.readouterr()
    assert main(["retrain", JOB, "--grid", "max_depth=2,5", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 execution(s) on 2 local workers" in out and f"is now {MODEL}@production" in out
    batch = mj.runs(where=f"name = 'retrain {JOB}'").iloc[0]
    executions = mj.runs(where=f"parent_id = '{batch['run_id']}'")
    assert len(executions) == 2 and set(executions["status"]) == {"finished"}
    assert sorted(executions["params.papermill.max_depth"]) == [2, 5]
    ids = "', '".join(executions["run_id"])
    forests = mj.runs(where=f"name = 'forest' and parent_id in ('{ids}')")
    assert len(forests) == 2 and (forests["metrics.auc"] > 0.9).all()
    v = mj.models.get(f"{MODEL}@production")
    assert v.version == 2 and len(mj.models.versions(MODEL)) == 2  # the best became a version, the other not
    assert v.metrics["auc"] == forests["metrics.auc"].max()
    assert v.run_id in set(forests[forests["metrics.auc"] == forests["metrics.auc"].max()]["run_id"])
    assert [d["ref"] for d in v.datasets] == ["breast-cancer-train@v1"]
    assert mj.get_run(batch["run_id"]).tags["mlops.decision"] == "promoted"
    for rid in executions["run_id"]:
        assert "executed.ipynb" in [a["path"] for a in mj.get_run(rid).artifacts]


# -- monitoring ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_monitoring_on_its_own(project):
    """A fresh project: the notebook registers a model, serves it, sends ordinary then shifted traffic,
    measures drift, promotes the training notebook with a rule, and `monitor check` retrains."""
    from mlops_jupyter.monitoring import checks, load_report, reports
    from mlops_jupyter.serving import predlog
    from mlops_jupyter.store import open_store

    shutil.copyfile(EXAMPLES / "retraining.ipynb", project / "retraining.ipynb")
    port = free_port()
    nb = execute(project, "monitoring.ipynb", port=port)
    # traffic and labels, logged by the server
    meta = open_store().meta
    assert len(predlog.requests(meta, MODEL)) == 30  # 143 rows, 10 a request, twice
    rows = predlog.read(meta, MODEL, with_labels=True)
    assert len(rows) == 286 and rows["label"].notna().all()
    # ordinary traffic does not drift; the miscalibrated scanner's does, in the columns it scaled
    found = reports(model=MODEL)
    assert len(found) == 3  # ordinary, scanner, the check's window
    ordinary, scanner, window = (load_report(int(i)) for i in found["id"])
    assert not ordinary.dataset_drift and len(ordinary.drifted) <= 3
    assert scanner.dataset_drift and len(scanner.drifted) >= SHIFTED - 2
    assert all(f.startswith(("mean ", "worst ")) for f in scanner.drifted)
    assert scanner.summary["reference"] == "breast-cancer-train@v1"
    assert f"{len(scanner.drifted)} of 30 features drifted" in text_of(nb)
    # the job and its rule; the check fired and retrained through the job
    assert 'retrain_when = "drift_share > 0.3 or accuracy < 0.8"' in (project / "jobs" / JOB / "job.toml").read_text()
    done = checks(JOB)
    assert done["fired"].tolist() == [True] and done["outcome"].iloc[0].startswith("retrained (run")
    figures = done["figures"].iloc[0]
    assert figures["drift_share"] > 0.3 and figures["accuracy"] < 0.8 and figures["requests"] == 30
    batch = mj.runs(where=f"name = 'retrain {JOB}'")
    assert len(batch) == 1 and batch.iloc[0]["status"] == "finished"
    assert mj.get_run(batch.iloc[0]["run_id"]).tags["mlops.trigger"] == "monitor"
    versions = mj.models.versions(MODEL)
    assert list(versions["ref"]) == [f"{MODEL}@v1", f"{MODEL}@v2"]  # the notebook's model, then the retrained one
    v2 = mj.models.get(f"{MODEL}@v2")
    execution = mj.get_run(mj.get_run(v2.run_id).row["parent_id"])
    assert execution.row["parent_id"] == batch.iloc[0]["run_id"]
    assert widgets_in(cell_starting(nb, "%mlops monitor check"))  # the check's drift report
    assert "svg" in pictures_in(cell_starting(nb, "%mlops monitor {model}"))  # requests, latency, quality, drift
    assert_views_survive_saving(nb)
    assert_closed(port)


# -- mlops demo ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_mlops_demo(project, monkeypatch):
    """`mlops demo` in a terminal: quickstart, the promoted job over a grid, monitoring; on the demo
    folder's own store even when the environment names another."""
    from mlops_jupyter.monitoring import checks, reports
    from mlops_jupyter.serving.predlog import requests
    from mlops_jupyter.store import close_store, open_store

    elsewhere = project / "elsewhere.db"
    t0 = time.perf_counter()
    r = subprocess.run([PY, "-m", "mlops_jupyter.cli", "demo", "--dir", "demo"], cwd=project, capture_output=True,
                       text=True, timeout=900, stdin=subprocess.DEVNULL,
                       env=python_env(MLOPS_STORE_URL=f"sqlite:///{elsewhere}"))
    print(f"mlops demo: {time.perf_counter() - t0:.1f} s")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    stages = [line for line in out.splitlines() if line.startswith("[")]
    assert [s[:5] for s in stages] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"], out
    assert f"{MODEL}@v1 (auc " in out and "explained with SHAP and LIME; served, 1 request answered" in out
    assert "2 of 2 executions finished; challenger" in out
    assert "features drifted; monitor check fired: retrained (run" in out
    assert "runs (12):" in out and f"versions of {MODEL}:" in out and "mlops runs ls" in out
    assert not elsewhere.exists()
    demo = project / "demo"
    for name in NOTEBOOKS:
        assert (demo / name).read_bytes() == (EXAMPLES / name).read_bytes()
    assert {p.name for p in (demo / "executed").iterdir()} == {"quickstart.ipynb", "monitoring.ipynb"}
    assert (demo / "jobs" / JOB / "job.toml").is_file()
    # the store, as a user looking around afterwards would see it
    monkeypatch.chdir(demo)
    close_store()
    runs = mj.runs()
    assert len(runs) == 12 and set(runs["status"]) == {"finished"}
    batches = mj.runs(where=f"name = 'retrain {JOB}'")
    assert sorted(mj.get_run(i).tags["mlops.trigger"] for i in batches["run_id"]) == ["demo", "monitor"]
    assert all(mj.get_run(i).tags["mlops.decision"] in ("promoted", "kept") for i in batches["run_id"])
    versions = mj.models.versions(MODEL)
    assert list(versions["ref"]) == [f"{MODEL}@v{i}" for i in (1, 2, 3)]  # quickstart, the grid's best, the retrain
    aucs = {v: mj.models.get(f"{MODEL}@v{v}").metrics["auc"] for v in (1, 2, 3)}
    # a challenger takes @production only when it beats the champion: it holds the best so far
    assert aucs[mj.models.get(f"{MODEL}@production").version] == max(aucs.values())
    assert checks(JOB)["fired"].tolist() == [True] and len(reports(model=MODEL)) == 3
    assert len(requests(open_store().meta, MODEL)) == 31  # the quickstart's request, the monitoring's traffic
