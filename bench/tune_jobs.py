"""``mlops tune`` over a promoted job: trials per minute on 1 and 2 local workers, the same search
done by hand (Optuna driving papermill) as the floor, and hyperband pruning against none in the same
time budget.

    python -m bench.tune_jobs [--quick] [--wait SECONDS] [--budget SECONDS] [--pruning-only]

Workload: a notebook that trains scikit-learn's SGDClassifier for 20 epochs on 4,000 rows and
logs the validation accuracy after each (``mj.log(acc=..., step=epoch)``); each epoch also waits
0.25 s (--wait), standing for the part of a real epoch spent outside this CPU (loading a batch, a
GPU). Pruning saves epochs, not a trial's fixed cost (kernel start, imports, registering the model:
about 7 s here), so its gain grows with the epochs' share of a trial: run it with --wait 1 too. The
accuracy is reduced by the distance of log10(lr) from -1.5, so the search has a clear optimum.
Space: lr (float, 1e-4 to 0.5, log) and penalty (l2, l1); multivariate TPE, seed 0.

1. Optuna alone + papermill (the floor: the same trials, each a papermill execution, nothing
   tracked, no pruning possible mid-notebook) and ``mlops tune`` on 1 worker, the same trial count.
2. ``mlops tune`` on 2 local workers, the same trial count (issue 24: >= 1.7x the trials per
   minute of 1 worker).
3. ``mlops tune`` on 1 worker for a fixed time with ``--prune hyperband`` and with ``--prune none``
   (issue 24: >= 2x the trials per minute at an equal or better best value).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import nbformat

from .common import table

QUICK = "--quick" in sys.argv


def _option(name: str, default: float) -> float:
    return float(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


TRIALS = 4 if QUICK else 8
BUDGET = int(_option("--budget", 60 if QUICK else 150))  # seconds, for pruning against none
WAIT = _option("--wait", 0.25)  # seconds an epoch waits besides its training

CELLS = [
    f"lr = 0.1\nepochs = 20\nwait = {WAIT}\npenalty = 'l2'",
    "import time, numpy as np\nimport mlops_jupyter as mj\nfrom sklearn.linear_model import SGDClassifier\n"
    "rng = np.random.default_rng(0)\nX = rng.normal(size=(5000, 20))\n"
    "y = (X[:, 0] + X[:, 1] - X[:, 2] + rng.normal(scale=0.5, size=5000) > 0).astype(int)\n"
    "clf = SGDClassifier(loss='log_loss', learning_rate='constant', eta0=lr, penalty=penalty, random_state=0)\n"
    "for epoch in range(epochs):\n"
    "    clf.partial_fit(X[:4000], y[:4000], classes=[0, 1])\n"
    "    acc = float((clf.predict(X[4000:]) == y[4000:]).mean()) - abs(np.log10(lr) + 1.5) * 0.05\n"
    "    mj.log(acc=acc, step=epoch)\n"
    "    time.sleep(wait)",
    "%load_ext mlops_jupyter\n%mlops model register clf --name sgd --example X[:5]",
]
SPACE = ["lr=float:0.0001:0.5:log", "penalty=cat:l2,l1"]

# Optuna driving papermill by hand: what a user writes without us (in its own process)
BY_HAND = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import optuna, papermill, nbformat
optuna.logging.set_verbosity(optuna.logging.ERROR)
trials = int(sys.argv[1])

def objective(trial):
    lr = trial.suggest_float("lr", 1e-4, 0.5, log=True)
    penalty = trial.suggest_categorical("penalty", ["l2", "l1"])
    out = f"out-{trial.number}.ipynb"
    papermill.execute_notebook("jobs/bench/notebook.ipynb", out, parameters={"lr": lr, "penalty": penalty},
                               progress_bar=False, log_output=False)
    nb = nbformat.read(out, as_version=4)
    return float(nb.cells[-1].outputs[-1]["text"].strip().splitlines()[-1])

sampler = optuna.samplers.TPESampler(seed=0, multivariate=True)
study = optuna.create_study(direction="maximize", sampler=sampler)
t = time.perf_counter()
study.optimize(objective, n_trials=trials)
print(json.dumps({"seconds": time.perf_counter() - t, "trials": trials, "best": study.best_value}))
"""


def _env() -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for var in ("MLOPS_HOME", "MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL", "MLOPS_RUN_ID", "MLOPS_PARENT_RUN_ID"):
        env.pop(var, None)
    return env


def _project() -> str:
    work = tempfile.mkdtemp(prefix="bench-tune-jobs-")
    env = _env()
    mlops = [sys.executable, "-m", "mlops_jupyter.cli"]
    subprocess.run([*mlops, "init", "."], cwd=work, env=env, check=True, capture_output=True, timeout=300)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nbformat.write(nb, os.path.join(work, "train.ipynb"))
    subprocess.run([*mlops, "promote", "train.ipynb", "--name", "bench", "--model", "sgd", "--metric", "acc"],
                   cwd=work, env=env, check=True, capture_output=True, timeout=300)
    return work


def _by_hand() -> dict:
    work = _project()
    # the same notebook without our calls (nothing tracked, no model registered); it prints its
    # final accuracy, which the hand-written objective reads back
    path = os.path.join(work, "jobs", "bench", "notebook.ipynb")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.source = cell.source.replace("mj.log(acc=acc, step=epoch)", "pass").replace(
            "import mlops_jupyter as mj\n", "")
    nb.cells = [c for c in nb.cells if "%mlops model register" not in c.source]
    nb.cells.append(nbformat.v4.new_code_cell("print(acc)"))
    nbformat.write(nb, path)
    r = subprocess.run([sys.executable, "-c", BY_HAND, str(TRIALS)], cwd=work, env=_env(), capture_output=True,
                       text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"Optuna + papermill failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _ours(*args: str) -> dict:
    work = _project()
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "mlops_jupyter.cli", "tune", "bench", "--space", *SPACE,
                        "--seed", "0", *args], cwd=work, env=_env(), capture_output=True, text=True, timeout=3600,
                       stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"mlops tune {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    code = ("import json, optuna\nfrom mlops_jupyter.store import open_store\n"
            "from mlops_jupyter.tuning.study import storage_for\n"
            "s = optuna.load_study(study_name='bench', storage=storage_for(open_store()))\n"
            "S = optuna.trial.TrialState\n"
            "print(json.dumps({'complete': sum(t.state == S.COMPLETE for t in s.trials),\n"
            "  'pruned': sum(t.state == S.PRUNED for t in s.trials), 'best': s.best_value}))")
    q = subprocess.run([sys.executable, "-c", code], cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
    if q.returncode != 0:
        raise SystemExit(q.stderr[-2000:])
    got = json.loads(q.stdout.strip().splitlines()[-1])
    got["seconds"] = seconds
    got["trials"] = got["complete"] + got["pruned"]
    return got


def _per_min(d: dict) -> float:
    return d["trials"] / d["seconds"] * 60


def main() -> None:
    if "--pruning-only" not in sys.argv:
        _workers()
    _pruning()


def _workers() -> None:
    hand = _by_hand()
    one = _ours("--trials", str(TRIALS), "--workers", "1", "--prune", "none")
    two = _ours("--trials", str(TRIALS), "--workers", "2", "--prune", "none")
    rows = []
    for label, d in (("Optuna + papermill by hand, 1 worker", hand), ("mlops tune, 1 worker", one),
                     ("mlops tune, 2 local workers", two)):
        rows.append([label, str(d["trials"]), f"{d['seconds']:.1f} s", f"{d['seconds'] / d['trials']:.2f} s",
                     f"{_per_min(d):.1f}", f"{d['best']:.4f}", f"{_per_min(d) / _per_min(one):.2f}x"])
    table(f"tuning a job: {TRIALS} trials of a 20-epoch notebook ({WAIT:g} s wait an epoch), no pruning "
          "(TPE, seed 0)", ["side", "trials", "wall", "per trial", "trials/min", "best acc", "vs 1 worker"], rows)
    print(f"2 workers vs 1: {_per_min(two) / _per_min(one):.2f}x the trials per minute (target >= 1.7x); "
          f"mlops tune's time per trial over Optuna + papermill by hand: "
          f"{(one['seconds'] / one['trials'] - hand['seconds'] / hand['trials']):+.2f} s")


def _pruning() -> None:
    none = _ours("--timeout", str(BUDGET), "--workers", "1", "--prune", "none")
    band = _ours("--timeout", str(BUDGET), "--workers", "1", "--prune", "hyperband")
    rows = []
    for label, d in (("--prune none", none), ("--prune hyperband", band)):
        rows.append([label, str(d["complete"]), str(d["pruned"]), f"{d['seconds']:.1f} s", f"{_per_min(d):.1f}",
                     f"{d['best']:.4f}", f"{_per_min(d) / _per_min(none):.2f}x"])
    table(f"pruning: 1 worker, 20 epochs ({WAIT:g} s wait an epoch), --timeout {BUDGET} s (trials still running "
          "at the limit finish)", ["pruner", "complete", "pruned", "wall", "trials/min", "best acc", "vs none"], rows)
    print(f"hyperband vs none: {_per_min(band) / _per_min(none):.2f}x the trials per minute (target >= 2x), "
          f"best {band['best']:.4f} vs {none['best']:.4f} "
          f"({'equal or better' if band['best'] >= none['best'] else 'WORSE'})")


if __name__ == "__main__":
    main()
