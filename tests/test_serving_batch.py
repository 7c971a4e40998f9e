"""Adaptive batching (``mlops serve --batch``): merged model calls, answers split back, one log row,
one request id and one error per request; the options and how they travel."""

import dataclasses
import http.client
import json
import re
import threading

import httpx
import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mj

from .conftest import run_cli
from .test_serving import free_port

TOKEN = "t0k"
H = {"Authorization": f"Bearer {TOKEN}"}
N = 32
REFUSED = 99.0  # a value the gated model refuses at predict time (it passes the input checks)


class Gate:
    """The served model behind a gate: while closed, its next predict blocks the server's event
    loop (it runs there), so the requests sent meanwhile all wait in the socket and are read
    together once it opens. It also refuses any batch holding a row whose first value is REFUSED."""

    def __init__(self, model):
        self.model = model
        self.closed = threading.Event()
        self.blocked = threading.Event()
        self.opened = threading.Event()
        self.calls: list[int] = []

    def predict(self, X):
        if self.closed.is_set():
            self.closed.clear()
            self.blocked.set()
            assert self.opened.wait(60)
        self.calls.append(len(X))
        if (np.asarray(X)[:, 0] == REFUSED).any():
            raise ValueError("a row the model refuses")
        return self.model.predict(X)

    def predict_proba(self, X):
        return self.model.predict_proba(X)


def _register():
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame(np.random.default_rng(0).random((300, 5)), columns=[f"f{i}" for i in range(5)])
    mj.models.register(LogisticRegression().fit(X, (X.f0 > 0.5).astype(int)), name="churn", example=X,
                       alias="production")
    return X


def _start(batch=None, gate=False):
    """A server on a thread of this process; with *gate*, its model behind a :class:`Gate`."""
    from mlops_jupyter.serving import server
    from mlops_jupyter.serving.options import ServeOptions
    from mlops_jupyter.serving.served import load_models

    options = ServeOptions.from_user(ref="churn@production", port=free_port(), token=TOKEN, batch=batch)
    served = load_models(options)
    if gate:
        s = served[0]
        s.predictor = dataclasses.replace(s.predictor, model=Gate(s.predictor.model))
    return server.start_background(options, preload=served), options.port, served[0]


def _stop(port):
    from mlops_jupyter.serving import server

    server.stop_background(port)


def _post_all(url: str, bodies: list[bytes], paths: list[str], gate: Gate) -> list[tuple[int, dict, dict]]:
    """Hold the server's loop at the gate, send every body on its own (already open) connection,
    then open the gate: the requests reach the server together. [(status, json, headers)], and
    the plug's (the request that held the loop) last."""
    host, port = url.split("://")[1].split(":")
    conns = [http.client.HTTPConnection(host, int(port), timeout=60) for _ in bodies]
    head = {**H, "Content-Type": "application/json"}
    for c in conns:  # connected and warm before the loop is held
        c.request("GET", "/health")
        c.getresponse().read()
    plug = http.client.HTTPConnection(host, int(port), timeout=60)
    gate.blocked.clear()
    gate.opened.clear()
    gate.closed.set()
    plug.request("POST", "/predict", body=bodies[0], headers=head)
    assert gate.blocked.wait(60)  # the loop is inside the plug's model call
    for c, body, path in zip(conns, bodies, paths):
        c.request("POST", path, body=body, headers=head)
    gate.opened.set()
    out = []
    for c in [*conns, plug]:
        r = c.getresponse()
        out.append((r.status, json.loads(r.read()), {k.lower(): v for k, v in r.getheaders()}))
        c.close()
    return out


def _log(model="churn"):
    from mlops_jupyter.serving import predlog
    from mlops_jupyter.store import open_store

    return predlog.read(open_store().meta, model, probabilities=True)


def _bodies(X, change: dict) -> tuple[list[bytes], list[str]]:
    """N one-row requests, every other one asking for probabilities, on both routes; *change*:
    {request number: {column: value}}."""
    bodies, paths = [], []
    for i in range(N):
        record = {**X.iloc[i].to_dict(), **change.get(i, {})}
        bodies.append(json.dumps({"dataframe_records": [record], "proba": i % 2 == 0}).encode())
        paths.append("/predict" if i % 3 else "/invocations")
    return bodies, paths


def _same(got, want) -> None:
    """The batched answers are the unbatched ones, row for row (ids aside)."""
    assert [g[0] for g in got] == [w.status_code for w in want]
    for (status, answer, _), w in zip(got, want):
        w = w.json()
        if status != 200:
            assert answer == w
            continue
        assert answer["predictions"] == w["predictions"] and answer["model_version"] == w["model_version"]
        assert ("probabilities" in answer) == ("probabilities" in w) and answer.get("classes") == w.get("classes")
        if "probabilities" in w:
            assert np.allclose(answer["probabilities"], w["probabilities"], rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_batched_answers_equal_unbatched_with_own_ids_errors_and_log_rows(store):
    X = _register()
    bad_input = _bodies(X, {10: {"f2": "x"}})  # refused by the input checks, before joining
    refused = _bodies(X, {20: {"f0": REFUSED}})  # refused by the model: the merged call fails

    plain, plain_port, _ = _start(gate=True)  # the same model, unbatched
    try:
        with httpx.Client(base_url=plain.url, headers={**H, "Content-Type": "application/json"}, timeout=30) as c:
            want = [[c.post(p, content=b) for b, p in zip(*bodies)] for bodies in (bad_input, refused)]
    finally:
        _stop(plain_port)
    assert [i for i, w in enumerate(want[0]) if w.status_code != 200] == [10]
    assert [i for i, w in enumerate(want[1]) if w.status_code != 200] == [20]

    bg, port, served = _start(batch="max_size=64,max_wait_ms=50", gate=True)
    gate = served.predictor.model
    try:
        *got, plug = _post_all(bg.url, *bad_input, gate)
        merged = list(gate.calls)
        *again, plug2 = _post_all(bg.url, *refused, gate)
        metrics = httpx.get(bg.url + "/metrics", headers=H).text
    finally:
        _stop(port)  # writes the prediction log out

    # a bad input gets its 422 without joining; its neighbours were merged, each answer naming how
    # many requests shared its model call
    _same(got, want[0])
    assert "column 'f2', row 0" in got[10][1]["error"]
    sizes = [int(h["x-batch-size"]) for status, _, h in got if status == 200]
    assert merged[0] == 1 and max(merged) > 1 and max(sizes) > 1 and sum(merged) == N  # plug + 31
    # a request the model refuses fails its merged call: each is then predicted alone
    _same(again, want[1])
    assert again[20][1]["error"] == "the model could not predict: ValueError: a row the model refuses"
    assert "mlops_batch_fallbacks_total 1" in metrics

    count = int(re.search(r'mlops_batch_requests_count\{version="churn@v1"\} (\d+)', metrics).group(1))
    total = int(re.search(r'mlops_batch_requests_sum\{version="churn@v1"\} (\d+)', metrics).group(1))
    # every model call but the merged one that failed; every request but the bad input's
    assert count == len(gate.calls) - 1 and total == 2 * N + 1
    assert 'mlops_requests_total{route="/predict",version="churn@v1",status="200"}' in metrics

    # unique request ids, and one prediction log row for each answered request (each asked one row)
    ok = [answer for status, answer, _ in [*got, *again, plug, plug2] if status == 200]
    ids = [answer["request_id"] for answer in ok]
    assert len(set(ids)) == len(ids) == 2 * N and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    plain_ids = [w.json()["request_id"] for ws in want for w in ws if w.status_code == 200]
    log = _log()
    assert sorted(log.request_id) == sorted(ids + plain_ids)  # the unbatched server logged too
    by_id = log.set_index("request_id")
    for answer in ok:
        assert by_id.loc[answer["request_id"], "prediction"] == answer["predictions"][0]


@pytest.mark.slow
def test_a_lone_request_goes_alone_and_health_tells_the_batching(store):
    X = _register()
    bg, port, _ = _start(batch="max_size=8,max_wait_ms=1000")
    try:
        with httpx.Client(base_url=bg.url, headers=H, timeout=30) as c:
            r = c.post("/predict", json=X.iloc[:1].to_dict("records"))
            assert r.status_code == 200 and r.headers["x-batch-size"] == "1", r.text
            big = c.post("/predict?proba=true", json=X.iloc[:20].to_dict("records"))  # over max_size: alone
            assert big.status_code == 200 and len(big.json()["probabilities"]) == 20
            assert big.headers["x-batch-size"] == "1"
            m = c.get("/metrics").text
            [model] = c.get("/health").json()["models"]
        assert 'mlops_batch_requests_bucket{version="churn@v1",le="1"} 2' in m
        assert 'mlops_batch_rows_total{version="churn@v1"} 21' in m
        assert model["batching"] == {"max_size": 8, "max_wait_ms": 1000.0} and "precision" in model
    finally:
        _stop(port)


@pytest.mark.slow
def test_batching_keeps_the_token_on_the_predict_routes(store):
    X = _register()
    bg, port, _ = _start(batch="")
    try:
        for path in ("/predict", "/invocations"):
            r = httpx.post(bg.url + path, json=X.iloc[:1].to_dict("records"), timeout=10)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert httpx.get(bg.url + "/predict", headers=H, timeout=10).status_code == 405
    finally:
        _stop(port)


# -- stacking inputs, splitting outputs --------------------------------------------------------------
def test_merge_and_split_frames_arrays_and_dicts_of_arrays():
    from mlops_jupyter.serving.batching import merge_inputs, rows_of, split_rows, stack_key

    a, b = np.arange(6.0).reshape(3, 2), np.arange(4.0).reshape(2, 2)
    assert merge_inputs([a, b]).tolist() == a.tolist() + b.tolist()
    assert [p.tolist() for p in split_rows(merge_inputs([a, b]), [3, 2])] == [a.tolist(), b.tolist()]
    f, g = pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [3]})
    merged = merge_inputs([f, g])
    assert merged.x.tolist() == [1, 2, 3] and merged.index.tolist() == [0, 1, 2]
    assert [p.x.tolist() for p in split_rows(merged, [2, 1])] == [[1, 2], [3]]
    t1 = {"image": np.zeros((2, 3, 3)), "meta": np.ones((2, 4))}
    t2 = {"image": np.ones((1, 3, 3)), "meta": np.zeros((1, 4))}
    t = merge_inputs([t1, t2])
    assert rows_of(t) == 3 and t["image"].shape == (3, 3, 3) and t["meta"].shape == (3, 4)
    back = split_rows(t, [2, 1])
    assert (back[1]["image"] == 1).all() and back[0]["meta"].shape == (2, 4)
    # what cannot be stacked is told apart
    assert stack_key(a) == stack_key(b) != stack_key(a.astype(np.float32))
    assert stack_key(f) != stack_key(pd.DataFrame({"y": [1]})) and stack_key(t1) == stack_key(t2)


def test_each_served_model_has_its_own_batcher():
    from mlops_jupyter.serving.options import ServeOptions
    from mlops_jupyter.serving.served import Served
    from mlops_jupyter.serving.service import ModelService

    options = ServeOptions.from_user(ab="churn@v1:0.5,churn@v2:0.5", token=None, batch=(16, 1.0))
    service = ModelService(options)
    v1, v2, v3 = (Served(f"churn@v{i}", "churn", i, f"churn@v{i}", None, None, 1.0) for i in (1, 2, 3))
    service.set_served([v1, v2])
    b1, b2 = service.batcher(v1), service.batcher(v2)
    assert b1 is not b2 and b1.served is v1 and b1.max_size == 16 and b1.max_wait == 0.001
    service.set_served([v1, v3])  # v2 swapped for v3: v1 keeps its batch
    assert service.batcher(v1) is b1 and service.batcher(v3).served is v3 and service.batcher(v2) is None
    assert ModelService(ServeOptions.from_user(ref="churn@v1", token=None)).batcher(v1) is None


# -- options ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch,msg", [
    ("max_size=0", "--batch max_size takes a whole number of at least 1; got 0"),
    ("max_size=many", "--batch max_size takes a whole number of rows; got 'many'"),
    ("max_wait_ms=-1", "--batch max_wait_ms takes milliseconds between 0 and 1000; got -1.0"),
    ("max_wait_ms=soon", "--batch max_wait_ms takes milliseconds; got 'soon'"),
    ("size=8", "--batch takes max_size=ROWS,max_wait_ms=MS"),
    ((0, 2), "--batch max_size"),
])
def test_batch_options_refuse_bad_values(batch, msg):
    from mlops_jupyter.exceptions import BadInput
    from mlops_jupyter.serving.options import ServeOptions

    with pytest.raises(BadInput, match=re.escape(msg)):
        ServeOptions.from_user(ref="churn@production", token=None, batch=batch)


def test_batch_and_min_agreement_options_travel_to_workers():
    from mlops_jupyter.exceptions import BadInput
    from mlops_jupyter.serving.options import BatchOptions, ServeOptions

    options = ServeOptions.from_user(ref="churn@production", token="s3cret", runtime="onnx", quantize=True,
                                     batch="max_size=32,max_wait_ms=1.5", min_agreement="0.97")
    assert options.batch == BatchOptions(32, 1.5) and options.min_agreement == 0.97
    assert ServeOptions.from_json(options.to_json(), "s3cret") == options
    assert ServeOptions.from_user(ref="churn@production", token=None, batch="").batch == BatchOptions(64, 2.0)
    assert ServeOptions.from_user(ref="churn@production", token=None).batch is None  # off by default
    for bad, msg in [(dict(min_agreement=0.9), "--min-agreement applies only with --quantize"),
                     (dict(min_agreement="most", runtime="onnx", quantize=True), "--min-agreement takes a share"),
                     (dict(min_agreement=1.5, runtime="onnx", quantize=True), "--min-agreement takes a share")]:
        with pytest.raises(BadInput, match=re.escape(msg)):
            ServeOptions.from_user(ref="churn@production", token=None, **bad)


@pytest.mark.parametrize("args,msg", [
    (["--batch", "max_size=0"], "--batch max_size"),
    (["--batch", "max_wait_ms=-1"], "--batch max_wait_ms"),
    (["--batch", "colour=blue"], "--batch takes max_size=ROWS,max_wait_ms=MS"),
    (["--batch", "max_size=x"], "--batch max_size takes a whole number of rows"),
    (["--min-agreement", "0.9"], "only with --quantize"),
])
def test_serve_refuses_bad_batch_values_in_one_line(project, args, msg):
    r = run_cli("serve", "churn@production", "--port", str(free_port()), *args)
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_serve_magic_refuses_bad_batch_values(ip):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="--batch max_size"):
        ip.run_line_magic("mlops", f"serve churn@production --port {free_port()} --batch max_size=0")
