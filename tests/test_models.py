"""Model registry: register/load/alias/history through the API, the magics and the CLI."""

import os

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import mlops_jupyter as mj
from mlops_jupyter.exceptions import BadInput, IntegrityError, NotFound

from .conftest import run_cell, run_cli, tamper


def data(n=400, seed=0, classes=2):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=8, n_informative=4, n_classes=classes, random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]), y


def test_register_records_run_data_signature_and_loads_by_every_ref(store):
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = data()
    with mj.start_run("train"):
        mj.data.add(X, name="train")
        clf = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y)
        mj.log(acc=clf.score(X, y))
        v = mj.models.register(clf, name="churn", example=X, alias="staging", message="first")
    assert v.ref == "churn@v1" and v.aliases == ["staging"] and v.flavor == "sklearn"
    assert v.metrics == {"acc": pytest.approx(clf.score(X, y))}
    assert [d["ref"] for d in v.datasets] == ["train@v1"]
    assert [c["name"] for c in v.signature["columns"]] == list(X.columns)
    assert v.signature["classes"] == [0, 1] and v.library == "sklearn" and v.library_version
    assert v.size == store.blobs.size(v.digest) > 0
    v2 = mj.models.register(clf, name="churn")
    assert v2.ref == "churn@v2" and v2.run_id is None
    for ref in ("models:/churn@staging", "models:/churn/1", "churn@v1", "churn@staging", "churn/1"):
        m = mj.models.load(ref)
        assert type(m) is GradientBoostingClassifier and (m.predict_proba(X) == clf.predict_proba(X)).all()
    assert mj.models.get("churn").ref == "churn@v2"
    assert type(mj.models.get("churn@staging").load()) is GradientBoostingClassifier
    with pytest.raises(NotFound, match=r"no alias 'production'.*v1\.\.v2, aliases staging"):
        mj.models.load("churn@production")
    with pytest.raises(NotFound, match="no version v9"):
        mj.models.get("churn@v9")
    with pytest.raises(NotFound, match="no model 'nope'"):
        mj.models.get("nope@v1")
    ls = mj.models.ls()
    assert list(ls["name"]) == ["churn"] and list(ls["latest"]) == ["v2"] and "staging->v1" in ls["aliases"][0]
    vs = mj.models.versions("churn")
    assert list(vs["ref"]) == ["churn@v1", "churn@v2"] and vs["datasets"][0] == "train@v1"
    g = mj.data.lineage("train@v1")
    assert any(kind == "model" and label == "churn@v1" for kind, label, _ in g.nodes.values())
    assert "churn@v1" in str(mj.data.lineage("models:/churn/1"))


def test_alias_moves_are_audited(store, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    X, y = data()
    clf = LogisticRegression().fit(X, y)
    for _ in range(3):
        mj.models.register(clf, name="churn")
    monkeypatch.setenv("MLOPS_USER", "ana")
    mj.models.alias("churn@v1", "production")
    mj.models.alias("churn@v3", "production")
    assert mj.models.get("churn@production").version == 3
    assert mj.models.unalias("churn", "production") == 3
    h = mj.models.history("churn")
    assert list(zip(h["alias"], h["from"], h["to"])) == [("production", "", "v1"), ("production", "v1", "v3"),
                                                        ("production", "v3", "(removed)")]
    assert set(h["user"]) == {"ana"}
    for bad in ("v2", "latest", "with space", "../x", ""):
        with pytest.raises(BadInput):
            mj.models.alias("churn@v1", bad)
    with pytest.raises(BadInput, match="model name"):
        mj.models.register(clf, name="a/b")


def test_xgboost_and_lightgbm_use_their_own_formats(store):
    xgb = pytest.importorskip("xgboost")
    lgb = pytest.importorskip("lightgbm")
    X, y = data(classes=3)
    for model in (xgb.XGBClassifier(n_estimators=10, max_depth=3), lgb.LGBMClassifier(n_estimators=10, verbose=-1),
                  lgb.LGBMRegressor(n_estimators=10, verbose=-1)):
        model.fit(X, y)
        name = type(model).__name__.lower()
        v = mj.models.register(model, name=name, example=X)
        assert v.flavor in ("xgboost", "lightgbm") and v.library == v.flavor
        back = mj.models.load(f"{name}@v1")
        assert type(back) is type(model)
        assert np.allclose(back.predict(X), model.predict(X))
        if hasattr(model, "predict_proba"):
            assert np.allclose(back.predict_proba(X), model.predict_proba(X))
            assert list(back.classes_) == list(model.classes_)
    raw = store.blobs.get_bytes(mj.models.get("lgbmclassifier").digest)
    assert raw.startswith(b"tree")  # LightGBM's own text format, not a pickle


class Custom:
    def predict(self, X):
        return np.zeros(len(X))


def test_pickle_only_when_asked_for_both_ways(store):
    with pytest.raises(BadInput, match=r"cannot be saved safely.*--pickle"):
        mj.models.register(Custom(), name="odd")
    v = mj.models.register(Custom(), name="odd", pickle=True)
    assert v.flavor == "pickle"
    with pytest.raises(BadInput, match="runs code"):
        mj.models.load("odd@v1")
    assert isinstance(mj.models.load("odd@v1", pickle=True), Custom)


def test_unfitted_and_tampered_models_are_refused(store):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(BadInput, match="not fitted"):
        mj.models.register(RandomForestClassifier(), name="rf")
    X, y = data()
    v = mj.models.register(LogisticRegression().fit(X, y), name="lr")
    tamper(store, v.digest, lambda b: b[:40] + b"XXXX" + b[44:])
    with pytest.raises(IntegrityError):
        mj.models.load("lr@v1")
    from mlops_jupyter.store.maintenance import fsck

    assert "model lr@v1" in str(fsck(store))


def test_skops_loads_only_the_types_recorded_at_registration(store):
    """The registry, not the file, says which types skops may build."""
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    from mlops_jupyter.models import flavors

    X, y = data()
    v = mj.models.register(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y), name="rf")
    assert v.trusted == sorted(sio.get_untrusted_types(data=store.blobs.get_bytes(v.digest)))
    other = sio.dumps(Holder())  # a file with a type the registry never approved
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        flavors.load(other, "sklearn", v.trusted, {})


class Holder:
    def __init__(self):
        self.x = 1


def test_model_magics(ip, capsys):
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = data()
    ip.user_ns.update(X_train=X, y_train=y)
    run_cell(ip, "from sklearn.ensemble import GradientBoostingClassifier\n"
                 "clf = GradientBoostingClassifier(n_estimators=10).fit(X_train, y_train)")
    run_cell(ip, "%mlops model register clf --name churn --example X_train --alias staging")
    assert "registered churn@v1 [staging]" in capsys.readouterr().out
    run_cell(ip, "%mlops model alias churn@v1 production")
    assert "churn@production -> v1" in capsys.readouterr().out
    r = run_cell(ip, "model = %mlops model load churn@production")
    assert r.success and isinstance(ip.user_ns["model"], GradientBoostingClassifier)
    assert list(ip.run_line_magic("mlops", "model ls")["name"]) == ["churn"]
    assert len(ip.run_line_magic("mlops", "model history churn")) == 2
    assert ip.run_line_magic("mlops", "model show churn@v1").aliases == ["production", "staging"]
    for line, msg in [("model register nothere --name x", "not a variable"),
                      ("model register X_train --name x", "cannot be saved safely"),
                      ("model load churn@v7", "no version v7"),
                      ("model register clf", "--name")]:
        with pytest.raises(UsageError, match=msg):
            ip.run_line_magic("mlops", line)


def test_model_cli(project):
    from sklearn.linear_model import LogisticRegression

    X, y = data()
    mj.models.register(LogisticRegression().fit(X, y), name="churn", example=X)
    from mlops_jupyter.store import close_store

    close_store()

    def cli(*args):
        return run_cli(*args, cwd=project)

    r = cli("model", "ls")
    assert r.returncode == 0 and "churn" in r.stdout
    r = cli("model", "show", "models:/churn/1")
    assert r.returncode == 0 and "signature 8 columns" in r.stdout and "LogisticRegression" in r.stdout
    r = cli("model", "alias", "churn@v1", "production")
    assert r.returncode == 0 and "churn@production -> v1" in r.stdout
    r = cli("model", "history", "churn")
    assert r.returncode == 0 and "production" in r.stdout
    r = cli("model", "load", "churn@production", "--to", "m.skops")
    assert r.returncode == 0 and "loads: sklearn" in r.stdout and os.path.getsize(project / "m.skops") > 0
    r = cli("model", "load", "churn@nope")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = cli("model", "register", "clf", "--name", "x")
    assert r.returncode == 2 and "notebook" in r.stderr


# -- model formats: a registry, one class per format -------------------------------------------------
class Thresholds:
    """A toy model of a library the package does not know: a cut per column."""

    def __init__(self, cuts):
        self.cuts = cuts

    def predict(self, X):
        return (np.asarray(X) > np.asarray(self.cuts)).all(axis=1)


def test_a_new_model_format_is_one_class_and_one_register_line(store):
    import json

    from mlops_jupyter.models.flavors import Library, ModelFormat, flavor_of, model_formats

    class ThresholdsFormat(ModelFormat):
        file_name = "model.json"

        def detect(self, model):
            return isinstance(model, Thresholds)

        def save(self, model, library: Library, allow_pickle=False):
            return library.saved(json.dumps(model.cuts).encode(), "thresholds")

        def load(self, data, trusted, extra, allow_pickle=False, label="this model"):
            return Thresholds(json.loads(data))

    assert flavor_of(Thresholds([0.5])) is None
    model_formats.register("thresholds", ThresholdsFormat())
    try:
        v = mj.models.register(Thresholds([0.1, 0.2]), name="cuts")
        assert v.flavor == "thresholds" and v.model_class.endswith("Thresholds")
        assert mj.models.load("cuts@v1").cuts == [0.1, 0.2]
    finally:
        model_formats.unregister("thresholds")
    with pytest.raises(BadInput, match="unknown model format 'thresholds'; known: sklearn, xgboost, lightgbm, keras, torch, pickle"):
        mj.models.load("cuts@v1")


def test_formats_are_chosen_by_the_objects_library_before_a_base_class():
    from sklearn.base import BaseEstimator
    from sklearn.linear_model import LogisticRegression

    from mlops_jupyter.models.flavors import file_name, flavor_of, model_formats

    class Custom(BaseEstimator):
        pass

    assert model_formats.names() == ["sklearn", "xgboost", "lightgbm", "keras", "torch", "pickle"]
    assert flavor_of(LogisticRegression()) == "sklearn" and flavor_of(Custom()) == "sklearn"
    assert flavor_of(Thresholds([1])) is None and flavor_of({"a": 1}) is None
    xgb = pytest.importorskip("xgboost")
    assert flavor_of(xgb.XGBClassifier()) == "xgboost"  # a scikit-learn estimator too
    assert [file_name(f) for f in ("sklearn", "xgboost", "lightgbm", "keras", "torch", "pickle", "nope")] == [
        "model.skops", "model.ubj", "model.txt", "model.keras", "model.pt2.zip", "model.pkl", "model.bin"]


def test_a_format_that_runs_code_is_refused_before_it_loads(monkeypatch):
    import pickle

    from mlops_jupyter.models import flavors

    def never(*a, **k):
        raise AssertionError("pickle.loads was called")

    monkeypatch.setattr(pickle, "loads", never)
    with pytest.raises(BadInput, match="pass --pickle"):
        flavors.load(pickle.dumps([1]), "pickle", None, None, label="m@v1")


def test_models_never_import_serving():
    """serving sits above models: models may not import it (not even inside a function)."""
    import ast
    from pathlib import Path

    import mlops_jupyter.models as pkg

    bad = []
    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                names = [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n.startswith(("..serving", "mlops_jupyter.serving")) for n in names):
                bad.append(f"{path.name}:{node.lineno}")
    assert not bad, bad
