"""How long a model card takes for a version with evaluation, explanation and monitoring data.

    python -m bench.card

Workload: a LogisticRegression trained in a run on a data version, evaluated on 20,000 labelled rows
with a slice column and a baseline version (200 resamples), explained with SHAP on 500 rows, served
by the real model server on 127.0.0.1 for 200 requests with probabilities and posted labels, and
drift-checked against its training data. Timed: ``mj.model_card(ref)`` (reading everything from the
store), its HTML with every chart drawn as SVG, and ``mlops model card REF -o card.html`` as a whole
process (Python's own start included). Median of 5 with min and max; the first (cold) call apart.

Target (issue 25): under 1 s for the card.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from .common import table


def frame(n: int, seed: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"x{i}" for i in range(6)])
    df["region"] = rng.choice(["north", "south", "east", "west"], n)
    df["churned"] = (df.x0 - 0.5 * df.x1 + rng.normal(size=n) > 0).astype(int)
    return df


def setup(folder: str) -> str:
    import httpx
    from sklearn.linear_model import LogisticRegression

    import mlops_jupyter as mj
    from mlops_jupyter.serving import server

    mj.init(folder)
    features = [f"x{i}" for i in range(6)]
    train, test = frame(5000, 0), frame(20_000, 1)
    with mj.start_run("baseline"):
        mj.data.add(train, name="train")
        mj.models.register(LogisticRegression(C=0.01).fit(train[features[:2]].assign(x2=0, x3=0, x4=0, x5=0),
                                                          train.churned), "churn", example=train[features])
    with mj.start_run("train"):
        mj.data.add(train, name="train")
        mj.models.register(LogisticRegression().fit(train[features], train.churned), "churn", example=train[features],
                           alias="production")
    ref = mj.data.add(test, name="test").ref
    mj.evaluate("churn@v2", ref, target="churned", by=["region"], baseline="churn@v1", progress=False)
    mj.explain("churn@v2", test[features], rows=500, progress=False)
    mj.models.describe("churn@v2", intended_use="Benchmark.", limitations="Synthetic data.")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server.start_background([("churn@production", 1.0)], port=port, token="t0k")
    try:
        ids, truth = [], []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer t0k"},
                          timeout=10) as c:
            for i in range(200):
                r = c.post("/predict", json=[test.iloc[i][features].to_dict()], params={"proba": "true"})
                ids.append(r.json()["request_id"])
                truth.append(int(test.iloc[i].churned))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                mj.log_labels(ids, truth)
                break
            except mj.BadInput:  # the log is still being written
                time.sleep(0.2)
    finally:
        server.stop_background(port)
    mj.drift("train@v1", "serving:churn@v2", progress=False)
    return "churn@v2"


def main() -> None:
    warnings.simplefilter("ignore")
    folder = tempfile.mkdtemp(prefix="bench-card-")
    os.chdir(folder)
    ref = setup(folder)
    import mlops_jupyter as mj

    def timed(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    cold = {"build": timed(lambda: mj.model_card(ref)), "html": timed(lambda: mj.model_card(ref).html())}
    build = [timed(lambda: mj.model_card(ref)) for _ in range(5)]
    html = [timed(lambda: mj.model_card(ref).html()) for _ in range(5)]
    card = mj.model_card(ref)
    assert card.evaluations and card.explanation and card.monitoring and card.monitoring["figures"]
    cmd = [sys.executable, "-m", "mlops_jupyter.cli", "model", "card", ref, "-o", "card.html"]
    procs = [timed(lambda: subprocess.run(cmd, check=True, capture_output=True)) for _ in range(5)]
    bare = [timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)) for _ in range(5)]

    def row(label, xs, first=None):
        return [label, f"{statistics.median(xs) * 1e3:.0f} ms [{min(xs) * 1e3:.0f}–{max(xs) * 1e3:.0f}]",
                f"{first * 1e3:.0f} ms" if first is not None else "—"]

    table(f"model card of {ref}: evaluation (20,000 rows, slices, baseline), SHAP, 200 served requests, drift",
          ["what", "median [min–max] of 5", "first call"],
          [row("mj.model_card(ref): read from the store", build, cold["build"]),
           row("... and its HTML, every chart drawn (SVG)", html, cold["html"]),
           row("mlops model card REF -o card.html (a process)", procs),
           row("python -c pass (the floor of a process)", bare)])
    print(f"\nthe card's page: {os.path.getsize('card.html'):,} bytes, {open('card.html').read().count('<svg')} charts")
    print("target: under 1 s for the card")


if __name__ == "__main__":
    main()
