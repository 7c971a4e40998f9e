"""The prediction server in operation: prediction log and feedback, a failing store, alias
following under load, TLS, ONNX, fuzzing from the OpenAPI document, and a long load run of
``mlops serve`` in its own process (no acknowledged log record lost, memory flat)."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mj

from .conftest import PY, python_env
from .httpload import hammer
from .test_serving import free_port

H = {"Authorization": "Bearer t0k"}


def _register(n_features=5, alias="production", C=1.0, name="churn"):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((300, n_features)), columns=[f"f{i}" for i in range(n_features)])
    y = (X.f0 > 0.5).astype(int)
    mj.models.register(LogisticRegression(C=C).fit(X, y), name=name, example=X, alias=alias)
    return X


def _serve(refs="churn@production", token="t0k", **kw):
    from mlops_jupyter.serving import server

    port = free_port()
    return server.start_background(server.parse_ab(refs) if ":" in refs else [(refs, 1.0)], port=port,
                                   token=token, **kw), port


def _stop(port):
    from mlops_jupyter.serving import server

    server.stop_background(port)


def _log(model="churn", **kw):
    from mlops_jupyter.serving import predlog
    from mlops_jupyter.store import open_store

    return predlog.read(open_store().meta, model, **kw)


@pytest.mark.backends
def test_prediction_log_and_feedback(store):
    X = _register()
    bg, port = _serve()
    try:
        with httpx.Client(base_url=bg.url, timeout=10, headers=H) as c:
            ids = []
            for i in range(5):
                r = c.post("/predict", json=X.iloc[i * 2:i * 2 + 2].to_dict("records"))
                assert r.status_code == 200
                ids.append(r.json()["request_id"])
            # one label, a list of labels for a two-row request, a label for an id the log never saw
            r = c.post("/feedback", json=[{"request_id": ids[0], "label": 1},
                                          {"request_id": ids[1], "labels": [0, 1]},
                                          {"request_id": "0" * 32, "label": 0}])
            assert r.status_code == 200, r.text
            assert r.json()["stored"] == 4 and r.json()["unknown_request_ids"] == ["0" * 32]
            for bad, msg in [({"label": 1}, "request_id"), ({"request_id": ids[2], "labels": 3}, "labels"),
                             ({"request_id": "../x" * 40, "label": 1}, "request id")]:
                r = c.post("/feedback", json=bad)
                assert r.status_code == 422 and msg in r.json()["error"], r.text
            r = c.post("/feedback", json={"request_id": ids[0], "label": 0})  # a correction replaces the label
            assert r.json() == {"stored": 1}
            m = c.get("/metrics").text
            assert "mlops_labels_total 5" in m and "mlops_prediction_log_queued " in m
    finally:
        _stop(port)  # shutdown drains the log
    log = _log()
    assert len(log) == 10 and set(log.request_id) == set(ids)
    assert list(log.columns[:5]) == list(X.columns) and log.version.unique().tolist() == [1]
    first = log[log.request_id == ids[0]].sort_values("row")
    assert first.label.iloc[0] == 0 and pd.isna(first.label.iloc[1]) and np.allclose(first[list(X.columns)].values, X.iloc[:2].values)
    assert log[log.request_id == ids[1]].sort_values("row").label.tolist() == [0, 1]
    assert log.prediction.isin([0, 1]).all()


def test_log_sample_zero_logs_nothing_and_store_errors_never_fail_predictions(store, capfd):
    X = _register()
    body = X.iloc[:1].to_dict("records")
    bg, port = _serve(log_sample=0.0)
    try:
        assert all(httpx.post(bg.url + "/predict", json=body, headers=H).status_code == 200 for _ in range(5))
    finally:
        _stop(port)
    assert len(_log()) == 0

    db = os.path.join(".mlops", "mlops.db")
    bg, port = _serve()
    try:
        with httpx.Client(base_url=bg.url, timeout=10, headers=H) as c:
            con = sqlite3.connect(db)
            con.execute("ALTER TABLE predictions RENAME TO predictions_away")  # the store loses the table
            con.commit()
            try:
                assert all(c.post("/predict", json=body).status_code == 200 for _ in range(20))
                deadline = time.monotonic() + 15
                while 'outcome="error"} 0' in c.get("/metrics").text and time.monotonic() < deadline:
                    time.sleep(0.2)
                m = c.get("/metrics").text
                assert 'outcome="error"} 0' not in m and 'outcome="written"} 0' in m, m
            finally:
                con.execute("ALTER TABLE predictions_away RENAME TO predictions")
                con.commit()
                con.close()
            ok = c.post("/predict", json=body)
            assert ok.status_code == 200
    finally:
        _stop(port)
    assert "prediction log record(s) could not be written" in capfd.readouterr().err
    # The log works again once the store does. Requests answered while the writer was still retrying
    # the first failed batch may be written after the table comes back: only the first batch is lost.
    logged = _log().request_id.tolist()
    assert ok.json()["request_id"] in logged and len(logged) <= 20, logged


@pytest.mark.backends
def test_reload_alias_switches_versions_without_dropping_requests(store):
    X = _register()
    body = json.dumps(X.iloc[:1].to_dict("records")).encode()
    bg, port = _serve(reload_alias=0.2)
    statuses, versions, stop = [], [], threading.Event()

    def pound():
        with httpx.Client(base_url=bg.url, timeout=10, headers={**H, "Content-Type": "application/json"}) as c:
            while not stop.is_set():
                r = c.post("/predict", content=body)
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.append(r.json()["model_version"])

    t = threading.Thread(target=pound)
    t.start()
    try:
        time.sleep(0.5)
        _register(C=0.1, alias=None)  # the retrained challenger, v2
        mj.models.alias("churn@v2", "production")  # promoted
        deadline = time.monotonic() + 15
        while (not versions or versions[-1] != "churn@v2") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(20)
        _stop(port)
    assert set(statuses) == {200}, sorted(set(statuses))
    assert versions[0] == "churn@v1" and versions[-1] == "churn@v2"
    switch = versions.index("churn@v2")
    assert set(versions[switch:]) == {"churn@v2"}  # one switch, no flapping back


def test_tls(store, tmp_path):
    X = _register()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    bg, port = _serve(tls_cert=str(cert), tls_key=str(key))
    try:
        assert bg.url.startswith("https://")
        import ssl

        trust = ssl.create_default_context(cafile=str(cert))
        r = httpx.post(bg.url + "/predict", json=X.iloc[:2].to_dict("records"), headers=H, verify=trust)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        with pytest.raises(httpx.ConnectError):  # an untrusted certificate is refused by a default client
            httpx.post(bg.url + "/predict", json=[], headers=H)
        with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP on the TLS port gets no answer
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    finally:
        _stop(port)


def test_onnx_runtime_export_and_refusals(ip, capsys, tmp_path):
    import onnxruntime as ort
    from IPython.core.error import UsageError
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X = _register(n_features=20)
    port = free_port()
    ip.run_line_magic("mlops", f"serve churn@production --port {port} --runtime onnx --quantize")
    out = capsys.readouterr().out
    assert "predictions match the original" in out and f"127.0.0.1:{port}" in out
    try:
        r = httpx.post(f"http://127.0.0.1:{port}/predict?proba=true", json=X.iloc[:50].to_dict("records"))
        assert r.status_code == 200
        assert r.json()["predictions"] == mj.models.load("churn@production").predict(X.iloc[:50]).tolist()
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["models"][0]["runtime"] == "onnx"
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json=[{**X.iloc[0].to_dict(), "f3": "x"}])
        assert r.status_code == 422 and "f3" in r.json()["error"]
    finally:
        ip.run_line_magic("mlops", "serve stop")

    # export from the CLI face and the API: a file onnxruntime runs, same predictions
    from mlops_jupyter.cli import main

    assert main(["model", "export", "churn@v1", "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    labels = sess.run(None, {sess.get_inputs()[0].name: X.values.astype(np.float32)})[0]
    assert labels.tolist() == mj.models.load("churn@v1").predict(X).tolist()
    path = mj.models.export("churn@v1", quantize=True)
    assert path.endswith("churn-v1.int8.onnx") and os.path.getsize(path) > 0

    # a pipeline with a text column: one input per column
    rng = np.random.default_rng(1)
    M = pd.DataFrame({"age": rng.integers(18, 80, 200).astype(float), "plan": rng.choice(["a", "b", "c"], 200)})
    pipe = make_pipeline(ColumnTransformer([("n", StandardScaler(), ["age"]), ("c", OneHotEncoder(), ["plan"])]),
                         RandomForestClassifier(n_estimators=10, random_state=0)).fit(M, M.plan == "a")
    mj.models.register(pipe, name="mixed", example=M)
    port = free_port()
    ip.run_line_magic("mlops", f"serve mixed@v1 --port {port} --runtime onnx")
    try:
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json=M.iloc[:20].to_dict("records"))
        assert r.status_code == 200 and r.json()["predictions"] == pipe.predict(M.iloc[:20]).tolist()
    finally:
        ip.run_line_magic("mlops", "serve stop")
    capsys.readouterr()

    # models that cannot go to ONNX, or cannot be checked, are one line
    mj.models.register(RandomForestClassifier(n_estimators=3).fit(X, X.f0 > 0.5), name="noexample")
    for line, msg in [(f"serve noexample@v1 --port {free_port()} --runtime onnx", "example"),
                      (f"serve churn@v1 --port {free_port()} --quantize", "--runtime onnx"),
                      (f"serve churn@v1 --port {free_port()} --workers 2", "terminal")]:
        with pytest.raises(UsageError, match=msg):
            ip.run_line_magic("mlops", line)


def test_fuzz_from_openapi_document(store):
    """Generated requests from the server's own OpenAPI document: never a 5xx."""
    _register()
    bg, port = _serve()
    st = shutil.which("st") or shutil.which("schemathesis")
    cmd = [st] if st else [PY, "-m", "schemathesis.cli"]
    try:
        r = subprocess.run([*cmd, "run", bg.url + "/openapi.json", "-H", "Authorization: Bearer t0k",
                            "--checks", "not_a_server_error", "--max-examples", "40", "--seed", "7",
                            "--request-timeout", "10", "--no-color"],
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                           env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})
    finally:
        _stop(port)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "/predict" in r.stdout and "/feedback" in r.stdout


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _start_cli_server(project, *args):
    port = free_port()
    (project / "token.txt").write_text("t0k\n")
    proc = subprocess.Popen([PY, "-m", "mlops_jupyter.cli", "serve", "churn@production", "--port", str(port),
                             "--token-file", "token.txt", *args], cwd=project, env=python_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def _stop_cli_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err


def _logged_ids(project):
    con = sqlite3.connect(project / ".mlops" / "mlops.db")
    try:
        return {r[0] for r in con.execute("SELECT request_id FROM predictions")}
    finally:
        con.close()


def test_load_loses_no_acknowledged_log_record_and_memory_stays_flat(project):
    X = _register(n_features=20)
    proc, url = _start_cli_server(project)
    body = json.dumps(X.iloc[:1].to_dict("records")).encode()
    samples = []
    try:
        def sample(done):
            if done % 1000 == 0:
                samples.append((done, _rss_kib(proc.pid)))

        results = hammer(url, "/predict", body, total=20_000, conns=16, headers=H, on_progress=sample)
    finally:
        code, out, err = _stop_cli_server(proc)
    assert code in (0, -signal.SIGTERM), err  # uvicorn re-raises the signal after its graceful shutdown
    assert [s for s, _ in results] == [200] * 20_000
    acked = {json.loads(b)["request_id"] for _, b in results}
    assert len(acked) == 20_000
    assert acked <= _logged_ids(project)  # every acknowledged request reached the log
    warm = [kib for done, kib in samples if done >= 4000]
    growth_mib = (max(warm) - warm[0]) / 1024
    assert growth_mib < 16, f"RSS grew {growth_mib:.1f} MiB over 16,000 requests: {samples}"
    assert "could not be written" not in err and "dropping" not in err


def test_workers_share_the_port_and_all_log(project):
    X = _register()
    proc, url = _start_cli_server(project, "--workers", "2")
    try:
        results = hammer(url, "/predict", json.dumps(X.iloc[:3].to_dict("records")).encode(), total=400, conns=8,
                         headers=H)
        assert httpx.post(url + "/predict", json=[], headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        code, out, err = _stop_cli_server(proc)
    assert "with 2 workers" in out
    assert [s for s, _ in results] == [200] * 400
    assert {json.loads(b)["request_id"] for _, b in results} <= _logged_ids(project)


@pytest.mark.parametrize("args,msg", [
    (["serve", "nope@production", "--port", "1"], "nope"),
    (["serve", "churn@production", "--ab", "churn@v1"], "REF:WEIGHT"),
    (["serve", "churn@production", "--tls-cert", "c.pem"], "--tls-key"),
    (["serve", "churn@production", "--host", "0.0.0.0"], "token"),
    (["serve", "churn@v1", "--reload-alias"], "fixed version"),
    (["serve", "churn@production", "--log-sample", "1.5"], "log-sample"),
    (["model", "export", "churn@v1", "--format", "pmml"], "invalid choice"),
])
def test_cli_bad_input_is_exit_2(store, capsys, args, msg):
    from mlops_jupyter.cli import main

    _register()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
