"""``mlops demo``: the main job end to end, through the example notebooks, on the embedded store.

In a folder of its own (default ``./mlops-demo``) with its own ``.mlops/`` (SQLite and a local blob
store, whatever ``MLOPS_STORE_URL`` says), headlessly (papermill):

1. ``quickstart.ipynb`` tracks a run, versions the training data, trains, registers, explains,
   promotes the model to ``production``, serves it and sends it a request;
2. ``retraining.ipynb`` is promoted into a job and retrained over a small grid: the best execution's
   model challenges ``@production``;
3. ``monitoring.ipynb`` serves the model, sends it ordinary then drifted traffic, measures drift and
   lets ``monitor check`` retrain through the job.

The executed notebooks are kept in ``executed/``; everything else is in the store.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

NOTEBOOKS = ("quickstart.ipynb", "retraining.ipynb", "monitoring.ipynb")
MODEL = "breast-cancer"  # what the notebooks register
JOB = "breast-cancer-job"
METRIC = "auc"
RULE = "drift_share > 0.3 or accuracy < 0.8"
GRID = ["max_depth=3,6"]
# Variables that would point the demo (or its kernels) at another store, run, job or W&B project.
_FOREIGN = ("MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL", "MLOPS_WANDB_PROJECT", "MLOPS_RUN_ID", "MLOPS_PARENT_RUN_ID",
            "MLOPS_JOB", "MLOPS_JOB_MODEL", "MLOPS_JOB_TRIGGER", "MLOPS_NOTEBOOK_PATH", "PAPERMILL_INPUT_PATH",
            "JPY_SESSION_NAME")


def examples_folder() -> Path:
    """Where the example notebooks are: shipped in the wheel (``mlops_jupyter/examples``), or the
    source tree's ``notebooks/``."""
    here = Path(__file__).resolve().parent
    for folder in (here / "examples", here.parent / "notebooks"):
        if all((folder / name).is_file() for name in NOTEBOOKS):
            return folder
    from .exceptions import NotFound

    raise NotFound(f"the example notebooks ({', '.join(NOTEBOOKS)}) are not installed with this package")


@contextmanager
def _own_project(root: Path):
    """This process and the kernels it starts use the demo folder's store, and no run or job of a
    caller; the environment is restored afterwards."""
    from .store import close_store

    saved = {k: os.environ.get(k) for k in (*_FOREIGN, "MLOPS_HOME")}
    for k in _FOREIGN:
        os.environ.pop(k, None)
    os.environ["MLOPS_HOME"] = str(root)
    close_store()
    try:
        yield
    finally:
        close_store()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _execute(name: str, folder: Path, parameters: dict | None = None) -> float:
    """Run one notebook of the demo folder into executed/; seconds taken. A failing cell is a
    :class:`JobFailed` naming the notebook, the cell and the executed copy."""
    import papermill as pm

    from .exceptions import JobFailed
    from .jobs import execute_notebook
    from .store import close_store

    out = folder / "executed" / name
    out.parent.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    close_store()  # the kernel writes to the store; this process reads it afresh afterwards
    try:
        execute_notebook(folder / name, out, parameters=parameters, cwd=folder, progress=False)
    except pm.PapermillExecutionError as e:
        first = (e.source or "").strip().splitlines()
        what = f"{e.ename}: {str(e.evalue).strip()[:300]}" if str(e.evalue).strip() else e.ename
        raise JobFailed(f"{name} failed in cell [{e.exec_count}] ({first[0][:60] if first else ''}): {what}; "
                        f"the executed notebook is {out}") from None
    finally:
        close_store()
    return time.perf_counter() - t0


def _stage(out: Callable[[str], None], n: int, text: str) -> None:
    out(f"[{n}/4] {text} ...")


def _done(out: Callable[[str], None], seconds: float, text: str) -> None:
    out(f"      {seconds:.1f} s: {text}")


def run_demo(folder: str = "mlops-demo", out: Callable[[str], None] = print, grid: list[str] | None = None,
             workers: int | None = None) -> None:
    """Run the demo in *folder* (created if needed); see the module docstring.

    Args:
        folder: the demo's project folder; the notebooks are copied into it (replacing earlier copies).
        out: where the progress and the summary go, a line at a time.
        grid: the retraining grid (default ``max_depth=3,6``).
        workers: executions of the grid at once (default: 2, or 1 on a single core).
    """
    from .config import init_project

    source = examples_folder()
    target = Path(folder).resolve()
    target.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        shutil.copyfile(source / name, target / name)
    root = init_project(target)
    out(f"mlops demo in {target}: its own store in {root / '.mlops'}; the main job, through "
        f"{', '.join(NOTEBOOKS)}")
    t_all = time.perf_counter()
    with _own_project(root):
        _stage(out, 1, "quickstart.ipynb: track, version the data, train, register, explain, evaluate, promote, serve")
        started = time.time()
        seconds = _execute("quickstart.ipynb", target)
        _done(out, seconds, _quickstart_outcome(started))

        grid = list(grid or GRID)
        workers = workers or min(2, os.cpu_count() or 1)
        _stage(out, 2, f"retraining.ipynb: promoted into job {JOB}, retrained over {' '.join(grid)}")
        t0 = time.perf_counter()
        from .jobs.promote import promote_notebook
        from .jobs.runner import retrain

        promote_notebook(target / "retraining.ipynb", JOB, model=MODEL, metric=METRIC, retrain_when=RULE,
                         root=root)
        # retrain's own lines (one per execution) are left out: the stage says what came of them
        batch = retrain(JOB, grid=grid, workers=workers, out=lambda line: None, progress=False, trigger="demo")
        ok = sum(e.ok for e in batch.executions)
        _done(out, time.perf_counter() - t0, f"{ok} of {len(batch.executions)} executions finished; "
                                             f"{batch.decision or 'no decision'}")
        for e in batch.failed:
            out(f"      FAILED {' '.join(f'{k}={v}' for k, v in e.params.items())}: {e.error}")

        _stage(out, 3, "monitoring.ipynb: serve, ordinary then drifted traffic, drift, monitor, monitor check")
        seconds = _execute("monitoring.ipynb", target, {"model": MODEL, "job": JOB, "retrain_when": RULE})
        _done(out, seconds, _monitoring_outcome())

        out("[4/4] what is in the store:")
        for line in _summary():
            out(line)
    hints = [(f"cd {target}", ""), ("mlops runs ls", "every run (mlops show RUN: one of them)"),
             (f"mlops model ls {MODEL}", f"the versions and their aliases (mlops model history {MODEL})"),
             (f"mlops model card {MODEL}@v1 -o card.html", "what is known about v1: data, evaluation, explanation, "
                                                          "monitoring, aliases, audit (breast-cancer-card.html)"),
             (f"mlops job show {JOB}", f"the job: parameters, retraining rule, executions (jobs/{JOB}/)"),
             (f"mlops monitor {MODEL}@production --since 1h", "traffic, latency, accuracy and drift"),
             ("jupyter lab", "the notebooks; executed copies, with their outputs, in executed/")]
    width = max(len(c) for c, _ in hints)
    out(f"\ndone in {time.perf_counter() - t_all:.0f} s. Look around:")
    for command, what in hints:
        out(f"  {command.ljust(width)}   {what}".rstrip())


def _quickstart_outcome(since: float) -> str:
    from .models.registry import Registry
    from .serving.predlog import requests
    from .store import open_store

    store = open_store()
    v = Registry(store).get(f"{MODEL}@production")
    methods = sorted({e["method"].upper() for e in v.explanations}, reverse=True)  # SHAP, then LIME
    answered = len(requests(store.meta, MODEL, since=since))
    return (f"{v.ref} ({METRIC} {v.metrics.get(METRIC, float('nan')):.4g}) is @production, explained with "
            f"{' and '.join(methods) or 'nothing'}; served, {answered} request{'s' if answered != 1 else ''} answered")


def _monitoring_outcome() -> str:
    from .monitoring.history import checks, reports

    drift = reports(model=MODEL)
    last = drift.iloc[-1] if len(drift) else None
    found = (f"{int(last['n_drifted'])} of {int(last['n_compared'])} features drifted"
             if last is not None else "no drift report")
    check = checks(JOB)
    fired = check.iloc[-1] if len(check) else None
    if fired is None:
        return f"{found}; no monitor check recorded"
    return f"{found}; monitor check {'fired' if fired['fired'] else 'did not fire'}: {fired['outcome']}"


def _summary() -> list[str]:
    from .models.registry import Registry
    from .store import open_store
    from .tracking.query import runs_frame, search_runs
    from .widgets.terminal import render_runs

    store = open_store()
    runs = runs_frame(search_runs(store))
    versions = Registry(store).versions(MODEL)[["ref", "aliases", "run_id", "datasets", "metrics"]]
    versions["run_id"] = versions["run_id"].str[:8]
    return [f"runs ({len(runs)}):", render_runs(runs), "", f"versions of {MODEL}:",
            versions.to_string(index=False)]
