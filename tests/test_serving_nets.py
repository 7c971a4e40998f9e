"""Networks over HTTP: tensor request forms, their 422s, the ONNX runtime (float32 and int8), its
refusals, and ONNX export of PyTorch and Keras versions. Tiny models, real servers on 127.0.0.1."""

import os
import re
import socket

import httpx
import numpy as np
import pytest

import mlops_jupyter as mj

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- models -----------------------------------------------------------------------------------------
def trained_mlp(seed: int = 0):
    """A 20-16-3 classifier trained a few steps (its predictions are not one class), and its example."""
    torch.manual_seed(seed)
    X = np.random.default_rng(seed).standard_normal((64, 20)).astype(np.float32)
    y = torch.from_numpy((X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5))
    net = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), y).backward()
        opt.step()
    net.eval()
    assert len(set(classes_of(net, X))) > 1
    return net, X


def classes_of(net, X):
    with torch.no_grad():
        return net(torch.from_numpy(X)).argmax(1).tolist()


class TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.image = torch.nn.Linear(6, 3)
        self.side = torch.nn.Linear(2, 3)  # not "meta": a GraphModule has its own .meta

    def forward(self, image, meta):
        return self.image(image) + self.side(meta)


def two_inputs():
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    ex = {"image": rng.standard_normal((16, 6)).astype(np.float32), "meta": rng.standard_normal((16, 2)).astype(np.float32)}
    return TwoInputs().eval(), ex


def near_tie():
    """A classifier whose two logits differ by a hair on every row: int8 rounding flips about half its answers."""
    torch.manual_seed(2)
    net = torch.nn.Linear(20, 2)
    with torch.no_grad():
        net.weight[1] = net.weight[0] + 1e-3 * torch.randn(20)
        net.bias[1] = net.bias[0]
    return net.eval(), np.random.default_rng(2).standard_normal((128, 20)).astype(np.float32)


def keras_model():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(3, activation="softmax")])
    X = np.random.default_rng(3).standard_normal((32, 8)).astype(np.float32)
    # trained a little: untrained, some rows sit on a tie between classes that int8 rounding breaks
    m.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    m.fit(X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5), epochs=20, batch_size=32, verbose=0)
    return m, X


def serve(ref: str, **options):
    """A server for *ref* on a free port, loaded as ``mlops serve`` loads it; (url, what it serves)."""
    from mlops_jupyter.serving import server
    from mlops_jupyter.serving.options import ServeOptions
    from mlops_jupyter.serving.served import load_models

    opts = ServeOptions.from_user(ref=ref, port=free_port(), token=None, log_sample=0, **options)
    served = load_models(opts)
    bg = server.start_background(opts, preload=served)
    return bg, served


def stop(bg):
    from mlops_jupyter.serving import server

    server.stop_background(int(bg.url.rsplit(":", 1)[1]))


def predictions(url, body):
    r = httpx.post(url + "/predict", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


# -- request forms ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_tensor_form_predicts_as_the_model_does(store):
    net, X = trained_mlp()
    mj.models.register(net, name="digits", example=X, alias="production")
    want = classes_of(net, X[:7])
    bg, _ = serve("digits@production")
    try:
        rows = X[:7].tolist()
        for body in ({"inputs": rows}, {"inputs": {"input": rows}}, {"instances": rows},
                     {"instances": [{"input": r} for r in rows]}, [{"input": r} for r in rows]):
            assert predictions(bg.url, body) == want, body if len(str(body)) < 200 else list(body)
        r = httpx.post(bg.url + "/invocations?proba=true", json={"inputs": rows}, timeout=30)
        p = np.asarray(r.json()["probabilities"])
        assert p.shape == (7, 3) and np.allclose(p.sum(axis=1), 1) and p.argmax(1).tolist() == want
        assert r.json()["classes"] == [0, 1, 2]
    finally:
        stop(bg)


@pytest.mark.slow
def test_named_inputs_and_instances_of_objects_for_two_inputs(store):
    net, ex = two_inputs()
    mj.models.register(net, name="two", example=ex)
    with torch.no_grad():
        want = net(**{k: torch.from_numpy(v[:5]) for k, v in ex.items()}).argmax(1).tolist()
    bg, _ = serve("two@v1")
    try:
        named = {k: v[:5].tolist() for k, v in ex.items()}
        instances = [{"meta": m, "image": i} for i, m in zip(named["image"], named["meta"])]
        for body in ({"inputs": named}, {"instances": instances}, {"inputs": instances}):
            assert predictions(bg.url, body) == want
    finally:
        stop(bg)


BAD = [  # (body, what the message says): each names the input and the shape the model expects
    ({"inputs": [[0.0] * 19] * 2}, "input input has shape (2, 19); the model expects (n, 20)"),
    ({"inputs": [[0.0] * 20, [0.0] * 19]}, "input input is ragged"),
    ({"inputs": [["a"] * 20]}, "input input holds strings where numbers are expected"),
    ({"inputs": [[None] + [0.0] * 19]}, "input input holds null"),
    ({"inputs": [[True] * 20]}, "input input holds true/false"),
    ({"inputs": {"pixels": [[0.0] * 20]}}, "unknown input pixels; the model takes input (n, 20) float32"),
    ({"instances": [{"input": [0.0] * 20}, {}]}, "row 1 of 'instances' has no input input"),
    ({"inputs": {}}, "missing input input; the model takes input (n, 20) float32"),
    ({"inputs": "x"}, "'inputs' should be a list of rows"),
    ({"inputs": None}, "'inputs' should be a list of rows"),
    ({"inputs": []}, "no rows to predict"),
]


@pytest.mark.slow
def test_bad_tensors_are_422s_naming_the_input_and_the_shape(store):
    net, X = trained_mlp()
    mj.models.register(net, name="digits", example=X)
    bg, _ = serve("digits@v1")
    try:
        for body, msg in BAD:
            r = httpx.post(bg.url + "/predict", json=body, timeout=30)
            assert r.status_code == 422 and msg in r.json()["error"], (msg, r.text)
            assert "(n, 20)" in r.json()["error"] or msg == "no rows to predict", r.text
    finally:
        stop(bg)


def test_two_input_model_refuses_one_tensor_and_unequal_batches(store):
    from mlops_jupyter.serving.inputs import InputError, parse, to_frame

    net, ex = two_inputs()
    v = mj.models.register(net, name="two", example=ex)
    for body, msg in [({"inputs": ex["image"][:2].tolist()}, ("the model takes 2 inputs, image (n, 6) float32, "
                                                                "meta (n, 2) float32: give them by name")),
                      ({"inputs": {"image": [[0.0] * 6] * 3, "meta": [[0.0] * 2] * 2}}, "different numbers of rows"),
                      ({"inputs": {"image": [[0.0] * 6]}}, "missing input meta; the model takes")]:
        with pytest.raises(InputError, match=re.escape(msg)):
            to_frame(parse(body), v.signature)


def test_nan_and_fractions_are_refused_in_process_too():
    """Over HTTP orjson already refuses NaN and infinity (400); the checks hold for other callers."""
    from mlops_jupyter.serving.inputs import InputError, parse, to_frame

    sig = {"type": "tensors", "inputs": [{"name": "x", "shape": [None, 2], "dtype": "float32"},
                                         {"name": "ids", "shape": [None, 3], "dtype": "int64"}]}
    with pytest.raises(InputError, match=r"input x holds NaN or infinity; the model expects \(n, 2\) float32"):
        to_frame(parse({"inputs": {"x": [[float("nan"), 1.0]], "ids": [[1, 2, 3]]}}), sig)
    with pytest.raises(InputError, match=r"input ids holds 1.5 where an integer is expected; the model expects "
                                         r"\(n, 3\) int64"):
        to_frame(parse({"inputs": {"x": [[0.0, 1.0]], "ids": [[1, 1.5, 3]]}}), sig)
    with pytest.raises(InputError, match=r"input ids holds 1(0+), too large"):
        to_frame(parse({"inputs": {"x": [[0.0, 1.0]], "ids": [[1, 10 ** 30, 3]]}}), sig)


def test_the_prediction_log_keeps_input_names_and_rows_as_raw_bytes(store):
    """A network's inputs are logged as their bytes (not 784 decimal numbers a row) and read back as rows."""
    import json

    import sqlalchemy as sa

    from mlops_jupyter.serving import predlog
    from mlops_jupyter.serving.inputs import parse, to_frame
    from mlops_jupyter.serving.metrics import Metrics
    from mlops_jupyter.store import schema as S

    sig = {"type": "tensors", "inputs": [{"name": "image", "shape": [None, 2], "dtype": "float32"},
                                         {"name": "meta", "shape": [None, 1], "dtype": "int64"}]}
    p = parse({"instances": [{"image": [1.5, 2], "meta": [3]}, {"image": [4, 0.1], "meta": [6]}]})
    X = to_frame(p, sig)
    assert X["image"].shape == (2, 2) and X["meta"].dtype == np.int64 and X["image"].dtype == np.float32
    assert p.columns == ["image", "meta"] and p.arrays is X
    log = predlog.PredictionLog(store.meta, Metrics())
    assert log.record("0" * 32, "net", 1, "predict", p.columns, p.rows, {"predictions": [0, 1]}, 0.001, p.arrays)
    log.close()
    with store.meta.read() as conn:
        stored = json.loads(conn.execute(sa.select(S.predictions.c.inputs)).scalar())
    assert stored["tensors"]["image"][:2] == ["<f4", [2, 2]] and "data" not in stored
    back = predlog.read(store.meta, "net")
    assert list(back.columns[:2]) == ["image", "meta"] and back["prediction"].tolist() == [0, 1]
    assert back["image"].tolist() == [[1.5, 2.0], [4.0, np.float32(0.1).item()]] and back["meta"].tolist() == [[3], [6]]


def test_tabular_models_still_refuse_tensor_bodies_as_before():
    from mlops_jupyter.serving.inputs import InputError, parse, to_frame

    sig = {"type": "dataframe", "columns": [{"name": "a", "dtype": "float64"}]}
    with pytest.raises(InputError, match="records must be JSON objects, one per row"):
        to_frame(parse({"inputs": [[1.0]]}), sig)
    assert to_frame(parse({"instances": [{"a": 1.0}]}), sig)["a"].tolist() == [1.0]


# -- the ONNX runtime -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("quantize, precision, says", [
    (False, "float32", "answers as the original on 64 example rows"),
    (True, "int8", "top-1 agreement with the original 100.0% on 64 example rows")], ids=["float32", "int8"])
def test_onnx_runtime_serves_a_torch_network(store, quantize, precision, says):
    net, X = trained_mlp()
    mj.models.register(net, name="digits", example=X, alias="production")
    bg, served = serve("digits@production", runtime="onnx", quantize=quantize)
    try:
        assert served[0].predictor.precision == precision and says in served[0].predictor.note, served[0].predictor.note
        model = httpx.get(bg.url + "/health", timeout=5).json()["models"][0]
        assert model["runtime"] == "onnx" and model["precision"] == precision, model
        # the example rows are the ones agreement was measured on (all of them must agree at 0.99 of 64)
        assert predictions(bg.url, {"inputs": X.tolist()}) == classes_of(net, X)
        r = httpx.post(bg.url + "/predict", json={"inputs": [[0.0] * 21]}, timeout=30)
        assert r.status_code == 422 and "input input has shape (1, 21); the model expects (n, 20)" in r.json()["error"]
    finally:
        stop(bg)


@pytest.mark.slow
def test_onnx_runtime_serves_keras_and_two_input_networks(store):
    model, X = keras_model()
    mj.models.register(model, name="kdense", example=X)
    net, ex = two_inputs()
    mj.models.register(net, name="two", example=ex)
    with torch.no_grad():
        want_two = net(**{k: torch.from_numpy(v) for k, v in ex.items()}).argmax(1).tolist()
    want_keras = np.argmax(model.predict(X[:5], verbose=0), axis=1).tolist()  # the 5 rows the signature keeps
    for ref, body, want in (("kdense@v1", {"inputs": X[:5].tolist()}, want_keras),
                            ("two@v1", {"inputs": {k: v.tolist() for k, v in ex.items()}}, want_two)):
        bg, served = serve(ref, runtime="onnx", quantize=True)
        try:
            assert served[0].predictor.precision == "int8", served[0].predictor.note
            assert predictions(bg.url, body) == want
        finally:
            stop(bg)


@pytest.mark.slow
def test_int8_below_min_agreement_is_one_line_and_no_server(project):
    from .conftest import run_cli

    net, X = near_tie()
    mj.models.register(net, name="tie", example=X)
    port = free_port()
    out = run_cli("serve", "tie@v1", "--port", str(port), "--runtime", "onnx", "--quantize")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "int8 form of tie@v1 predicts the original's class on" in lines[0], out.stderr
    assert "--min-agreement 0.99" in lines[0]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_int8_agreement_threshold_is_settable(store):
    from mlops_jupyter.exceptions import BadInput
    from mlops_jupyter.models.registry import Registry
    from mlops_jupyter.serving.runtime import prepare

    net, X = near_tie()
    v = mj.models.register(net, name="tie", example=X)
    model = Registry(store).load_version(v)
    loose = prepare(model, v.signature, v.library, runtime="onnx", quantize=True, ref=v.ref, min_agreement=0.0)
    assert loose.precision == "int8" and "top-1 agreement" in loose.note
    with pytest.raises(BadInput, match="below --min-agreement 1"):
        prepare(model, v.signature, v.library, runtime="onnx", quantize=True, ref=v.ref, min_agreement=1.0)


def test_an_onnx_graph_that_answers_otherwise_is_refused(store, monkeypatch):
    import onnx

    from mlops_jupyter.exceptions import BadInput
    from mlops_jupyter.models import onnx_nets
    from mlops_jupyter.models.registry import Registry
    from mlops_jupyter.serving.runtime import prepare

    net, X = trained_mlp()
    v = mj.models.register(net, name="digits", example=X)
    convert = onnx_nets.torch_onnx

    def corrupted(*args):  # a conversion that gets a bias wrong
        proto = onnx.load_from_string(convert(*args))
        bias = next(t for t in proto.graph.initializer if len(t.dims) == 1)
        arr = onnx.numpy_helper.to_array(bias) + 0.01
        bias.CopyFrom(onnx.numpy_helper.from_array(arr, bias.name))
        return proto.SerializeToString()

    monkeypatch.setattr(onnx_nets, "torch_onnx", corrupted)
    with pytest.raises(BadInput, match=r"the ONNX form of digits@v1 answers up to [\d.]+ away from the original on its "
                                       r"example \(row \d+; tolerance .*\): serve it with --runtime native"):
        prepare(Registry(store).load_version(v), v.signature, v.library, runtime="onnx", ref=v.ref)


# -- export -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_export_writes_an_int8_file_onnxruntime_predicts_with(project, tmp_path, capsys):
    import onnxruntime as ort

    from mlops_jupyter.cli import main

    net, X = trained_mlp()
    mj.models.register(net, name="digits", example=X)
    out = tmp_path / "f.onnx"
    assert main(["model", "export", "digits@v1", "--format", "onnx", "--quantize", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "ONNX int8" in said and "top-1 agreement" in said
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    got = sess.run(None, {"input": X})[0].argmax(1).tolist()
    assert got == classes_of(net, X)

    # refused: nothing written, one line
    net, X = near_tie()
    mj.models.register(net, name="tie", example=X)
    assert main(["model", "export", "tie@v1", "--quantize", "-o", str(tmp_path / "tie.onnx")]) == 2
    assert "below --min-agreement" in capsys.readouterr().err
    assert not (tmp_path / "tie.onnx").exists() and not list(tmp_path.glob(".tie.onnx*"))
    assert main(["model", "export", "tie@v1", "-o", str(tmp_path / "tie.onnx")]) == 0  # float32 agrees


def test_export_of_a_keras_version_names_its_inputs_as_the_signature(project, tmp_path):
    import onnxruntime as ort

    model, X = keras_model()
    v = mj.models.register(model, name="kdense", example=X)
    path, note = mj.models.export_with_note("kdense@v1", path=str(tmp_path))
    assert path.endswith("kdense-v1.onnx") and "float32" in note
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = v.signature["inputs"][0]["name"]
    assert [i.name for i in sess.get_inputs()] == [name]
    assert np.allclose(sess.run(None, {name: X})[0], model.predict(X, verbose=0), atol=1e-5)
