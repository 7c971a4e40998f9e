"""The prediction server over real HTTP on 127.0.0.1 (a uvicorn server on a thread of this process)."""

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
