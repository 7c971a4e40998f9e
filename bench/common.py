"""Shared helpers for the benchmarks: medians with min/max, tables, subprocess timing."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Callable


def rounds(fn: Callable[[], float], n: int = 5) -> tuple[float, float, float]:
    """Run *fn* (which returns one measurement) *n* times: (median, min, max)."""
    xs = [fn() for _ in range(n)]
    return statistics.median(xs), min(xs), max(xs)


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "skipped"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_spread(m: tuple[float, float, float] | None, unit=fmt_time) -> str:
    if m is None:
        return "skipped"
    return f"{unit(m[0])} [{unit(m[1])}–{unit(m[2])}]"


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or ours == 0:
        return "—"
    return f"{theirs / ours:.1f}x"


def table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    print(f"\n## {title}")
    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run_python(code: str, cwd: str | None = None, env: dict | None = None, timeout: float = 600) -> str:
    e = dict(os.environ)
    e.update(env or {})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=e,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout.strip().splitlines()[-1]


def make_small_files(d: str, n: int, size: int = 4096) -> str:
    """*n* files of *size* random bytes under ``d/small``, 1,000 to a folder; returns the folder."""
    root = os.path.join(d, "small")
    for i in range(n):
        sub = os.path.join(root, f"d{i // 1000:02d}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i:05d}.bin"), "wb") as f:
            f.write(os.urandom(size))
    return root


def now() -> float:
    return time.perf_counter()
