"""The JupyterLab panel's list route over HTTP with 10,000 runs in the project.

    python -m bench.lab [--runs 10000] [--requests 30]

Makes a project with N finished runs (3 params, 3 metrics of 10 steps each), starts
``jupyter server`` on 127.0.0.1 with a token and the extension, and times what the panel asks
for: the first page, a filtered page, a page sorted by a metric, the last page, one run's details.
The target is 200 ms for the list route; no anchor ships such a route (MLflow's UI pages through
its REST search, a different workload), so none is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

from .common import fmt_spread, table

TOKEN = "bench-token"


def make_project(folder: str, n: int) -> None:
    os.environ["MLOPS_HOME"] = folder
    from mlops_jupyter.config import init_project
    from mlops_jupyter.store import close_store, open_store
    from mlops_jupyter.tracking.values import encode_params, encode_tags

    init_project(folder)
    store = open_store()
    t0 = time.time() - n
    points = []
    for i in range(n):
        rid = uuid.uuid4().hex
        start = t0 + i
        store.meta.create_run(dict(run_id=rid, name=f"run-{i}", status="finished", start_time=start, end_time=start + 1,
                                   parent_id=None, notebook="/work/train.ipynb", username="bench", host="bench", pid=1,
                                   pid_start=None, heartbeat=start, source="script"),
                              encode_params({"lr": 0.001 * (i % 100), "depth": i % 12, "model": f"m{i % 7}"}),
                              encode_tags({"team": "a" if i % 2 else "b"}))
        for step in range(10):
            for key, v in (("loss", 1 / (step + 1 + i % 50)), ("acc", (i % 97) / 100), ("auc", (i % 89) / 100)):
                points.append((rid, key, step, v, start + step))
        if len(points) >= 30_000:
            store.meta.insert_metrics(points)
            points = []
    store.meta.insert_metrics(points)
    close_store()
    del os.environ["MLOPS_HOME"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlops-bench-lab-") as folder:
        t = time.perf_counter()
        make_project(folder, args.runs)
        print(f"project with {args.runs:,} runs made in {time.perf_counter() - t:.1f} s")
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
                                 "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
                                 "--ServerApp.port_retries=0", f"--ServerApp.root_dir={folder}"],
                                cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        base = f"http://127.0.0.1:{port}/mlops/api/"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", timeout=2)
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise SystemExit("jupyter server did not start")
                    time.sleep(0.3)

            def timed(path: str) -> tuple[float, float, float]:
                req = urllib.request.Request(base + path, headers={"Authorization": f"token {TOKEN}"})
                urllib.request.urlopen(req).read()  # warm
                xs = []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    urllib.request.urlopen(req).read()
                    xs.append(time.perf_counter() - t)
                return statistics.median(xs), min(xs), max(xs)

            q = urllib.parse.quote
            last = max(0, args.runs - 50)
            cases = [("first page (50, newest first)", "runs?limit=50"),
                     ("filtered: metrics.acc > 0.9 and params.depth < 3",
                      f"runs?limit=50&where={q('metrics.acc > 0.9 and params.depth < 3')}"),
                     ("sorted by a metric: -metrics.auc", f"runs?limit=50&sort={q('-metrics.auc')}"),
                     (f"last page (offset {last:,})", f"runs?limit=50&offset={last}"),
                     ("one run with its series", "runs/last")]
            rows = []
            for label, path in cases:
                m = timed(path)
                target = "≤ 200 ms: " + ("yes" if m[0] <= 0.2 else "NO") if path.startswith("runs?") else ""
                rows.append([label, fmt_spread(m), target])
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
    table(f"Panel routes over HTTP, {args.runs:,} runs (median [min-max] of {args.requests} requests)",
          ["request", "time", "target"], rows)


if __name__ == "__main__":
    main()
