"""Tracking speed: ours beside MLflow (SQLite backend) and W&B (offline), in one run.

    python -m bench.tracking [--quick]

Figures: per-point logging cost, durability after stop, memory for 1,000,000 points,
start + stop of an empty run, and import + %load_ext time.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
import warnings

from .common import available, fmt_spread, fmt_time, now, ratio, rounds, run_python, table

QUICK = "--quick" in sys.argv
warnings.filterwarnings("ignore")


def _fresh_project() -> str:
    d = tempfile.mkdtemp(prefix="bench-mlops-")
    os.chdir(d)
    from mlops_jupyter.config import init_project
    from mlops_jupyter.store import close_store

    close_store()
    init_project(d)
    return d


# -- per point ---------------------------------------------------------------------------
def ours_per_point(n: int = 100_000) -> tuple:
    import mlops_jupyter as mj

    _fresh_project()
    run = mj.start_run("bench-points")
    calls, totals = [], []
    for r in range(5):
        base = r * n
        t = now()
        for i in range(n):
            run.log_metric("loss", 0.5, base + i)
        t1 = now()
        run._writer.flush()
        t2 = now()
        calls.append((t1 - t) / n)
        totals.append((t2 - t) / n)
    run.end()
    import statistics

    return ((statistics.median(calls), min(calls), max(calls)),
            (statistics.median(totals), min(totals), max(totals)))


def mlflow_per_point(n: int = 200) -> tuple | None:
    if not available("mlflow"):
        return None
    import mlflow

    d = tempfile.mkdtemp(prefix="bench-mlflow-")
    mlflow.set_tracking_uri(f"sqlite:///{d}/mlflow.db")
    mlflow.set_experiment("bench")
    with mlflow.start_run():
        mlflow.log_metric("warm", 0.0, 0)

        def one():
            t = now()
            for i in range(n):
                mlflow.log_metric("loss", 0.5, step=i)
            return (now() - t) / n

        out = rounds(one, 5 if not QUICK else 3)
    return out


def wandb_per_point(n: int = 5_000) -> tuple | None:
    if not available("wandb"):
        return None
    import wandb

    d = tempfile.mkdtemp(prefix="bench-wandb-")
    run = wandb.init(project="bench", mode="offline", dir=d, settings=wandb.Settings(silent=True))

    def one():
        t = now()
        for i in range(n):
            run.log({"loss": 0.5})
        return (now() - t) / n

    out = rounds(one, 5 if not QUICK else 3)
    run.finish()
    return out


# -- durability after stop ---------------------------------------------------------------------
def ours_durable(n: int = 10_000) -> tuple:
    import mlops_jupyter as mj
    from mlops_jupyter.store.metadata import MetadataStore

    _fresh_project()

    def one():
        run = mj.start_run("durable")
        for i in range(n):
            run.log_metric("x", float(i), i)
        t = now()
        run.end()
        dt = now() - t
        fresh = MetadataStore(run.store.settings.store_url)
        assert len(fresh.metric_history(run.run_id, "x")) == n
        fresh.close()
        return dt

    return rounds(one, 5)


# -- memory for a million points -------------------------------------------------------------------
MEMORY = textwrap.dedent("""
    import os, resource, json, tempfile
    os.chdir(tempfile.mkdtemp())
    import mlops_jupyter as mj
    from mlops_jupyter.config import init_project
    init_project(os.getcwd())
    run = mj.start_run("million")
    for i in range(1000):
        run.log_metric("warm", 0.1, i)
    run._writer.flush()
    import psutil, threading, time
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)
    th = threading.Thread(target=sample, daemon=True); th.start()
    maxq = 0
    t = time.perf_counter()
    for i in range(1_000_000):
        run.log_metric("loss", 0.5, i)
        if i % 1000 == 0:
            maxq = max(maxq, len(run._writer.points))
    t_log = time.perf_counter() - t
    run.end()
    t_all = time.perf_counter() - t
    stop.set(); th.join()
    print(json.dumps({"growth_mib": (peak[0] - base) / 2**20, "max_queue": maxq, "log_s": t_log, "total_s": t_all}))
""")


def ours_memory() -> dict:
    return json.loads(run_python(MEMORY))


# -- start + stop of an empty run ------------------------------------------------------------------------
def ours_start_stop(n: int = 30) -> tuple:
    import mlops_jupyter as mj

    _fresh_project()
    mj.start_run("warm").end()

    def one():
        t = now()
        for _ in range(n):
            mj.start_run("empty").end()
        return (now() - t) / n

    return rounds(one, 5)


def mlflow_start_stop(n: int = 10) -> tuple | None:
    if not available("mlflow"):
        return None
    import mlflow

    d = tempfile.mkdtemp(prefix="bench-mlflow-")
    mlflow.set_tracking_uri(f"sqlite:///{d}/mlflow.db")
    mlflow.set_experiment("bench")
    mlflow.start_run()
    mlflow.end_run()

    def one():
        t = now()
        for _ in range(n):
            mlflow.start_run()
            mlflow.end_run()
        return (now() - t) / n

    return rounds(one, 5 if not QUICK else 3)


def wandb_start_stop() -> tuple | None:
    if not available("wandb"):
        return None
    import wandb

    d = tempfile.mkdtemp(prefix="bench-wandb-")

    def one():
        t = now()
        run = wandb.init(project="bench", mode="offline", dir=d, settings=wandb.Settings(silent=True))
        run.finish()
        return now() - t

    return rounds(one, 3)


# -- import + load_ext ------------------------------------------------------------------------------------
IMPORT = textwrap.dedent("""
    import time
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()   # the kernel has this already
    t = time.perf_counter()
    {stmt}
    print(time.perf_counter() - t)
""")


def import_time(stmt: str) -> tuple:
    return rounds(lambda: float(run_python(IMPORT.format(stmt=stmt), cwd=tempfile.mkdtemp())), 5)


def main() -> None:
    print("# tracking benchmark (median [min–max] of 5 rounds unless said)")
    call, total = ours_per_point(20_000 if QUICK else 100_000)
    mf = mlflow_per_point()
    wb = wandb_per_point()
    table("log one metric point (amortized)", ["workload", "mlops-jupyter", "MLflow sqlite", "W&B offline",
                                               "MLflow/ours", "W&B/ours"], [
        ["call cost", fmt_spread(call), fmt_spread(mf), fmt_spread(wb), ratio(call[0], mf and mf[0]),
         ratio(call[0], wb and wb[0])],
        ["call + write to disk", fmt_spread(total), "(same: synchronous)", "—", ratio(total[0], mf and mf[0]), "—"],
    ])

    dur = ours_durable()
    table("10,000 points durable after stop", ["figure", "mlops-jupyter"], [["stop() until all on disk", fmt_spread(dur)]])

    mem = ours_memory()
    table("1,000,000 points in one run", ["figure", "mlops-jupyter"], [
        ["peak RSS growth", f"{mem['growth_mib']:.1f} MiB"],
        ["largest writer queue seen", f"{mem['max_queue']:,} points"],
        ["logging calls", fmt_time(mem["log_s"])],
        ["logging + stop (all durable)", fmt_time(mem["total_s"])],
    ])

    ss = ours_start_stop()
    mss = mlflow_start_stop()
    wss = wandb_start_stop()
    table("start + stop of an empty run", ["mlops-jupyter", "MLflow sqlite", "W&B offline", "MLflow/ours", "W&B/ours"], [
        [fmt_spread(ss), fmt_spread(mss), fmt_spread(wss), ratio(ss[0], mss and mss[0]), ratio(ss[0], wss and wss[0])]])

    ours_imp = import_time("import mlops_jupyter; ip.run_line_magic('load_ext', 'mlops_jupyter')")
    mf_imp = import_time("import mlflow") if available("mlflow") else None
    wb_imp = import_time("import wandb") if available("wandb") else None
    table("import (+ %load_ext) in a running IPython", ["mlops-jupyter", "import mlflow", "import wandb",
                                                        "MLflow/ours", "W&B/ours"], [
        [fmt_spread(ours_imp), fmt_spread(mf_imp), fmt_spread(wb_imp), ratio(ours_imp[0], mf_imp and mf_imp[0]),
         ratio(ours_imp[0], wb_imp and wb_imp[0])]])


if __name__ == "__main__":
    main()
