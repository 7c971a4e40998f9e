"""Hyperparameter searches (``GridSearchCV``, ``RandomizedSearchCV``, ``HalvingGridSearchCV``...):
the best parameters and cross-validated score on the search's run, ``cv_results.csv`` beside them,
and the best N candidates as child runs with their cross-validation figures and every parameter of
the estimator they fitted (the base estimator's, with the candidate's own), as MLflow does.

The candidates' own fits are nested in the search's fit: they make no runs. Their child runs are
written from ``cv_results_`` after the search, by the worker.
"""

from __future__ import annotations

import math
from typing import Any

from . import record


def is_search(estimator: Any) -> bool:
    return hasattr(estimator, "cv_results_") and hasattr(estimator, "best_params_")


def log_search(run, search: Any, top: int) -> list[str]:
    """On *run*: ``best_<param>`` params, ``best_cv_score``, ``cv_results.csv``; then the *top*
    candidates (by ``rank_test_score``) as child runs. Returns the child runs' ids, best first."""
    import pandas as pd

    best = dict(search.best_params_)
    record.log_params(run, {f"best_{k}": v for k, v in best.items()})
    if getattr(search, "best_score_", None) is not None:
        record.log_metrics(run, {"best_cv_score": float(search.best_score_)})
    results = pd.DataFrame(search.cv_results_)
    run.log_text(results.to_csv(index=False), "cv_results.csv")
    if top <= 0:
        return []
    rank_key = next((c for c in results.columns if c.startswith("rank_test_")), None)
    if rank_key is None:
        return []
    order = results.sort_values([rank_key], kind="stable").index[:top]
    from ..tracking.run import start_run

    ids = []
    base = getattr(search, "estimator", None)
    name = type(base).__name__ if base is not None else "candidate"
    try:
        base_params = dict(base.get_params(deep=True)) if base is not None else {}
    except Exception:
        base_params = {}
    for pos, i in enumerate(order, start=1):
        params = results.at[i, "params"]
        child = start_run(name=f"{name} candidate {pos}", parent=run.run_id, activate=False,
                          tags={"mlops.autolog": "sklearn", "mlops.autolog.candidate": str(pos)})
        try:
            record.log_params(child, {**base_params, **dict(params)})
            figures = {}
            for col in results.columns:
                if col.startswith(("mean_", "std_", "rank_")):
                    v = results.at[i, col]
                    try:
                        v = float(v)
                    except (TypeError, ValueError):
                        continue
                    if math.isfinite(v):
                        figures[col] = v
            record.log_metrics(child, figures)
        finally:
            child.end("finished")
        ids.append(child.run_id)
    return ids
