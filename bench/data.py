"""Data versioning speed: ours beside `cp` (the floor for any store that copies) and `dvc add`.

    python -m bench.data [--quick]

Workloads are made here: a 1 GiB file of random bytes, a folder of 10,000 files of
4 KiB, a 1,000,000-row x 20-column DataFrame. The page cache is warmed before timing.
`dvc` is looked up on PATH or in $MLOPS_BENCH_DVC (it is run in a fresh `git init; dvc init`
folder); when absent its column says skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

from .common import fmt_spread, fmt_time, make_small_files, ratio, run_python, table

QUICK = "--quick" in sys.argv
GIB = (256 << 20) if QUICK else (1 << 30)
N_SMALL = 2000 if QUICK else 10_000


def dvc_bin() -> str | None:
    return os.environ.get("MLOPS_BENCH_DVC") or shutil.which("dvc") or (
        "/opt/dvc-venv/bin/dvc" if os.path.exists("/opt/dvc-venv/bin/dvc") else None)


def warm(path: str) -> None:
    for root, _, files in os.walk(path) if os.path.isdir(path) else [(os.path.dirname(path), [], [os.path.basename(path)])]:
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                while fh.read(8 << 20):
                    pass


_TRASH: list[str] = []


def sync() -> None:
    """Let writeback and discards of earlier rounds settle, the same for every contestant
    (this disk is mounted with `discard`: deleting many files stalls file creation for seconds)."""
    os.sync()
    time.sleep(1.5)


def discard_later(path: str) -> None:
    _TRASH.append(path)


def make_big(d: str) -> str:
    p = os.path.join(d, "big.bin")
    with open(p, "wb") as f:
        left = GIB
        while left:
            n = min(left, 64 << 20)
            f.write(os.urandom(n))
            left -= n
    return p


def make_small(d: str) -> str:
    return make_small_files(d, N_SMALL, 4096)


ADD = textwrap.dedent("""
    import os, sys, time, json
    os.chdir(sys.argv[1])
    import mlops_jupyter as mj
    from mlops_jupyter.data import api
    import mlops_jupyter.data.files  # imported before timing, as in a warm kernel
    api.context()
    t = time.perf_counter()
    v = mj.data.add(sys.argv[2], name="bench")
    t1 = time.perf_counter() - t
    t = time.perf_counter()
    v2 = mj.data.add(sys.argv[2], name="bench")
    t2 = time.perf_counter() - t
    assert v2.unchanged
    print(json.dumps({"add": t1, "readd": t2}))
""")


def ours_add(src: str) -> tuple[float, float]:
    proj = tempfile.mkdtemp(prefix="bench-proj-", dir=os.path.dirname(src))
    from mlops_jupyter.config import init_project

    init_project(proj)
    sync()
    out = json.loads(subprocess.run([sys.executable, "-c", ADD, proj, src], capture_output=True, text=True,
                                    check=True).stdout.strip().splitlines()[-1])
    discard_later(proj)
    return out["add"], out["readd"]


def cp_time(src: str) -> float:
    dst = src + ".cp"
    sync()
    t = time.perf_counter()
    subprocess.run(["cp", "-r", src, dst], check=True)
    dt = time.perf_counter() - t
    final = f"{dst}.{len(_TRASH)}"
    os.rename(dst, final)
    discard_later(final)
    return dt


def dvc_add(src: str) -> tuple[float, float] | None:
    dvc = dvc_bin()
    if not dvc:
        return None
    proj = tempfile.mkdtemp(prefix="bench-dvc-", dir=os.path.dirname(src))
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=proj, check=True, env=env)
    target = os.path.join(proj, os.path.basename(src))
    # dvc adds files inside its repo: move the workload in (a rename, not a copy) and back after
    os.rename(src, target)
    try:
        sync()
        t = time.perf_counter()
        subprocess.run([dvc, "add", "-q", os.path.basename(src)], cwd=proj, check=True, env=env)
        t1 = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run([dvc, "add", "-q", os.path.basename(src)], cwd=proj, check=True, env=env)
        t2 = time.perf_counter() - t
    finally:
        subprocess.run([dvc, "unprotect", "-q", os.path.basename(src)], cwd=proj, env=env)
        os.rename(target, src)
        discard_later(proj)
    return t1, t2


def interleaved(contestants: dict, rounds: int = 3) -> dict:
    """Run each contestant once per round, in turn, so that a slow spell of the disk falls on
    all of them alike; returns name -> per-figure (median, min, max)."""
    import statistics

    got: dict = {k: [] for k, fn in contestants.items() if fn}
    for _ in range(rounds):
        for k in got:
            x = contestants[k]()
            got[k].append(x if isinstance(x, tuple) else (x,))
    return {k: tuple((statistics.median(v), min(v), max(v)) for v in zip(*xs)) for k, xs in got.items()}


def settle(src: str) -> None:
    """One untimed copy first: on this disk (ext4 mounted with `discard`) the first files
    created after a large delete are up to 10x slower; no contestant should draw that lot."""
    cp_time(src)


MEM = textwrap.dedent("""
    import os, sys, json, threading, time, tempfile, shutil
    import psutil
    os.chdir(sys.argv[1])
    import mlops_jupyter as mj
    from mlops_jupyter.data import api
    api.context()
    proc = psutil.Process(); base = proc.memory_info().rss; peak = [base]; stop = threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.005)
    th = threading.Thread(target=sample, daemon=True); th.start()
    v = mj.data.add(sys.argv[2], name="mem")
    add_peak = peak[0] - base
    peak[0] = proc.memory_info().rss; base2 = peak[0]
    out = tempfile.mkdtemp(dir=sys.argv[1])
    mj.data.checkout("mem@v1", out)
    co_peak = peak[0] - base2
    stop.set(); th.join()
    print(json.dumps({"add_mib": add_peak / 2**20, "checkout_mib": co_peak / 2**20}))
""")


FRAME = textwrap.dedent("""
    import os, sys, json, time, tempfile
    import numpy as np, pandas as pd
    os.chdir(tempfile.mkdtemp())
    import mlops_jupyter as mj
    from mlops_jupyter.config import init_project
    init_project(os.getcwd())
    rng = np.random.default_rng(0)
    n = int(sys.argv[1])
    cols = {}
    for i in range(14):
        cols[f"num{i}"] = rng.normal(size=n)
    for i in range(3):
        cols[f"int{i}"] = rng.integers(0, 1000, n)
    for i in range(3):
        cols[f"cat{i}"] = pd.Categorical(rng.choice([f"c{j}" for j in range(20)], n))
    df = pd.DataFrame(cols)
    mj.data.add(df.head(10), name="warm")
    times = []
    for r in range(3):
        t = time.perf_counter()
        v = mj.data.add(df if r == 0 else df.assign(num0=df["num0"] + r), name="frame")
        times.append(time.perf_counter() - t)
    t = time.perf_counter(); back = mj.data.load("frame@v1"); tl = time.perf_counter() - t
    print(json.dumps({"snap": times, "load": tl, "bytes": v.size}))
""")


def contest(src: str, title: str, cp_label: str) -> None:
    """Ours, cp and dvc add on *src*, interleaved after a settling copy; one table."""
    warm(src)
    settle(src)
    res = interleaved({"cp": lambda: cp_time(src), "ours": lambda: ours_add(src),
                       "dvc": (lambda: dvc_add(src)) if dvc_bin() else None})
    ours, cp, dvc = res["ours"], res["cp"][0], res.get("dvc")
    table(title, ["", "mlops-jupyter", cp_label, "dvc add", "ours/cp", "dvc/ours"], [
        ["add", fmt_spread(ours[0]), fmt_spread(cp), fmt_spread(dvc[0]) if dvc else "skipped",
         f"{ours[0][0] / cp[0]:.2f}x", ratio(ours[0][0], dvc[0][0]) if dvc else "—"],
        ["re-add unchanged", fmt_spread(ours[1]), "—", fmt_spread(dvc[1]) if dvc else "skipped", "—",
         ratio(ours[1][0], dvc[1][0]) if dvc else "—"],
    ])


def main() -> None:
    print(f"# data benchmark ({'quick' if QUICK else 'full'}; median [min–max] of 3 interleaved rounds)")
    work = tempfile.mkdtemp(prefix="bench-data-", dir=os.environ.get("MLOPS_BENCH_DIR", "/var/tmp"))
    try:
        big = make_big(work)
        label = f"{GIB >> 20} MiB file"
        contest(big, f"add a {label}", "cp")
        mem = json.loads(run_python(MEM.replace("sys.argv[1]", repr(work)).replace("sys.argv[2]", repr(big))))
        table(f"memory while adding / checking out the {label}", ["", "peak RSS growth"], [
            ["add", f"{mem['add_mib']:.1f} MiB"], ["checkout", f"{mem['checkout_mib']:.1f} MiB"]])
        contest(make_small(work), f"add a folder of {N_SMALL:,} files of 4 KiB", "cp -r")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # every round's copies go at the end, all at once

    n = 200_000 if QUICK else 1_000_000
    fr = json.loads(run_python(FRAME.replace("int(sys.argv[1])", str(n))))
    snaps = sorted(fr["snap"])
    table(f"DataFrame snapshot, {n:,} rows x 20 columns", ["figure", "mlops-jupyter"], [
        ["snapshot (Parquet + stats + store)", f"{fmt_time(snaps[1])} [{fmt_time(snaps[0])}–{fmt_time(snaps[2])}]"],
        ["load back", fmt_time(fr["load"])], ["stored size", f"{fr['bytes'] / 2**20:.1f} MiB"]])


if __name__ == "__main__":
    main()
