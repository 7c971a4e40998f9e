"""Team store speed: metric logging into PostgreSQL, ours beside MLflow on the same server, in one run.

    python -m bench.team [--quick]

Two fresh databases on the local PostgreSQL server (Debian's, started when it is not running): one
for mlops-jupyter, one for MLflow. Both go through the same driver, psycopg 3 (``postgresql+psycopg://``:
MLflow 3.17 takes that URI as it is; psycopg2 is not needed).

The workload is a run: start it, log N points of one metric, end it; timed until every point is
committed in PostgreSQL. Ours: ``mj.start_run``, ``run.log_metric`` x N, ``run.end()`` (which
flushes the background writer). MLflow: ``create_run``, then ``log_metric`` x N (one transaction
per point) or ``log_batch`` of 1,000 points x N/1,000, then ``set_terminated``. Then 16 processes
at once, each doing the same into one database (aggregate points/s from the common start to the
last end). Each side first does WARM untimed runs of the same work. Figures: median [min–max] of the
rounds; ratios are ours/MLflow in points per second.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

from .common import available, fmt_spread, fmt_time, now, table
from .pgserver import fresh_database, server

QUICK = "--quick" in sys.argv
N_RUN = 1_000 if QUICK else 2_000  # points per run, the same for every side
N_BIG = 20_000 if QUICK else 100_000  # points per run where MLflow logs in batches
ROUNDS = 3 if QUICK else 5
ROUNDS_SMALL = 5 if QUICK else 9  # runs of N_RUN points take milliseconds: more rounds, a steadier median
ROUNDS_MLFLOW_POINTS = 3  # MLflow per point costs milliseconds a point
PROCS = 16
M_BATCH = 5_000 if QUICK else 20_000  # points per process, 16 at once
M_POINT = 200 if QUICK else 500  # ... where MLflow logs point by point
ROUNDS_PROCS = 2 if QUICK else 3
BATCH = 1000  # MLflow's most metrics per log_batch call
WARM = 3  # untimed runs of N_RUN points on each side before timing (a fresh database's first writes cost more)

warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)


def spread(xs: list[float]) -> tuple[float, float, float]:
    return statistics.median(xs), min(xs), max(xs)


def fmt_rate(points: int, m: tuple[float, float, float] | None) -> str:
    """Points per second of the median round, with the slowest and fastest rounds."""
    if m is None:
        return "skipped"
    return f"{points / m[0]:,.0f} [{points / m[2]:,.0f}–{points / m[1]:,.0f}]"


def ratio_rate(ours: tuple | None, theirs: tuple | None) -> str:
    """How many times ours' points/s is theirs (same points on both sides: their time / ours)."""
    if ours is None or theirs is None:
        return "—"
    return f"{theirs[0] / ours[0]:.1f}x"


def count_points(url: str, table_name: str, where: str) -> int:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            return conn.exec_driver_sql(f"SELECT count(*) FROM {table_name} WHERE {where}").scalar()
    finally:
        eng.dispose()


# -- the workload, the same on each side and in every process -------------------------------------
def ours_project(url: str):
    """mlops_jupyter in a fresh project folder on the store at *url*."""
    os.chdir(tempfile.mkdtemp(prefix="bench-team-"))
    os.environ["MLOPS_STORE_URL"] = url
    import mlops_jupyter as mj
    from mlops_jupyter.config import init_project
    from mlops_jupyter.store import close_store

    close_store()
    init_project(os.getcwd())
    return mj


def ours_run(mj, name: str, n: int) -> str:
    """Start a run, log n points of one metric, end it (which commits every point); its id."""
    run = mj.start_run(name)
    log = run.log_metric
    for i in range(n):
        log("loss", i * 1e-3, i)
    run.end()
    return run.run_id


def mlflow_client(url: str):
    """An MlflowClient on *url* and the id of its experiment 'bench' (made when missing)."""
    os.chdir(tempfile.mkdtemp(prefix="bench-team-mlflow-"))
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name("bench")
    return client, exp.experiment_id if exp else client.create_experiment("bench")


def mlflow_run(client, exp: str, mode: str, n: int) -> str:
    """create_run, n points by log_metric ('point') or by log_batch of BATCH ('batch'), set_terminated."""
    from mlflow.entities import Metric

    rid = client.create_run(exp).info.run_id
    if mode == "point":
        for i in range(n):
            client.log_metric(rid, "loss", i * 1e-3, step=i)
    else:
        ts = int(time.time() * 1000)
        for j in range(0, n, BATCH):
            client.log_batch(rid, metrics=[Metric("loss", i * 1e-3, ts, i) for i in range(j, min(n, j + BATCH))])
    client.set_terminated(rid)
    return rid


# -- one process ---------------------------------------------------------------------------------
def ours_runs(url: str, sizes: dict[int, int]) -> dict[int, tuple]:
    """{n: (median, min, max) seconds for start + n points + end} in a project on *url*."""
    from mlops_jupyter.store import close_store

    mj = ours_project(url)
    for _ in range(WARM):  # the same work untimed first, as on MLflow's side: no first-use cost is timed
        ours_run(mj, "warm", N_RUN)
    out = {}
    for n, rounds in sizes.items():
        times = []
        for _ in range(rounds):
            t = now()
            rid = ours_run(mj, "bench", n)
            times.append(now() - t)
            got = count_points(url, "metrics", f"run_id = '{rid}'")
            assert got == n, (got, n)
        out[n] = spread(times)
    close_store()
    del os.environ["MLOPS_STORE_URL"]
    return out


def mlflow_runs(url: str, sizes: dict[tuple[str, int], int]) -> dict[tuple[str, int], tuple]:
    """{(mode, n): (median, min, max)} for create_run + n points + set_terminated; mode 'point' or 'batch'."""
    client, exp = mlflow_client(url)
    for _ in range(WARM):
        mlflow_run(client, exp, "batch", N_RUN)
    out = {}
    for (mode, n), rounds in sizes.items():
        times = []
        for _ in range(rounds):
            t = now()
            rid = mlflow_run(client, exp, mode, n)
            times.append(now() - t)
            got = count_points(url, "metrics", f"run_uuid = '{rid}'")
            assert got == n, (got, n)
        out[(mode, n)] = spread(times)
    return out


# -- 16 processes at once --------------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import json, logging, os, sys, time, warnings
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from bench.team import mlflow_client, mlflow_run, ours_project, ours_run
    side, url, folder, idx = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    jobs = json.loads(sys.argv[5])  # [[mode, points], ...]: one job per round, in order
    if side == "ours":
        mj = ours_project(url)
        ours_run(mj, "warm", 1)
    else:
        client, exp = mlflow_client(url)
        mlflow_run(client, exp, "point", 1)
    for k, (mode, n) in enumerate(jobs):
        open(os.path.join(folder, f"ready{k}-{idx}"), "w").close()
        go = os.path.join(folder, f"go{k}")
        while not os.path.exists(go):
            time.sleep(0.002)
        t0 = time.time()
        if side == "ours":
            ours_run(mj, f"p{idx}", n)
        else:
            mlflow_run(client, exp, mode, n)
        t1 = time.time()
        with open(os.path.join(folder, f"done{k}-{idx}"), "w") as f:
            json.dump([t0, t1], f)
""")



def concurrent(side: str, url: str, jobs: list[list]) -> list[list[float]]:
    """Start PROCS workers of *side*; for each job (a round) release them together and return the
    wall time of each round (first start to last end), grouped by job."""
    folder = tempfile.mkdtemp(prefix=f"bench-team-{side}-")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the workers import bench.team
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    procs = []
    for i in range(PROCS):
        err = open(os.path.join(folder, f"stderr{i}.txt"), "w+")  # a file: a chatty worker never blocks
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, side, url, folder, str(i), json.dumps(jobs)],
                                      stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env))
        procs[-1].err = err
    walls = []
    try:
        for k in range(len(jobs)):
            _wait_files(folder, f"ready{k}", procs, 300)
            open(os.path.join(folder, f"go{k}"), "w").close()
            _wait_files(folder, f"done{k}", procs, 600)
            spans = []
            for i in range(PROCS):
                with open(os.path.join(folder, f"done{k}-{i}")) as f:
                    spans.append(json.load(f))
            walls.append(max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans))
        for p in procs:
            p.wait(timeout=120)
            if p.returncode != 0:
                raise RuntimeError(f"a {side} worker failed: {_tail(p)}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # by its PID
                p.wait()
            p.err.close()
    return walls


def _tail(p) -> str:
    p.err.flush()
    p.err.seek(0)
    return p.err.read()[-2000:]


def _wait_files(folder: str, prefix: str, procs, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for n in os.listdir(folder) if n.startswith(prefix + "-")) < len(procs):
        for p in procs:
            if p.poll() not in (None, 0):
                raise RuntimeError(f"a worker failed: {_tail(p)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not reach {prefix} within {timeout:.0f} s")
        time.sleep(0.02)


def by_job(jobs: list[list], walls: list[float]) -> dict[tuple, tuple]:
    out: dict[tuple, list] = {}
    for (mode, n), w in zip(jobs, walls):
        out.setdefault((mode, n), []).append(w)
    return {k: spread(v) for k, v in out.items()}


def main() -> None:
    print(f"# team store benchmark: PostgreSQL on 127.0.0.1 (median [min–max]; {ROUNDS} rounds unless said; "
          f"{ROUNDS_SMALL} for runs of {N_RUN:,} points)")
    has_mlflow = available("mlflow")
    with server() as admin:
        if admin is None:
            print("skipped: needs Debian's postgresql package and root (to start the cluster and make a role)")
            return
        with fresh_database(admin, "bench_ours") as ours_url, fresh_database(admin, "bench_mlflow") as mlflow_url:
            started = time.monotonic()
            ours = ours_runs(ours_url, {N_RUN: ROUNDS_SMALL, N_BIG: ROUNDS})
            mf = mlflow_runs(mlflow_url, {("point", N_RUN): ROUNDS_MLFLOW_POINTS, ("batch", N_RUN): ROUNDS_SMALL,
                                          ("batch", N_BIG): ROUNDS}) if has_mlflow else {}
            one = [
                [f"a run of {N_RUN:,} points", "mlops-jupyter log_metric", fmt_spread(ours[N_RUN]),
                 fmt_rate(N_RUN, ours[N_RUN]), "—"],
                ["", f"MLflow log_metric ({ROUNDS_MLFLOW_POINTS} rounds)", fmt_spread(mf.get(("point", N_RUN))),
                 fmt_rate(N_RUN, mf.get(("point", N_RUN))), ratio_rate(ours[N_RUN], mf.get(("point", N_RUN)))],
                ["", "MLflow log_batch (1,000)", fmt_spread(mf.get(("batch", N_RUN))),
                 fmt_rate(N_RUN, mf.get(("batch", N_RUN))), ratio_rate(ours[N_RUN], mf.get(("batch", N_RUN)))],
                [f"a run of {N_BIG:,} points", "mlops-jupyter log_metric", fmt_spread(ours[N_BIG]),
                 fmt_rate(N_BIG, ours[N_BIG]), "—"],
                ["", "MLflow log_batch (1,000)", fmt_spread(mf.get(("batch", N_BIG))),
                 fmt_rate(N_BIG, mf.get(("batch", N_BIG))), ratio_rate(ours[N_BIG], mf.get(("batch", N_BIG)))],
            ]
            table("one process: start a run, log N points, end it (all committed)",
                  ["workload", "side", "time", "points/s", "ours vs it"], one)

            ours_jobs = [["point", M_BATCH]] * ROUNDS_PROCS + [["point", M_POINT]] * ROUNDS_PROCS
            mf_jobs = [["batch", M_BATCH]] * ROUNDS_PROCS + [["point", M_POINT]] * ROUNDS_PROCS
            ours_c = by_job(ours_jobs, concurrent("ours", ours_url, ours_jobs))
            mf_c = by_job(mf_jobs, concurrent("mlflow", mlflow_url, mf_jobs)) if has_mlflow else {}
            big, small = PROCS * M_BATCH, PROCS * M_POINT
            rows = [
                [f"{PROCS} x {M_BATCH:,} points", "mlops-jupyter log_metric", fmt_spread(ours_c[("point", M_BATCH)]),
                 fmt_rate(big, ours_c[("point", M_BATCH)]), "—"],
                ["", "MLflow log_batch (1,000)", fmt_spread(mf_c.get(("batch", M_BATCH))),
                 fmt_rate(big, mf_c.get(("batch", M_BATCH))),
                 ratio_rate(ours_c[("point", M_BATCH)], mf_c.get(("batch", M_BATCH)))],
                [f"{PROCS} x {M_POINT:,} points", "mlops-jupyter log_metric", fmt_spread(ours_c[("point", M_POINT)]),
                 fmt_rate(small, ours_c[("point", M_POINT)]), "—"],
                ["", "MLflow log_metric", fmt_spread(mf_c.get(("point", M_POINT))),
                 fmt_rate(small, mf_c.get(("point", M_POINT))),
                 ratio_rate(ours_c[("point", M_POINT)], mf_c.get(("point", M_POINT)))],
            ]
            table(f"{PROCS} processes at once into one database ({ROUNDS_PROCS} rounds; first start to last end)",
                  ["workload", "side", "wall time", "points/s (all)", "ours vs it"], rows)
            print(f"\n(benchmark took {fmt_time(time.monotonic() - started)}; "
                  f"{'MLflow ' + _mlflow_version() if has_mlflow else 'MLflow not installed: skipped'})")


def _mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")


if __name__ == "__main__":
    main()
