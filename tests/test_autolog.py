"""Autologging of scikit-learn, XGBoost and LightGBM fits: runs, what they hold, nesting, failures,
patching on import, and the magic. Real estimators on small data, a real IPython shell."""

import json
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import mlops_jupyter as mj
from mlops_jupyter.autologging import session

from .conftest import PY, python_env


@pytest.fixture(autouse=True)
def autolog_off(project):
    yield
    mj.autolog(disable=True)
    session.WORKER.wait()
    session._reported.clear()


def data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["age", "income", "tenure", "calls"])
    y = pd.Series((X.age + 0.5 * X.income + 0.3 * rng.normal(size=n) > 0).astype(int), name="churned")
    return X, y


def run_named(name):
    runs = mj.runs(where=f"name = '{name}'")
    assert len(runs) == 1, runs[["name", "status"]]
    return mj.get_run(runs.run_id.iloc[0])


def test_a_fit_outside_a_run_records_a_run_with_mlflows_metrics_model_and_data(store):
    from sklearn import metrics as M
    from sklearn.ensemble import RandomForestClassifier

    from mlops_jupyter.data.catalog import Catalog

    assert mj.autolog() == ["keras", "lightgbm", "lightning", "sklearn", "xgboost"]
    X, y = data()
    clf = RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0).fit(X, y)
    assert mj.active_run() is None  # the fit's run is not left active for what the user logs next
    r = run_named("RandomForestClassifier")
    assert r.status == "finished" and r.tags["mlops.autolog"] == "sklearn"
    # every parameter, defaults included
    assert r.params["n_estimators"] == 20 and r.params["max_depth"] == 4 and r.params["criterion"] == "gini"
    assert "min_samples_leaf" in r.params and r.params["max_leaf_nodes"] is None
    # MLflow's training metrics, equal to scikit-learn's own functions
    pred, proba = clf.predict(X), clf.predict_proba(X)
    want = {"training_accuracy_score": M.accuracy_score(y, pred),
            "training_precision_score": M.precision_score(y, pred, average="weighted"),
            "training_recall_score": M.recall_score(y, pred, average="weighted"),
            "training_f1_score": M.f1_score(y, pred, average="weighted"),
            "training_log_loss": M.log_loss(y, proba), "training_roc_auc": M.roc_auc_score(y, proba[:, 1]),
            "training_score": clf.score(X, y)}
    for k, v in want.items():
        assert r.metrics[k] == pytest.approx(v, rel=1e-12), k
    # the model as a run artifact in its safe format, with its signature; it loads and predicts the same
    paths = {a["path"] for a in r.artifacts}
    assert {"model/model.skops", "model/model.json", "feature_importance.json", "feature_importance.svg"} <= paths
    info = json.loads(r.artifact_bytes("model/model.json"))
    assert info["flavor"] == "sklearn" and info["signature"]["columns"][0] == {"name": "age", "dtype": "float64"}
    import skops.io as sio

    blob = r.artifact_bytes("model/model.skops")
    loaded = sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))
    assert (loaded.predict_proba(X) == proba).all()
    assert not mj.models.model_records()  # no registry version unless asked
    # the training data, with its target, as the run's input
    (direction, v), = Catalog(store.meta).versions_of_run(r.run_id)
    assert direction == "input" and v.ref == "training-data@v1" and v.rows == 300
    assert list(mj.data.load(v.ref).columns) == ["age", "income", "tenure", "calls", "churned"]
    # feature importances, the chart's figures from the model
    fi = json.loads(r.artifact_bytes("feature_importance.json"))["features"]
    assert fi[0]["importance"] == max(clf.feature_importances_) and {f["feature"] for f in fi} == set(X.columns)
    svg = r.artifact_bytes("feature_importance.svg").decode()
    assert svg.startswith("<svg") and "age" in svg and "feature importance" in svg
    # %mlops show: the logged model and how to load it, the importance chart drawn from its figures
    from mlops_jupyter.widgets.runs_view import run_html
    from mlops_jupyter.widgets.terminal import render_run

    page = run_html(r, with_cells=False)
    assert f"mj.models.load(&#x27;runs:/{r.run_id[:8]}/model&#x27;)" in page and "RandomForestClassifier" in page
    chart = page[page.index("Feature importance"):]
    assert "<svg" in chart[:2000] and "impurity decrease" in chart
    assert f"load with mj.models.load('runs:/{r.run_id}/model')" in render_run(r)
    assert type(mj.models.load(f"runs:/{r.run_id[:8]}/model")).__name__ == "RandomForestClassifier"
    with pytest.raises(mj.NotFound, match="no run 'feedface'"):
        mj.models.load("runs:/feedface/model")
    with pytest.raises(mj.NotFound, match="logged no model under best/"):
        mj.models.load(f"runs:/{r.run_id}/best")
    with pytest.raises(mj.BadInput, match="not a run's model"):
        mj.models.load(f"runs:/{r.run_id}/../model")
    # the same data again adds no dataset version
    RandomForestClassifier(n_estimators=5, random_state=1).fit(X, y)
    assert len(mj.data.versions("training-data")) == 1


def test_inside_a_run_it_logs_there_and_nested_fits_make_no_runs(store):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mj.autolog("sklearn")
    X, y = data()
    with mj.start_run("baseline") as run:
        make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(X, y)
        mj.log(extra=1.0)
    runs = mj.runs()
    assert list(runs.name) == ["baseline"]  # no run for the pipeline, its steps, or the label encoders
    r = mj.get_run(run.run_id)
    assert r.status == "finished" and r.params["logisticregression__C"] == 0.5
    assert r.params["steps"].startswith("[('standardscaler'") and "training_accuracy_score" in r.metrics
    assert r.metrics["extra"] == 1.0


def test_a_fit_that_raises_fails_its_run_and_the_error_reaches_the_user_untouched(store):
    from sklearn.linear_model import LogisticRegression

    mj.autolog()
    X, y = data()
    with pytest.raises(Exception) as raised:
        LogisticRegression(C=-1).fit(X, y)
    plain = None
    mj.autolog(disable=True)
    try:
        LogisticRegression(C=-1).fit(X, y)
    except Exception as e:
        plain = e
    assert type(raised.value) is type(plain) and str(raised.value) == str(plain)
    r = run_named("LogisticRegression")
    assert r.status == "failed" and "C" in (r.row.get("error") or "")
    mj.autolog()
    with mj.start_run("mine") as mine:  # the user's run is the user's to end
        with pytest.raises(ValueError):
            LogisticRegression().fit(X, y[:10])
        assert mj.active_run() is mine
    assert mj.get_run(mine.run_id).status == "finished"


def test_a_failure_inside_autologging_never_breaks_the_fit(store, monkeypatch):
    from sklearn.tree import DecisionTreeRegressor

    from mlops_jupyter.autologging import sklearn as auto_sklearn

    def broken(*a, **k):
        raise RuntimeError("metrics exploded")

    monkeypatch.setattr(auto_sklearn, "training_metrics", broken)
    mj.autolog()
    X, y = data()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        m1 = DecisionTreeRegressor(max_depth=2).fit(X, y)
        DecisionTreeRegressor(max_depth=3).fit(X, y)
        session.WORKER.wait()
    assert m1.predict(X[:3]).shape == (3,)
    said = [str(w.message) for w in seen if "mlops autolog" in str(w.message)]
    assert len(said) == 1 and "metrics exploded" in said[0] and "the fit itself is unaffected" in said[0]
    runs = mj.runs()
    assert len(runs) == 2 and set(runs.status) == {"finished"}  # the runs still end
    r = mj.get_run(runs.run_id.iloc[0])  # and the rest is still logged
    assert {"model/model.skops", "feature_importance.json"} <= {a["path"] for a in r.artifacts}
    assert r.params["max_depth"] in (2, 3) and len(mj.data.versions("training-data")) == 1


def test_warnings_as_errors_and_fits_on_other_threads(store, monkeypatch):
    """A user's ``-W error`` cannot turn an autologging failure into theirs; the trees a forest fits
    on joblib's threads are part of its fit, not runs of their own."""
    from sklearn.ensemble import IsolationForest, RandomForestClassifier
    from sklearn.model_selection import GridSearchCV

    from mlops_jupyter.autologging import sklearn as auto_sklearn

    mj.autolog(log_datasets=False)
    X, y = data()
    IsolationForest(n_estimators=8, n_jobs=2, random_state=0).fit(X)
    GridSearchCV(RandomForestClassifier(n_estimators=3), {"max_depth": [2, 3]}, cv=2, n_jobs=2).fit(X, y)
    runs = mj.runs()
    assert sorted(runs[runs.parent_id.isna()].name) == ["GridSearchCV", "IsolationForest"]
    monkeypatch.setattr(auto_sklearn, "training_metrics", lambda *a, **k: 1 / 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RandomForestClassifier(n_estimators=3).fit(X, y)
    assert run_named("RandomForestClassifier").status == "finished"


def test_refitting_the_same_estimator_logs_each_fit_as_it_was(store):
    from sklearn import metrics as M
    from sklearn.linear_model import Ridge

    mj.autolog(log_datasets=False)
    X, y = data()
    y = X.age * 3 + X.income
    m = Ridge(alpha=0.01)
    first = m.fit(X, y).predict(X)
    m.set_params(alpha=1e4).fit(X, y)  # waits for the first fit's logging before changing the model
    runs = mj.runs(order_by="start_time")
    a, b = (mj.get_run(i) for i in runs.run_id)
    assert a.params["alpha"] == 0.01 and b.params["alpha"] == 1e4
    assert a.metrics["training_mean_squared_error"] == pytest.approx(M.mean_squared_error(y, first), rel=1e-12)
    assert a.metrics["training_r2_score"] > 0.99 > b.metrics["training_r2_score"]
    assert b.metrics["training_root_mean_squared_error"] == pytest.approx(
        np.sqrt(b.metrics["training_mean_squared_error"]), rel=1e-12)


def test_xgboost_and_lightgbm_scikit_learn_faces(store):
    xgb = pytest.importorskip("xgboost")
    lgb = pytest.importorskip("lightgbm")
    mj.autolog()
    X, y = data()
    xgb.XGBClassifier(n_estimators=10, max_depth=2).fit(X, y)
    lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, X.age * 2)
    x, g = run_named("XGBClassifier"), run_named("LGBMRegressor")
    assert x.tags["mlops.autolog"] == "xgboost" and g.tags["mlops.autolog"] == "lightgbm"
    assert x.params["n_estimators"] == 10 and "training_roc_auc" in x.metrics
    assert "training_r2_score" in g.metrics
    assert json.loads(x.artifact_bytes("model/model.json"))["flavor"] == "xgboost"
    assert json.loads(g.artifact_bytes("model/model.json"))["flavor"] == "lightgbm"


def test_frameworks_imported_later_are_patched_when_imported_and_none_is_imported_to_patch_it(project):
    code = """
import sys
import mlops_jupyter as mj
mj.autolog()
assert not any(m in sys.modules for m in ("sklearn", "xgboost", "lightgbm")), "imported to patch"
import numpy as np
from sklearn.linear_model import LinearRegression
X = np.arange(20.0).reshape(10, 2)
LinearRegression().fit(X, X[:, 0] * 2)
runs = mj.runs()  # after the worker saved the model and the data: still neither
assert not any(m in sys.modules for m in ("xgboost", "lightgbm", "torch", "keras")), "imported by logging"
print(list(runs.name), list(runs.status), round(runs["metrics.training_r2_score"].iloc[0], 6))
"""
    r = subprocess.run([PY, "-c", code], cwd=project, env=python_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "['LinearRegression'] ['finished'] 1.0"


def test_disable_puts_every_method_back(store):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    original, pca = LogisticRegression.__dict__["fit"], PCA.__dict__["fit_transform"]
    mj.autolog()
    assert hasattr(LogisticRegression.__dict__["fit"], session.MARK) and hasattr(PCA.__dict__["fit_transform"], session.MARK)
    assert not hasattr(StandardScaler.__dict__["fit"], session.MARK)  # data preparation is no experiment
    assert mj.autolog(disable=True) == []
    assert LogisticRegression.__dict__["fit"] is original and PCA.__dict__["fit_transform"] is pca
    X, y = data()
    LogisticRegression().fit(X, y)
    assert mj.runs().empty


def test_the_magic_names_datasets_after_the_variable_and_refuses_bad_input_in_one_line(ip):
    from mlops_jupyter.data.catalog import Catalog
    from mlops_jupyter.store import open_store

    ip.run_cell("%mlops autolog --frameworks sklearn,foo")
    with pytest.raises(UsageError, match="unknown framework foo: autolog knows sklearn, xgboost, lightgbm, keras, lightning"):
        ip.run_cell("%mlops autolog --frameworks sklearn,foo").raise_error()
    with pytest.raises(UsageError, match="must be 0 or more"):
        ip.run_cell("%mlops autolog --max-tuning-runs -1").raise_error()
    with pytest.raises(UsageError, match="not a valid model name|model name"):
        ip.run_cell("%mlops autolog --register 'bad name!'").raise_error()
    assert session.settings() is None  # bad input changed nothing
    X, y = data()
    ip.user_ns.update(X_train=X, y_train=y)
    ip.run_cell("%mlops autolog --frameworks sklearn --register churn").raise_error()
    ip.run_cell("from sklearn.linear_model import LogisticRegression\n"
                "clf = LogisticRegression().fit(X_train, y_train)").raise_error()
    r = run_named("LogisticRegression")
    (_, v), = Catalog(open_store().meta).versions_of_run(r.run_id)
    assert v.ref == "X_train@v1"
    assert mj.models.get("churn@v1").run_id == r.run_id  # registered, as asked
    ip.run_cell("%mlops autolog --disable").raise_error()
    assert session.settings() is None and session.patched() == 0


def test_a_search_logs_its_best_and_its_top_candidates_as_child_runs(store):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV
    from sklearn.svm import SVC

    mj.autolog(max_tuning_runs=3, log_datasets=False)
    X, y = data(200)
    grid = GridSearchCV(SVC(), {"C": [0.01, 0.1, 1, 10], "kernel": ["linear", "rbf"]}, cv=3).fit(X, y)
    runs = mj.runs()
    parent = run_named("GridSearchCV")
    assert len(runs) == 4  # the search and its 3 best candidates; none for the 8 x 3 + 1 inner fits
    assert parent.params["best_C"] == grid.best_params_["C"] and parent.params["best_kernel"] == grid.best_params_["kernel"]
    assert parent.metrics["best_cv_score"] == pytest.approx(grid.best_score_, rel=1e-12)
    assert parent.params["estimator__C"] == 1.0 and "training_accuracy_score" in parent.metrics
    assert b"mean_test_score" in parent.artifact_bytes("cv_results.csv")
    # the search as the run's model, and its refitted best estimator beside it
    models = {m["folder"]: m for m in parent.logged_models()}
    assert models["model"]["model_class"].endswith("GridSearchCV")
    best = mj.models.load(models["best_estimator"]["ref"])
    assert type(best).__name__ == "SVC" and (best.predict(X) == grid.best_estimator_.predict(X)).all()
    kids = [mj.get_run(i) for i in runs[runs.parent_id == parent.run_id].run_id]
    by_rank = sorted(kids, key=lambda k: int(k.tags["mlops.autolog.candidate"]))
    res = grid.cv_results_
    want = sorted(range(8), key=lambda i: res["rank_test_score"][i])[:3]
    for kid, i in zip(by_rank, want):
        # every parameter of the estimator the candidate fitted, as MLflow logs them
        assert kid.params == {**SVC().get_params(deep=True), **res["params"][i]} and kid.status == "finished"
        assert kid.metrics["mean_test_score"] == pytest.approx(res["mean_test_score"][i], rel=1e-12)
        assert kid.metrics["rank_test_score"] == res["rank_test_score"][i]
    halving = HalvingGridSearchCV(SVC(), {"C": [0.1, 1, 10]}, cv=3, min_resources=60, random_state=0).fit(X, y)
    h = run_named("HalvingGridSearchCV")
    assert h.params["best_C"] == halving.best_params_["C"]
    assert len(mj.runs(where=f"parent_id = '{h.run_id}'")) == 3


def test_scores_and_metrics_computed_later_go_to_the_fits_run(store):
    mj.autolog(log_datasets=False, log_models=False)
    from sklearn import metrics
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data(400)
    X_train, X_test, y_train, y_test = X[:300], X[300:], y[:300], y[300:]
    clf = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_train, y_train)
    reg = RandomForestRegressor(n_estimators=10, random_state=0).fit(X_train, X_train.age * 2)
    acc = clf.score(X_test, y_test)
    f1 = metrics.f1_score(y_test, clf.predict(X_test))
    auc = metrics.roc_auc_score(y_test, clf.predict_proba(X_test)[:, 1])  # a slice of the predictions: not known
    mse = metrics.mean_squared_error(X_test.age * 2, reg.predict(X_test))
    mse2 = metrics.mean_squared_error(X_test.age * 2, reg.predict(X_test))  # again: the next step
    metrics.accuracy_score(y_test, y_test)  # not a model's predictions: logs nothing
    p, r = run_named("Pipeline"), run_named("RandomForestRegressor")
    assert p.metrics["Pipeline_score_X_test"] == pytest.approx(acc, rel=1e-12)
    assert p.metrics["f1_score_X_test"] == pytest.approx(f1, rel=1e-12)
    assert not any(k.startswith(("roc_auc", "accuracy_score")) for k in p.metrics) and auc > 0.5
    assert r.history("mean_squared_error_X_test")["mean_squared_error_X_test"] == [(0, mse), (1, mse2)]
    assert not any(k.startswith("mean_squared") for k in p.metrics)
    # cross-validation and permutation importance fit and score copies many times: no runs, no scores
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import cross_val_score

    before = len(mj.runs())
    assert cross_val_score(LogisticRegression(), X, y, cv=3).shape == (3,)
    permutation_importance(clf, X_test, y_test, n_repeats=3, random_state=0)
    assert len(mj.runs()) == before and "Pipeline_score_X_test" in run_named("Pipeline").metrics
    assert len(run_named("Pipeline").history("Pipeline_score_X_test")["Pipeline_score_X_test"]) == 1
    mj.autolog(disable=True)
    assert metrics.f1_score.__name__ == "f1_score" and not hasattr(metrics.f1_score, session.MARK)


def test_boosters_log_every_round_of_their_eval_sets_and_the_best_round(store):
    xgb = pytest.importorskip("xgboost")
    lgb = pytest.importorskip("lightgbm")
    mj.autolog(log_datasets=False)
    X, y = data(400)
    X_tr, X_va, y_tr, y_va = X[:300], X[300:], y[:300], y[300:]
    # native xgboost.train with early stopping: a run of its own
    evals: dict = {}
    booster = xgb.train({"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 2, "eta": 0.3},
                        xgb.DMatrix(X_tr, y_tr), num_boost_round=200, evals=[(xgb.DMatrix(X_va, y_va), "valid")],
                        early_stopping_rounds=5, evals_result=evals, verbose_eval=False)
    r = run_named("xgboost.train")
    assert r.params["max_depth"] == 2 and r.params["num_boost_round"] == 200 and r.params["early_stopping_rounds"] == 5
    curve = r.history("valid-logloss")["valid-logloss"]
    assert curve == list(enumerate(evals["valid"]["logloss"]))  # one point per round, step = round
    assert r.metrics["best_iteration"] == booster.best_iteration and r.metrics["stopped_iteration"] == len(curve) - 1
    assert json.loads(r.artifact_bytes("model/model.json"))["flavor"] == "xgboost"
    assert json.loads(r.artifact_bytes("feature_importance.json"))["measure"] == "importance (total gain)"
    # lightgbm.train with callbacks of the user's, inside the user's run
    recorded: dict = {}
    with mj.start_run("lgb") as run:
        lgb.train({"objective": "binary", "metric": "auc", "verbose": -1, "num_leaves": 4},
                  lgb.Dataset(X_tr, y_tr), num_boost_round=30, valid_sets=[lgb.Dataset(X_va, y_va)],
                  valid_names=["valid"], callbacks=[lgb.record_evaluation(recorded), lgb.early_stopping(3, verbose=False)])
        assert len(mj.get_run(run.run_id).history("valid-auc")["valid-auc"]) >= 1  # live, before the run ends
    g = mj.get_run(run.run_id)
    assert [v for _, v in g.history("valid-auc")["valid-auc"]] == recorded["valid"]["auc"]
    assert g.params["num_leaves"] == 4 and "best_iteration" in g.metrics
    # the scikit-learn faces: eval_set rounds logged into the fit's own run, nothing twice
    XGBC = xgb.XGBClassifier(n_estimators=15, max_depth=2, early_stopping_rounds=4, eval_metric="logloss")
    XGBC.fit(X_tr, y_tr, eval_set=[(X_va, y_va)], verbose=False)
    c = run_named("XGBClassifier")
    assert [v for _, v in c.history("validation_0-logloss")["validation_0-logloss"]] == \
        XGBC.evals_result()["validation_0"]["logloss"]
    assert c.metrics["best_iteration"] == XGBC.best_iteration
    assert len(mj.runs()) == 3  # no run for the train() inside XGBClassifier.fit


def test_an_untested_framework_version_warns_once_and_still_logs(store, monkeypatch):
    from mlops_jupyter import autologging

    monkeypatch.setitem(autologging.FRAMEWORKS, "sklearn",
                        autologging.Framework(autologging.FRAMEWORKS["sklearn"].hooks, ">=0.1,<0.2"))
    monkeypatch.setattr(autologging, "_checked", set())
    from sklearn.linear_model import Ridge

    with pytest.warns(UserWarning, match=r"scikit-learn \S+ has not been tested with autologging \(tested: >=0.1,<0.2\)"):
        mj.autolog("sklearn")
    X, y = data()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        Ridge().fit(X, X.age)
        mj.autolog("sklearn")
    assert not [w for w in seen if "not been tested" in str(w.message)]  # once
    assert "training_r2_score" in run_named("Ridge").metrics


def test_keras_fit_logs_each_epoch_its_arguments_optimizer_and_the_model(store):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    mj.autolog("keras")
    X, y = data(200)
    Xa, ya = X.to_numpy("float32"), y.to_numpy()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(learning_rate=0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    hist = model.fit(Xa, ya, epochs=6, batch_size=32, validation_split=0.25, callbacks=[stop], verbose=0)
    r = run_named("Sequential")
    assert r.tags["mlops.autolog"] == "keras"
    assert r.params["epochs"] == 6 and r.params["batch_size"] == 32 and r.params["validation_split"] == 0.25
    assert r.params["optimizer_name"] == "Adam" and r.params["optimizer_learning_rate"] == pytest.approx(0.01)
    assert r.params["loss"] == "sparse_categorical_crossentropy" and r.params["total_params"] == 4 * 8 + 8 + 8 * 2 + 2
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        got = [v for _, v in r.history(key)[key]]
        assert got == pytest.approx(hist.history[key], rel=1e-6), key  # one point per epoch, step = epoch
    assert [s for s, _ in r.history("loss")["loss"]] == list(range(len(hist.history["loss"])))
    assert "stopped_epoch" in r.metrics
    assert b"Total params" in r.artifact_bytes("model_summary.txt")
    assert json.loads(r.artifact_bytes("model/model.json"))["flavor"] == "keras"


def test_ending_a_parent_run_waits_for_its_childs_autologging_without_deadlock(store):
    """Ending a run ends its active children, each waiting for what autologging still writes into
    it; the worker starts the search's child runs meanwhile (it needs the run stack)."""
    import time

    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    mj.autolog(log_datasets=False)
    X, y = data()
    outer = mj.start_run("outer")
    inner = mj.start_run("inner")
    GridSearchCV(DecisionTreeClassifier(), {"max_depth": [1, 2, 3]}, cv=2).fit(X, y)
    t = time.perf_counter()
    outer.end()
    assert time.perf_counter() - t < 60
    r = mj.get_run(inner.run_id)
    assert r.status == "finished" and "best_cv_score" in r.metrics
    assert len(mj.runs(where=f"parent_id = '{inner.run_id}'")) == 3  # the candidates, written before it ended


def lightning_module(fail_at_epoch=None):
    L = pytest.importorskip("lightning")
    import torch

    class Net(L.LightningModule):
        def __init__(self, lr=0.01, hidden=16):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

        def forward(self, x):
            return torch.sigmoid(self.net(x)).squeeze(-1)

        def training_step(self, batch, i):
            if fail_at_epoch is not None and self.current_epoch == fail_at_epoch:
                raise ValueError("diverged at epoch 1")
            x, t = batch
            loss = torch.nn.functional.binary_cross_entropy(self(x), t)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def validation_step(self, batch, i):
            x, t = batch
            self.log("val_loss", torch.nn.functional.binary_cross_entropy(self(x), t))

        def test_step(self, batch, i):
            x, t = batch
            self.log("test_acc", ((self(x) > 0.5).float() == t).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    return L, Net


def lightning_data():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    X, y = data(256)
    Xt, yt = torch.tensor(X.to_numpy("float32")), torch.tensor(y.to_numpy("float32"))
    return Xt, DataLoader(TensorDataset(Xt, yt), batch_size=32), DataLoader(TensorDataset(Xt[:64], yt[:64]), batch_size=32)


def quiet_trainer(L, **kw):
    # (not deterministic=True: it turns on torch.use_deterministic_algorithms for the whole process)
    return L.Trainer(enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **kw)


def test_lightning_fit_logs_each_epoch_its_settings_the_model_and_the_data(store, tmp_path):
    import csv

    import torch

    from mlops_jupyter.data.catalog import Catalog

    L, Net = lightning_module()
    mj.autolog("lightning")
    torch.manual_seed(0)
    Xt, train, val = lightning_data()
    model = Net(lr=0.02)
    stop = L.pytorch.callbacks.EarlyStopping(monitor="val_loss", patience=3)
    trainer = quiet_trainer(L, max_epochs=5, callbacks=[stop], logger=L.pytorch.loggers.CSVLogger(tmp_path, name="csv"))
    trainer.fit(model, train, val)
    trainer.test(model, val, verbose=False)
    r = run_named("Net")
    assert r.status == "finished" and r.tags["mlops.autolog"] == "lightning"
    assert r.params["epochs"] == 5 and r.params["batch_size"] == 32 and r.params["optimizer_name"] == "Adam"
    assert r.params["lr"] == 0.02 and r.params["hidden"] == 16 and r.params["betas"] == [0.9, 0.999]
    assert r.params["monitor"] == "val_loss" and r.params["patience"] == 3
    assert r.params["total_params"] == sum(p.numel() for p in model.parameters())
    # one point per epoch (step = epoch), equal to what Lightning's own CSV logger wrote
    rows = list(csv.DictReader(open(trainer.logger.log_dir + "/metrics.csv")))
    for key in ("train_loss_epoch", "val_loss"):
        want = [(int(row["epoch"]), float(row[key])) for row in rows if row.get(key)]
        assert len(want) == 5
        got = r.history(key)[key]
        assert [s for s, _ in got] == [e for e, _ in want] and [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)
    assert r.metrics["test_acc"] == pytest.approx(float(next(row["test_acc"] for row in rows if row.get("test_acc"))))
    assert b"Trainable params" in r.artifact_bytes("model_summary.txt")
    # the module in the safe format, traced on the first batch; it loads and answers the same
    assert json.loads(r.artifact_bytes("model/model.json"))["flavor"] == "torch"
    loaded = mj.models.load(f"runs:/{r.run_id}/model")
    model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(Xt), model(Xt), atol=1e-6)
    # the TensorDataset as the run's input
    (direction, v), = Catalog(store.meta).versions_of_run(r.run_id)
    assert direction == "input" and v.rows == 256
    assert list(mj.data.load(v.ref).columns) == ["x0", "x1", "x2", "x3", "y"]


def test_lightning_fit_that_raises_fails_its_run_with_the_epochs_it_logged(store):
    import torch

    L, Net = lightning_module(fail_at_epoch=1)
    mj.autolog("lightning")
    torch.manual_seed(0)
    _, train, val = lightning_data()
    with pytest.raises(ValueError, match="^diverged at epoch 1$"):
        quiet_trainer(L, max_epochs=3, logger=False).fit(Net(), train, val)
    r = run_named("Net")
    assert r.status == "failed" and "diverged at epoch 1" in r.row["error"]
    assert [s for s, _ in r.history("val_loss")["val_loss"]] == [0] and r.params["epochs"] == 3


def test_lightning_logger_writes_what_the_module_logs_at_lightnings_steps(store):
    import torch

    L, Net = lightning_module()
    torch.manual_seed(0)
    _, train, val = lightning_data()
    # explicitly, without autologging: a run of its own, ended with the fit
    logger = mj.lightning_logger(name="explicit")
    trainer = quiet_trainer(L, max_epochs=2, logger=logger, log_every_n_steps=2)
    trainer.fit(Net(lr=0.05), train, val)
    r = run_named("explicit")
    assert r.status == "finished" and r.params["lr"] == 0.05 and r.params["hidden"] == 16
    steps = [s for s, _ in r.history("train_loss_step")["train_loss_step"]]
    assert steps == list(range(1, 16, 2))  # every second of Lightning's 16 global steps (8 batches x 2 epochs)
    assert len(r.history("train_loss_epoch")["train_loss_epoch"]) == 2
    trainer.test(trainer.lightning_module, val, verbose=False)  # after the fit: into the same, ended run
    assert "test_acc" in mj.get_run(r.run_id).metrics
    # a failing fit fails the logger's run
    L2, Failing = lightning_module(fail_at_epoch=0)
    with pytest.raises(ValueError):
        quiet_trainer(L2, max_epochs=2, logger=mj.lightning_logger(name="broken")).fit(Failing(), train)
    assert run_named("broken").status == "failed"
    # inside the user's run it logs there and leaves the run to the user; with autologging: one run
    mj.autolog("lightning")
    with mj.start_run("mine") as mine:
        quiet_trainer(L, max_epochs=1, logger=mj.lightning_logger()).fit(Net(), train, val)
        assert mj.active_run() is mine
    r = mj.get_run(mine.run_id)
    assert r.status == "finished" and "train_loss_epoch" in r.metrics and r.params["optimizer_name"] == "Adam"
    assert "model/model.json" in {a["path"] for a in r.artifacts}
    quiet_trainer(L, max_epochs=1, logger=mj.lightning_logger(name="both")).fit(Net(), train, val)
    both = run_named("both")
    assert both.status == "finished" and both.params["total_params"] > 0 and "val_loss" in both.metrics
    assert list(mj.runs().name).count("Net") == 0  # autologging logged into the logger's run, not one of its own


def test_every_framework_in_an_ipython_shell_inside_a_tracked_cell(ip):
    """Cells as a user types them: `%mlops autolog`, then a `%%mlops track` cell fitting each
    framework logs into that one run; fits in plain cells get runs of their own."""
    pytest.importorskip("lightning")
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    X, y = data(200)
    ip.user_ns.update(X_train=X, y_train=y)
    ip.run_cell("%mlops autolog").raise_error()
    ip.run_cell(
        "%%mlops track boosters\n"
        "import xgboost as xgb, lightgbm as lgb\n"
        "xgb.XGBRegressor(n_estimators=5).fit(X_train, y_train, eval_set=[(X_train, y_train)], verbose=False)\n"
        "lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X_train, y_train, eval_set=[(X_train, y_train)])"
    ).raise_error()
    r = run_named("boosters")
    assert r.status == "finished" and len(r.history("validation_0-rmse")["validation_0-rmse"]) == 5
    # LightGBM names an eval set that is the training data "training"
    assert len(r.history("training-binary_logloss")["training-binary_logloss"]) == 5
    assert mj.runs().name.tolist() == ["boosters"]  # the fits logged into the tracked cell's run
    ip.run_cell(
        "import keras, torch, lightning as L\n"
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation='sigmoid')])\n"
        "net.compile('adam', 'binary_crossentropy')\n"
        "net.fit(X_train.to_numpy('float32'), y_train.to_numpy(), epochs=2, verbose=0)\n"
        "class Tiny(L.LightningModule):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.lin = torch.nn.Linear(4, 1)\n"
        "    def forward(self, x):\n        return self.lin(x).squeeze(-1)\n"
        "    def training_step(self, b, i):\n"
        "        loss = torch.nn.functional.mse_loss(self(b[0]), b[1]); self.log('loss', loss); return loss\n"
        "    def configure_optimizers(self):\n        return torch.optim.SGD(self.parameters(), lr=0.1)\n"
        "data = TensorDataset(torch.tensor(X_train.to_numpy('float32')), torch.tensor(y_train.to_numpy('float32')))\n"
        "L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,\n"
        "          enable_model_summary=False).fit(Tiny(), DataLoader(data, batch_size=50))"
    ).raise_error()
    assert [s for s, _ in run_named("Sequential").history("loss")["loss"]] == [0, 1]
    tiny = run_named("Tiny")
    assert [s for s, _ in tiny.history("loss")["loss"]] == [0, 1] and tiny.params["optimizer_name"] == "SGD"
    assert tiny.row["notebook"] and "ipykernel_launcher" not in tiny.row["notebook"]
