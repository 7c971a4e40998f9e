"""SHAP and LIME explanations: explainer choice, values, storage and cache, widget, bad input."""

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import mlops_jupyter as mj
from mlops_jupyter.exceptions import BadInput

from .conftest import run_cell

pytest.importorskip("shap")
pytest.importorskip("lime")


def data(n=300, classes=2, seed=0):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_redundant=0, n_classes=classes,
                               random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]), y


def test_tree_model_gets_exact_tree_shap_that_adds_up(store):
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = data()
    clf = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, y)
    ex = mj.explain(clf, X, rows=120, row=5)
    assert ex.explainer.startswith("TreeExplainer") and ex.values.shape == (120, 6) and ex.n_rows == 120
    # SHAP values plus the expected value give the model's raw output (log-odds) row by row
    assert np.allclose(ex.values.sum(axis=1) + ex.base_values, clf.decision_function(X.iloc[:120]), atol=1e-6)
    assert "log-odds of class 1" in ex.output
    assert set(ex.standard_pictures()) == {"global_bar.png", "beeswarm.png", "waterfall_row5.png"}
    assert all(png.startswith(b"\x89PNG") for png in ex.standard_pictures().values())
    assert list(ex.mean_abs().index[:1]) == [ex.features[int(np.abs(ex.values).mean(axis=0).argmax())]]


def test_repeat_is_answered_from_the_store_and_linked_to_versions(store, monkeypatch):
    import shap
    from sklearn.ensemble import RandomForestClassifier

    X, y = data(classes=3)
    mj.data.add(X, name="test")
    Xt = mj.data.load("test@v1")
    rf = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    v = mj.models.register(rf, name="rf", example=X)
    ex = mj.explain(rf, Xt, rows=50)
    assert ex.values.shape == (50, 6, 3) and ex.multiclass and not ex.cached
    assert ex.model_version == "rf@v1" and ex.data_version == "test@v1"

    def boom(*a, **k):
        raise AssertionError("shap ran again")

    with monkeypatch.context() as m:
        m.setattr(shap, "TreeExplainer", boom)
        again = mj.explain(rf, Xt, rows=50)  # a new call, same model content, same data, same options
        assert again.cached and np.array_equal(again.values, ex.values)
        assert again.standard_pictures() == ex.standard_pictures()
        by_ref = mj.explain("rf@v1", X, rows=50)
        assert by_ref.cached
    assert not mj.explain(rf, Xt, rows=40).cached  # other options: computed
    assert len(mj.models.get("rf@v1").explanations) == 2
    import sqlalchemy as sa

    from mlops_jupyter.store import schema as S

    with store.meta.read() as conn:
        rows = conn.execute(sa.select(S.explanations.c.data_version_id, S.explanations.c.model_version_id)).all()
        files = conn.execute(sa.select(S.explanation_files.c.name)).scalars().all()
    assert {r.model_version_id for r in rows} == {v.id} and {r.data_version_id for r in rows} == {mj.data.get("test").id}
    assert {"values.npy", "data.parquet", "global_bar.png", "beeswarm.png"} <= set(files)
    from mlops_jupyter.store.maintenance import fsck, gc

    assert gc(store).removed == 0 and fsck(store).ok


def test_linear_and_model_agnostic_explainers(store):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data()
    lr = LogisticRegression().fit(X, y)
    ex = mj.explain(lr, X, rows=50)
    assert ex.explainer == "LinearExplainer" and any("background: 100 rows" in n for n in ex.notes)
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    ex = mj.explain(pipe, X, rows=10, background=X.iloc[:30])
    assert ex.explainer.startswith("PermutationExplainer") and ex.values.shape == (10, 6, 2)
    assert any("30 rows of --background" in n for n in ex.notes)
    # for probabilities the values of each class add up to that class's probability
    p = pipe.predict_proba(X.iloc[:10])
    assert np.allclose(ex.values.sum(axis=1) + ex.base_values, p, atol=1e-6)


def test_lime_rows_and_classes(store):
    from sklearn.ensemble import RandomForestClassifier

    X, y = data(classes=3)
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    ex = mj.explain(rf, X, method="lime", row=7, rows=100)
    pred = rf.predict(X.iloc[[7]])[0]
    assert list(ex.lime) == [7] and ex.lime[7]["class"] == str(pred)  # the predicted class by default
    assert len(ex.lime[7]["weights"]) == 6 and all(isinstance(w, float) for _, w in ex.lime[7]["weights"])
    ex.lime_row(3)
    assert sorted(ex.lime) == [3, 7] and ex.picture("lime", 3).startswith(b"\x89PNG")


def test_widget_tabs_and_selectors(store):
    import ipywidgets as W
    from sklearn.ensemble import RandomForestClassifier

    from mlops_jupyter.widgets import explain_view

    X, y = data(classes=3)
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    ex = mj.explain(rf, X, rows=60)
    shown = []
    explain_view.display = None
    import IPython.display

    orig = IPython.display.display
    IPython.display.display = shown.append
    try:
        explain_view.show(ex)
    finally:
        IPython.display.display = orig
    box = shown[0]
    tab = box.children[1]
    assert isinstance(tab, W.Tab) and [tab.get_title(i) for i in range(3)] == ["Global", "Row", "LIME"]
    row_tab = tab.children[1]
    rsel, csel = row_tab.children[0].children
    before = row_tab.children[1].children[0].value
    rsel.value = 11
    after = row_tab.children[1].children[0].value
    assert before != after and csel.value == ex.default_class(11)
    tab.selected_index = 2  # opening LIME explains the current row
    lime_box = tab.children[2].children[1]
    assert isinstance(lime_box.children[0], W.Image) and ex.lime
    html = ex._repr_html_()
    assert html.count("<img") == 4 and "TreeExplainer" in html


def test_bad_input_is_one_clear_line(store):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = data()
    with pytest.raises(BadInput, match="not fitted"):
        mj.explain(RandomForestClassifier(), X)
    clf = GradientBoostingClassifier(n_estimators=5).fit(X, y)
    with pytest.raises(BadInput, match="no rows"):
        mj.explain(clf, X.iloc[:0])
    mj.models.register(clf, name="gb", example=X)
    with pytest.raises(BadInput, match=r"lacks column\(s\) f5"):
        mj.explain("gb@v1", X.drop(columns=["f5"]))
    with pytest.raises(BadInput, match=r"unexpected: g5"):
        mj.explain("gb@v1", X.rename(columns={"f5": "g5"}))
    with pytest.raises(BadInput, match="outside the 10 explained rows"):
        mj.explain(clf, X, rows=10, row=10)
    with pytest.raises(BadInput, match="not one of the model's classes: 0, 1"):
        mj.explain(clf, X, class_="7")
    Xt = X.assign(city=["a", "b", "c"] * 100)
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    pipe = make_pipeline(make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough"),
                         LogisticRegression()).fit(Xt, y)
    with pytest.raises(BadInput, match="LIME cannot perturb non-numeric column.*city"):
        mj.explain(pipe, Xt, method="lime")
    ex = mj.explain(pipe, Xt, rows=5)  # SHAP's model-agnostic explainer copes with text columns
    assert ex.values.shape[:2] == (5, 7)
    with pytest.raises(BadInput, match="signature does not know: extra"):
        mj.explain(clf, X.assign(extra=1.0))  # the object was registered: its signature is checked
    other = GradientBoostingClassifier(n_estimators=5).fit(X, y)
    with pytest.raises(BadInput, match="cannot predict on X: ValueError"):
        mj.explain(other, X.assign(extra=1.0))


def test_explain_magic(ip, capsys):
    X, y = data()
    ip.user_ns.update(X_train=X, y_train=y, X_test=X.iloc[:80])
    run_cell(ip, "from sklearn.ensemble import GradientBoostingClassifier\n"
                 "clf = GradientBoostingClassifier(n_estimators=10).fit(X_train, y_train)")
    r = run_cell(ip, "ex = %mlops explain clf X_test --rows 40 --row 3")
    assert r.success and ip.user_ns["ex"].n_rows == 40 and ip.user_ns["ex"].row == 3
    assert "explaining the first 40 of 80 rows" in capsys.readouterr().out
    r = run_cell(ip, "ex2 = %mlops explain clf X_test --method lime --row 2 --background X_train")
    assert r.success and list(ip.user_ns["ex2"].lime) == [2]
    assert "explaining the first" not in capsys.readouterr().out
    for line, msg in [("explain nothere X_test", "neither a model variable"),
                      ("explain clf nothere", "neither a frame variable"),
                      ("explain clf X_test --method magic", "invalid choice"),
                      ("explain clf X_test --rows 0", "must be at least 1")]:
        with pytest.raises(UsageError, match=msg):
            ip.run_line_magic("mlops", line)
