"""Data drift: ours beside Evidently's data drift preset, on the same Parquet files.

    python -m bench.drift                 # 1,000,000 x 50 (ours) and 200,000 x 20 (both)
    python -m bench.drift --full          # Evidently on 1,000,000 x 50 as well (minutes)

Each frame pair is written once to Parquet (60% numeric columns, 40% string categories, a shift
in a fifth of the numeric and a quarter of the categorical columns). Each side runs in its own
process, reads the files, then is timed; ours also reports the peak memory its drift added over
the loaded frames. Evidently 0.7 needs pandas<3, so it runs in its own virtual environment
(``bench/evidently_env.py`` makes it once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile

from .common import fmt_spread, fmt_time, table

OURS = r"""
import json, resource, sys, time
import pandas as pd
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
size = int(ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum())
import scipy.stats
from mlops_jupyter.monitoring.drift import compute  # imports outside the timing
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
import gc; gc.collect()
before = rss()
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); r = compute(ref, cur); times.append(time.perf_counter() - t)
print(json.dumps({"times": times, "frames_bytes": size, "peak_added": rss() - before,
                  "drift_share": r.drift_share, "drifted": r.summary["n_drifted"], "columns": r.summary["n_features"]}))
"""


def make_frames(rows: int, cols: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_num = int(cols * 0.6)

    def one(shift: float):
        d = {}
        for i in range(n_num):
            d[f"num_{i}"] = rng.normal(shift if i % 5 == 0 else 0.0, 1 + i % 3, rows)
        for j in range(cols - n_num):
            k = 5 + j % 20
            p = np.ones(k) / k
            if shift and j % 4 == 0:
                p = p * np.linspace(0.5, 1.5, k)
                p /= p.sum()
            labels = np.array([f"c{x}" for x in range(k)])
            d[f"cat_{j}"] = pd.array(labels[rng.choice(k, rows, p=p)], dtype="str")
        return pd.DataFrame(d)

    return one(0.0), one(0.3)


def write_pair(folder: str, rows: int, cols: int) -> tuple[str, str]:
    ref, cur = make_frames(rows, cols)
    a, b = os.path.join(folder, f"ref-{rows}x{cols}.parquet"), os.path.join(folder, f"cur-{rows}x{cols}.parquet")
    ref.to_parquet(a)
    cur.to_parquet(b)
    return a, b


def ours(ref: str, cur: str, rounds: int) -> dict:
    import sys

    out = subprocess.run([sys.executable, "-c", OURS, ref, cur, str(rounds)], capture_output=True, text=True,
                         timeout=1800)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def evidently(python: str | None, ref: str, cur: str) -> dict | None:
    if python is None:
        return None
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_evidently_drift.py")
    out = subprocess.run([python, script, ref, cur], capture_output=True, text=True, timeout=3600,
                         env={**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"})
    if out.returncode:
        print(f"evidently failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=50)
    ap.add_argument("--small-rows", type=int, default=200_000)
    ap.add_argument("--small-cols", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="also run Evidently on the large pair")
    ap.add_argument("--no-evidently", action="store_true")
    args = ap.parse_args()
    python = None
    if not args.no_evidently:
        from .evidently_env import ensure_venv

        python = ensure_venv()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlops-bench-drift-") as tmp:
        for r, c, with_ev in ((args.small_rows, args.small_cols, True), (args.rows, args.cols, args.full)):
            ref, cur = write_pair(tmp, r, c)
            o = ours(ref, cur, args.rounds)
            t = sorted(o["times"])
            med = (t[len(t) // 2], t[0], t[-1])
            e = evidently(python, ref, cur) if with_ev else None
            shape = f"{r:,} x {c}"
            mem = f"peak +{o['peak_added'] / 2**20:,.0f} MiB = {o['peak_added'] / o['frames_bytes']:.2f}x frames " \
                  f"({o['frames_bytes'] / 2**20:,.0f} MiB)"
            rows.append([shape, "ours", fmt_spread(med), f"{o['drifted']}/{o['columns']} drifted", mem])
            if e is not None:
                rows.append([shape, "evidently", fmt_time(e["seconds"]), f"{e['drifted']}/{e['columns']} drifted", ""])
                rows.append([shape, "evidently / ours", f"{e['seconds'] / med[0]:.1f}x faster", "", ""])
            else:
                why = "skipped (--no-evidently)" if args.no_evidently else \
                    ("skipped (venv unavailable)" if python is None else "skipped (--full runs it)")
                rows.append([shape, "evidently", why, "", ""])
    table("Data drift, per feature, every statistic (median [min-max] of rounds)",
          ["frames", "tool", "time", "result", "memory"], rows)


if __name__ == "__main__":
    main()
