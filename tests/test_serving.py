"""The prediction server over real HTTP on 127.0.0.1 (a uvicorn server on a thread of this process)."""

import re
import socket

import httpx
import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mj


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(store):
    from sklearn.linear_model import LogisticRegression

    from mlops_jupyter.serving import server

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((300, 5)), columns=list("abcde"))
    y = (X.a > 0.5).astype(int)
    mj.models.register(LogisticRegression().fit(X, y), name="churn", example=X, alias="production")
    mj.models.register(LogisticRegression(C=0.1).fit(X, y), name="churn", example=X)
    port = free_port()
    bg = server.start_background(server.parse_ab("churn@production:0.5,churn@v2:0.5"), port=port, token="t0k")
    yield bg, X
    server.stop_background(port)


@pytest.mark.backends
def test_predict_forms_auth_ab_and_metrics(served):
    bg, X = served
    H = {"Authorization": "Bearer t0k"}
    with httpx.Client(base_url=bg.url, timeout=10) as c:
        assert c.get("/health").json()["status"] == "ready"  # no token needed
        assert c.get("/openapi.json").status_code == 401  # everything else needs it
        assert c.post("/predict", json=[{}], headers={"Authorization": "Bearer nope"}).status_code == 401
        recs = X.iloc[:3].to_dict("records")
        for body in (recs, {"columns": list(X.columns), "data": X.iloc[:3].values.tolist()},
                     {"dataframe_split": X.iloc[:3].to_dict("split")}, {"dataframe_records": recs},
                     {"inputs": recs}):
            r = c.post("/invocations", json=body, headers=H)
            assert r.status_code == 200 and len(r.json()["predictions"]) == 3, r.text
        r = c.post("/predict?proba=true", json=recs, headers=H)
        assert np.allclose(np.sum(r.json()["probabilities"], axis=1), 1) and r.json()["classes"] == [0, 1]
        # a key always reaches the same version; without keys both versions answer
        seen = {c.post("/predict", json=recs, headers={**H, "X-Request-Key": "user-7"}).json()["model_version"]
                for _ in range(20)}
        assert len(seen) == 1
        both = {c.post("/predict", json=recs, headers=H).json()["model_version"] for _ in range(60)}
        assert both == {"churn@v1", "churn@v2"}
        for body, status, msg in [([{"a": 1}], 422, "missing column"), ([{**recs[0], "z": 1}], 422, "unknown column"),
                                  ([{**recs[0], "b": "x"}], 422, "column 'b', row 0"), ([], 422, "no rows")]:
            r = c.post("/predict", json=body, headers=H)
            assert r.status_code == status and msg in r.json()["error"], r.text
        r = c.post("/predict", content=b"{nope", headers={**H, "Content-Type": "application/json"})
        assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
        r = c.post("/predict", content=b"a,b", headers={**H, "Content-Type": "text/csv"})
        assert r.status_code == 415
        r = c.post("/predict", content=b"[" + b"1," * (6 << 20) + b"1]", headers={**H, "Content-Type": "application/json"})
        assert r.status_code == 413
        big = pd.DataFrame(np.random.default_rng(1).random((10_000, 5)), columns=list("abcde"))
        r = c.post("/predict", json={"dataframe_split": big.to_dict("split")}, headers=H)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 10_000
        m = c.get("/metrics", headers=H).text
        assert 'mlops_requests_total{route="/predict",version="churn@v1",status="200"}' in m
        assert "mlops_unauthorized_total 2" in m and 'mlops_request_seconds_bucket{version="churn@v2",le="+Inf"}' in m


def test_serve_magic_starts_and_stops_by_port(ip, capsys):
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame(np.random.default_rng(0).random((50, 3)), columns=list("abc"))
    mj.models.register(LogisticRegression().fit(X, X.a > 0.5), name="churn", example=X, alias="production")
    p1, p2 = free_port(), free_port()
    for p in (p1, p2):
        ip.run_line_magic("mlops", f"serve churn@production --port {p}")
        assert f"at http://127.0.0.1:{p}" in capsys.readouterr().out
    try:
        ip.run_line_magic("mlops", f"serve stop --port {p1}")  # only that one
        assert f":{p1}" in capsys.readouterr().out
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{p1}/health", timeout=5)
        assert httpx.get(f"http://127.0.0.1:{p2}/health", timeout=5).json()["status"] == "ready"
    finally:
        ip.run_line_magic("mlops", "serve stop")
    assert f":{p2}" in capsys.readouterr().out


# -- one resolution, one load, one conversion per served ref -------------------------------------------
@pytest.fixture
def counted(monkeypatch):
    """Calls of the registry's ref parser, lookup and load, and of the ONNX conversion."""
    import collections

    from mlops_jupyter.models import onnx_export, registry

    calls = collections.Counter()

    def count(owner, name):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    count(registry, "parse_model_ref")
    count(registry.Registry, "get")
    count(registry.Registry, "load_version")
    count(onnx_export, "export_onnx")
    return calls


def _register_numeric(name="churn"):
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame(np.random.default_rng(0).random((200, 4)), columns=list("abcd"))
    mj.models.register(LogisticRegression().fit(X, X.a > 0.5), name=name, example=X, alias="production")
    return X


@pytest.mark.slow
def test_serve_resolves_loads_and_converts_each_ref_once(store, counted):
    """What ``mlops serve churn@production --runtime onnx`` runs: options, models, server."""
    from mlops_jupyter.serving import server
    from mlops_jupyter.serving.options import ServeOptions
    from mlops_jupyter.serving.served import load_models

    X = _register_numeric()
    counted.clear()
    options = ServeOptions.from_user(ref="churn@production", port=free_port(), runtime="onnx", token="t0k")
    served = load_models(options)
    bg = server.start_background(options, preload=served)
    try:
        with httpx.Client(base_url=bg.url, timeout=10, headers={"Authorization": "Bearer t0k"}) as c:
            r = c.post("/predict", json=X.iloc[:5].to_dict("records"))
            assert r.status_code == 200 and r.json()["model_version"] == "churn@v1", r.text
            [m] = c.get("/health").json()["models"]
            assert {k: m[k] for k in ("version", "weight", "runtime", "batching")} == {
                "version": "churn@v1", "weight": 1.0, "runtime": "onnx", "batching": None}
    finally:
        server.stop_background(options.port)
    # one parse (by the options; the lookup takes the parsed ref), one lookup, one load, one conversion
    assert counted == {"parse_model_ref": 1, "get": 1, "load_version": 1, "export_onnx": 1}, counted


def test_workers_load_the_versions_their_parent_resolved(store, counted):
    from mlops_jupyter.serving.options import ServeOptions
    from mlops_jupyter.serving.served import load_models, versions_from_json, versions_to_json

    _register_numeric()
    options = ServeOptions.from_user(ref="churn@production", port=free_port())
    served = load_models(options)
    mj.models.register(served[0].predictor.model, name="churn", alias="production")  # the alias moves: v2
    counted.clear()
    again = load_models(options, versions=versions_from_json(versions_to_json(served)))
    assert [s.ref for s in again] == ["churn@v1"] and again[0].source == "churn@production"
    assert counted == {"load_version": 1}, counted


@pytest.mark.slow
def test_serve_command_resolves_loads_and_converts_once(ip, capsys, counted):
    _register_numeric()
    counted.clear()
    port = free_port()
    ip.run_line_magic("mlops", f"serve churn@production --port {port} --runtime onnx")
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["status"] == "ready"
    finally:
        ip.run_line_magic("mlops", "serve stop")
    assert counted == {"parse_model_ref": 1, "get": 1, "load_version": 1, "export_onnx": 1}, counted


# -- options: built and checked once ----------------------------------------------------------------
@pytest.mark.parametrize("given,msg", [
    (dict(runtime="tensorrt"), "unknown serving runtime 'tensorrt'; known: native, onnx"),
    (dict(quantize=True), "--quantize applies to --runtime onnx"),
    (dict(host="0.0.0.0"), "without a token"),
    (dict(tls_cert="c.pem"), "--tls-cert and --tls-key go together"),
    (dict(port=70000), "--port takes a whole number between 1 and 65535"),
    (dict(workers=-1), "--workers"),
    (dict(log_sample=1.5), "--log-sample"),
    (dict(reload_alias=0), "--reload-alias takes seconds above 0"),
    (dict(ref="churn@v3", reload_alias=2.0), "churn@v3 names a fixed version"),
    (dict(ref="bad name"), "model name 'bad name' is not allowed"),
    (dict(ab="churn@v1:0.5,churn@v2"), "REF:WEIGHT"),
    (dict(ab="churn@v1:0"), "must be above 0"),
])
def test_serve_options_refuse_bad_values(given, msg):
    from mlops_jupyter.exceptions import BadInput
    from mlops_jupyter.serving.options import ServeOptions

    kw = {"ref": "churn@production", "token": None, **given}
    with pytest.raises(BadInput, match=re.escape(msg)):
        ServeOptions.from_user(**kw)


def test_serve_options_travel_to_workers_without_the_token():
    from mlops_jupyter.serving.options import ServeOptions

    options = ServeOptions.from_user(ab="churn@v1:0.9,churn@production:0.1", host="0.0.0.0", token="s3cret",
                                     runtime="onnx", quantize=True)
    assert [(r.text, r.weight, r.moving) for r in options.refs] == [("churn@v1", 0.9, False),
                                                                    ("churn@production", 0.1, True)]
    text = options.to_json()
    assert "s3cret" not in text and "s3cret" not in repr(options)
    assert ServeOptions.from_json(text, "s3cret") == options


def test_runtimes_are_chosen_by_name():
    from mlops_jupyter.exceptions import BadInput
    from mlops_jupyter.serving.runtime import prepare, runtimes

    assert runtimes.names() == ["native", "onnx"]
    with pytest.raises(BadInput, match="unknown serving runtime 'tvm'; known: native, onnx"):
        prepare(object(), None, runtime="tvm")
