"""PyTorch and Keras models in the registry: saved without pickle, loaded without their class.

Tiny models, trained for a few steps on synthetic data, so every test takes seconds."""

import json
import os
import subprocess
import textwrap

import numpy as np
import pytest
from IPython.core.error import UsageError

from mlops_jupyter.exceptions import BadInput

from .conftest import PY, python_env, run_cli

torch = pytest.importorskip("torch")

os.environ.setdefault("KERAS_BACKEND", "torch")

NET_SOURCE = """
import torch

class Net(torch.nn.Module):
    def __init__(self, d_in=20, hidden=16, classes=3):
        super().__init__()
        self.hidden = torch.nn.Linear(d_in, hidden)
        self.norm = torch.nn.BatchNorm1d(hidden)
        self.drop = torch.nn.Dropout(0.3)
        self.out = torch.nn.Linear(hidden, classes)

    def forward(self, x):
        return self.out(self.drop(torch.relu(self.norm(self.hidden(x)))))
"""


def make_net(seed=0):
    """The Net class defined in a throwaway module (as a notebook's __main__ would), trained a few steps."""
    scope: dict = {}
    exec(compile(NET_SOURCE, "<notebook cell>", "exec"), scope)
    torch.manual_seed(seed)
    net = scope["Net"]()
    X, y = data(seed)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y))
        loss.backward()
        opt.step()
    return net, X, y


def data(seed=0, n=200):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 20)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype("int64") + (X[:, 2] > 1).astype("int64")
    return X, y


def eager(net, X):
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(X)).numpy()


def test_torch_round_trip_in_a_fresh_process_without_the_class(store, project):
    import mlops_jupyter as mj

    net, X, _ = make_net()
    v = mj.models.register(net, name="digits", example=X[:32])
    assert v.flavor == "torch" and v.library == "torch" and v.library_version.startswith("2.")
    sig = v.signature
    assert sig["type"] == "tensors" and sig["inputs"] == [{"name": "x", "shape": [None, 20], "dtype": "float32"}]
    assert sig["task"] == "classification" and sig["outputs"] == "logits" and sig["classes"] == [0, 1, 2]
    assert net.training, "registering leaves the module in the mode it was in"
    from mlops_jupyter.models import torch_format

    files = torch_format.read_zip(store.blobs.get_bytes(v.digest), v.ref)  # JSON and safetensors only
    json.loads(files["program.json"])
    for name in torch_format.FILES[1:]:
        size = int.from_bytes(files[name][:8], "little")
        json.loads(files[name][8:8 + size])
    want = eager(net, X)
    np.save(project / "X.npy", X)
    np.save(project / "want.npy", want)
    code = textwrap.dedent("""
        import sys, numpy as np, torch
        import mlops_jupyter as mj
        import mlops_jupyter.models
        assert "Net" not in dir(sys.modules["__main__"])
        m = mj.models.load("digits@v1")
        X = np.load("X.npy"); want = np.load("want.npy")
        got = m(torch.from_numpy(X)).detach().numpy()
        print(float(np.abs(got - want).max()), type(m).__module__)
        few = m(torch.from_numpy(X[:3])).detach().numpy()   # another batch size than the example's
        print(few.shape)
    """)
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=project, env=python_env(),
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    diff, module = out.stdout.split()[:2]
    assert float(diff) <= 1e-6 and module.startswith("torch")
    assert out.stdout.split()[2:] == ["(3,", "3)"]


def test_torch_predictor_face_and_signature_checks(store):
    import mlops_jupyter as mj
    from mlops_jupyter.models import flavors

    net, X, _ = make_net()
    v = mj.models.register(net, name="digits", example=X[:1])  # one row: traced with the batch axis still free
    m = mj.models.load("digits")
    p = flavors.predictor(m, v.flavor, v.signature)
    want = eager(net, X)
    assert (p.predict(X) == want.argmax(axis=1)).all()
    proba = p.predict_proba(X)
    assert np.allclose(proba.sum(axis=1), 1) and (proba.argmax(axis=1) == want.argmax(axis=1)).all()
    with pytest.raises(BadInput, match=r"input x has shape \(5, 19\); the model expects \(n, 20\)"):
        p.predict(X[:5, :19])
    with pytest.raises(BadInput, match="cannot be read as float32"):
        p.predict(np.array([["a"] * 20]))


def test_torch_named_inputs_and_dict_inputs(store):
    import mlops_jupyter as mj

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 2)
            self.b = torch.nn.Linear(3, 2)

        def forward(self, image, meta):
            return self.a(image) + self.b(meta)

    class Dict(Two):
        def forward(self, batch):
            return self.a(batch["image"]) + self.b(batch["meta"])

    X, _ = data()
    ex = {"image": X[:8, :4], "meta": X[:8, 4:7]}
    for cls, example in ((Two, (ex["image"], ex["meta"])), (Two, ex), (Dict, ex)):
        torch.manual_seed(0)
        net = cls().eval()
        v = mj.models.register(net, name="two", example=example)
        assert [i["name"] for i in v.signature["inputs"]] == ["image", "meta"]
        assert v.signature["call"] == {Two: "args" if isinstance(example, tuple) else "kwargs", Dict: "dict"}[cls]
        m = mj.models.load(v.ref)
        from mlops_jupyter.models import flavors

        got = flavors.predictor(m, "torch", v.signature).predict(ex)
        with torch.no_grad():
            t = {k: torch.from_numpy(a) for k, a in ex.items()}
            want = net(t) if cls is Dict else net(t["image"], t["meta"])
        assert np.allclose(got, want.numpy().argmax(axis=1) if v.signature["task"] == "classification"
                           else want.numpy(), atol=1e-6)


class Branchy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(20, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return self.lin(x)
        return -self.lin(x)


def test_unexportable_torch_model_is_refused_with_torchs_reason(store):
    import mlops_jupyter as mj

    X, _ = data()
    with pytest.raises(BadInput) as e:
        mj.models.register(Branchy(), name="branchy", example=X[:8])
    msg = str(e.value)
    assert "\n" not in msg and "torch.export cannot export this Branchy" in msg and "--pickle" in msg
    assert "data-dependent" in msg.lower() or "guard" in msg.lower()
    assert mj.models.ls().empty if hasattr(mj.models.ls(), "empty") else not list(mj.models.ls())
    v = mj.models.register(Branchy(), name="branchy", example=X[:8], pickle=True)
    assert v.flavor == "pickle"


def test_no_example_is_one_line(store):
    import mlops_jupyter as mj

    net, _, _ = make_net()
    with pytest.raises(BadInput, match="registered with an input example"):
        mj.models.register(net, name="digits")


def test_gpu_saved_program_loads_on_the_cpu(store):
    """No GPU here: the stored program's device annotations are rewritten to CUDA, as a program
    exported on a GPU has them, and the loader must still build it on the CPU."""
    import io
    import zipfile

    import mlops_jupyter as mj
    from mlops_jupyter.models import torch_format

    net, X, _ = make_net()
    v = mj.models.register(net, name="digits", example=X[:16])
    files = torch_format.read_zip(store.blobs.get_bytes(v.digest), "digits")
    doc = files["program.json"].decode()
    assert '"type": "cpu"' in doc
    files["program.json"] = doc.replace('"type": "cpu"', '"type": "cuda"').encode()
    assert b'"cuda"' in files["program.json"]
    gpu = torch_format.zip_bytes(files)
    m = torch_format.FORMAT.load(gpu, [], {"device": "cuda:0"}, label="digits@v1")
    got = m(torch.from_numpy(X)).detach().numpy()
    assert np.abs(got - eager(net, X)).max() <= 1e-6
    assert not any(t.is_cuda for t in m.state_dict().values())
    with zipfile.ZipFile(io.BytesIO(gpu)) as z:
        assert sorted(z.namelist()) == sorted(torch_format.FILES)


def test_keras_round_trip_and_safe_mode(store, project):
    import keras

    import mlops_jupyter as mj

    X, y = data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=2, verbose=0)
    v = mj.models.register(model, name="kdigits", example=X[:32])
    assert v.flavor == "keras" and v.signature["outputs"] == "probabilities"
    assert v.signature["inputs"][0]["name"] == "x"
    m = mj.models.load("kdigits")
    assert np.abs(m.predict(X, verbose=0) - model.predict(X, verbose=0)).max() <= 1e-6
    assert np.array_equal(m.mlops_example["x"], X[:32])  # kept in the .keras zip for ONNX and int8 checks

    lam = keras.Sequential([keras.Input((20,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(3)])
    with pytest.raises(BadInput, match=r"safe mode will not load \(Lambda layer\); pass --pickle"):
        mj.models.register(lam, name="lam", example=X[:4])
    v = mj.models.register(lam, name="lam", example=X[:4], pickle=True)
    with pytest.raises(BadInput, match="custom code .*pass --pickle"):
        mj.models.load(v.ref)
    assert np.allclose(mj.models.load(v.ref, pickle=True).predict(X[:4], verbose=0),
                       lam.predict(X[:4], verbose=0), atol=1e-6)


def test_magics_register_and_load_a_network(ip):
    import mlops_jupyter as mj

    net, X, _ = make_net()
    ip.user_ns.update(net=net, X_val=X)
    ip.run_cell("%mlops model register net --name digits --example X_val[:32]").raise_error()
    ip.run_cell("net2 = %mlops model load digits@v1").raise_error()
    net2 = ip.user_ns["net2"]
    assert np.abs(net2(torch.from_numpy(X)).detach().numpy() - eager(net, X)).max() <= 1e-6
    assert mj.models.get("digits").signature["inputs"][0]["shape"] == [None, 20]
    with pytest.raises(UsageError, match="registered with an input example"):
        ip.run_cell("%mlops model register net --name digits2").raise_error()


def test_cli_model_show_describes_tensors(store):
    import mlops_jupyter as mj

    net, X, _ = make_net()
    mj.models.register(net, name="digits", example=X[:8])
    out = run_cli("model", "show", "digits@v1")
    assert out.returncode == 0, out.stderr
    assert "tensors x (n, 20) float32 -> (n, 3) float32" in out.stdout


def test_import_stays_free_of_torch_and_keras():
    code = ("import sys, mlops_jupyter, mlops_jupyter.models, mlops_jupyter.models.flavors; "
            "print(json.dumps(sorted(m for m in ('torch', 'keras') if m in sys.modules)))")
    out = subprocess.run([PY, "-c", "import json; " + code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_registering_imports_only_the_models_framework(store, project):
    code = textwrap.dedent("""
        import sys, numpy as np
        from sklearn.linear_model import LogisticRegression
        import mlops_jupyter as mj, mlops_jupyter.models
        X = np.random.default_rng(0).normal(size=(40, 3)); y = (X[:, 0] > 0).astype(int)
        mj.models.register(LogisticRegression().fit(X, y), name="lr", example=X)
        print(sorted(m for m in ("torch", "keras") if m in sys.modules))
    """)
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=project, env=python_env(),
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_what_a_networks_outputs_mean_sigmoid_logit_and_several_regression_outputs(store, ip):
    """One output ending in a sigmoid is a binary classifier; one logit (trained with
    BCEWithLogitsLoss) is one when the user says so; several outputs that are not class scores are a
    regression when the user says so. Predictions, probabilities, int8 agreement and explanations
    read the outputs alike."""
    import mlops_jupyter as mj
    from mlops_jupyter.models import flavors

    X, y = data()
    binary = (y > 0).astype("float32")
    torch.manual_seed(0)
    sig_net = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1), torch.nn.Sigmoid())
    v = mj.models.register(sig_net, name="churn-sigmoid", example=X[:32])
    assert (v.signature["task"], v.signature["outputs"], v.signature["classes"]) == ("classification", "probability",
                                                                                      [0, 1])
    p = flavors.predictor(mj.models.load(v.ref), v.flavor, v.signature)
    out = sig_net(torch.from_numpy(X)).detach().numpy()[:, 0]
    assert (p.predict(X) == (out >= 0.5)).all()
    assert np.allclose(p.predict_proba(X), np.stack([1 - out, out], axis=1), atol=1e-6)

    logit_net = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(logit_net.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(logit_net(torch.from_numpy(X))[:, 0],
                                                             torch.from_numpy(binary)).backward()
        opt.step()
    assert mj.models.register(logit_net, name="churn-logit", example=X[:32]).signature["task"] == "regression"
    ip.user_ns.update(logit_net=logit_net, X=X)
    ip.run_cell("%mlops model register logit_net --name churn-logit --example X[:32] --task classification"
                ).raise_error()
    v = mj.models.get("churn-logit")
    assert v.version == 2 and (v.signature["task"], v.signature["outputs"]) == ("classification", "logit")
    p = flavors.predictor(mj.models.load(v.ref), v.flavor, v.signature)
    z = logit_net(torch.from_numpy(X)).detach().numpy()[:, 0]
    assert (p.predict(X) == (z >= 0)).all() and np.allclose(p.predict_proba(X)[:, 1], 1 / (1 + np.exp(-z)), atol=1e-6)
    # int8 agreement compares the logits' signs (argmax of one column would agree with anything)
    from mlops_jupyter.models.onnx_nets import agreement_of

    assert agreement_of(z[:, None], z[:, None], v.signature)[0] == 1.0
    assert agreement_of(-z[:, None], z[:, None], v.signature)[0] < 0.05

    multi = torch.nn.Sequential(torch.nn.Linear(20, 3))
    assert mj.models.register(multi, name="three-targets", example=X[:8]).signature["task"] == "classification"
    v = mj.models.register(multi, name="three-targets", example=X[:8], task="regression")
    assert v.signature["task"] == "regression" and "classes" not in v.signature and "outputs" not in v.signature
    p = flavors.predictor(mj.models.load(v.ref), v.flavor, v.signature)
    assert np.allclose(p.predict(X[:5]), multi(torch.from_numpy(X[:5])).detach().numpy(), atol=1e-6)
    with pytest.raises(AttributeError, match="regressor has no probabilities"):
        p.predict_proba(X[:5])

    # explanations read the outputs by the same rules
    e = mj.explain(sig_net, X[:6], background=X[100:140])
    assert e.classes == [0, 1] or list(e.classes) == [0, 1]

    # bad input: one line, nothing stored
    n = len(mj.models.versions("three-targets"))
    with pytest.raises(UsageError, match="invalid choice: 'binary'"):
        ip.run_cell("%mlops model register logit_net --name three-targets --example X[:8] --task binary").raise_error()
    with pytest.raises(BadInput, match="task 'binary' is not one of classification, regression"):
        mj.models.register(multi, name="three-targets", example=X[:8], task="binary")
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(BadInput, match="task= is for neural networks"):
        mj.models.register(LogisticRegression().fit(X, y), name="three-targets", example=X[:8], task="regression")
    assert len(mj.models.versions("three-targets")) == n
