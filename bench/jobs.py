"""Promoted jobs: ``mlops job run`` beside a bare ``papermill`` call on the same notebook, and a
grid of 8 executions on 2 local workers beside the same 8 one after another.

    python -m bench.jobs [--quick]

The notebook trains a scikit-learn LogisticRegression on 400 rows, logs its AUC and registers
the model (a typical small training notebook: most of an execution is kernel start-up and
imports). Single executions are interleaved (papermill, ours, papermill, ours, ...), 5 rounds
(3 with --quick); both are whole commands started with subprocess.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from .common import fmt_spread, table

QUICK = "--quick" in sys.argv


def _timed(cmd: list[str], cwd: str, env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {r.stderr[-1500:]}")
    return took


def main() -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from tests.test_jobs import write_notebook

    work = tempfile.mkdtemp(prefix="bench-jobs-")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for var in ("MLOPS_HOME", "MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL", "MLOPS_RUN_ID", "MLOPS_PARENT_RUN_ID"):
        env.pop(var, None)
    mlops = [sys.executable, "-m", "mlops_jupyter.cli"]
    _timed([*mlops, "init", "."], work, env)
    write_notebook(os.path.join(work, "train.ipynb"))
    _timed([sys.executable, "-m", "papermill", "--log-level", "ERROR", "train.ipynb", "first.ipynb"], work, env)
    _timed([*mlops, "promote", "train.ipynb", "--name", "bench", "--model", "churn", "--metric", "auc"], work, env)
    nb = os.path.join("jobs", "bench", "notebook.ipynb")
    n = 3 if QUICK else 5
    bare, ours = [], []
    for i in range(n):
        bare.append(_timed([sys.executable, "-m", "papermill", "--log-level", "ERROR", nb, f"out{i}.ipynb",
                            "-p", "C", "0.5"], work, env))
        ours.append(_timed([*mlops, "job", "run", "bench", "-p", "C", "0.5"], work, env))

    def spread(xs):
        return statistics.median(xs), min(xs), max(xs)

    b, o = spread(bare), spread(ours)
    over = (o[0] / b[0] - 1) * 100
    table(f"one execution of a small training notebook, whole command, median of {n} [min–max]",
          ["", "wall time", "vs papermill"],
          [["papermill (bare)", fmt_spread(b), ""],
           ["mlops job run", fmt_spread(o), f"{over:+.1f}% (target: at most +10%)"]])

    grid = ["C=0.01,0.1,1,10", "max_iter=100,200"]
    seq = _timed([*mlops, "retrain", "bench", "--grid", *grid, "--workers", "1"], work, env)
    par = _timed([*mlops, "retrain", "bench", "--grid", *grid, "--workers", "2"], work, env)
    table("retrain: a grid of 8 executions",
          ["", "wall time", "speed-up"],
          [["8 one after another (--workers 1)", f"{seq:.1f} s", ""],
           ["8 on 2 local workers (--workers 2)", f"{par:.1f} s", f"{seq / par:.2f}x (target: at least 1.7x)"]])


if __name__ == "__main__":
    main()
