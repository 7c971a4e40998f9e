"""Autologging through real kernels: a notebook run by papermill fits every framework after one
``%mlops autolog``; what the runs hold is compared with what the libraries themselves report in that
kernel (written to a file by the notebook). A promoted job whose notebook autologs: its executions
log the same way, and the metric they log decides champion and challenger."""

import csv
import json

import nbformat
import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mj
from mlops_jupyter.cli import main

pytest.importorskip("torch")
pytest.importorskip("lightning")

DATA = ("import os, json\nimport numpy as np, pandas as pd\nimport mlops_jupyter as mj\n"
        "rng = np.random.default_rng(0)\n"
        "X = pd.DataFrame(rng.normal(size=(300, 4)), columns=['age', 'income', 'tenure', 'calls'])\n"
        "y = pd.Series((X.age + 0.5 * X.income + 0.3 * rng.normal(size=300) > 0).astype(int), name='churned')\n"
        "X_train, X_test, y_train, y_test = X[:200], X[200:], y[:200], y[200:]\n"
        "truth = {}")

CELLS = [
    "%load_ext mlops_jupyter\n%mlops autolog",
    DATA,
    # scikit-learn: an estimator, a later metric on its predictions, a search, a fit that raises
    "from sklearn.ensemble import RandomForestClassifier\nfrom sklearn.linear_model import LogisticRegression\n"
    "from sklearn.metrics import f1_score\nfrom sklearn.model_selection import GridSearchCV\n"
    "rf = RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0).fit(X_train, y_train)\n"
    "truth['sklearn'] = {'f1_test': f1_score(y_test, rf.predict(X_test)), 'proba': rf.predict_proba(X_test).tolist()}\n"
    "search = GridSearchCV(LogisticRegression(), {'C': [0.01, 0.1, 1.0]}, cv=3).fit(X_train, y_train)\n"
    "truth['search'] = {'mean': search.cv_results_['mean_test_score'].tolist(), 'best_C': search.best_params_['C']}\n"
    "try:\n    LogisticRegression(C=-1).fit(X_train, y_train)\nexcept ValueError as e:\n    truth['failed'] = str(e)",
    # XGBoost (scikit-learn face with an eval_set) and LightGBM (native train with valid_sets)
    "import xgboost as xgb, lightgbm as lgb\n"
    "xg = xgb.XGBClassifier(n_estimators=15, max_depth=3, eval_metric='logloss').fit(\n"
    "    X_train, y_train, eval_set=[(X_test, y_test)], verbose=False)\n"
    "truth['xgboost'] = {'evals': xg.evals_result(), 'proba': xg.predict_proba(X_test).tolist()}\n"
    "ev = {}\n"
    "booster = lgb.train({'objective': 'binary', 'metric': 'binary_logloss', 'verbose': -1, 'num_leaves': 7},\n"
    "                    lgb.Dataset(X_train, y_train), 12, valid_sets=[lgb.Dataset(X_test, y_test)],\n"
    "                    valid_names=['valid'], callbacks=[lgb.record_evaluation(ev)])\n"
    "truth['lightgbm'] = {'evals': ev, 'pred': booster.predict(X_test).tolist()}",
    # Keras on the torch backend
    "os.environ['KERAS_BACKEND'] = 'torch'\nimport keras\nkeras.utils.set_random_seed(0)\n"
    "net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation='relu'),\n"
    "                        keras.layers.Dense(2, activation='softmax')])\n"
    "net.compile(keras.optimizers.Adam(learning_rate=0.01), 'sparse_categorical_crossentropy', metrics=['accuracy'])\n"
    "hist = net.fit(X_train.to_numpy('float32'), y_train.to_numpy(), epochs=4, batch_size=32,\n"
    "               validation_split=0.25, verbose=0)\n"
    "truth['keras'] = {'history': hist.history, 'pred': net.predict(X_test.to_numpy('float32'), verbose=0).tolist()}",
    # PyTorch Lightning, beside Lightning's own CSV logger
    "import torch, lightning as L\nfrom torch.utils.data import DataLoader, TensorDataset\ntorch.manual_seed(0)\n"
    "class Net(L.LightningModule):\n"
    "    def __init__(self, lr=0.02):\n"
    "        super().__init__(); self.save_hyperparameters()\n"
    "        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))\n"
    "    def forward(self, x):\n        return torch.sigmoid(self.body(x)).squeeze(-1)\n"
    "    def training_step(self, b, i):\n"
    "        loss = torch.nn.functional.binary_cross_entropy(self(b[0]), b[1]); self.log('train_loss', loss, on_epoch=True, on_step=False); return loss\n"
    "    def validation_step(self, b, i):\n"
    "        self.log('val_loss', torch.nn.functional.binary_cross_entropy(self(b[0]), b[1]))\n"
    "    def configure_optimizers(self):\n        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)\n"
    "Xt, yt = torch.tensor(X_train.to_numpy('float32')), torch.tensor(y_train.to_numpy('float32'))\n"
    "Xv, yv = torch.tensor(X_test.to_numpy('float32')), torch.tensor(y_test.to_numpy('float32'))\n"
    "module = Net()\n"
    "trainer = L.Trainer(max_epochs=3, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,\n"
    "                    logger=L.pytorch.loggers.CSVLogger('lightning_csv', name='net'))\n"
    "trainer.fit(module, DataLoader(TensorDataset(Xt, yt), batch_size=50), DataLoader(TensorDataset(Xv, yv), batch_size=50))\n"
    "module.eval()\n"
    "with torch.no_grad():\n    truth['lightning'] = {'pred': module(Xv).tolist(), 'csv': trainer.logger.log_dir + '/metrics.csv'}",
    # off again: a fit logs nothing
    "%mlops autolog --disable\nfrom sklearn.linear_model import Ridge\nRidge().fit(X_train, y_train)\n"
    "json.dump(truth, open('truth.json', 'w'))",
]


def notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))
    return path


def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=["age", "income", "tenure", "calls"])
    y = pd.Series((X.age + 0.5 * X.income + 0.3 * rng.normal(size=300) > 0).astype(int), name="churned")
    return X[:200], X[200:], y[:200], y[200:]


def run_named(name):
    runs = mj.runs(where=f"name = '{name}'")
    assert len(runs) == 1, runs[["name", "status"]]
    return mj.get_run(runs.run_id.iloc[0])


def points(r, key):
    return r.history(key)[key]


@pytest.mark.slow
def test_every_framework_autologged_in_a_kernel_matches_what_the_libraries_report(project):
    from sklearn import metrics as M
    from sklearn.ensemble import RandomForestClassifier

    from mlops_jupyter.data.catalog import Catalog
    from mlops_jupyter.jobs.execute import execute_notebook
    from mlops_jupyter.store import open_store

    execute_notebook(notebook(project / "train.ipynb", CELLS), project / "out.ipynb", cwd=project, progress=False,
                     timeout=600)
    truth = json.loads((project / "truth.json").read_text())
    X_train, X_test, y_train, y_test = data()
    nb_path = str((project / "train.ipynb").resolve())

    # scikit-learn: every parameter as the estimator gives it, MLflow's metrics as scikit-learn computes them
    rf = run_named("RandomForestClassifier")
    assert rf.status == "finished" and rf.row["notebook"] == nb_path  # the notebook, not ipykernel_launcher.py
    for k, v in RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0).get_params(deep=True).items():
        assert rf.params[k] == v, k
    model = mj.models.load(f"runs:/{rf.run_id}/model")
    assert model.predict_proba(X_test).tolist() == truth["sklearn"]["proba"]  # the kernel's model, identically
    pred, proba = model.predict(X_train), model.predict_proba(X_train)
    for key, fn in [("training_accuracy_score", lambda: M.accuracy_score(y_train, pred)),
                    ("training_f1_score", lambda: M.f1_score(y_train, pred, average="weighted")),
                    ("training_log_loss", lambda: M.log_loss(y_train, proba)),
                    ("training_roc_auc", lambda: M.roc_auc_score(y_train, proba[:, 1]))]:
        assert rf.metrics[key] == pytest.approx(fn(), rel=1e-12), key
    assert rf.metrics["f1_score_X_test"] == pytest.approx(truth["sklearn"]["f1_test"], rel=1e-12)
    (direction, v), = Catalog(open_store().meta).versions_of_run(rf.run_id)
    assert direction == "input" and v.ref == "X_train@v1" and v.rows == 200  # named after the notebook's variable

    search = run_named("GridSearchCV")
    assert search.params["best_C"] == truth["search"]["best_C"]
    assert search.metrics["best_cv_score"] == pytest.approx(max(truth["search"]["mean"]), rel=1e-12)
    children = mj.runs(where=f"parent_id = '{search.run_id}'")
    assert sorted(children["metrics.mean_test_score"]) == pytest.approx(sorted(truth["search"]["mean"]), rel=1e-12)
    failed = mj.runs(where="status = 'failed'")
    assert list(failed.name) == ["LogisticRegression"] and truth["failed"] in mj.get_run(failed.run_id.iloc[0]).row["error"]

    # XGBoost: one point per round, equal to evals_result(); the booster loads and predicts the same
    xg = run_named("XGBClassifier")
    want = truth["xgboost"]["evals"]["validation_0"]["logloss"]
    got = points(xg, "validation_0-logloss")
    assert [s for s, _ in got] == list(range(15)) and [x for _, x in got] == pytest.approx(want, rel=1e-9)
    assert mj.models.load(f"runs:/{xg.run_id}/model").predict_proba(X_test).tolist() == truth["xgboost"]["proba"]
    # LightGBM's native train: the same against record_evaluation
    lg = run_named("lightgbm.train")
    got = points(lg, "valid-binary_logloss")
    assert [x for _, x in got] == pytest.approx(truth["lightgbm"]["evals"]["valid"]["binary_logloss"], rel=1e-9)
    assert lg.params["num_leaves"] == 7 and lg.params["num_boost_round"] == 12
    assert mj.models.load(f"runs:/{lg.run_id}/model").predict(X_test).tolist() == truth["lightgbm"]["pred"]

    # Keras: each epoch equal to History; the .keras model loads and predicts the same
    ke = run_named("Sequential")
    for key, values in truth["keras"]["history"].items():
        assert [x for _, x in points(ke, key)] == pytest.approx(values, rel=1e-6), key
    net = mj.models.load(f"runs:/{ke.run_id}/model")
    assert np.allclose(net.predict(X_test.to_numpy("float32"), verbose=0), truth["keras"]["pred"], atol=1e-6)

    # Lightning: each epoch equal to Lightning's own CSV logger; the module loads (no class needed) and answers the same
    import torch

    li = run_named("Net")
    rows = list(csv.DictReader(open(project / truth["lightning"]["csv"])))
    for key in ("train_loss", "val_loss"):
        want = [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key)]
        assert points(li, key) == [(e, pytest.approx(x, rel=1e-6)) for e, x in want], key
    assert li.params["lr"] == 0.02 and li.params["optimizer_name"] == "Adam" and li.params["epochs"] == 3
    module = mj.models.load(f"runs:/{li.run_id}/model")
    with torch.no_grad():
        out = module(torch.tensor(X_test.to_numpy("float32")))
    assert np.allclose(out.numpy(), truth["lightning"]["pred"], atol=1e-6)

    assert not len(mj.runs(where="name = 'Ridge'"))  # after --disable


JOB = [
    "%load_ext mlops_jupyter\nC = 1.0",
    "%mlops autolog --register churn",
    DATA,
    "from sklearn.linear_model import LogisticRegression\nfrom sklearn.metrics import accuracy_score\n"
    "clf = LogisticRegression(C=C).fit(X_train, y_train)\n"
    "print('accuracy', accuracy_score(y_test, clf.predict(X_test)))",
]


@pytest.mark.slow
def test_a_promoted_job_that_autologs_feeds_its_metric_to_champion_and_challenger(project, capsys):
    notebook(project / "train.ipynb", JOB)
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn",
                 "--metric", "accuracy_score_X_test"]) == 0
    capsys.readouterr()
    assert main(["retrain", "churn-job", "--grid", "C=0.001,1", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    batch = mj.runs(where="name = 'retrain churn-job'").iloc[0]
    children = mj.runs(where=f"parent_id = '{batch['run_id']}'")
    assert len(children) == 2 and set(children["status"]) == {"finished"}
    # each execution's run holds what autologging logged inside its kernel
    for _, child in children.iterrows():
        r = mj.get_run(child["run_id"])
        assert r.params["C"] == r.params["papermill.C"] and "training_accuracy_score" in r.metrics
        assert "model/model.json" in {a["path"] for a in r.artifacts}
    X_train, X_test, y_train, y_test = data()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    want = {C: accuracy_score(y_test, LogisticRegression(C=C).fit(X_train, y_train).predict(X_test)) for C in (0.001, 1)}
    got = {mj.get_run(c).params["C"]: m for c, m in zip(children["run_id"], children["metrics.accuracy_score_X_test"])}
    assert got == pytest.approx(want, rel=1e-12)
    # the autologged figure decided: the better execution's model is now churn@production
    best_C = max(want, key=want.get)
    v = mj.models.get("churn@production")
    assert v.metrics["accuracy_score_X_test"] == pytest.approx(want[best_C], rel=1e-12)
    assert mj.get_run(v.run_id).params["C"] == best_C
    decision = json.loads(mj.get_run(batch["run_id"]).artifact_bytes("decision.json"))
    assert decision["metric"] == "accuracy_score_X_test" and decision["promoted"]
    assert decision["challenger_value"] == pytest.approx(want[best_C], rel=1e-12)
    assert "is now churn@production" in out and len(mj.models.versions("churn")) == 1
