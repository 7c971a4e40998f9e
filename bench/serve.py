"""Model serving over HTTP: ours beside the serving floor and ``mlflow models serve``, same model,
same load generator.

    python -m bench.serve [--quick] [--duration SECONDS] [--only-ours]

Workload (as in the issue): a scikit-learn LogisticRegression on 20 features, registered in our
store and saved as an MLflow model. Every server runs on 127.0.0.1; ``wrk`` (Debian package) posts
the same ``dataframe_split`` body to ``/invocations`` on each, one server at a time, interleaved,
after a warm-up. Single-row requests at concurrency 1, 8 and 32, then 1,000-row batches at
concurrency 8.

- **ours**: ``mlops serve`` with its defaults: every prediction validated and logged to the store.
- **ours --batch**: the same with ``--batch max_size=64,max_wait_ms=2`` (requests that arrive
  together answered by one model call; each still validated, logged and answered on its own).
- **floor**: a bare ASGI app on the same stack (uvicorn with httptools and uvloop, orjson, the same
  uvicorn settings as ours) that reads the body and answers a fixed prediction, no model: what
  any server on this stack costs. Ours is also given as a share of it.
- **mlflow**: ``mlflow models serve`` (skipped with --only-ours or when not installed).

``BENCH_SERVE_ARGS`` adds options to both of ours (e.g. ``--log-sample 0`` or ``--runtime onnx``);
``BENCH_SERVE_BASELINE=/path/to/other/checkout`` adds **before**: ``mlops serve`` of that checkout
(e.g. ``git archive HEAD | tar -x -C /tmp/base``), for before/after figures from one run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from .common import table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = "max_size=64,max_wait_ms=2"


def _args():
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one round of 4 s per case")
    ap.add_argument("--duration", type=int, help="seconds per case and round (default 8, 4 with --quick)")
    ap.add_argument("--only-ours", action="store_true", help="skip mlflow models serve")
    return ap.parse_args()


ARGS = _args() if __name__ == "__main__" else None
QUICK = bool(ARGS and ARGS.quick)
DURATION = (ARGS and ARGS.duration) or (4 if QUICK else 8)
ROUNDS = 1 if QUICK else 3


# -- the floor: the stack without a model ----------------------------------------------------------------
FLOOR_ANSWER = {"predictions": [1], "model_version": "lr@v1", "request_id": "0" * 32}


async def floor_app(scope, receive, send):
    """A bare ASGI app: read the request's body, answer a fixed prediction (orjson-encoded)."""
    import orjson

    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = orjson.dumps(FLOOR_ANSWER)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


FLOOR_SERVER = ("import uvicorn; uvicorn.run('bench.serve:floor_app', host='127.0.0.1', port={port}, loop='uvloop', "
                "http='httptools', log_level='warning', access_log=False, proxy_headers=False, lifespan='off')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def wrk(url: str, body_file: str, conns: int, seconds: int) -> dict:
    threads = min(conns, 2)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", body_file, url],
                         capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {}
    for pct, v, unit in LATENCY.findall(text):
        lat[pct] = float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"), "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(0) if errors else ""}


def lua(path: str, body: str) -> str:
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(body)}\n")
    return path


def start(argv: list[str], cwd: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def scrape(url: str) -> dict[str, float]:
    """From ours' /metrics: requests answered 200, prediction log records written and dropped,
    batched model calls and the requests they answered."""
    with urllib.request.urlopen(url + "/metrics") as r:
        m = r.read().decode()

    def total(pattern: str) -> float:
        return sum(float(x) for x in re.findall(pattern, m))

    return {"answered": total(r'mlops_requests_total\{route="/invocations",version="[^"]+",status="200"\} (\d+)'),
            "written": total(r'mlops_prediction_log_total\{outcome="written"\} (\d+)'),
            "dropped": total(r'mlops_prediction_log_total\{outcome="dropped"\} (\d+)'),
            "calls": total(r'mlops_batch_requests_count\{[^}]*\} (\d+)'),
            "batched": total(r'mlops_batch_requests_sum\{[^}]*\} (\d+)')}


def main() -> None:
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk): skipped")
        return
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    work = tempfile.mkdtemp(prefix="bench-serve-")
    os.chdir(work)
    X, y = make_classification(n_samples=5000, n_features=20, n_informative=10, random_state=0)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    model = LogisticRegression(max_iter=1000).fit(X, y)

    from mlops_jupyter.config import init_project
    from mlops_jupyter.models.registry import Registry
    from mlops_jupyter.store import open_store

    init_project(work)
    store = open_store()
    Registry(store).register(model, "lr", example=X.iloc[:5], alias="production")
    store.close()

    have_mlflow = shutil.which("mlflow") is not None
    only_ours = bool(ARGS and ARGS.only_ours)
    if have_mlflow and not only_ours:
        import warnings

        warnings.simplefilter("ignore")
        import mlflow.sklearn
        from mlflow.models import infer_signature

        mlflow.sklearn.save_model(model, os.path.join(work, "mlflow-model"),
                                  signature=infer_signature(X.iloc[:5], model.predict(X.iloc[:5])))

    rng = np.random.default_rng(1)
    one = {"dataframe_split": {"columns": list(X.columns), "data": X.iloc[:1].round(6).values.tolist()}}
    batch_rows = X.iloc[rng.integers(0, len(X), 1000)].round(6).values.tolist()
    batch = {"dataframe_split": {"columns": list(X.columns), "data": batch_rows}}
    one_lua = lua(os.path.join(work, "one.lua"), json.dumps(one))
    batch_lua = lua(os.path.join(work, "batch.lua"), json.dumps(batch))

    # The subprocesses import this checkout (and bench.serve's floor app), wherever it is installed.
    env = dict(os.environ, PYTHONWARNINGS="ignore", MLFLOW_TRACKING_URI=f"sqlite:///{work}/mlflow.db",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    extra = os.environ.get("BENCH_SERVE_ARGS", "").split()  # e.g. "--log-sample 0" or "--runtime onnx"
    ours = [sys.executable, "-m", "mlops_jupyter.cli", "serve", "lr@production", *extra, "--port"]
    baseline = os.environ.get("BENCH_SERVE_BASELINE")
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        for name, argv, ready in [("before", lambda p: [*ours, str(p)], "/health"),
                                  ("ours", lambda p: [*ours, str(p)], "/health"),
                                  ("ours --batch", lambda p: [*ours, str(p), "--batch", BATCH], "/health"),
                                  ("floor", lambda p: [sys.executable, "-c", FLOOR_SERVER.format(port=p)], "/")]:
            if name == "before" and not baseline:
                continue
            port = free_port()
            e = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [baseline, os.environ.get("PYTHONPATH")]))) \
                if name == "before" else env
            servers[name] = (start(argv(port), work, e), f"http://127.0.0.1:{port}")
            wait_ready(servers[name][1] + ready, servers[name][0])
        if have_mlflow and not only_ours:
            q = free_port()
            servers["mlflow"] = (start(["mlflow", "models", "serve", "-m", os.path.join(work, "mlflow-model"), "-p",
                                        str(q), "-h", "127.0.0.1", "--env-manager", "local"], work, env),
                                 f"http://127.0.0.1:{q}")
            wait_ready(servers["mlflow"][1] + "/ping", servers["mlflow"][0])
        for name, (_, url) in servers.items():  # warm-up
            wrk(url + "/invocations", one_lua, 8, 2)
            wrk(url + "/invocations", batch_lua, 8, 2)
        results: dict = {}
        cases = [("1 row, c=1", one_lua, 1), ("1 row, c=8", one_lua, 8), ("1 row, c=32", one_lua, 32),
                 ("1,000 rows, c=8", batch_lua, 8)]
        for case, body, conns in cases:
            for _ in range(ROUNDS):
                for name, (_, url) in servers.items():
                    if name == "floor" and body is batch_lua:
                        continue  # the floor predicts nothing: rows/s would mean nothing
                    results.setdefault((case, name), []).append(wrk(url + "/invocations", body, conns, DURATION))
        report(cases, servers, results, only_ours, have_mlflow)
        time.sleep(1.0)  # the prediction logs write every 0.2 s
        for name in [n for n in servers if n.startswith(("ours", "before"))]:
            m = scrape(servers[name][1])
            calls = f"; {m['batched']:,.0f} requests in {m['calls']:,.0f} model calls " \
                    f"({m['batched'] / m['calls']:.1f} a call)" if m["calls"] else ""
            print(f"{name}: {m['answered']:,.0f} predictions answered, {m['written']:,.0f} logged, "
                  f"{m['dropped']:,.0f} dropped{calls}")
    finally:
        for proc, _ in servers.values():
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def report(cases: list, servers: dict, results: dict, only_ours: bool, have_mlflow: bool) -> None:
    rows = []
    for case, _, _ in cases:
        per = 1000 if case.startswith("1,000") else 1
        summary = {}
        for name in servers:
            rs = results.get((case, name))
            if not rs:
                continue
            rps = [r["rps"] * per for r in rs]
            summary[name] = (statistics.median(rps), min(rps), max(rps),
                             statistics.median(r["p50"] for r in rs), statistics.median(r["p99"] for r in rs),
                             sum(r["non2xx"] for r in rs))
        unit = "rows/s" if per > 1 else "req/s"
        for name, (med, lo, hi, p50, p99, bad) in summary.items():
            rows.append([case, name, f"{med:,.0f} [{lo:,.0f}–{hi:,.0f}] {unit}", f"{p50:.2f} ms", f"{p99:.2f} ms",
                         str(bad)])
        if "floor" in summary:
            for name in [n for n in summary if n.startswith(("ours", "before"))]:
                rows.append([case, f"{name} / floor", f"{summary[name][0] / summary['floor'][0]:.1%} of the floor",
                             "", "", ""])
        if "mlflow" in summary:
            rows.append([case, "ours / mlflow", f"{summary['ours'][0] / summary['mlflow'][0]:.1f}x throughput",
                         f"{summary['mlflow'][3] / summary['ours'][3]:.1f}x faster",
                         f"{summary['mlflow'][4] / summary['ours'][4]:.1f}x faster", ""])
        else:
            rows.append([case, "mlflow", "skipped (--only-ours)" if only_ours else "skipped (not installed)",
                         "", "", ""])
    table(f"serving a LogisticRegression on 20 features: wrk, {DURATION} s x {ROUNDS} rounds, median [min–max]",
          ["workload", "server", "throughput", "p50", "p99", "non-2xx"], rows)


if __name__ == "__main__":
    main()
