"""How fast the terminal answers: whole ``mlops`` processes, beside ``mlflow`` and ``dvc``.

Each command runs 9 times as a new process; the figure is the median minus the median of
``python -c pass`` measured in the same run (the interpreter's own start), with min and max.
The project holds 100 runs (4 params, 3 metrics of 20 points each), 3 datasets and 3 model
versions; MLflow's side holds the same 100 runs in a SQLite tracking store.

    python -m bench.cli
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

from .common import available, table

N = 9
RUNS = 100


def _time(argv: list[str], cwd: str, env: dict) -> tuple[float, float, float]:
    xs = []
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, stdin=subprocess.DEVNULL)  # bytecode written
    for _ in range(N):
        t = time.perf_counter()
        r = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL)
        xs.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {r.stderr.decode()[-500:]}")
    return statistics.median(xs), min(xs), max(xs)


def _fill_ours(folder: str, env: dict) -> None:
    code = f"""
import numpy as np, pandas as pd
import mlops_jupyter as mj
from sklearn.linear_model import LogisticRegression
for i in range({RUNS}):
    with mj.start_run(f"run-{{i}}", params={{"lr": 0.1 * i, "depth": i % 7, "model": "rf", "seed": i}}) as run:
        for step in range(20):
            run.log_metrics({{"loss": 1 / (step + 1 + i), "acc": 0.5 + step / 50, "auc": 0.6}}, step=step)
X = pd.DataFrame({{"a": np.arange(200.0), "b": np.arange(200.0) % 3}})
for name in ("train", "test", "holdout"):
    mj.data.add(X.assign(c=len(name)), name=name)
m = LogisticRegression().fit(X, X["b"] > 0)
for i in range(3):
    mj.models.register(m, name="churn", example=X.head(5))
"""
    subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, check=True, capture_output=True)


def _fill_mlflow(folder: str, env: dict) -> None:
    code = f"""
import mlflow
mlflow.set_tracking_uri("sqlite:///{folder}/mlflow.db")
for i in range({RUNS}):
    with mlflow.start_run(run_name=f"run-{{i}}"):
        mlflow.log_params({{"lr": 0.1 * i, "depth": i % 7, "model": "rf", "seed": i}})
        for step in range(20):
            mlflow.log_metrics({{"loss": 1 / (step + 1 + i), "acc": 0.5 + step / 50, "auc": 0.6}}, step=step)
"""
    subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, check=True, capture_output=True)


def main() -> None:
    work = tempfile.mkdtemp(prefix="bench-cli-")
    ours = os.path.join(work, "ours")
    os.makedirs(os.path.join(ours, ".mlops"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_") and k != "PYTHONDONTWRITEBYTECODE"}
    # Commands run from compiled bytecode, as after a pip install (an editable install, or a machine
    # with PYTHONDONTWRITEBYTECODE, would otherwise compile the project's modules on every start).
    env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlflow.db"
    print(f"filling a project with {RUNS} runs, 3 datasets, 3 model versions ...", flush=True)
    _fill_ours(ours, env)
    # the console script pip installed beside this interpreter (not a version manager's shim on PATH,
    # which would add its own start-up to every figure)
    script = os.path.join(sysconfig.get_path("scripts"), "mlops")
    mlops = [script] if os.path.exists(script) else [sys.executable, "-m", "mlops_jupyter.cli"]
    base = _time([sys.executable, "-c", "pass"], work, env)
    rows = []

    def add(what: str, argv: list[str], cwd: str, goal: float | None) -> float:
        m = _time(argv, cwd, env)
        beyond = m[0] - base[0]
        rows.append([what, f"{beyond * 1e3:.0f} ms", f"[{(m[1] - base[0]) * 1e3:.0f}–{(m[2] - base[0]) * 1e3:.0f}]",
                     f"{goal * 1e3:.0f} ms" if goal else "", ("ok" if beyond <= goal else "OVER") if goal else ""])
        return beyond

    add("mlops --help", [*mlops, "--help"], ours, 0.060)
    add("mlops help", [*mlops, "help"], ours, 0.060)
    ours_ls = add(f"mlops runs ls ({RUNS} runs)", [*mlops, "runs", "ls"], ours, 0.300)
    add("mlops data ls", [*mlops, "data", "ls"], ours, 0.300)
    add("mlops model ls", [*mlops, "model", "ls"], ours, 0.300)
    add("mlops model ls churn", [*mlops, "model", "ls", "churn"], ours, 0.300)
    mlflow_ls = None
    mlflow = os.path.join(sysconfig.get_path("scripts"), "mlflow")
    if available("mlflow") and os.path.exists(mlflow):
        _fill_mlflow(work, env)
        mlflow_ls = add(f"mlflow runs list ({RUNS} runs)", [mlflow, "runs", "list", "--experiment-id", "0"], work,
                        None)
        add("mlflow --help", [mlflow, "--help"], work, None)
    else:
        rows.append(["mlflow runs list", "skipped (mlflow not installed)", "", "", ""])
    dvc = os.environ.get("MLOPS_BENCH_DVC") or shutil.which("dvc")
    if dvc:
        add("dvc --help", [dvc, "--help"], work, None)
    else:
        rows.append(["dvc --help", "skipped (dvc not installed)", "", "", ""])
    table(f"whole processes, median of {N} minus python -c pass ({base[0] * 1e3:.0f} ms)",
          ["command", "beyond the interpreter", "[min–max]", "goal", ""], rows)
    if mlflow_ls:
        print(f"\nmlops runs ls is {mlflow_ls / ours_ls:.1f}x as fast as mlflow runs list on the same {RUNS} runs")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
