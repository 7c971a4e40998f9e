"""What autologging writes into a run, whichever framework fitted: parameters, the model as a run
artifact in its safe format, the training data as a dataset version, feature importances.

Everything here runs on the autologging worker (:mod:`.session`), never on the user's time.
"""

from __future__ import annotations

import json
from typing import Any

PARAM_TEXT = 500  # longer parameter values are cut (a nested estimator's repr can run to pages)
EXAMPLE_ROWS = 5


def param_values(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the store keeps them: JSON values as they are, anything else as its repr."""
    out = {}
    for k, v in params.items():
        if v is None or isinstance(v, (bool, int, float, str)):
            out[str(k)] = v if not isinstance(v, str) else v[:PARAM_TEXT]
            continue
        try:
            json.dumps(v)
            out[str(k)] = v
        except (TypeError, ValueError):
            text = repr(v)
            out[str(k)] = text if len(text) <= PARAM_TEXT else text[:PARAM_TEXT - 1] + "…"
    return out


def log_params(run, params: dict[str, Any]) -> None:
    if params:
        run.log_params(param_values(params))


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The figures that are finite numbers, as floats (a NaN, None or a string is left out)."""
    import math

    clean = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            clean[k] = f
    return clean


def log_metrics(run, metrics: dict[str, float], step: int | None = None) -> None:
    clean = finite_metrics(metrics)
    if clean:
        run.log_metrics(clean, step=step)


def snapshot(obj: Any) -> Any:
    """A copy of training data the user might change in place before the worker reads it."""
    if obj is None:
        return None
    copy = getattr(obj, "copy", None)
    if callable(copy):
        try:
            return copy()
        except TypeError:
            pass
    return obj


def head(obj: Any, n: int = EXAMPLE_ROWS) -> Any:
    """The first *n* rows (the model's input example)."""
    if obj is None:
        return None
    if hasattr(obj, "iloc"):
        return obj.iloc[:n]
    try:
        return obj[:n]
    except Exception:
        return None


def log_model(run, model: Any, example: Any, register: str | None, framework: str, folder: str = "model") -> dict:
    """The fitted model as run artifacts ``<folder>/<file>`` and ``<folder>/model.json`` (format,
    library, class, signature); a version of *register* too when the user named one. Returns
    model.json."""
    from ..models import flavors
    from ..models import signature as signatures

    saved = flavors.save(model, example=example)
    sig = saved.signature if saved.signature is not None else signatures.infer(example, model)
    store = run.store
    digest, size = store.blobs.put_bytes(saved.data)
    info = {"flavor": saved.flavor, "library": saved.library, "library_version": saved.library_version,
            "model_class": saved.model_class, "file": flavors.file_name(saved.flavor), "digest": digest,
            "size": size, "signature": sig, "trusted": saved.trusted, "extra": saved.extra,
            "autolog": framework}
    meta = json.dumps(info, indent=2, sort_keys=True, default=repr).encode()
    meta_digest, meta_size = store.blobs.put_bytes(meta)
    store.meta.add_artifacts([
        dict(run_id=run.run_id, path=f"{folder}/{info['file']}", digest=digest, size=size, kind="artifact"),
        dict(run_id=run.run_id, path=f"{folder}/model.json", digest=meta_digest, size=meta_size, kind="artifact"),
    ])
    if register:
        from ..models.registry import Registry

        Registry(store).register(model, register, example=example, run_id=run.run_id)
    return info


def frame_of(X: Any, y: Any = None):
    """The training data as one DataFrame: X's columns (``x0``, ``x1``... for an array) and the
    target as ``y`` (its own name when it has one that X does not use)."""
    import numpy as np
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        df = X.copy(deep=False)
    elif hasattr(X, "to_pandas"):  # polars, pyarrow
        df = X.to_pandas()
    else:
        if hasattr(X, "toarray"):  # sparse: kept dense only when small
            if X.shape[0] * X.shape[1] > 10_000_000:
                return None
            X = X.toarray()
        arr = np.asarray(X)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2:
            return None
        df = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    df.columns = [str(c) for c in df.columns]
    if y is not None:
        target = y.to_pandas() if hasattr(y, "to_pandas") else y
        name = str(getattr(target, "name", None) or "y")
        if name in df.columns:
            name = "y" if "y" not in df.columns else "target"
        values = np.asarray(target)
        if values.ndim == 1 and len(values) == len(df):
            df[name] = values
        elif values.ndim == 2 and len(values) == len(df):
            for j in range(values.shape[1]):
                df[f"{name}{j}"] = values[:, j]
    return df


def log_dataset(run, X: Any, y: Any, name: str | None) -> str | None:
    """The training data as a version of dataset *name* (deduplicated by content), recorded as the
    run's input. Returns the version's ref."""
    from .. import data

    df = frame_of(X, y)
    if df is None:
        return None
    v = data.add(df, name=name or "training-data", message="training data of an autologged fit",
                 source="autolog", run_id=run.run_id)
    return v.ref


def variable_name(obj: Any) -> str | None:
    """The notebook variable that holds *obj* (its dataset's name), when there is exactly one."""
    from ..tracking.run import kernel_context

    ns = kernel_context.get("user_ns")
    if not ns or obj is None:
        return None
    names = [k for k, v in list(ns.items()) if v is obj and not k.startswith("_")]
    return names[0] if len(names) == 1 else None


def log_importances(run, model: Any, features: list[str] | None) -> None:
    """``feature_importance.json`` and its bar chart from a tree model's ``feature_importances_``."""
    import numpy as np

    values = getattr(model, "feature_importances_", None)
    if values is None:
        return
    values = np.asarray(values, dtype=float).ravel()
    names = [str(f) for f in features] if features is not None and len(features) == len(values) else \
        [f"x{i}" for i in range(len(values))]
    measure = IMPORTANCE_MEASURE.get(type(model).__module__.split(".")[0], "importance (impurity decrease)")
    log_importance_values(run, names, values.tolist(), f"{type(model).__name__}: feature importance", measure)


def log_importance_values(run, names: list[str], values: list[float], title: str, measure: str) -> None:
    """``feature_importance.json`` (largest first), and its bar chart as ``feature_importance.svg``
    with the Vega-Lite spec beside it (``feature_importance.vl.json``)."""
    order = sorted(range(len(values)), key=lambda i: -values[i])
    run.log_dict({"measure": measure, "features": [{"feature": names[i], "importance": float(values[i])}
                                                   for i in order]}, "feature_importance.json")
    from ..charts.explain import global_importance

    chart = global_importance(names, values, measure=measure, value_title="importance", title=title)
    run.log_dict(chart.spec, "feature_importance.vl.json")
    run.log_text(chart.svg(), "feature_importance.svg")


IMPORTANCE_MEASURE = {"xgboost": "importance (XGBoost's default: gain share)",
                      "lightgbm": "importance (LightGBM's default: times split on)"}
