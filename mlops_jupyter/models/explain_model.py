"""What the explainers need to know about a model and its rows: which kind of model it is (tree
ensemble, linear, classifier), the rows as a frame, a prediction function of a numpy array as
SHAP and LIME call it, and digests that recognise the same model and rows again."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..exceptions import BadInput

TREE_MODULES = ("xgboost", "lightgbm", "catboost")
TREE_CLASSES = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
                "GradientBoostingClassifier", "GradientBoostingRegressor", "DecisionTreeClassifier",
                "DecisionTreeRegressor", "IsolationForest")


def numeric(dtype) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(dtype) or is_bool_dtype(dtype)


def final_estimator(model):
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def is_tree(model) -> bool:
    top = type(model).__module__.split(".")[0]
    return top in TREE_MODULES or type(model).__name__ in TREE_CLASSES


def is_linear(model) -> bool:
    return type(model).__module__.startswith("sklearn.linear_model") and hasattr(model, "coef_")


def is_classifier(model) -> bool:
    return hasattr(model, "predict_proba") or getattr(model, "_estimator_type", None) == "classifier"


def as_frame(X, features: list[str] | None = None):
    """*X* (pandas or polars frame, series, 2-D array) as a pandas DataFrame."""
    import pandas as pd

    from .signature import as_pandas

    X = as_pandas(X)
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, pd.Series):
        return X.to_frame()
    try:
        arr = np.asarray(X)
    except Exception:
        raise BadInput(f"cannot explain a {type(X).__name__}: give a DataFrame or a 2-D array") from None
    if arr.ndim != 2:
        raise BadInput(f"X should be 2-D (rows x features); got shape {arr.shape}")
    cols = features if features and len(features) == arr.shape[1] else [f"x{i}" for i in range(arr.shape[1])]
    return pd.DataFrame(arr, columns=cols)


def labels_of(y: Any, total: int, n: int) -> list | None:
    """The true labels *y* of X's *total* rows, the first *n* of them as plain values."""
    if y is None:
        return None
    arr = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y, dtype=object).reshape(-1)
    if len(arr) != total:
        raise BadInput(f"--labels has {len(arr):,} values for the {total:,} rows of X")
    return [v.item() if hasattr(v, "item") else v for v in arr[:n]]


def check_fitted(model) -> None:
    from .flavors import check_fitted as fitted

    fitted(model, "explaining it")
    if not hasattr(model, "predict"):
        raise BadInput(f"a {type(model).__name__} has no predict(): give a fitted model")


def predict_fn(model, columns, dtypes, proba: bool, decode: dict | None = None):
    """A function of a numpy array, as explainers call it, that feeds the model a frame like X
    (*decode*: column position -> categories, for columns that travel as codes)."""
    import pandas as pd

    fn = model.predict_proba if proba else model.predict
    wants_frame = hasattr(model, "feature_names_in_") or bool(decode) or any(not numeric(t) for t in dtypes)

    def f(arr):
        if wants_frame:
            df = pd.DataFrame(arr, columns=columns)
            for j, index in (decode or {}).items():
                df[columns[j]] = np.asarray(index, dtype=object)[np.asarray(arr[:, j], dtype=float).astype(int)]
            for c, t in zip(columns, dtypes):
                try:
                    df[c] = df[c].astype(t)
                except (TypeError, ValueError):
                    pass
            return np.asarray(fn(df))
        return np.asarray(fn(np.asarray(arr, dtype=float)))

    return f


def content_digest(obj: Any) -> str | None:
    """BLAKE3 of a model's pickled bytes (used only to recognise the same model again)."""
    import pickle

    from ..store.blobs import hash_bytes

    try:
        return hash_bytes(pickle.dumps(obj, protocol=5))
    except Exception:
        return None


def frame_digest(df) -> str:
    import pandas as pd
    from blake3 import blake3

    h = blake3()
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(np.ascontiguousarray(pd.util.hash_pandas_object(df, index=False).to_numpy()).tobytes())
    return h.hexdigest()
