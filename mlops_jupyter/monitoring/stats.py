"""Drift statistics of one feature: reference sample against current sample.

Numeric features are sorted once per side; everything else comes from the two sorted arrays
and one merge: the Kolmogorov-Smirnov statistic and the Wasserstein distance from the merged
empirical CDFs, PSI and the display histogram from bin edges looked up in the sorted arrays.
Sorting and searching release the GIL, so features run in parallel on threads.

Categorical features are compared through their value counts: chi-square test of homogeneity
on the 2 x k table, Jensen-Shannon distance (base 2, so 0..1) and PSI over the categories.

PSI, as computed here: numeric bins are cut at the reference's deciles (at most 10 bins; bin i
is ``(edge[i-1], edge[i]]``), categorical bins are the categories; a bin's share is floored at
``1e-4`` on both sides; ``PSI = sum((cur - ref) * ln(cur / ref))``.
"""

from __future__ import annotations

import math
import threading

import numpy as np

PSI_BINS = 10
PSI_FLOOR = 1e-4
HIST_BINS = 20
MAX_CATEGORIES = 12  # categories drawn in the display histogram (the rest summed as "other")
EXACT_KS_N = 10_000  # scipy's ks_2samp computes exact p-values up to here (its "auto" mode); so do we


class Workspace:
    """Arrays a worker thread reuses from feature to feature: a fresh 16 MB temporary costs page
    faults and zeroing every time, a reused one once. Each drift worker has its own."""

    def __init__(self):
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int, dtype) -> np.ndarray:
        buf = self._bufs.get(name)
        if buf is None or buf.dtype != np.dtype(dtype) or len(buf) < n:
            buf = np.empty(n if buf is None else max(n, len(buf) + len(buf) // 2), dtype)
            self._bufs[name] = buf
        return buf[:n]


_LOCAL = threading.local()


def workspace() -> Workspace:
    ws = getattr(_LOCAL, "ws", None)
    if ws is None:
        ws = _LOCAL.ws = Workspace()
    return ws


def finite_sorted(x: np.ndarray, into: np.ndarray | None = None) -> tuple[np.ndarray, int, int]:
    """(sorted finite values, nulls, non-finite) of a float array, sorted in *into* (a buffer of
    the same length) or in a copy; *x* itself is never changed."""
    if into is None:
        into = np.empty(len(x))
    np.copyto(into, x, casting="unsafe")
    into.sort()
    x = into
    n = len(x)  # NaN sorts last, -inf first, +inf just before NaN
    end = int(np.searchsorted(x, np.inf, side="right")) if n and np.isnan(x[-1]) else n
    nulls = n - end
    lo = int(np.searchsorted(x[:end], -np.inf, side="right"))
    hi = int(np.searchsorted(x[:end], np.inf, side="left"))
    return x[lo:hi], nulls, (lo + end - hi)


_RANGES: dict[str, np.ndarray] = {}
_RANGES_LOCK = threading.Lock()


def _range(n: int, dtype: str) -> np.ndarray:
    """A shared read-only ``arange(n)`` (int64) or ``arange(1, n + 1)`` (float64)."""
    with _RANGES_LOCK:
        r = _RANGES.get(dtype)
        if r is None or len(r) < n:
            size = max(n, 2 * len(r) if r is not None else 0)
            r = np.arange(size, dtype=np.int64) if dtype == "i" else np.arange(1, size + 1, dtype=np.float64)
            r.flags.writeable = False
            _RANGES[dtype] = r
    return r[:n]


def ks_wasserstein(a: np.ndarray, b: np.ndarray, ws: Workspace | None = None) -> tuple[float, float]:
    """Two-sample KS statistic and Wasserstein-1 distance of two sorted, finite, non-empty arrays.

    Merges the arrays by one search (b's places among a), then walks the merged CDFs: the
    same definitions as scipy.stats.ks_2samp (sup |F_a - F_b|) and wasserstein_distance
    (integral of |F_a - F_b|)."""
    ws = ws or Workspace()
    n1, n2 = len(a), len(b)
    n = n1 + n2
    at = np.searchsorted(a, b, side="right")  # a's values <= b[j]: b[j] goes after them
    at += _range(n2, "i")
    is_b = ws.get("is_b", n, bool)
    is_b.fill(False)
    is_b[at] = True
    merged = ws.get("merged", n, np.float64)
    merged[at] = b
    del at
    merged[np.logical_not(is_b, out=ws.get("not_b", n, bool))] = a
    gaps = np.subtract(merged[1:], merged[:-1], out=ws.get("gaps", n - 1, np.float64))
    # F_a - F_b at position k = (k + 1 - cb) / n1 - cb / n2, cb = b's up to and including k
    cb = np.cumsum(is_b.view(np.int8), dtype=np.int32 if n < 2**31 else np.int64,
                   out=ws.get("cb", n, np.int32 if n < 2**31 else np.int64))
    diff = np.multiply(cb, -(1.0 / n1 + 1.0 / n2), out=ws.get("diff", n, np.float64))
    np.multiply(_range(n, "f"), 1.0 / n1, out=merged)
    diff += merged
    np.abs(diff, out=diff)
    # |F_a - F_b| times the gap to the next value, summed (no BLAS: its threads would fight ours)
    w = float(np.multiply(diff[:-1], gaps, out=merged[:-1]).sum()) if n > 1 else 0.0
    # KS: only at the last of each run of equal values (where both CDFs have taken every tie)
    nz = np.not_equal(gaps, 0, out=ws.get("nz", n - 1, bool))
    d = float(np.max(diff[:-1], where=nz, initial=diff[-1]))
    return d, w


KSTWO_EN = 50_000  # above this effective size, the limiting distribution (see ks_pvalue)


def ks_pvalue(d: float, a: np.ndarray, b: np.ndarray) -> float:
    """The two-sided KS p-value: exactly what scipy.stats.ks_2samp gives up to 10,000 rows per side
    (exact) and up to 50,000 effective rows ``en = n1 n2 / (n1 + n2)`` (``kstwo.sf(d, round(en))``);
    above that, the limiting Kolmogorov distribution ``kolmogorov(sqrt(en) d)``, within 1% of kstwo
    there. kstwo's series take 20 to 600 ms per call at those sizes, holding the GIL; the limit is
    a C function."""
    from scipy import special, stats

    n1, n2 = len(a), len(b)
    if max(n1, n2) <= EXACT_KS_N:
        return float(stats.ks_2samp(a, b).pvalue)
    m, n = max(n1, n2), min(n1, n2)
    en = m * n / (m + n)
    if en > KSTWO_EN:
        return float(special.kolmogorov(math.sqrt(en) * d))
    return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1))


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    r = np.maximum(ref_counts / max(ref_counts.sum(), 1), PSI_FLOOR)
    c = np.maximum(cur_counts / max(cur_counts.sum(), 1), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def _counts_at(sorted_x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of sorted values in (-inf, e0], (e0, e1], ..., (ek, inf)."""
    cuts = np.searchsorted(sorted_x, edges, side="right")
    return np.diff(np.concatenate(([0], cuts, [len(sorted_x)])))


def numeric(a: np.ndarray, b: np.ndarray, pvalues: bool = True, ws: Workspace | None = None) -> dict:
    """Every numeric statistic of two sorted finite non-empty arrays, and the display histogram."""
    ws = ws or Workspace()
    d, w = ks_wasserstein(a, b, ws)
    n1 = len(a)
    mean = float(a.mean())
    dev = np.subtract(a, mean, out=ws.get("dev", n1, np.float64))
    std = math.sqrt(float(np.multiply(dev, dev, out=dev).mean()))
    q = np.arange(1, PSI_BINS) / PSI_BINS
    edges = np.unique(a[np.maximum(np.ceil(q * n1).astype(np.int64) - 1, 0)])  # the reference's deciles
    edges = edges[edges < a[-1]]  # a cut at the maximum would leave an empty last bin
    out = {
        "ks_stat": d,
        "ks_pvalue": ks_pvalue(d, a, b) if pvalues else math.nan,
        "wasserstein": w,
        "wasserstein_norm": w / std if std > 0 else math.nan,
        "psi": psi(_counts_at(a, edges), _counts_at(b, edges)),
        "mean_ref": mean,
        "mean_cur": float(b.mean()),
    }
    # display: equal-width bins over the 1st..99th percentiles of both sides together
    lo = min(a[int(0.01 * (n1 - 1))], b[int(0.01 * (len(b) - 1))])
    hi = max(a[int(0.99 * (n1 - 1))], b[int(0.99 * (len(b) - 1))])
    if hi <= lo:
        lo, hi = min(a[0], b[0]), max(a[-1], b[-1])
    if hi <= lo:
        hi = lo + 1.0
    hedges = np.linspace(lo, hi, HIST_BINS + 1)[1:-1]
    out["hist"] = {"kind": "numeric", "lo": float(lo), "hi": float(hi),
                   "ref": _shares(_counts_at(a, hedges)), "cur": _shares(_counts_at(b, hedges))}
    return out


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [round(float(c) / total, 5) if total else 0.0 for c in counts]


def categorical(ref_counts: dict, cur_counts: dict) -> dict:
    """Every categorical statistic from value counts (nulls excluded) of both sides."""
    from scipy import stats

    cats = list(ref_counts) + [c for c in cur_counts if c not in ref_counts]
    r = np.array([ref_counts.get(c, 0) for c in cats], dtype=np.float64)
    c = np.array([cur_counts.get(k, 0) for k in cats], dtype=np.float64)
    n_r, n_c = r.sum(), c.sum()
    # chi-square test of homogeneity on the 2 x k table (what chi2_contingency computes, no correction)
    col = r + c
    total = n_r + n_c
    exp_r, exp_c = col * (n_r / total), col * (n_c / total)
    chi2 = float(np.sum((r - exp_r) ** 2 / exp_r) + np.sum((c - exp_c) ** 2 / exp_c))
    dof = len(cats) - 1
    p_r, p_c = r / n_r, c / n_c
    m = (p_r + p_c) / 2
    js = 0.0
    for p in (p_r, p_c):
        nz = p > 0
        js += float(np.sum(p[nz] * np.log2(p[nz] / m[nz]))) / 2
    unseen = [k for k in cats if ref_counts.get(k, 0) == 0]
    order = np.argsort(-(p_r + p_c), kind="stable")
    shown = order[:MAX_CATEGORIES]
    hist = {"kind": "categorical", "labels": [str(cats[i]) for i in shown],
            "ref": [round(float(p_r[i]), 5) for i in shown], "cur": [round(float(p_c[i]), 5) for i in shown]}
    if len(cats) > MAX_CATEGORIES:
        rest = order[MAX_CATEGORIES:]
        hist["labels"].append(f"other ({len(rest)})")
        hist["ref"].append(round(float(p_r[rest].sum()), 5))
        hist["cur"].append(round(float(p_c[rest].sum()), 5))
    return {
        "chi2": chi2,
        "chi2_pvalue": float(stats.chi2.sf(chi2, dof)) if dof > 0 else 1.0,
        "jensenshannon": math.sqrt(max(js, 0.0)),
        "psi": psi(r, c),
        "categories": len(cats),
        "unseen": [str(k) for k in unseen[:5]],
        "unseen_count": len(unseen),
        "unseen_share": float(sum(cur_counts.get(k, 0) for k in unseen) / n_c) if n_c else 0.0,
        "hist": hist,
    }
