"""Saving and loading models without running arbitrary code: one :class:`ModelFormat` per format.

- scikit-learn estimators and pipelines: skops. The types skops will have to build are
  listed when saving and kept in the registry (not in the file); loading trusts exactly
  those, so a swapped file cannot smuggle in another type (its hash would not match anyway).
- XGBoost and LightGBM: their own formats (UBJSON, model text), rebuilt into the same
  sklearn-style class when the model was one.
- Anything else only as a pickle, when asked for explicitly both when saving and loading.

The formats live in :data:`model_formats`; the name a format is registered under is the
``flavor`` stored with each version. Adding a format is one class and one ``register`` line::

    model_formats.register("catboost", CatBoostFormat())
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import BadInput
from ..registry import Registry

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
    signature: dict | None = None  # when the format reads the signature itself (networks: tensors)


@dataclass
class Library:
    """What every saved version records of the model's library (the fields of :class:`Saved` but
    data, flavor, trusted and extra)."""

    library: str
    library_version: str
    model_class: str

    @classmethod
    def of(cls, model: Any) -> "Library":
        top = top_module(model)
        return cls(top, version_of(top), qualname(model))

    def saved(self, data: bytes, flavor: str, trusted: list[str] | None = None, extra: dict | None = None) -> Saved:
        return Saved(data, flavor, self.library, self.library_version, self.model_class,
                     trusted=trusted or [], extra=extra or {})


class ModelFormat:
    """One way of storing a model: which objects it takes, and how they are saved and loaded.

    *library* is the top-level module of the objects the format is made for (``"xgboost"``): a
    format named by the object's own library is chosen before one that takes it by base class
    (XGBoost's estimators are scikit-learn estimators too). ``None``: chosen by :meth:`detect` only.
    """

    library: str | None = None
    file_name = "model.bin"  # what to call the saved bytes as a file (exports, mirrors)
    runs_code = False  # loading runs code from the file: only when the user asked for it

    def detect(self, model: Any) -> bool:
        """Whether this format can save *model*."""
        raise NotImplementedError

    def is_fitted(self, model: Any) -> bool:
        return True

    def save(self, model: Any, library: Library, allow_pickle: bool = False, example: Any = None) -> Saved:
        """*model*'s bytes; *example* is the registration's input example (networks are traced on it)."""
        raise NotImplementedError

    def load(self, data: bytes, trusted: list[str], extra: dict, allow_pickle: bool = False,
             label: str = "this model") -> Any:
        raise NotImplementedError

    def predictor(self, model: Any, signature: dict | None) -> Any:
        """What the server, explainers and evaluation call: an object with ``predict`` (and
        ``predict_proba`` for classifiers) on the signature's input. The loaded model itself, unless
        it lacks that face (a network: :class:`~mlops_jupyter.models.nets.NetPredictor`)."""
        return model


class SklearnFormat(ModelFormat):
    """scikit-learn estimators and pipelines, with skops; loading trusts only the recorded types."""

    library = "sklearn"
    file_name = "model.skops"

    def detect(self, model: Any) -> bool:
        base = sys.modules.get("sklearn.base")
        # an instance of an estimator class means its module loaded sklearn.base: if it is not loaded,
        # *model* is not one (and scikit-learn need not be imported to say so)
        return base is not None and isinstance(model, base.BaseEstimator)

    def is_fitted(self, model: Any) -> bool:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(model)
        except NotFittedError:
            return False
        except TypeError:
            pass
        return True

    def save(self, model: Any, library: Library, allow_pickle: bool = False, example: Any = None) -> Saved:
        sio = import_skops()

        try:
            data = sio.dumps(model)
        except Exception as e:  # skops names the part it cannot handle
            if not allow_pickle:
                raise BadInput(f"skops cannot save this {type(model).__name__} safely ({e}); pass --pickle "
                               "(pickle=True) to store it as a pickle, which runs code when it is loaded") from None
            return model_formats.get("pickle").save(model, library, allow_pickle)
        return library.saved(data, "sklearn", trusted=sorted(sio.get_untrusted_types(data=data)))

    def load(self, data: bytes, trusted: list[str], extra: dict, allow_pickle: bool = False,
             label: str = "this model") -> Any:
        sio = import_skops()

        return sio.loads(data, trusted=list(trusted))


class XGBoostFormat(ModelFormat):
    """XGBoost boosters and estimators, in XGBoost's UBJSON format."""

    library = "xgboost"
    file_name = "model.ubj"

    def detect(self, model: Any) -> bool:
        return top_module(model) == "xgboost"

    def is_fitted(self, model: Any) -> bool:
        if not hasattr(model, "get_booster"):
            return True
        from sklearn.exceptions import NotFittedError

        try:
            model.get_booster()
        except NotFittedError:
            return False
        return True

    def save(self, model: Any, library: Library, allow_pickle: bool = False, example: Any = None) -> Saved:
        name = type(model).__name__
        if name not in XGB_CLASSES:
            raise BadInput(f"unsupported XGBoost class {name}; supported: {', '.join(XGB_CLASSES)}")
        with tempfile.TemporaryDirectory(prefix="mlops-xgb-") as d:
            p = os.path.join(d, "model.ubj")
            model.save_model(p)
            with open(p, "rb") as f:
                data = f.read()
        return library.saved(data, "xgboost", extra={"class": name})

    def load(self, data: bytes, trusted: list[str], extra: dict, allow_pickle: bool = False,
             label: str = "this model") -> Any:
        import xgboost as xgb

        name = extra.get("class", "Booster")
        if name not in XGB_CLASSES:
            raise BadInput(f"unsupported XGBoost class {name}")
        model = getattr(xgb, name)()
        model.load_model(bytearray(data))
        return model


class LightGBMFormat(ModelFormat):
    """LightGBM boosters and estimators, as LightGBM's model text plus the estimator's settings."""

    library = "lightgbm"
    file_name = "model.txt"

    def detect(self, model: Any) -> bool:
        return top_module(model) == "lightgbm"

    def is_fitted(self, model: Any) -> bool:
        return type(model).__name__ == "Booster" or hasattr(model, "fitted_")

    def save(self, model: Any, library: Library, allow_pickle: bool = False, example: Any = None) -> Saved:
        import numpy as np

        name = type(model).__name__
        if name not in LGB_CLASSES:
            raise BadInput(f"unsupported LightGBM class {name}; supported: {', '.join(LGB_CLASSES)}")
        if name == "Booster":
            return library.saved(model.model_to_string().encode(), "lightgbm", extra={"class": name})
        booster = model.booster_
        # LightGBM's estimators keep what predict needs in private attributes: saved as they are
        extra: dict = {"class": name, "params": jsonable(model.get_params()),
                       "objective": model._objective, "n_features": model._n_features,
                       "best_iteration": model._best_iteration,
                       "fitted_with_feature_names": getattr(model, "_fitted_with_feature_names", False)}
        if hasattr(model, "_classes") and model._classes is not None:
            classes = np.asarray(model._classes)
            extra["classes"] = classes.tolist()
            extra["classes_dtype"] = str(classes.dtype)
        return library.saved(booster.model_to_string().encode(), "lightgbm", extra=extra)

    def load(self, data: bytes, trusted: list[str], extra: dict, allow_pickle: bool = False,
             label: str = "this model") -> Any:
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


class PickleFormat(ModelFormat):
    """Anything, as a pickle: never chosen on its own, and loaded only when the user allows it."""

    file_name = "model.pkl"
    runs_code = True

    def detect(self, model: Any) -> bool:
        return False  # only when asked for (allow_pickle), never as a safe format

    def save(self, model: Any, library: Library, allow_pickle: bool = False, example: Any = None) -> Saved:
        import pickle

        try:
            data = pickle.dumps(model, protocol=5)
        except Exception as e:
            raise BadInput(f"cannot pickle this {type(model).__name__}: {e}") from None
        return library.saved(data, "pickle")

    def load(self, data: bytes, trusted: list[str], extra: dict, allow_pickle: bool = False,
             label: str = "this model") -> Any:
        if not allow_pickle:
            raise refusal(label)
        import pickle

        from ..store.pickles import describe, scan_pickle, unsafe

        scan = scan_pickle(data)  # what it would run, read before it runs
        if unsafe(scan):
            raise BadInput(f"refusing to unpickle {label}: it {describe(scan)}; see `mlops model audit`")
        return pickle.loads(data)


model_formats: Registry[ModelFormat] = Registry("model format", entry_point_group="mlops_jupyter.model_formats")
model_formats.register("sklearn", SklearnFormat())
model_formats.register("xgboost", XGBoostFormat())
model_formats.register("lightgbm", LightGBMFormat())
# Keras before PyTorch: with the torch backend a Keras model is a torch.nn.Module too
model_formats.register("keras", "mlops_jupyter.models.keras_format:FORMAT")
model_formats.register("torch", "mlops_jupyter.models.torch_format:FORMAT")
model_formats.register("pickle", PickleFormat())


# -- the face the registry and the rest of models use ------------------------------------------
def flavor_of(model: Any) -> str | None:
    """The safe format for *model* (its registered name), or None when only a pickle would do."""
    formats = list(model_formats.items())
    top = top_module(model)
    for name, fmt in formats:  # the object's own library first: an XGBClassifier is a sklearn estimator too
        if fmt.library == top and fmt.detect(model):
            return name
    for name, fmt in formats:
        if fmt.library != top and fmt.detect(model):
            return name
    return None


def check_fitted(model: Any, doing: str = "registering it") -> None:
    """One BadInput line when *model* (of a library we know) has not been fitted yet."""
    flavor = flavor_of(model)
    if flavor is not None and not model_formats.get(flavor).is_fitted(model):
        raise BadInput(f"the {type(model).__name__} is not fitted yet: call fit() before {doing}")


def save(model: Any, allow_pickle: bool = False, example: Any = None) -> Saved:
    flavor = flavor_of(model)
    if flavor is None:
        if not allow_pickle:
            raise BadInput(f"a {qualname(model)} cannot be saved safely: scikit-learn (skops), XGBoost, LightGBM, "
                           "PyTorch and Keras models can; pass --pickle (pickle=True) to store it as a pickle, "
                           "which runs code when it is loaded")
        flavor = "pickle"
    else:
        check_fitted(model)
    fmt = model_formats.get(flavor)
    if takes_example(fmt):
        return fmt.save(model, Library.of(model), allow_pickle, example=example)
    return fmt.save(model, Library.of(model), allow_pickle)  # a format written before examples were passed


def takes_example(fmt: ModelFormat) -> bool:
    """Whether *fmt*'s ``save`` takes the registration example (formats registered by others may not)."""
    import inspect

    try:
        return "example" in inspect.signature(fmt.save).parameters
    except (TypeError, ValueError):
        return False


def predictor(model: Any, flavor: str | None, signature: dict | None) -> Any:
    """*model* (loaded from format *flavor*) with ``predict`` / ``predict_proba`` on its signature's input."""
    if flavor in model_formats:
        return model_formats.get(flavor).predictor(model, signature)
    return model


def load(data: bytes, flavor: str, trusted: list[str] | None, extra: dict | None, allow_pickle: bool = False,
         label: str = "this model") -> Any:
    """The model object saved as *data* in format *flavor*; a pickle only with *allow_pickle*."""
    fmt = model_formats.get(flavor)
    if fmt.runs_code and not allow_pickle:  # whatever the format's own load does: refuse here first
        raise refusal(label)
    return fmt.load(data, list(trusted or []), extra or {}, allow_pickle=allow_pickle, label=label)


def refusal(label: str) -> BadInput:
    """The error for a model stored in a format whose loading runs code, when the user did not allow it."""
    return BadInput(f"{label} is stored as a pickle, and loading a pickle runs code from the file; "
                    "pass --pickle (allow_pickle=True) if you trust it")


def file_name(flavor: str) -> str:
    """What to call a version's file of format *flavor* (``model.skops``, ...; ``model.bin`` if unknown)."""
    return model_formats.get(flavor).file_name if flavor in model_formats else "model.bin"


# -- helpers -------------------------------------------------------------------------------------
ARRAY_API_WRAPPERS = ("torch", "dask")  # sklearn.externals.array_api_compat.<name> imports that library


def import_skops():
    """``skops.io``, without importing PyTorch or Dask on the way.

    skops lists scikit-learn's estimators with ``sklearn.utils.all_estimators``, which walks every
    scikit-learn package, ``sklearn.externals.array_api_compat.torch`` included: importing that
    package imports torch (4 s) when it is installed. The wrappers of libraries this process has not
    imported are hidden for that walk (an ImportError the walk skips), and shown again after it."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    hidden = [f"sklearn.externals.array_api_compat.{lib}" for lib in ARRAY_API_WRAPPERS
              if lib not in sys.modules and f"sklearn.externals.array_api_compat.{lib}" not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import skops.io as sio
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return sio


def qualname(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def top_module(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def version_of(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"sklearn": "scikit-learn"}.get(module, module)
    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def jsonable(params: dict) -> dict:
    """The JSON-serializable entries of *params*."""
    out = {}
    for k, v in params.items():
        try:
            json.dumps(v)
        except TypeError:
            continue  # callables and objects (a custom objective) cannot be rebuilt from text
        out[k] = v
    return out
