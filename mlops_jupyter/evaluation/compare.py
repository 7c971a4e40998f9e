"""A model against a baseline on the same rows: every headline figure of both, their difference, and a
bootstrap confidence interval of the difference (the rows resampled with replacement, the same
resample for both models, seeded; the figures of each block of resamples at once, :mod:`.resample`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import HIGHER, LOWER, Predictions, figures_of, scalar_functions

LEVEL = 0.95


def compare(a: Predictions, b: Predictions, resamples: int, seed: int, tick=None,
            figures: tuple[dict, dict] | None = None) -> dict[str, Any]:
    """*a* (the model) against *b* (the baseline): {figure: {model, baseline, difference, low, high, verdict}}
    (*tick(k)* is called after each block of k resamples: the caller's progress bar; *figures*: the
    two sides' :func:`.metrics.figures_of` when the caller has them, else they are computed here)."""
    from .resample import Resampler, weight_blocks

    fa, fb = figures or (figures_of(a), figures_of(b))
    fns = scalar_functions(a)
    if b.proba is None:
        fns = {k: v for k, v in fns.items() if k in scalar_functions(b)}
    point = {f: (fa[f], fb[f]) for f in fns}
    ra, rb = Resampler(a), Resampler(b)
    parts: dict[str, list[np.ndarray]] = {f: [] for f in fns}
    for W in weight_blocks(len(a.y), resamples, seed):
        fa, fb = ra.figures(W), rb.figures(W)
        for f in fns:
            parts[f].append(fa[f] - fb[f])
        if tick is not None:
            tick(len(W))
    lo_q, hi_q = (1 - LEVEL) / 2 * 100, (1 + LEVEL) / 2 * 100
    out: dict[str, Any] = {}
    for f, (va, vb) in point.items():
        d = np.concatenate(parts[f]) if parts[f] else np.array([])
        d = d[np.isfinite(d)]
        row: dict[str, Any] = {"model": va, "baseline": vb,
                               "difference": None if va is None or vb is None else va - vb,
                               "low": None, "high": None, "resamples": int(len(d))}
        if len(d) >= max(10, resamples // 2):
            row["low"], row["high"] = (float(x) for x in np.percentile(d, [lo_q, hi_q]))
        row["verdict"] = verdict(f, row["low"], row["high"])
        out[f] = row
    return out


def verdict(figure: str, low: float | None, high: float | None) -> str:
    """``better`` / ``worse`` (the model than the baseline) when the interval leaves out zero, else ``unclear``."""
    if low is None or high is None or low <= 0 <= high:
        return "unclear"
    up = low > 0
    if figure in LOWER:
        up = not up
    elif figure not in HIGHER:
        return "unclear"
    return "better" if up else "worse"
