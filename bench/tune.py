"""``mj.tune`` beside Optuna alone: the same search, and what tracking adds per trial.

    python -m bench.tune [--quick]

Workload: a deterministic 3-parameter objective that sleeps 10 ms (a fast model fit), 60 trials,
multivariate TPE with seed 0. Optuna alone is ``optuna.create_study().optimize`` in memory (the
floor: the search with nothing kept), and on Optuna's own SQLite storage (what keeping the study
costs Optuna itself); ours is ``mj.tune`` on a fresh project (SQLite store: the study in Optuna's
storage beside our tables, each trial a child run with its parameters and value). Each side runs in
its own process, interleaved, 3 rounds (--quick: 2 rounds of 30 trials). Also checked: the trials'
parameters and the best value are exactly Optuna's.

Per trial is measured two ways: the whole call divided by the trials (one-time costs included:
for ours, starting the process that writes the stored study, about 1.8 s, most of it Optuna's
storage setting up SQLAlchemy), and the marginal cost of a trial: the time of 3x the trials less the
time of 1x, over the 2x trials in between (TPE's own cost grows with the trials, on both sides).

Target (issue 24): at most 20 ms per trial over bare Optuna.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

from .common import table

QUICK = "--quick" in sys.argv
ROUNDS = 2 if QUICK else 3
TRIALS = 30 if QUICK else 60
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
mode, trials = sys.argv[1], int(sys.argv[2])
import optuna
optuna.logging.set_verbosity(optuna.logging.ERROR)

def objective(trial):
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_int("y", 0, 5)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    time.sleep(0.01)
    return (x - 2) ** 2 + y + (0.5 if kind == "b" else 0.0)

sampler = optuna.samplers.TPESampler(seed=0, multivariate=True)
if mode == "ours":
    import mlops_jupyter as mj
    mj.tune(objective, n_trials=2, name="warm-up", progress=False, direction="minimize")  # imports, first runs
    t = time.perf_counter()
    study = mj.tune(objective, n_trials=trials, direction="minimize", name="bench", seed=0, progress=False)
else:
    storage = "sqlite:///" + os.path.abspath("optuna.db") if mode == "optuna-sqlite" else None
    optuna.create_study(storage=storage, study_name="warm-up", sampler=optuna.samplers.TPESampler(seed=1)).optimize(
        objective, n_trials=2)
    study = optuna.create_study(storage=storage, study_name="bench", sampler=sampler, direction="minimize")
    t = time.perf_counter()
    study.optimize(objective, n_trials=trials)
seconds = time.perf_counter() - t
print(json.dumps({"per_trial": seconds / trials, "best": study.best_value, "params": [tr.params for tr in study.trials]}))
"""


def child(mode: str, trials: int = TRIALS) -> dict:
    work = tempfile.mkdtemp(prefix=f"bench-tune-{mode}-")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
               PYTHONWARNINGS="ignore")
    for var in ("MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL", "MLOPS_HOME"):
        env.pop(var, None)
    if mode == "ours":
        subprocess.run([sys.executable, "-m", "mlops_jupyter.cli", "init"], cwd=work, env=env, capture_output=True,
                       timeout=120)
    r = subprocess.run([sys.executable, "-c", CHILD, mode, str(trials)], cwd=work, env=env, capture_output=True,
                       text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise SystemExit("optuna is not installed (pip install 'mlops-jupyter[tune]')") from None
    modes = ["optuna", "optuna-sqlite", "ours"]
    per: dict = {m: [] for m in modes}
    marginal: dict = {m: [] for m in modes}
    same = []
    for _ in range(ROUNDS):
        outs = {m: child(m) for m in modes}
        longer = {m: child(m, 3 * TRIALS) for m in modes}
        for m in modes:
            per[m].append(outs[m]["per_trial"])
            marginal[m].append((longer[m]["per_trial"] * 3 * TRIALS - outs[m]["per_trial"] * TRIALS) / (2 * TRIALS))
        same.append(outs["ours"]["params"] == outs["optuna"]["params"] and outs["ours"]["best"] == outs["optuna"]["best"])
    floor = statistics.median(per["optuna"])
    floor_m = statistics.median(marginal["optuna"])
    rows = []
    for m in modes:
        med, mm = statistics.median(per[m]), statistics.median(marginal[m])
        rows.append([{"optuna": "Optuna alone, in memory", "optuna-sqlite": "Optuna alone, its SQLite storage",
                      "ours": "mj.tune (study + a run per trial)"}[m],
                     f"{med * 1e3:.1f} ms", f"{min(per[m]) * 1e3:.1f} – {max(per[m]) * 1e3:.1f} ms",
                     "" if m == "optuna" else f"{(med - floor) * 1e3:+.1f} ms", f"{med / floor:.2f}x",
                     f"{mm * 1e3:.1f} ms", "" if m == "optuna" else f"{(mm - floor_m) * 1e3:+.1f} ms"])
    table(f"tuning: wall time per trial, {TRIALS} trials of a 10 ms objective, median of {ROUNDS} rounds "
          f"(each side in its own process); marginal: trials {TRIALS + 1} to {3 * TRIALS}",
          ["side", "per trial", "min – max", "over bare Optuna", "ratio", "marginal", "marginal over bare"], rows)
    print(f"same trials and best value as Optuna alone (seed 0, multivariate TPE): {'yes' if all(same) else 'NO'} "
          f"in {sum(same)} of {len(same)} rounds")


if __name__ == "__main__":
    main()
