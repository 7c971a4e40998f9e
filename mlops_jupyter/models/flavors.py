"""Saving and loading models without running arbitrary code.

- scikit-learn estimators and pipelines: skops. The types skops will have to build are
  listed when saving and kept in the registry (not in the file); loading trusts exactly
  those, so a swapped file cannot smuggle in another type (its hash would not match anyway).
- XGBoost and LightGBM: their own formats (UBJSON, model text), rebuilt into the same
  sklearn-style class when the model was one.
- Anything else only as a pickle, when asked for explicitly both when saving and loading.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import BadInput

XGB_CLASSES = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor", "Booster")
LGB_CLASSES = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel", "Booster")


@dataclass
class Saved:
    data: bytes
    flavor: str
    library: str
    library_version: str
    model_class: str
    trusted: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _qualname(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _top_module(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _version_of(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"sklearn": "scikit-learn"}.get(module, module)
    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def flavor_of(model: Any) -> str | None:
    """The safe format for *model*, or None when only a pickle would do."""
    top = _top_module(model)
    if top == "xgboost":
        return "xgboost"
    if top == "lightgbm":
        return "lightgbm"
    base = sys.modules.get("sklearn.base")
    if base is None:  # an instance of an estimator class means its module loaded sklearn.base: not one
        return None
    if isinstance(model, base.BaseEstimator):
        return "sklearn"
    return None


def check_fitted(model: Any, doing: str = "registering it") -> None:
    """One BadInput line when *model* (of a library we know) has not been fitted yet."""
    flavor = flavor_of(model)
    fitted = True
    if flavor == "sklearn":
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(model)
        except NotFittedError:
            fitted = False
        except TypeError:
            pass
    elif flavor == "xgboost" and hasattr(model, "get_booster"):
        from sklearn.exceptions import NotFittedError

        try:
            model.get_booster()
        except NotFittedError:
            fitted = False
    elif flavor == "lightgbm" and type(model).__name__ != "Booster":
        fitted = hasattr(model, "fitted_")
    if not fitted:
        raise BadInput(f"the {type(model).__name__} is not fitted yet: call fit() before {doing}")


def save(model: Any, allow_pickle: bool = False) -> Saved:
    flavor = flavor_of(model)
    if flavor is None:
        if not allow_pickle:
            raise BadInput(f"a {_qualname(model)} cannot be saved safely: scikit-learn (skops), XGBoost and LightGBM "
                           "models can; pass --pickle (pickle=True) to store it as a pickle, which runs code "
                           "when it is loaded")
        flavor = "pickle"
    else:
        check_fitted(model)
    top = _top_module(model)
    common = dict(library=top, library_version=_version_of(top), model_class=_qualname(model))
    if flavor == "sklearn":
        import skops.io as sio

        try:
            data = sio.dumps(model)
        except Exception as e:  # skops names the part it cannot handle
            if not allow_pickle:
                raise BadInput(f"skops cannot save this {type(model).__name__} safely ({e}); pass --pickle "
                               "(pickle=True) to store it as a pickle, which runs code when it is loaded") from None
            return _pickle(model, common)
        return Saved(data, "sklearn", trusted=sorted(sio.get_untrusted_types(data=data)), **common)
    if flavor == "xgboost":
        return _save_xgboost(model, common)
    if flavor == "lightgbm":
        return _save_lightgbm(model, common)
    return _pickle(model, common)


def _pickle(model: Any, common: dict) -> Saved:
    import pickle

    try:
        data = pickle.dumps(model, protocol=5)
    except Exception as e:
        raise BadInput(f"cannot pickle this {type(model).__name__}: {e}") from None
    return Saved(data, "pickle", **common)


def _save_xgboost(model: Any, common: dict) -> Saved:
    name = type(model).__name__
    if name not in XGB_CLASSES:
        raise BadInput(f"unsupported XGBoost class {name}; supported: {', '.join(XGB_CLASSES)}")
    with tempfile.TemporaryDirectory(prefix="mlops-xgb-") as d:
        p = os.path.join(d, "model.ubj")
        model.save_model(p)
        with open(p, "rb") as f:
            data = f.read()
    return Saved(data, "xgboost", extra={"class": name}, **common)


def _save_lightgbm(model: Any, common: dict) -> Saved:
    import numpy as np

    name = type(model).__name__
    if name not in LGB_CLASSES:
        raise BadInput(f"unsupported LightGBM class {name}; supported: {', '.join(LGB_CLASSES)}")
    if name == "Booster":
        return Saved(model.model_to_string().encode(), "lightgbm", extra={"class": name}, **common)
    booster = model.booster_
    extra: dict = {"class": name, "params": _jsonable(model.get_params()),
                   "objective": model._objective, "n_features": model._n_features,
                   "best_iteration": model._best_iteration,
                   "fitted_with_feature_names": getattr(model, "_fitted_with_feature_names", False)}
    if hasattr(model, "_classes") and model._classes is not None:
        classes = np.asarray(model._classes)
        extra["classes"] = classes.tolist()
        extra["classes_dtype"] = str(classes.dtype)
    return Saved(booster.model_to_string().encode(), "lightgbm", extra=extra, **common)


def _jsonable(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        try:
            json.dumps(v)
        except TypeError:
            continue  # callables and objects (a custom objective) cannot be rebuilt from text
        out[k] = v
    return out


def load(data: bytes, flavor: str, trusted: list[str] | None, extra: dict | None, allow_pickle: bool = False,
         label: str = "this model") -> Any:
    extra = extra or {}
    if flavor == "sklearn":
        import skops.io as sio

        return sio.loads(data, trusted=list(trusted or []))
    if flavor == "xgboost":
        import xgboost as xgb

        name = extra.get("class", "Booster")
        if name not in XGB_CLASSES:
            raise BadInput(f"unsupported XGBoost class {name}")
        model = getattr(xgb, name)()
        model.load_model(bytearray(data))
        return model
    if flavor == "lightgbm":
        return _load_lightgbm(data, extra)
    if flavor == "pickle":
        if not allow_pickle:
            raise BadInput(f"{label} is stored as a pickle, and loading a pickle runs code from the file; "
                           "pass --pickle (allow_pickle=True) if you trust it")
        import pickle

        return pickle.loads(data)
    raise BadInput(f"unknown model format {flavor!r}")


def _load_lightgbm(data: bytes, extra: dict) -> Any:
    import lightgbm as lgb
    import numpy as np

    booster = lgb.Booster(model_str=data.decode())
    name = extra.get("class", "Booster")
    if name == "Booster":
        return booster
    if name not in LGB_CLASSES:
        raise BadInput(f"unsupported LightGBM class {name}")
    model = getattr(lgb, name)(**extra.get("params", {}))
    model._Booster = booster
    model._objective = extra.get("objective")
    model._n_features = model._n_features_in = extra.get("n_features", booster.num_feature())
    model._best_iteration = extra.get("best_iteration")
    model._fitted_with_feature_names = extra.get("fitted_with_feature_names", False)
    model._evals_result = {}
    model._best_score = {}
    model._other_params = {}
    model.fitted_ = True
    if "classes" in extra:
        from lightgbm.sklearn import _LGBMLabelEncoder

        classes = np.asarray(extra["classes"], dtype=extra.get("classes_dtype") or None)
        model._le = _LGBMLabelEncoder().fit(classes)
        model._classes = model._le.classes_
        model._n_classes = len(classes)
        model._class_map = None
    return model
