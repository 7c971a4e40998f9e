"""SHAP explanations of neural networks (PyTorch, Keras 3 on the torch backend): the explainer
tried first (DeepExplainer) and why the next is used, additivity, classes, images as heat maps
that validate as Vega-Lite 5 and render, and that the view and the store treat them like any
other explanation."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mj
from mlops_jupyter.exceptions import BadInput

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is first imported; TensorFlow is not assumed

torch = pytest.importorskip("torch")
pytest.importorskip("shap")

ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts" / "explain-nets"


@pytest.fixture(scope="module")
def validator():
    import altair
    from jsonschema import Draft7Validator

    path = Path(altair.__file__).parent / "vegalite" / "v5" / "schema" / "vega-lite-schema.json"
    return Draft7Validator(json.loads(path.read_text()))


def tabular(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.8)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(10)]), y


def fit(net, X, y, steps=30, loss=None):
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    x, t = torch.as_tensor(np.array(X)), torch.as_tensor(y)
    loss = loss or torch.nn.functional.cross_entropy
    for _ in range(steps):
        opt.zero_grad()
        loss(net(x), t).backward()
        opt.step()
    return net


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    X, y = tabular()
    net = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                              torch.nn.Linear(16, 3))
    return fit(net, X.to_numpy(), y), X, y


def outputs(net, X):
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    with torch.no_grad():
        out = net(torch.as_tensor(np.array(X, dtype=np.float32))).numpy()
    for m, mode in modes:
        m.training = mode
    return out


def test_torch_mlp_gets_deep_explainer_whose_values_add_up(store, mlp):
    net, X, y = mlp
    net.train()
    net[2].eval()  # a submodule in its own mode: left as it was
    ex = mj.explain(net, X.iloc[:12], background=X.iloc[100:140], y=y[:12])
    assert net.training and not net[2].training and net[0].training  # modes as they were
    assert ex.explainer.startswith("DeepExplainer") and ex.values.shape == (12, 10, 3)
    assert ex.features == [f"f{i}" for i in range(10)] and ex.output == "logit" and ex.classes == [0, 1, 2]
    # each row's values for the class it predicts, plus the expected output, give the network's output
    out = outputs(net, X.iloc[:12])
    k = out.argmax(axis=1)
    assert list(ex.predicted) == list(k)
    rows = np.arange(12)
    got = ex.values[rows, :, k].sum(axis=1) + ex.base_values[rows, k]
    assert np.abs(got - out[rows, k]).max() < 1e-4
    assert np.abs(ex.values.sum(axis=1) + ex.base_values - out).max() < 1e-4  # every class too
    assert any(n.startswith("additivity holds") for n in ex.notes), ex.notes
    assert "background: 40 of the 40 rows of --background" in ex.notes
    assert ex.row_label(3) == f"row 3 · label {y[3]} · P({k[3]})={ex.proba[3, k[3]]:.2f}"
    wf = ex.chart("waterfall", 3).spec  # the same pictures as for trees: the predicted class by default
    assert wf["layer"][0]["encoding"]["color"]["scale"]["domain"][0] == f"raises P({k[3]})"
    assert "logit of class" in wf["layer"][0]["encoding"]["x"]["title"]
    assert ex.lime_row(2)["class"] == str(k[2])  # LIME runs the network through its predict_proba
    from mlops_jupyter.widgets.explain_view import ExplanationView

    assert ExplanationView(ex).tabs.titles == ("Global importance", "One row", "LIME")  # the trees' view
    assert mj.explain(net, X.iloc[:12], background=X.iloc[100:140]).cached
    tensor = mj.explain(net, torch.as_tensor(X.iloc[:12].to_numpy()), background=X.iloc[100:140].to_numpy())
    assert tensor.features[0] == "x0" and np.allclose(tensor.values, ex.values, atol=1e-6)  # the same rows as a tensor


def test_default_background_and_a_named_class(store, mlp):
    net, X, _ = mlp
    ex = mj.explain(net, X.to_numpy()[:150], rows=6, class_=2)
    assert "background: 150 rows sampled from X's 150 (seed 0)" in ex.notes and ex.features[0] == "x0"
    assert ex.start_class == 2 and ex.row_class(0) == 2
    assert ex.chart("waterfall", 0).spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == [
        "raises P(2)", "lowers P(2)"]
    big = mj.explain(net, X.iloc[:3], background=np.tile(X.to_numpy(), (2, 1)))  # its cost grows with it: capped
    assert "background: 200 of the 400 rows of --background" in big.notes
    with pytest.raises(BadInput, match="--class 7 is not one of the network's classes: 0, 1, 2"):
        mj.explain(net, X.iloc[:5], class_=7)


def test_a_layer_deeplift_does_not_know_falls_back_to_expected_gradients(store):
    torch.manual_seed(0)
    X, y = tabular(120)
    # LayerNorm mixes a row's features: DeepLIFT has no rule for it, so its values do not add up
    net = fit(torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.LayerNorm(8), torch.nn.Tanh(),
                                  torch.nn.Linear(8, 3)), X.to_numpy(), y, steps=10)
    ex = mj.explain(net, X.iloc[:8], background=X.iloc[60:90])
    assert ex.explainer.startswith("GradientExplainer") and ex.values.shape == (8, 10, 3)
    assert any("DeepExplainer's values missed the output" in n and "LayerNorm" in n for n in ex.notes), ex.notes
    assert any(n.startswith("expected gradients approximate") for n in ex.notes)


def test_regressor_traced_by_torch_fx(store):
    torch.manual_seed(0)
    X, _ = tabular(120)
    target = torch.as_tensor(X["f0"].to_numpy() * 2 - X["f3"].to_numpy()).reshape(-1, 1)
    net = torch.nn.Sequential(torch.nn.Linear(10, 12), torch.nn.ReLU(), torch.nn.Linear(12, 1))
    fit(net, X.to_numpy(), target, steps=20, loss=torch.nn.functional.mse_loss)
    traced = torch.fx.symbolic_trace(net)  # what the registry's loader returns for a PyTorch model
    ex = mj.explain(traced, X.iloc[:8], background=X.iloc[60:100])
    assert ex.explainer.startswith("DeepExplainer") and ex.values.shape == (8, 10) and ex.base_values.shape == (8,)
    assert ex.classes is None and ex.output == "prediction"
    out = outputs(net, X.iloc[:8])[:, 0]
    assert np.abs(ex.values.sum(axis=1) + ex.base_values - out).max() < 1e-4
    assert np.allclose(ex.prediction, out, atol=1e-6)
    assert set(ex.mean_abs().index[:2]) == {"f0", "f3"}
    assert ex.chart("waterfall", 1).spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == [
        "raises the prediction", "lowers the prediction"]


def test_keras_model_is_explained_and_named(store):
    keras = pytest.importorskip("keras")
    X, y = tabular(120)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(12, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X.to_numpy(), y, epochs=1, verbose=0)
    ex = mj.explain(model, X.iloc[:8], background=X.iloc[60:90])
    assert ex.explainer.split(" (")[0] in ("DeepExplainer", "GradientExplainer", "PermutationExplainer")
    assert ex.values.shape == (8, 10, 3) and ex.output == "probability" and ex.summary().startswith(
        f"SHAP explanation of 8 rows by {ex.explainer.split(' (')[0]}")
    if not ex.explainer.startswith("DeepExplainer"):  # why the exact one was passed over is said
        assert any(n.startswith(("DeepExplainer", "the gradient explainers")) for n in ex.notes), ex.notes
    p = np.asarray(model.predict(X.iloc[:8].to_numpy(), verbose=0))
    assert np.allclose(ex.proba, p, atol=1e-5) and list(ex.predicted) == list(p.argmax(axis=1))


def test_integer_codes_into_an_embedding_fall_back_to_the_model_agnostic_explainer(store):
    class CodesNet(torch.nn.Module):
        """Categories as integer codes into an embedding: no gradient reaches a code."""

        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(12, 3)
            self.out = torch.nn.Linear(3 * 3, 2)

        def forward(self, codes):
            return self.out(self.embed(codes).flatten(1))

    torch.manual_seed(0)
    codes = np.random.default_rng(0).integers(0, 12, size=(60, 3))
    net = CodesNet()
    ex = mj.explain(net, pd.DataFrame(codes, columns=["city", "plan", "device"]), rows=5)
    assert ex.explainer.startswith("PermutationExplainer") and ex.values.shape == (5, 3, 2)
    assert any(n.startswith("DeepExplainer could not run: RuntimeError") for n in ex.notes), ex.notes
    assert any(n.startswith("GradientExplainer could not run: RuntimeError") for n in ex.notes), ex.notes
    with torch.no_grad():
        out = net(torch.as_tensor(codes[:5])).numpy()
    assert np.abs(ex.values.sum(axis=1) + ex.base_values - out).max() < 1e-5


def images(n=150, seed=0):
    """8x8 single-channel pictures: a bar on the left (class 0), on the right (1) or across (2)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, size=(n, 1, 8, 8)).astype(np.float32)
    y = np.arange(n) % 3
    x[y == 0, 0, :, 1:3] += 2
    x[y == 1, 0, :, 5:7] += 2
    x[y == 2, 0, 3:5, :] += 2
    return x, y


def test_image_model_gets_heat_maps_that_validate_and_render(store, validator):
    torch.manual_seed(0)
    x, y = images()
    net = fit(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                  torch.nn.Flatten(), torch.nn.Linear(64, 3)), x, y, steps=25)
    ex = mj.explain(net, x[:6], background=x[90:120], y=y[:6], row=2)
    assert ex.explainer.startswith("DeepExplainer") and ex.values.shape == (6, 64, 3)
    assert ex.features[0] == "pixel (c=0, y=0, x=0)" and ex.features[-1] == "pixel (c=0, y=7, x=7)"
    out = outputs(net, x[:6])
    assert np.abs(ex.values.sum(axis=1) + ex.base_values - out).max() < 1e-4
    row = ex.chart("waterfall").spec  # the starting row's picture is a heat map
    k = int(out[2].argmax())
    meta = row["usermeta"]["mlops"]
    assert meta["kind"] == "explain.heatmap" and meta["shape"] == [8, 8] and meta["pooled"] == 1
    lo, mid, hi = meta["domain"]
    assert lo == -hi and mid == 0 and hi >= np.abs(ex.values[2, :, k]).max() * 0.999  # centred on 0
    attribution = row["hconcat"][1]
    assert attribution["spec"]["encoding"]["color"]["title"] == f"SHAP value (toward class {k})"
    assert attribution["spec"]["width"] == attribution["spec"]["height"]  # square pixels of a square image
    assert all(p["spec"]["encoding"][c]["axis"] is None for p in row["hconcat"] for c in ("x", "y"))
    assert row["title"]["text"] == ex.row_label(2)
    glob = ex.chart("global").spec  # mean |SHAP|: a panel per class beside the mean input
    assert glob["usermeta"]["mlops"]["panels"] == ["class 0", "class 1", "class 2"]
    assert glob["usermeta"]["mlops"]["absolute"] and glob["usermeta"]["mlops"]["domain"][0] == 0
    one = ex.chart("global", k=1).spec
    assert one["usermeta"]["mlops"]["panels"] == ["mean |SHAP value|"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, spec in (("row", row), ("global", glob), ("global_class1", one)):
        errors = [e.message[:200] for e in validator.iter_errors(spec)]
        assert not errors, (name, errors)
        assert "background" not in spec and "color" not in json.dumps(spec["config"])
        png = ex.chart("waterfall" if name == "row" else "global", None, 1 if name == "global_class1" else None).png()
        assert png.startswith(b"\x89PNG")
        (ARTIFACTS / f"conv8x8_{name}.png").write_bytes(png)
    # stored and loaded again, it is still an image explanation (its pixel names keep the shape)
    again = mj.explain(net, x[:6], background=x[90:120], row=2)
    assert again.cached and again.chart("waterfall").spec["usermeta"]["mlops"]["kind"] == "explain.heatmap"
    assert set(ex.standard_pictures()) == {"global_importance.svg", "beeswarm.svg", "waterfall_row2.svg"}


def test_channels_last_images_and_the_view(store, validator):
    from mlops_jupyter.widgets.explain_view import ExplanationView, static_html

    torch.manual_seed(0)
    x, y = images(90)
    rgb = np.repeat(x.transpose(0, 2, 3, 1), 3, axis=3)  # rows x 8 x 8 x 3, as Keras keeps pictures
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3))
    fit(net, rgb, y, steps=15)
    ex = mj.explain(net, rgb[:4], background=rgb[40:60])
    assert ex.features[-1] == "pixel (y=7, x=7, c=2)" and ex.values.shape == (4, 192, 3)
    spec = ex.chart("heatmap", 1).spec
    assert not [e.message for e in validator.iter_errors(spec)]
    assert spec["hconcat"][0]["spec"]["encoding"]["color"]["field"] == "rgb"  # three channels: drawn in colour
    view = ExplanationView(ex)  # the same view as for trees; no LIME tab for pictures
    assert view.tabs.titles == ("Global importance", "One row")
    assert static_html(ex).count("<svg") == 3


def test_bad_input_is_one_clear_line(store, mlp):
    net, X, _ = mlp
    with pytest.raises(BadInput, match="a row per sample"):
        mj.explain(net, np.zeros(10, dtype=np.float32))
    with pytest.raises(BadInput, match=r"--background rows are of shape \(4,\), X's of \(10,\)"):
        mj.explain(net, X.to_numpy()[:5], background=np.zeros((5, 4)))
    with pytest.raises(BadInput, match="the network cannot run on X: RuntimeError"):
        mj.explain(net, np.zeros((5, 7), dtype=np.float32))
    with pytest.raises(BadInput, match="LIME perturbs the columns of a table"):
        mj.explain(net, np.zeros((5, 1, 8, 8), dtype=np.float32), method="lime")
    with pytest.raises(BadInput, match="encode column"):
        mj.explain(net, X.iloc[:5].assign(f9="a"))
