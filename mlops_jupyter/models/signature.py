"""Input signatures inferred from an example, and checks of new input against them."""

from __future__ import annotations

from typing import Any

from ..exceptions import BadInput


def _is_polars(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "polars" and type(x).__name__ == "DataFrame"


def as_pandas(x: Any):
    """pandas frames pass through; polars frames are converted (explainers and models want pandas)."""
    if _is_polars(x):
        return x.to_pandas()
    return x


def infer(example: Any, model: Any = None) -> dict | None:
    """Column names and dtypes of a frame, or the shape (first axis free) and dtype of an array."""
    if example is None:
        sig: dict = {}
    else:
        example = as_pandas(example)
        import numpy as np
        import pandas as pd

        if isinstance(example, pd.DataFrame):
            sig = {"type": "dataframe", "columns": [{"name": str(c), "dtype": str(t)}
                                                    for c, t in example.dtypes.items()]}
        elif isinstance(example, pd.Series):
            sig = {"type": "dataframe", "columns": [{"name": str(example.name), "dtype": str(example.dtype)}]}
        else:
            try:
                arr = np.asarray(example)
            except Exception:
                raise BadInput(f"cannot infer a signature from a {type(example).__name__}: "
                               "give a DataFrame or an array") from None
            if arr.dtype == object and arr.ndim == 0:
                raise BadInput(f"cannot infer a signature from a {type(example).__name__}: "
                               "give a DataFrame or an array")
            sig = {"type": "ndarray", "shape": [None, *arr.shape[1:]], "dtype": str(arr.dtype)}
        rows = _example_rows(example)
        if rows:
            sig["example"] = rows
    classes = getattr(model, "classes_", None) if model is not None else None
    if classes is not None:
        try:
            sig["classes"] = [c.item() if hasattr(c, "item") else c for c in list(classes)]
        except Exception:
            pass
    if model is not None:
        sig["task"] = task_of(model)
    return sig or None


EXAMPLE_ROWS = 5


def _example_rows(example: Any) -> list | None:
    """Up to five rows of the example as JSON values (for start-up checks of serving runtimes).

    Only plain numbers, strings, booleans and nulls are kept; anything else (dates, objects) means
    no example is stored rather than a lossy one."""
    import math

    import numpy as np
    import pandas as pd

    if isinstance(example, pd.Series):
        example = example.to_frame()
    if isinstance(example, pd.DataFrame):
        rows = example.head(EXAMPLE_ROWS).astype(object).values.tolist()
    else:
        arr = np.asarray(example)
        if arr.ndim == 0:
            return None
        rows = arr[:EXAMPLE_ROWS].tolist()
    out = []
    for row in rows:
        row = row if isinstance(row, list) else [row]
        clean = []
        for v in row:
            if hasattr(v, "item") and not isinstance(v, (list, tuple)):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            if v is not None and not isinstance(v, (bool, int, float, str)):
                return None
            clean.append(v)
        out.append(clean)
    return out


def example_of(sig: dict | None):
    """The stored example as the object the model was given (DataFrame or array), or None."""
    if not sig or not sig.get("example"):
        return None
    import numpy as np
    import pandas as pd

    if sig.get("type") == "dataframe":
        cols = [c["name"] for c in sig["columns"]]
        df = pd.DataFrame(sig["example"], columns=cols)
        for c in sig["columns"]:
            try:
                df[c["name"]] = df[c["name"]].astype(c["dtype"])
            except (TypeError, ValueError):
                pass
        return df
    return np.asarray(sig["example"], dtype=sig.get("dtype") or None)


def numeric_columns(sig: dict | None) -> bool:
    """True when every input column of *sig* is a number (the model can take one float matrix)."""
    import numpy as np

    if not sig or sig.get("type") != "dataframe":
        return False
    try:
        return all(np.dtype(c["dtype"]).kind in "iuf" for c in sig["columns"])
    except TypeError:
        return False


def example_input(sig: dict | None):
    """The stored example, or (for all-numeric signatures) five synthetic rows; None without either.

    What runtimes check a converted or faster form of the model against before serving it."""
    ex = example_of(sig)
    if ex is not None or not numeric_columns(sig):
        return ex
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    data = {c["name"]: (rng.integers(0, 5, 5) if np.dtype(c["dtype"]).kind in "iu" else rng.normal(size=5))
            .astype(c["dtype"]) for c in sig["columns"]}
    return pd.DataFrame(data)


def without_feature_names(model: Any) -> Any:
    """A copy of *model* that takes its columns as a plain matrix, in the signature's order.

    scikit-learn remembers the column names it was fitted on and warns when given an array; the
    copy forgets them (at the top level and in a pipeline's first step)."""
    import copy

    out = copy.deepcopy(model)
    _forget_feature_names(out)
    return out


def _forget_feature_names(est: Any) -> None:
    if "feature_names_in_" in vars(est):
        del est.feature_names_in_
    steps = getattr(est, "steps", None)
    if isinstance(steps, list) and steps:
        _forget_feature_names(steps[0][1])


def task_of(model: Any) -> str:
    if hasattr(model, "predict_proba") or getattr(model, "_estimator_type", None) == "classifier":
        return "classification"
    return "regression"


def check(sig: dict | None, X: Any, what: str = "X") -> None:
    """Raise one BadInput line naming what does not fit the signature."""
    if not sig or "type" not in sig:
        return
    if sig["type"] == "tensors":
        from .nets import inputs_from

        inputs_from(sig, X)
        return
    X = as_pandas(X)
    import numpy as np
    import pandas as pd

    if sig["type"] == "dataframe":
        want = [c["name"] for c in sig["columns"]]
        if not isinstance(X, pd.DataFrame):
            arr = np.asarray(X)
            if arr.ndim != 2 or arr.shape[1] != len(want):
                raise BadInput(f"{what} should be a table with columns {', '.join(want)}; "
                               f"got a {type(X).__name__} of shape {arr.shape}")
            return
        have = [str(c) for c in X.columns]
        missing = [c for c in want if c not in have]
        extra = [c for c in have if c not in want]
        if missing:
            hint = f"; unexpected: {', '.join(extra[:10])}" if extra else ""
            raise BadInput(f"{what} lacks column(s) {', '.join(missing[:10])} of the model's signature{hint}")
        if extra:
            raise BadInput(f"{what} has column(s) the model's signature does not know: {', '.join(extra[:10])}")
    else:
        arr = np.asarray(X)
        shape = sig.get("shape") or []
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            raise BadInput(f"{what} has shape {tuple(arr.shape)}; the model expects "
                           f"({', '.join('n' if s is None else str(s) for s in shape)})")


def describe(sig: dict | None) -> str:
    if not sig or "type" not in sig:
        return "no signature"
    if sig["type"] == "tensors":
        from .nets import describe as describe_tensors

        return describe_tensors(sig)
    if sig["type"] == "dataframe":
        cols = sig["columns"]
        shown = ", ".join(f"{c['name']}: {c['dtype']}" for c in cols[:8])
        return f"{len(cols)} columns ({shown}{', ...' if len(cols) > 8 else ''})"
    return f"array {tuple('n' if s is None else s for s in sig['shape'])} {sig['dtype']}"
