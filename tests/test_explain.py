"""SHAP and LIME explanations: explainer choice, values, storage and cache, the charts (Vega-Lite 5),
the live view and what a saved notebook keeps of it, bad input."""

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import mlops_jupyter as mj
from mlops_jupyter.exceptions import BadInput

from .conftest import run_cell
from .saved_views import assert_views_survive_saving, pictures_in

pytest.importorskip("shap")
pytest.importorskip("lime")

WIDGET = "application/vnd.jupyter.widget-view+json"
VEGALITE = "application/vnd.vegalite.v5+json"


def data(n=300, classes=2, seed=0):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_redundant=0, n_classes=classes,
                               random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]), y


@pytest.fixture(scope="module")
def validator():
    import altair
    from jsonschema import Draft7Validator

    path = Path(altair.__file__).parent / "vegalite" / "v5" / "schema" / "vega-lite-schema.json"
    return Draft7Validator(json.loads(path.read_text()))


def layers_of(spec):
    return spec.get("layer") or [spec]


def test_tree_model_gets_exact_tree_shap_that_adds_up(store):
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = data()
    clf = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, y)
    ex = mj.explain(clf, X, rows=120, row=5)
    assert ex.explainer.startswith("TreeExplainer") and ex.values.shape == (120, 6) and ex.n_rows == 120
    # SHAP values plus the expected value give the model's raw output (log-odds) row by row
    assert np.allclose(ex.values.sum(axis=1) + ex.base_values, clf.decision_function(X.iloc[:120]), atol=1e-6)
    assert "log-odds of class 1" in ex.output
    pictures = ex.standard_pictures()
    assert set(pictures) == {"global_importance.svg", "beeswarm.svg", "waterfall_row5.svg"}
    assert all(svg.startswith("<svg") for _key, svg in pictures.values())
    assert list(ex.mean_abs().index[:1]) == [ex.features[int(np.abs(ex.values).mean(axis=0).argmax())]]


def test_repeat_is_answered_from_the_store_and_linked_to_versions(store, monkeypatch):
    import shap
    from sklearn.ensemble import RandomForestClassifier

    X, y = data(classes=3)
    mj.data.add(X, name="test")
    Xt = mj.data.load("test@v1")
    rf = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    v = mj.models.register(rf, name="rf", example=X)
    ex = mj.explain(rf, Xt, rows=50, y=y)
    assert ex.values.shape == (50, 6, 3) and ex.multiclass and not ex.cached
    assert ex.model_version == "rf@v1" and ex.data_version == "test@v1"

    def boom(*a, **k):
        raise AssertionError("shap ran again")

    with monkeypatch.context() as m:
        m.setattr(shap, "TreeExplainer", boom)
        again = mj.explain(rf, Xt, rows=50)  # a new call, same model content, same data, same options
        assert again.cached and np.array_equal(again.values, ex.values)
        assert again.standard_pictures() == ex.standard_pictures()  # the stored SVGs, not drawn again
        assert again.labels == [int(c) for c in y[:50]] and np.allclose(again.proba, ex.proba)
        assert again.row_label(4) == ex.row_label(4)
        by_ref = mj.explain("rf@v1", X, rows=50)
        assert by_ref.cached
    assert not mj.explain(rf, Xt, rows=40).cached  # other options: computed
    assert not mj.explain(rf, Xt, rows=50, seed=3).cached  # another LIME seed: another explanation
    assert len(mj.models.get("rf@v1").explanations) == 3
    import sqlalchemy as sa

    from mlops_jupyter.store import schema as S

    with store.meta.read() as conn:
        rows = conn.execute(sa.select(S.explanations.c.data_version_id, S.explanations.c.model_version_id)).all()
        files = conn.execute(sa.select(S.explanation_files.c.name)).scalars().all()
    assert {r.model_version_id for r in rows} == {v.id} and {r.data_version_id for r in rows} == {mj.data.get("test").id}
    assert {"values.npy", "data.parquet", "proba.npy", "rows.json", "global_importance.svg", "beeswarm.svg"} <= set(files)
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


def test_every_chart_is_vega_lite_5_with_titled_axes_and_no_fixed_text_colour(store, validator):
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    X, y = data()
    wide = X.rename(columns={"f0": "monthly_charges_in_local_currency_after_discounts_and_taxes"})
    binary = mj.explain(GradientBoostingClassifier(n_estimators=10, random_state=0).fit(wide, y), wide, rows=40)
    Xm, ym = data(classes=3)
    multi = mj.explain(RandomForestClassifier(n_estimators=5, random_state=0).fit(Xm, ym), Xm, rows=40)
    reg = mj.explain(RandomForestRegressor(n_estimators=5, random_state=0).fit(X, X["f1"] * 2 + y), X, rows=40)
    charts = []
    for ex in (binary, multi, reg):
        charts += [ex.chart("global"), ex.chart("beeswarm"), ex.chart("waterfall", 3), ex.chart("lime", 3)]
    charts.append(multi.chart("global", k=2))
    kinds = set()
    for chart in charts:
        spec = chart.to_dict()
        errors = [e.message[:200] for e in validator.iter_errors(spec)]
        assert not errors, (chart.title, errors)
        kinds.add(spec["usermeta"]["mlops"]["kind"])
        assert spec["title"]["text"]
        for layer in layers_of(spec):
            enc = layer.get("encoding", {})
            for ch in ("x", "y"):
                if ch in enc and "field" in enc[ch] and layer.get("mark", {}).get("type") != "rule":
                    assert enc[ch].get("title"), (chart.title, ch, enc[ch])
            if "y" in enc and enc["y"].get("type") == "nominal" and enc["y"].get("axis", {}).get("orient") != "right":
                assert enc["y"]["axis"]["labelLimit"] >= 200  # long feature names are not cut short
            mark = layer.get("mark", {})
            assert not (mark.get("type") == "text" and ("color" in mark or "fill" in mark))
        assert "background" not in spec and "color" not in json.dumps(spec.get("config", {}))
    assert kinds == {"explain.global", "explain.beeswarm", "explain.waterfall", "explain.lime"}
    # long names: the full name is in the data, the axis elides it at labelLimit
    assert "monthly_charges_in_local_currency_after_discounts_and_taxes" in binary.chart("global").spec["usermeta"][
        "mlops"]["features"]


def test_binary_global_importance_is_the_positive_class_alone(store):
    from sklearn.ensemble import RandomForestClassifier

    X, y = data()
    rf = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    ex = mj.explain(rf, X, rows=80)
    assert ex.values.shape == (80, 6, 2) and ex.binary and not ex.multiclass
    spec = ex.chart("global").spec
    bars = {r["feature"]: r["value"] for r in spec["data"]["values"]}
    positive = np.abs(ex.values[:, :, 1]).mean(axis=0)
    both = positive + np.abs(ex.values[:, :, 0]).mean(axis=0)
    for j, f in enumerate(ex.features):
        assert bars[f] == pytest.approx(positive[j], rel=1e-5) and bars[f] != pytest.approx(both[j], rel=1e-3)
    assert len(spec["data"]["values"]) == 6  # one bar a feature: no stacked halves
    assert "stack" not in json.dumps(spec) and "color" not in spec["encoding"]
    assert spec["title"]["text"] == "Global importance for class 1 (the positive class)"
    assert "probability of class 1" in spec["encoding"]["x"]["title"]
    assert list(ex.mean_abs().columns) == ["mean_abs_shap"]
    assert np.allclose(ex.mean_abs().loc[ex.features, "mean_abs_shap"], positive)


def test_multiclass_global_importance_groups_classes_side_by_side(store):
    from sklearn.ensemble import RandomForestClassifier

    X, y = data(classes=3)
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, np.array(["ant", "bee", "cat"])[y])
    ex = mj.explain(rf, X, rows=60)
    spec = ex.chart("global").spec
    assert spec["encoding"]["yOffset"]["field"] == "class" and "stack" not in json.dumps(spec)
    assert spec["encoding"]["color"]["scale"]["domain"] == ["ant", "bee", "cat"]
    v = np.abs(ex.values).mean(axis=0)
    got = {(r["feature"], r["class"]): r["value"] for r in spec["data"]["values"]}
    assert got[("f0", "bee")] == pytest.approx(v[0, 1], rel=1e-5)
    one = ex.chart("global", k=2).spec
    assert one["title"]["text"] == "Global importance for class cat" and "yOffset" not in one["encoding"]
    # the waterfall names the class whose probability its colours raise or lower
    wf = ex.chart("waterfall", 4).spec
    k = int(ex.predicted[4])
    assert wf["layer"][0]["encoding"]["color"]["scale"]["domain"] == [f"raises P({ex.class_label(k)})",
                                                                      f"lowers P({ex.class_label(k)})"]


def test_top_features_and_how_many_more(store):
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(150, 24)), columns=[f"sensor_{i:02d}" for i in range(24)])
    gb = GradientBoostingRegressor(n_estimators=10, random_state=0).fit(X, X.sum(axis=1))
    ex = mj.explain(gb, X, rows=50)
    spec = ex.chart("global").spec
    assert len(spec["data"]["values"]) == 15 and "and 9 more features (not shown)" in spec["title"]["subtitle"]
    wf = ex.chart("waterfall", 0).spec
    assert wf["usermeta"]["mlops"]["features"][-1] == "12 other features"
    assert wf["layer"][0]["encoding"]["color"]["scale"]["domain"] == ["raises the prediction",
                                                                      "lowers the prediction"]
    base, out = wf["usermeta"]["mlops"]["base"], wf["usermeta"]["mlops"]["output"]
    assert out == pytest.approx(float(gb.predict(X.iloc[[0]])[0]), rel=1e-6) and base != out


def test_lime_rows_and_classes(store):
    from sklearn.ensemble import RandomForestClassifier

    X, y = data(classes=3)
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    ex = mj.explain(rf, X, method="lime", row=7, rows=100)
    pred = rf.predict(X.iloc[[7]])[0]
    assert list(ex.lime) == [7] and ex.lime[7]["class"] == str(pred)  # the predicted class by default
    assert len(ex.lime[7]["weights"]) == 6 and all(isinstance(w, float) for _, w in ex.lime[7]["weights"])
    ex.lime_row(3)
    assert sorted(ex.lime) == [3, 7] and ex.svg("lime", 3).startswith("<svg")
    spec = ex.chart("lime", 7).spec
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == [f"supports class {pred}",
                                                                      f"against class {pred}"]
    assert spec["usermeta"]["mlops"]["settings"] == {"num_samples": 5000, "discretizer": "quartile", "seed": 0,
                                                     "training_rows": 300}
    assert "num samples 5,000 · discretizer quartile · seed 0" in spec["layer"][0]["encoding"]["x"]["title"][1]
    # a binary model: LIME explains the positive class whatever a row's prediction, so colours keep their meaning
    Xb, yb = data()
    rfb = RandomForestClassifier(n_estimators=10, random_state=0).fit(Xb, yb)
    exb = mj.explain(rfb, Xb, method="lime", rows=50)
    zero = next(r for r in range(50) if rfb.predict(Xb.iloc[[r]])[0] == 0)
    assert exb.lime_row(zero)["class"] == "1" and exb.lime_row(0)["class"] == "1"


def test_lime_is_the_same_in_the_widget_tab_and_with_method_lime(ip):
    """The same row, the same seed: the same conditions (bins) and weights, whichever rows were
    explained before it."""
    from mlops_jupyter.widgets.explain_view import ExplanationView

    X, y = data(classes=3)
    ip.user_ns.update(X=X, y=y)
    run_cell(ip, "from sklearn.ensemble import RandomForestClassifier\n"
                 "rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)")
    r = run_cell(ip, "by_lime = %mlops explain rf X --method lime --row 7 --no-cache")
    assert r.success
    r = run_cell(ip, "by_shap = %mlops explain rf X --rows 100 --no-cache")
    assert r.success
    by_lime, by_shap = ip.user_ns["by_lime"], ip.user_ns["by_shap"]
    by_shap.lime_row(3)  # another row first: it must not move row 7's sampling
    view = ExplanationView(by_shap)
    view.rows.value = 7
    view.tabs.selected_index = view.lime_index  # opening the tab explains the picked row
    (shown,) = view.charts["lime"].outputs
    tab_spec = shown["data"][VEGALITE]
    magic_spec = by_lime.chart("lime", 7).spec
    assert tab_spec["data"] == magic_spec["data"] and by_shap.lime[7]["weights"] == by_lime.lime[7]["weights"]
    assert tab_spec["usermeta"]["mlops"]["settings"]["seed"] == 0
    # another seed samples differently, and says so under the chart
    r = run_cell(ip, "other = %mlops explain rf X --method lime --row 7 --seed 5 --no-cache")
    assert r.success
    other = ip.user_ns["other"]
    assert other.lime[7]["weights"] != by_lime.lime[7]["weights"]
    assert "seed 5" in other.chart("lime", 7).spec["layer"][0]["encoding"]["x"]["title"][1]


def test_the_view_row_picker_classes_and_lone_parts(store):
    import ipywidgets as W
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    from mlops_jupyter.widgets.explain_view import ExplanationView

    X, y = data()
    X.index = X.index + 1000
    clf = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y)
    ex = mj.explain(clf, X, rows=80, y=y)
    view = ExplanationView(ex)
    assert isinstance(view.tabs, W.Tab) and view.tabs.titles == ("Global importance", "One row", "LIME")
    label, row = view.rows.options[17]
    p1 = clf.predict_proba(X.iloc[[17]])[0, 1]
    assert row == 17 and label == f"row 1017 · label {y[17]} · P(1)={p1:.2f}"
    groups = {name.rsplit(" (", 1)[0]: i for name, i in view.row_filter.options}
    assert {"all rows", "label 0", "label 1", "predicted 0", "predicted 1"} <= set(groups)
    wrong = [r for r in range(80) if clf.predict(X.iloc[[r]])[0] != y[r]]
    assert len(wrong) == 3  # the picker lists exactly the misclassified rows
    view.row_filter.value = groups["misclassified"]
    assert [r for _, r in view.rows.options] == wrong and view.state.row == wrong[0]
    view.row_filter.value = groups["label 1"]
    assert all(y[r] == 1 for _, r in view.rows.options)
    pick = view.rows.options[2][1]
    view.rows.value = pick
    (shown,) = view.charts["waterfall"].outputs
    spec = shown["data"][VEGALITE]
    assert spec["title"]["text"] == ex.row_label(pick) and view.state.row == pick
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == ["raises P(1)", "lowers P(1)"]
    assert "image/svg+xml" not in shown["data"]  # the live chart is drawn by JupyterLab, theme-aware
    # multiclass: a class picker on the global and the row parts; a new row starts on its predicted class
    Xm, ym = data(classes=3)
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(Xm, ym)
    exm = mj.explain(rf, Xm, rows=60)
    vm = ExplanationView(exm)
    vm.rows.value = 11
    assert vm.row_class.value == exm.default_class(11) == int(rf.predict(Xm.iloc[[11]])[0])
    vm.global_class.value = 2
    (g,) = vm.charts["global"].outputs
    assert g["data"][VEGALITE]["title"]["text"] == "Global importance for class 2"
    # a lone part has no tab bar: LIME alone
    lone = ExplanationView(mj.explain(clf, X, method="lime", row=3))
    assert lone.tabs is None and not any(isinstance(w, W.Tab) for w in lone.widget.children)
    (lime_out,) = lone.charts["lime"].outputs
    assert lime_out["data"][VEGALITE]["usermeta"]["mlops"]["kind"] == "explain.lime"
    # text columns: SHAP explains them, LIME cannot, so there is no LIME tab
    Xt = X.assign(city=["a", "b", "c"] * 100)
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    pipe = make_pipeline(make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough"),
                         LogisticRegression()).fit(Xt, y)
    vt = ExplanationView(mj.explain(pipe, Xt, rows=5))
    assert vt.tabs.titles == ("Global importance", "One row")


def test_shown_in_ipython_with_a_static_picture_that_follows_the_view(ip):
    from IPython.core.displaypub import CapturingDisplayPublisher

    from mlops_jupyter.widgets import explain_view

    X, y = data()
    ip.user_ns.update(X=X, y=y)
    run_cell(ip, "from sklearn.ensemble import GradientBoostingClassifier\n"
                 "clf = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y)")
    pub = CapturingDisplayPublisher()
    ip.display_pub, before = pub, ip.display_pub
    try:
        r = run_cell(ip, "%mlops explain clf X --rows 60 --labels y")
        assert r.success
    finally:
        ip.display_pub = before
    (out,) = [o for o in pub.outputs if WIDGET in o["data"]]
    data_ = out["data"]
    assert data_["text/plain"].startswith("SHAP explanation of 60 rows by TreeExplainer · top features: ")
    assert "\n" not in data_["text/plain"] and "VBox" not in data_["text/plain"]
    html = data_["text/html"]
    assert html.count("<svg") == 3 and "Global importance" in html and "One row" in html
    assert "row 0 · label" in html  # the waterfall is titled by its row
    # a change in the live view replaces the static picture
    assert run_cell(ip, "ex = %mlops explain clf X --rows 60 --labels y").success
    ex = ip.user_ns["ex"]
    assert ex.cached
    pub = CapturingDisplayPublisher()
    ip.display_pub = pub
    try:
        view = explain_view.show(ex)
        view.rows.value = 9
    finally:
        ip.display_pub = before
    first, update = pub.outputs
    assert update["update"] and update["transient"] == first["transient"]
    assert "row 9 · label" in update["data"]["text/html"] and "row 9 · label" not in first["data"]["text/html"]


def test_a_saved_notebook_shows_the_pictures_not_a_widget_repr(project):
    """Executed through a kernel, saved as JupyterLab saves it (no widget state), converted by
    nbconvert: every explanation shows as inline SVG pictures."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in (
        "%load_ext mlops_jupyter",
        ("from sklearn.datasets import make_classification\n"
         "from sklearn.ensemble import RandomForestClassifier\nimport pandas as pd\n"
         "X, y = make_classification(n_samples=200, n_features=5, random_state=0)\n"
         "X = pd.DataFrame(X, columns=['tenure', 'charges', 'age', 'calls', 'plan'])\n"
         "clf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)"),
        "%mlops explain clf X --rows 50 --labels y",
        "%mlops explain clf X --method lime --row 2",
        "ex = %mlops explain clf X --rows 50\nex.chart('waterfall', 4)",
    )]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(project)}}).execute()
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert "widgets" in nb.metadata  # the live notebook had widget state; saving drops it below
    page = assert_views_survive_saving(nb)
    shap_cell, lime_cell, chart_cell = nb.cells[2], nb.cells[3], nb.cells[4]
    assert pictures_in(shap_cell).count("svg") == 1 and pictures_in(lime_cell) == ["svg"]
    (shap_out,) = [o for o in shap_cell.outputs if WIDGET in o.get("data", {})]
    assert shap_out["data"]["text/html"].count("<svg") == 3
    (lime_out,) = [o for o in lime_cell.outputs if WIDGET in o.get("data", {})]
    assert lime_out["data"]["text/html"].count("<svg") == 1 and "seed 0" in lime_out["data"]["text/html"]
    assert "image/svg+xml" in chart_cell.outputs[0]["data"] and VEGALITE in chart_cell.outputs[0]["data"]
    # inline in the views' HTML (3 + 1), and the lone chart as nbconvert shows an SVG output
    assert page.count("<svg") == 4 and "data:image/svg+xml" in page
    assert "VBox(" not in page and "HTML(value" not in page


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
    with pytest.raises(BadInput, match="--labels has 299 values for the 300 rows of X"):
        mj.explain(clf, X, y=y[:-1])
    with pytest.raises(BadInput, match="--seed must be a whole number from 0"):
        mj.explain(clf, X, seed=-1)
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
    with pytest.raises(BadInput, match="LIME cannot perturb non-numeric column.*city"):
        ex.lime_row(0)
    with pytest.raises(BadInput, match="no picture 'pie'"):
        ex.chart("pie")
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
    r = run_cell(ip, "ex3 = %mlops explain clf X_train --labels y_train --rows 20")
    assert r.success and ip.user_ns["ex3"].labels == [int(v) for v in y[:20]]
    for line, msg in [("explain nothere X_test", "neither a model variable"),
                      ("explain clf nothere", "neither a frame variable"),
                      ("explain clf X_test --method magic", "invalid choice"),
                      ("explain clf X_test --rows 0", "must be at least 1"),
                      ("explain clf X_test --labels nothere", "'nothere' is not a variable in the notebook"),
                      ("explain clf X_test --labels y_train", "--labels has 300 values for the 80 rows of X"),
                      ("explain clf X_test --seed -3", "--seed must be a whole number from 0"),
                      ("explain clf X_test --seed x", "is not a whole number")]:
        with pytest.raises(UsageError, match=msg):
            ip.run_line_magic("mlops", line)
