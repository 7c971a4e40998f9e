"""mj.tune: real Optuna studies in the project's store, trials as child runs, pruning from the figures
the objective logs (by hand or autologged), failures, resume, threads, timeout, Ctrl-C."""

import math

import pytest

import mlops_jupyter as mj

optuna = pytest.importorskip("optuna")


def quadratic(trial):
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_int("y", 0, 5)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    return (x - 2) ** 2 + y + (0.5 if kind == "b" else 0.0)


def children(run_id):
    return mj.runs(where=f"parent_id = '{run_id}'")


def study_run(name):
    runs = mj.runs(where=f"name = 'tune {name}'")
    assert len(runs) == 1
    return mj.get_run(runs.run_id.iloc[0])


@pytest.mark.backends
def test_the_same_trials_as_optuna_alone_each_a_run(project, capsys):
    study = mj.tune(quadratic, n_trials=20, direction="minimize", metric="loss", name="quad", seed=0, progress=False)
    from optuna.samplers import TPESampler

    alone = optuna.create_study(direction="minimize", sampler=TPESampler(seed=0, multivariate=True))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    alone.optimize(quadratic, n_trials=20)
    assert [t.params for t in study.trials] == [t.params for t in alone.trials]
    assert study.best_value == alone.best_value and study.best_params == alone.best_params
    # the study lives in the project's store: loaded back through Optuna's own storage
    from mlops_jupyter.store import open_store
    from mlops_jupyter.tuning.study import storage_for

    again = optuna.load_study(study_name="quad", storage=storage_for(open_store()))
    assert [t.value for t in again.trials] == [t.value for t in study.trials]
    # one child run per trial: its parameters and the objective's value under the metric
    parent = study_run("quad")
    assert parent.status == "finished" and parent.metrics["best_loss"] == study.best_value
    assert parent.params["best_x"] == study.best_params["x"] and parent.metrics["trials_complete"] == 20
    kids = children(parent.run_id)
    assert len(kids) == 20 and set(kids.status) == {"finished"}
    for t in study.trials:
        r = mj.get_run(t.user_attrs["mlops.run_id"])
        assert r.name == f"trial {t.number}" and r.params == t.params and r.metrics["loss"] == t.value
    out = capsys.readouterr().out
    assert "study quad: 20 trial(s)" in out and f"best loss {study.best_value:.6g}" in out


def test_pruned_and_failed_trials_are_recorded_and_the_study_goes_on(project, capsys):
    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        if trial.number == 3:
            raise ValueError("diverged")
        loss = 1.0
        for epoch in range(10):
            loss *= 1 - lr * 0.5
            mj.log(loss=loss, step=epoch)
        return loss

    study = mj.tune(objective, n_trials=16, direction="minimize", metric="loss", name="epochs", seed=1,
                    prune=optuna.pruners.MedianPruner(n_startup_trials=3), progress=False)
    S = optuna.trial.TrialState
    states = [t.state for t in study.trials]
    assert states.count(S.FAIL) == 1 and states.count(S.PRUNED) >= 1 and states.count(S.COMPLETE) >= 5
    for t in study.trials:
        r = mj.get_run(t.user_attrs["mlops.run_id"])
        assert r.status == {S.COMPLETE: "finished", S.PRUNED: "pruned", S.FAIL: "failed"}[t.state]
        history = r.history("loss").get("loss", [])
        if t.state == S.PRUNED:  # stopped at the step the pruner said so: the points up to it, no value after
            last = max(t.intermediate_values)
            assert [s for s, _ in history] == list(range(last + 1)) and "pruned at step" in r.row["error"]
        elif t.state == S.COMPLETE:
            assert history[-1] == (10, t.value) and len(history) == 11
        else:
            assert "ValueError: diverged" in r.row["error"]
    assert "mlops tune: trial 3 failed (ValueError: diverged); the study goes on" in capsys.readouterr().err


def test_autologged_rounds_are_reported_and_pruning_stops_the_fit(project):
    xgb = pytest.importorskip("xgboost")
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    mj.autolog("xgboost", log_models=False, log_datasets=False)
    try:
        def objective(trial):
            clf = xgb.XGBClassifier(n_estimators=30, learning_rate=trial.suggest_float("lr", 1e-4, 0.5, log=True),
                                    max_depth=2, eval_metric="logloss")
            clf.fit(X[:300], y[:300], eval_set=[(X[300:], y[300:])], verbose=False)
            return clf.evals_result()["validation_0"]["logloss"][-1]

        study = mj.tune(objective, n_trials=14, direction="minimize", metric="validation_0-logloss", name="xgb",
                        seed=0, prune="median", progress=False)
    finally:
        mj.autolog(disable=True)
    S = optuna.trial.TrialState
    pruned = [t for t in study.trials if t.state == S.PRUNED]
    assert pruned and all(max(t.intermediate_values) < 29 for t in pruned)  # the boosting stopped early
    for t in pruned:
        rounds = mj.get_run(t.user_attrs["mlops.run_id"]).history("validation_0-logloss")["validation_0-logloss"]
        assert [s for s, _ in rounds] == sorted(t.intermediate_values)
        assert [v for _, v in rounds] == pytest.approx([t.intermediate_values[s] for s, _ in rounds])
    done = [t for t in study.trials if t.state == S.COMPLETE]
    assert done and all(len(t.intermediate_values) == 30 for t in done)


def test_resume_threads_timeout_and_ctrl_c(project, capsys):
    import threading
    import time

    mj.tune(quadratic, n_trials=4, name="again", seed=0, direction="minimize", progress=False)
    with pytest.raises(mj.BadInput, match="study 'again' exists: resume=True continues it"):
        mj.tune(quadratic, n_trials=2, name="again")
    study = mj.tune(quadratic, n_trials=3, name="again", resume=True, direction="minimize", progress=False)
    assert len(study.trials) == 7 and len(mj.runs(where="name LIKE 'tune again%'")) == 2
    # trials side by side on threads: each logs into its own run
    seen = set()

    def threaded(trial):
        seen.add(threading.get_ident())
        x = trial.suggest_float("x", 0, 1)
        time.sleep(0.05)
        mj.log(number=trial.number)
        return x

    study = mj.tune(threaded, n_trials=8, workers=2, name="threads", progress=False)
    assert len(seen) == 2
    for t in study.trials:
        assert mj.get_run(t.user_attrs["mlops.run_id"]).metrics["number"] == t.number
    # a timeout stops starting trials; the finished ones are kept
    t0 = time.perf_counter()
    study = mj.tune(lambda trial: time.sleep(0.2) or trial.suggest_float("x", 0, 1), timeout=1.0, name="timed",
                    progress=False)
    assert time.perf_counter() - t0 < 5 and 1 <= len(study.trials) <= 7  # bounds loose enough for a busy machine
    # Ctrl-C: the trial it hit is killed, the study's run too, every finished trial kept
    def interrupted(trial):
        if trial.number == 3:
            raise KeyboardInterrupt
        return trial.suggest_float("x", 0, 1)

    study = mj.tune(interrupted, n_trials=10, name="stopped", progress=False)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3 + ["FAIL"]
    assert study_run("stopped").status == "killed"
    assert mj.get_run(study.trials[3].user_attrs["mlops.run_id"]).status == "killed"
    assert "stopped by Ctrl-C, every finished trial kept" in capsys.readouterr().out


def test_bad_options_are_one_line_and_start_nothing(project):
    cases = [(dict(n_trials=0), "n_trials must be a whole number >= 1"),
             (dict(), "say how long to search"),
             (dict(n_trials=3, direction="up"), "direction must be maximize or minimize"),
             (dict(n_trials=3, sampler="bayes"), "unknown sampler 'bayes': use one of"),
             (dict(n_trials=3, prune="asha"), "unknown pruner 'asha'"),
             (dict(n_trials=3, sampler="grid"), "sampler 'grid' needs the values to try"),
             (dict(n_trials=3, workers=0), "workers must be a whole number >= 1"),
             (dict(n_trials=3, timeout=-1), "timeout must be a number of seconds > 0"),
             (dict(n_trials=3, name="bad/name"), "study"),
             (dict(n_trials=3, name="nothing", resume=True), "no study 'nothing' to resume")]
    for kwargs, message in cases:
        with pytest.raises(mj.BadInput, match=message.replace("(", r"\(")) as e:
            mj.tune(quadratic, **kwargs)
        assert "\n" not in str(e.value)
    assert mj.runs().empty
    grid = mj.tune(quadratic, name="grid", sampler="grid", space={"x": [1.0, 2.0], "y": [0], "kind": ["a", "b"]},
                   n_trials=4, direction="minimize", progress=False)
    assert sorted((t.params["x"], t.params["kind"]) for t in grid.trials) == [(1.0, "a"), (1.0, "b"), (2.0, "a"),
                                                                              (2.0, "b")]
    assert grid.best_value == 0 and math.isclose(grid.best_params["x"], 2.0)


def test_the_study_report_its_pictures_and_the_command(project, ip):
    import json
    import os

    import altair
    import jsonschema

    from .conftest import run_cli

    with open(os.path.join(os.path.dirname(altair.__file__), "vegalite", "v5", "schema", "vega-lite-schema.json")) as f:
        validator = jsonschema.Draft7Validator(json.load(f))

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        depth = trial.suggest_int("depth", 1, 6)
        kind = trial.suggest_categorical("kind", ["gini", "entropy"])
        return -((math.log10(lr) + 2) ** 2) - 0.1 * depth + (0.05 if kind == "gini" else 0.0)

    study = mj.tune(objective, n_trials=15, metric="score", name="views", seed=3, progress=False)
    rep = mj.study("views")
    assert rep.best["value"] == study.best_value and rep.best["number"] == study.best_trial.number
    charts = rep.charts()
    kinds = [c.spec["usermeta"]["mlops"]["kind"] for c in charts]
    assert kinds == ["tuning.history", "parallel", "scatter", "explain.global"]
    for c in charts:
        assert not list(validator.iter_errors(c.spec)), c.title
    # the history: every finished trial, and the best so far as Optuna saw it
    hist = charts[0].spec
    running, best = [], None
    for t in study.trials:
        best = t.value if best is None else max(best, t.value)
        running.append({"trial": t.number, "best": best})
    assert hist["layer"][1]["data"]["values"] == running
    assert hist["usermeta"]["mlops"]["best"] == study.best_value
    # importances from Optuna's own evaluator, one bar per parameter
    assert set(rep.importances) == {"lr", "depth", "kind"}
    assert rep.importances == pytest.approx(optuna.importance.get_param_importances(study))
    page = rep._repr_html_()
    assert page.count("<svg") == 4 and "Study views" in page and "PED-ANOVA" in page
    assert page.count("finished") >= 15 and f"{study.best_value:.6g}"[:6] in page
    frame = rep.frame()
    assert list(frame.columns[:3]) == ["trial", "state", "score"] and len(frame) == 15
    # in a notebook and in a terminal
    shown = ip.run_cell("%mlops study views").result
    assert shown.name == "views"
    listing = ip.run_cell("%mlops study").result
    assert list(listing.study) == ["views"] and listing.trials.iloc[0] == 15
    r = run_cli("study", "views", "--save", "views.html", cwd=project)
    assert r.returncode == 0 and (project / "views.html").read_text().count("<svg") == 4
    r = run_cli("study", "view", cwd=project)
    assert r.returncode == 2 and r.stderr.strip() == "mlops: no study 'view'; did you mean 'views'?"
    r = run_cli("study", "views", cwd=project)
    assert r.returncode == 0 and "best        " in r.stdout and "depth" in r.stdout


@pytest.mark.slow
def test_a_study_in_a_notebook_updates_its_view_in_place(project):
    """In a real kernel, mj.tune shows the study once and updates it as trials finish; at the end the
    same output holds the whole report."""
    from jupyter_client.manager import start_new_kernel

    from .conftest import python_env

    km, kc = start_new_kernel(kernel_name="python3", env=python_env(), cwd=str(project))
    try:
        code = ("import time, mlops_jupyter as mj\n"
                "def objective(trial):\n"
                "    time.sleep(0.7)\n"
                "    return (trial.suggest_float('x', -3, 3) - 1) ** 2\n"
                "study = mj.tune(objective, n_trials=8, direction='minimize', metric='loss', name='live', seed=0,\n"
                "                progress=False)")
        msg_id = kc.execute(code)
        kinds, texts = [], []
        while True:
            msg = kc.get_iopub_msg(timeout=120)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            t = msg["msg_type"]
            if t in ("display_data", "update_display_data"):
                kinds.append(t)
                texts.append(msg["content"]["data"].get("text/html", ""))
            if t == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            if t == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert kinds[0] == "display_data" and kinds.count("display_data") == 1  # one view, updated in place
    assert kinds.count("update_display_data") >= 2
    assert "(running)" in texts[0] or "(running)" in texts[1]
    final = texts[-1]
    assert "(running)" not in final and final.count("<svg") >= 3 and "Trials" in final
    assert final.count("finished") >= 8
