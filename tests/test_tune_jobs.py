"""mlops tune over a promoted job: real Optuna, real kernels (papermill), a real Dask LocalCluster.
Pruning interrupts a real kernel; failing trials are recorded; bad spaces are refused before any
kernel starts; the best trial goes through the champion/challenger step."""

import json
import os
import signal
import subprocess
import time

import nbformat
import pytest

import mlops_jupyter as mj
from mlops_jupyter.cli import main

from .conftest import PY, python_env, run_cli

optuna = pytest.importorskip("optuna")

CELLS = [
    "%load_ext mlops_jupyter\nlr = 0.1\nepochs = 10\nsleep = 0.05\npenalty = 'l2'",
    "import time, numpy as np\nimport mlops_jupyter as mj\nfrom sklearn.linear_model import SGDClassifier\n"
    "assert lr < 0.9, f'diverged at lr {lr}'\n"
    "rng = np.random.default_rng(0)\nX = rng.normal(size=(600, 5)); y = (X[:, 0] + X[:, 1] > 0).astype(int)\n"
    "clf = SGDClassifier(loss='log_loss', learning_rate='constant', eta0=lr, penalty=penalty, random_state=0)\n"
    "for epoch in range(epochs):\n"
    "    clf.partial_fit(X[:400], y[:400], classes=[0, 1])\n"
    "    acc = float((clf.predict(X[400:]) == y[400:]).mean()) - abs(np.log10(lr) + 1.5) * 0.05\n"
    "    mj.log(acc=acc, step=epoch)\n"
    "    time.sleep(sleep)",
    "%mlops model register clf --name sgd --example X[:5]",
]


def promote(project, name="sgd-job", model="sgd"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nbformat.write(nb, str(project / "train.ipynb"))
    args = ["promote", "train.ipynb", "--name", name] + (["--model", model, "--metric", "acc"] if model else [])
    assert main(args) == 0


def kernels_of(run_id):
    """Processes still running with this execution's run id in their environment (its kernel)."""
    import psutil

    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("MLOPS_RUN_ID") == run_id:
                out.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return out


def was_interrupted(r) -> bool:
    """A pruned execution's run: its kernel gone, and either interrupted mid-cell (fewer epochs
    logged) or, pruned at a last step, ended before the interrupt reached its kernel, and saying so."""
    assert r.status == "pruned" and not kernels_of(r.run_id)
    if r.row["error"].startswith("stopped: pruned at step"):
        assert len(r.history("acc")["acc"]) < 10
        return True
    assert r.row["error"].startswith("pruned at step") and "ended before its kernel" in r.row["error"]
    return False


@pytest.mark.slow
def test_tune_a_job_prune_its_kernels_and_decide(project, capsys):
    promote(project)
    capsys.readouterr()
    # random sampling with seed 0 draws lr 0.0002 and 0.0003 for trials 5 and 8: far below the others
    # epochs of 0.15 s leave a pruned kernel time to be interrupted mid-cell
    assert main(["tune", "sgd-job", "--space", "lr=float:0.0001:0.5:log", "penalty=cat:l2,l1", "--trials", "10",
                 "--workers", "2", "--prune", "median", "--sampler", "random", "--seed", "0", "-p", "sleep", "0.15"]) == 0
    out = capsys.readouterr().out
    assert "sgd-job: study sgd-job, 10 trial(s) on 2 local workers" in out
    study = optuna.load_study(study_name="sgd-job", storage=_storage())
    S = optuna.trial.TrialState
    assert len(study.trials) == 10 and {t.state for t in study.trials} <= {S.COMPLETE, S.PRUNED}
    parent = mj.runs(where="name = 'tune sgd-job'").iloc[0]
    kids = mj.runs(where=f"parent_id = '{parent.run_id}'")
    assert len(kids) == 10
    interrupted = 0
    for t in study.trials:
        r = mj.get_run(t.user_attrs["mlops.run_id"])
        assert r.params["papermill.lr"] == t.params["lr"] and r.params["papermill.penalty"] == t.params["penalty"]
        assert "executed.ipynb" in {a["path"] for a in r.artifacts}
        steps = [s for s, _ in r.history("acc")["acc"]]
        if t.state == S.COMPLETE:
            assert r.status == "finished" and steps == list(range(10)) and t.value == r.metrics["acc"]
        else:  # the run is pruned and its kernel gone
            assert sorted(t.intermediate_values) == steps[:len(t.intermediate_values)]
            interrupted += was_interrupted(r)
    assert interrupted >= 1
    # the best trial's model is the challenger; with no champion it takes the alias
    best = study.best_trial
    v = mj.models.get("sgd@production")
    assert v.run_id == best.user_attrs["mlops.run_id"] and v.metrics["acc"] == best.value
    assert "is now sgd@production" in out and f"best acc {best.value:.6g}" in out
    decision = json.loads(mj.get_run(parent.run_id).artifact_bytes("decision.json"))
    assert decision["challenger_value"] == best.value and decision["promoted"]
    # resume: the same study goes on; a second study of that name is refused
    assert main(["tune", "sgd-job", "--space", "lr=float:0.0001:0.5:log", "--trials", "1"]) == 2
    assert "study 'sgd-job' exists: --resume continues it" in capsys.readouterr().err
    assert main(["tune", "sgd-job", "--space", "lr=float:0.0001:0.5:log", "penalty=cat:l2,l1", "--trials", "2",
                 "--resume", "--seed", "1"]) == 0
    assert len(optuna.load_study(study_name="sgd-job", storage=_storage()).trials) == 12
    rep = mj.study("sgd-job")
    assert rep.metric == "acc" and len(rep.trials) == 12 and rep.best["value"] >= best.value
    # the panel's view of it: a job's study, two searches, each trial linked to its execution
    from mlops_jupyter.lab import studies

    view = studies.study("sgd-job")
    assert view["job"] == "sgd-job" and view["total"] == 12 and [s["name"] for s in view["searches"]] == [
        "tune sgd-job", "tune sgd-job"]
    assert {t["run"]["status"] for t in view["trials"]} <= {"finished", "pruned"}
    assert all(t["run"]["run_id"] == t["run_id"] for t in view["trials"])


def _storage():
    from mlops_jupyter.store import open_store
    from mlops_jupyter.tuning.study import storage_for

    return storage_for(open_store())


def test_bad_spaces_are_one_line_before_any_kernel(project):
    promote(project)
    n = len(mj.runs())
    for space, message in [
        (["rate=float:0.1:1"], "no parameter 'rate'"),
        (["lr=float:0.5:0.1"], "lr: the low bound 0.5 is not below the high bound 0.1"),
        (["lr=float:0:1:log"], "lr: a log scale needs bounds above 0, got 0"),
        (["epochs=float:1:5"], "epochs is a int parameter in job.toml; float: does not fit it"),
        (["penalty=int:1:3"], "penalty is a str parameter in job.toml; int: does not fit it"),
        (["lr=double:1:2"], "the kind is int, float or cat"),
        (["lr"], "--space takes NAME=int:LOW:HIGH"),
        (["penalty=cat:l2"], "needs two or more values"),
        (["lr=float:0.1:1", "lr=float:0.2:1"], "--space names lr twice"),
        (["lr=float:0.1:0.5", "-p", "lr", "0.2"], "lr: given a value (-p) and searched (--space)"),
    ]:
        r = run_cli("tune", "sgd-job", "--trials", "3", "--space", *space, cwd=project)
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run_cli("tune", "sgd-job", "--space", "lr=float:0.1:0.5", cwd=project)
    assert r.returncode == 2 and "say how long to search" in r.stderr
    r = run_cli("tune", "sgd-job", "--space", "lr=float:0.1:0.5", "--trials", "2", "--timeout", "soon", cwd=project)
    assert r.returncode == 2 and "--timeout" in r.stderr
    r = run_cli("tune", "sgd-job", "--space", "lr=float:0.1:0.5", "--trials", "2", "--metric", "loss", cwd=project)
    assert r.returncode == 2 and "--metric loss is not the job's own metric: say --direction max or min" in r.stderr
    assert len(mj.runs()) == n  # nothing started


@pytest.mark.slow
def test_failing_trials_timeout_and_ctrl_c(project, capsys):
    promote(project, name="plain", model=None)
    capsys.readouterr()
    # lr above 0.9 fails its cell: recorded, and the study goes on (the grid tries both values)
    assert main(["tune", "plain", "--space", "lr=cat:0.95,0.05", "--metric", "acc", "--direction", "max",
                 "--trials", "2", "--sampler", "grid"]) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="plain", storage=_storage())
    S = optuna.trial.TrialState
    assert sorted((t.params["lr"], t.state.name) for t in study.trials) == [(0.05, "COMPLETE"), (0.95, "FAIL")]
    failed = mj.get_run(next(t for t in study.trials if t.state == S.FAIL).user_attrs["mlops.run_id"])
    assert failed.status == "failed" and "AssertionError: diverged at lr 0.95" in failed.row["error"]
    assert "trial 1 FAILED: cell 3" in out and "(1 complete, 0 pruned, 1 failed)" in out
    # --timeout stops starting trials; the running one finishes, every finished one is kept
    t0 = time.perf_counter()
    assert main(["tune", "plain", "--space", "sleep=float:0.5:1", "--metric", "acc", "--direction", "max",
                 "--trials", "30", "--timeout", "12", "--name", "timed"]) == 0
    took = time.perf_counter() - t0
    timed = optuna.load_study(study_name="timed", storage=_storage())
    assert 1 <= len(timed.trials) < 30 and took < 12 + 30
    assert all(t.state == S.COMPLETE for t in timed.trials)
    # Ctrl-C: the running kernel is interrupted, its run killed, the finished trials kept
    proc = subprocess.Popen([PY, "-m", "mlops_jupyter.cli", "tune", "plain", "--space", "sleep=float:1:2",
                             "--metric", "acc", "--direction", "max", "--trials", "20", "--name", "stopped"],
                            cwd=project, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(1)
        runs = mj.runs(where="name LIKE 'plain trial%' AND tags.`mlops.study` = 'stopped'")
        if (runs.status == "finished").sum() >= 1 and (runs.status == "running").sum() >= 1:
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert "stopped by Ctrl-C, every finished trial kept" in stdout, stderr
    runs = mj.runs(where="tags.`mlops.study` = 'stopped'")
    assert "running" not in set(runs.status) and "killed" in set(runs.status)
    for rid in runs.run_id:
        assert not kernels_of(rid)
    stopped = optuna.load_study(study_name="stopped", storage=_storage())
    assert sum(t.state == S.COMPLETE for t in stopped.trials) >= 1
    assert not [t for t in stopped.trials if t.state == S.RUNNING]


@pytest.mark.slow
def test_tune_on_a_dask_cluster(project, capsys):
    from distributed import LocalCluster

    promote(project)
    capsys.readouterr()
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      processes=True) as cluster:
        # the kernels run in the cluster's worker processes: a pruned one is stopped through the store
        assert main(["tune", "sgd-job", "--space", "lr=float:0.0001:0.5:log", "penalty=cat:l2,l1", "--trials", "10",
                     "--sampler", "random", "--seed", "0", "--prune", "median", "-p", "sleep", "0.3",
                     "--dask-scheduler", cluster.scheduler_address]) == 0
    out = capsys.readouterr().out
    assert "on Dask scheduler tcp://127.0.0.1:" in out and "10 trial(s)" in out
    study = optuna.load_study(study_name="sgd-job", storage=_storage())
    assert len(study.trials) == 10 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    assert all(mj.get_run(t.user_attrs["mlops.run_id"]).params["papermill.sleep"] == 0.3 for t in study.trials)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned
    assert sum(was_interrupted(mj.get_run(t.user_attrs["mlops.run_id"])) for t in pruned) >= 1
    assert mj.models.get("sgd@production").metrics["acc"] == study.best_value


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql+s3"], indirect=True)
def test_two_machines_search_one_study_on_the_team_store(project):
    """Two ``mlops tune`` processes (two machines of a team) on one study in PostgreSQL: the second
    joins with --resume while the first searches; every trial is numbered once, tracked once, and
    each sampler sees the other's trials through the shared storage."""
    promote(project)
    space = ["--space", "lr=float:0.001:0.5:log", "penalty=cat:l2,l1"]

    def start(*extra):
        return subprocess.Popen([PY, "-m", "mlops_jupyter.cli", "tune", "sgd-job", *space, "--trials", "3", *extra],
                                cwd=project, env=python_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

    first = start("--seed", "0")
    storage = _storage()
    deadline = time.time() + 120
    while time.time() < deadline and "sgd-job" not in {s.study_name for s in storage.get_all_studies()}:
        assert first.poll() is None, first.communicate()[0]
        time.sleep(0.2)
    second = start("--resume", "--seed", "1")
    outs = []
    for proc in (first, second):
        try:
            outs.append(proc.communicate(timeout=600)[0])
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert first.returncode == 0 and second.returncode == 0, outs
    study = optuna.load_study(study_name="sgd-job", storage=storage)
    S = optuna.trial.TrialState
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert all(t.state == S.COMPLETE for t in study.trials)
    runs = [t.user_attrs["mlops.run_id"] for t in study.trials]
    assert len(set(runs)) == 6
    parents = mj.runs(where="name = 'tune sgd-job'")
    assert len(parents) == 2 and set(parents["status"]) == {"finished"}
    for parent in parents.run_id:
        kids = mj.runs(where=f"parent_id = '{parent}'")
        assert len(kids) == 3 and set(kids["status"]) == {"finished"}
    # the two searches ran at once: a trial of one started before a trial of the other ended
    by_run = {t.user_attrs["mlops.run_id"]: t for t in study.trials}
    spans = {p: [(by_run[r].datetime_start, by_run[r].datetime_complete)
                 for r in mj.runs(where=f"parent_id = '{p}'").run_id] for p in parents.run_id}
    (a, b) = spans.values()
    assert min(s for s, _ in b) < max(e for _, e in a) and min(s for s, _ in a) < max(e for _, e in b)
    for t in study.trials:
        r = mj.get_run(t.user_attrs["mlops.run_id"])
        assert r.params["papermill.lr"] == t.params["lr"] and t.value == r.metrics["acc"]
    # each says what it did, and where the study's best came from
    best = study.best_trial
    for out in outs:
        assert "sgd-job: 3 trial(s) in " in out and "(3 complete, 0 pruned, 0 failed)" in out, out
        assert f"best acc {best.value:.6g} (trial {best.number}:" in out
    assert sum("from another search of the study" in out for out in outs) >= 1
    assert "6 in the study" in outs[0] + outs[1]
