"""Drawing metric charts: the Vega-Lite specs beside the hand-drawn SVG they replaced, in one run.

    python -m bench.charts [--quick]

"before" is the hand-drawn SVG line chart as it was (``mlops_jupyter/widgets/charts.py`` at
BEFORE, read from git), "after" is :func:`mlops_jupyter.charts.metrics.metric_chart`. What the
kernel pays is the spec built and serialized to JSON (the browser draws it); the SVG that a
saved notebook keeps is drawn once, when the run ends, and is shown apart. The last table logs
metric points with a live chart refreshing beside them and without: the kernel's cell never waits
on the drawing, which runs on the live view's thread.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

from .common import fmt_spread, table

QUICK = "--quick" in sys.argv
N = 5 if not QUICK else 3
BEFORE = "290ed90"  # the last commit with the hand-drawn line chart
T0 = 1_764_500_000.0


def med(fn, n=N, reps=1):
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        xs.append((time.perf_counter() - t) / reps)
    return statistics.median(xs), min(xs), max(xs)


def old_charts():
    """The hand-drawn SVG chart module as it was, or None outside a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        src = subprocess.run(["git", "show", f"{BEFORE}:mlops_jupyter/widgets/charts.py"], cwd=root,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType("before_charts")
    exec(compile(src, "before_charts.py", "exec"), mod.__dict__)
    return mod


def series(n: int, keys=("loss",)):
    return {k: [(i, 1 / (i + 1) + 0.01 * math.sin(i / 7) + j, T0 + i * 0.1) for i in range(n)]
            for j, k in enumerate(keys)}


def ratio(after, before) -> str:
    return "—" if before is None else f"{after[0] / before[0]:.2f}"


def main() -> None:
    from mlops_jupyter.charts.metrics import metric_chart

    old = old_charts()
    rows = []
    for n, keys in ((10_000, ("loss",)), (10_000, ("loss", "acc", "auc", "lr", "grad_norm", "val_loss")),
                    (100_000, ("loss",))):
        s = series(n, keys)
        before = None
        if old is not None:
            two = {k: [(st, v) for st, v, _ in pts] for k, pts in s.items()}
            before = med(lambda: [old.line_chart({k: v}, title=k, width=300, height=160) for k, v in two.items()])
        after = med(lambda: json.dumps(metric_chart({"run": s}, list(keys)).spec))
        rows.append([f"{n:,} points x {len(keys)} metric{'s' if len(keys) > 1 else ''}",
                     fmt_spread(before) if before else "skipped", fmt_spread(after), ratio(after, before)])
    table("Kernel cost of one drawing (median [min-max] of 5)",
          ["workload", "before: SVG text", "after: spec + JSON", "after / before"], rows)

    s = series(10_000)
    chart = metric_chart({"run": s})
    chart.svg()  # the engine's start, paid once per process (on a background thread at %load_ext)
    static = med(chart.svg, n=3)
    size_json = len(json.dumps(chart.spec))
    table("The saved picture (drawn once, when the run ends)",
          ["workload", "SVG by vl-convert", "spec sent to the browser"],
          [["10,000 points x 1 metric", fmt_spread(static), f"{size_json / 1024:.0f} KiB"]])

    live_rows = live_bench()
    table("Logging 5,000 points in a cell, a live chart refreshing every 0.1 s beside it",
          ["run", "log_metric x 5,000", "refreshes drawn", "with / without"], live_rows)


def live_bench():
    import mlops_jupyter as mj
    from mlops_jupyter.config import init_project
    from mlops_jupyter.store import close_store, open_store
    from mlops_jupyter.widgets.live import LiveRun

    out = []
    with tempfile.TemporaryDirectory() as d:
        cwd = os.getcwd()
        os.chdir(d)
        try:
            init_project(d)
            times = {}
            for mode in ("without", "with"):
                def one():
                    run = mj.start_run(f"bench-{mode}")
                    live = LiveRun(open_store(), run.run_id, interval=0.1, display=False) if mode == "with" else None
                    t = time.perf_counter()
                    for i in range(5000):
                        run.log_metric("loss", 1 / (i + 1), step=i)
                    took = time.perf_counter() - t
                    if live is not None:
                        live.stop()
                        one.refreshes = len(live.series.get("loss", []))
                    run.end()
                    return took
                one.refreshes = 0
                times[mode] = statistics.median([one() for _ in range(3)]), None, None
                times[mode] = (times[mode][0], times[mode][0], times[mode][0])
                out.append([mode, fmt_spread(times[mode]), "yes" if mode == "with" else "—",
                            f"{times['with'][0] / times['without'][0]:.2f}" if mode == "with" else ""])
        finally:
            close_store()
            os.chdir(cwd)
    return out


if __name__ == "__main__":
    main()
