"""Autologging's cost on ``fit``: ours beside ``mlflow.autolog()`` (MLflow's SQLite store) and the
bare fit, on the same data, in one run.

    python -m bench.autolog [--quick]

MLflow runs twice: as it comes, and with ``log_models=False``.

Workloads: a small fit (LogisticRegression on 300 x 8, a few milliseconds), a one-second fit
(RandomForestClassifier on 20,000 x 20, its tree count chosen here so that a bare fit takes about
one second), and PyTorch Lightning's ``Trainer.fit`` of a small MLP (4,000 x 16, 5 epochs, with
validation) when Lightning is installed. Each mode runs in its own process (both libraries patch scikit-learn), the three
interleaved round by round; each process warms up with one fit, then times ``fit()`` alone (what
the user waits for) over several fits. For ours, the time until everything is written (the
worker's training metrics, model, dataset) is measured too: ``mj.runs()`` waits for it.

Targets (issue 23): at most 5% added to the one-second fit, at most 2 ms added to any fit.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from .common import table

QUICK = "--quick" in sys.argv
ROUNDS = 2 if QUICK else 3
FITS = {"small": 10 if QUICK else 30, "second": 2 if QUICK else 3, "lightning": 2 if QUICK else 3}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
mode, workload, fits, trees = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
if workload == "small":
    X = rng.normal(size=(300, 8)); y = (X[:, 0] + X[:, 1] > 0).astype(int)
    from sklearn.linear_model import LogisticRegression
    make = lambda: LogisticRegression(max_iter=200)
elif workload == "second":
    X = rng.normal(size=(20000, 20)); y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    from sklearn.ensemble import RandomForestClassifier
    make = lambda: RandomForestClassifier(n_estimators=trees, max_depth=12, random_state=0, n_jobs=1)
else:
    import logging
    import torch, lightning as L
    from torch.utils.data import DataLoader, TensorDataset
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    X = torch.tensor(rng.normal(size=(4000, 16)), dtype=torch.float32); y = (X[:, 0] + X[:, 1] > 0).float()
    train = DataLoader(TensorDataset(X[:3200], y[:3200]), batch_size=64)
    val = DataLoader(TensorDataset(X[3200:], y[3200:]), batch_size=256)

    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
        def forward(self, x):
            return self.body(x).squeeze(-1)
        def training_step(self, b, i):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(self(b[0]), b[1])
            self.log("train_loss", loss, on_epoch=True, on_step=False)
            return loss
        def validation_step(self, b, i):
            self.log("val_loss", torch.nn.functional.binary_cross_entropy_with_logits(self(b[0]), b[1]))
        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    class make:
        def fit(self, X, y):
            L.Trainer(max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False).fit(Net(), train, val)
if mode == "ours":
    import mlops_jupyter as mj
    mj.autolog()
elif mode.startswith("mlflow"):
    import mlflow, logging
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri("sqlite:///" + os.path.abspath("mlflow.db"))
    mlflow.autolog(silent=True, log_models=mode == "mlflow")
make().fit(X, y)  # warm-up: imports, first run, caches
if mode == "ours":
    mj.runs()
times = []
t_all = time.perf_counter()
for _ in range(fits):
    t = time.perf_counter(); make().fit(X, y); times.append(time.perf_counter() - t)
settled = None
if mode == "ours":
    mj.runs()  # waits for the worker: everything written
    settled = (time.perf_counter() - t_all) / fits
print(json.dumps({"times": times, "settled": settled}))
"""


def child(mode: str, workload: str, fits: int, trees: int) -> dict:
    work = tempfile.mkdtemp(prefix=f"bench-autolog-{mode}-")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
               PYTHONWARNINGS="ignore", MLFLOW_TRACKING_URI="")
    if mode == "ours":
        subprocess.run([sys.executable, "-m", "mlops_jupyter.cli", "init"], cwd=work, env=env, capture_output=True,
                       timeout=120)
    r = subprocess.run([sys.executable, "-c", CHILD, mode, workload, str(fits), str(trees)], cwd=work, env=env,
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{mode} {workload} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def calibrate() -> int:
    """Trees for a bare fit of about one second on this machine."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 20))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    t = time.perf_counter()
    RandomForestClassifier(n_estimators=10, max_depth=12, random_state=0, n_jobs=1).fit(X, y)
    per_tree = (time.perf_counter() - t) / 10
    return max(5, round(1.0 / per_tree))


def main() -> None:
    try:
        import mlflow  # noqa: F401
        have_mlflow = True
    except ImportError:
        have_mlflow = False
    # MLflow as it comes, and without logging models (most of its time goes to inferring each
    # model's pip requirements in a subprocess)
    modes = ["plain", "ours"] + (["mlflow", "mlflow-no-models"] if have_mlflow else [])
    try:
        import lightning  # noqa: F401
    except ImportError:
        FITS.pop("lightning")
        print("lightning is not installed: its workload skipped")
    trees = calibrate()
    results: dict = {(w, m): [] for w in FITS for m in modes}
    settled: dict = {w: [] for w in FITS}
    for _ in range(ROUNDS):
        for workload, fits in FITS.items():
            for mode in modes:
                out = child(mode, workload, fits, trees)
                results[(workload, mode)].extend(out["times"])
                if out["settled"] is not None:
                    settled[workload].append(out["settled"])
    rows = []
    for workload in FITS:
        plain = statistics.median(results[(workload, "plain")])
        label = {"small": "LogisticRegression 300 x 8", "second": f"RandomForest {trees} trees, 20,000 x 20",
                 "lightning": "Lightning MLP 3,200 x 16, 5 epochs"}[workload]
        for mode in modes:
            med = statistics.median(results[(workload, mode)])
            added = med - plain
            rows.append([label, mode, f"{med * 1e3:,.2f} ms", "" if mode == "plain" else f"{added * 1e3:+,.2f} ms",
                         "" if mode == "plain" else f"{added / plain:+.1%}"])
        s = statistics.median(settled[workload])
        rows.append([label, "ours, until written", f"{s * 1e3:,.2f} ms", f"{(s - plain) * 1e3:+,.2f} ms",
                     f"{(s - plain) / plain:+.1%}"])
    table(f"autologging: fit() wall time, median of {ROUNDS} rounds x fits per round "
          f"({', '.join(f'{w}: {n}' for w, n in FITS.items())}); each mode in its own process",
          ["workload", "mode", "fit()", "added", "added / bare fit"], rows)
    if have_mlflow:
        for workload in FITS:
            plain = statistics.median(results[(workload, "plain")])
            ours = statistics.median(results[(workload, "ours")]) - plain
            for m in ("mlflow", "mlflow-no-models"):
                theirs = statistics.median(results[(workload, m)]) - plain
                print(f"{workload}: {m} adds {theirs * 1e3:,.1f} ms, ours {ours * 1e3:,.2f} ms "
                      f"({theirs / ours:,.0f}x less)" if ours > 0 else
                      f"{workload}: {m} adds {theirs * 1e3:,.1f} ms, ours nothing measurable")
    else:
        print("mlflow is not installed (pip install mlflow): its side skipped")


if __name__ == "__main__":
    main()
