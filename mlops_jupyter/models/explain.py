"""SHAP and LIME explanations, stored and shown as one widget (Global / Row / LIME tabs).

    ex = mj.explain(clf, X_test)                       # SHAP, explainer chosen from the model
    ex = mj.explain("churn@production", X_test, method="lime", row=17)

The explainer follows the model: tree ensembles -> TreeExplainer (exact), linear models ->
LinearExplainer, anything else -> PermutationExplainer on a bounded background sample.
Work is done in chunks under a progress bar when it will take more than about a second.
Results are stored (values as .npy, the explained rows as Parquet, the pictures as PNG),
linked to the model version and data version when known, and a repeat of the same call
(same model content, same data, same options) is answered from the store.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import rendering
from ..exceptions import BadInput, MlopsError
from ..identity import ObjectMap

TREE_MODULES = ("xgboost", "lightgbm", "catboost")
TREE_CLASSES = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
                "GradientBoostingClassifier", "GradientBoostingRegressor", "DecisionTreeClassifier",
                "DecisionTreeRegressor", "IsolationForest")
BACKGROUND = 100


@dataclass
class ExplanationPicture:
    """One picture of an explanation as data: which chart (``bar``, ``beeswarm``, ``waterfall``,
    ``lime``) and what it shows; a face draws it (rendering ``PNG``)."""

    kind: str
    args: dict


@dataclass
class Explanation:
    method: str  # shap | lime
    explainer: str
    features: list[str]
    data: Any  # the explained rows (DataFrame)
    values: np.ndarray | None  # SHAP: (rows, features) or (rows, features, classes)
    base_values: np.ndarray | None
    classes: list | None
    output: str  # what the values explain: "probability", "log-odds of class 1", "prediction", ...
    notes: list[str] = field(default_factory=list)
    row: int = 0
    start_class: int | None = None  # the class the per-row views start on (None: the predicted one)
    predicted: np.ndarray | None = None  # predicted class index per explained row (classifiers)
    lime: dict = field(default_factory=dict)  # row -> {"class": label, "weights": [(feature, weight)]}
    images: dict = field(default_factory=dict)  # name -> PNG bytes
    key: str | None = None
    cached: bool = False
    model_version: str | None = None
    data_version: str | None = None
    _model: Any = field(default=None, repr=False)
    _lime_explainer: Any = field(default=None, repr=False)
    _background: Any = field(default=None, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.data)

    @property
    def multiclass(self) -> bool:
        return self.values is not None and self.values.ndim == 3

    def class_values(self, k: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(values, base values) for class index *k* (ignored when the output is one number)."""
        if not self.multiclass:
            return self.values, np.asarray(self.base_values).reshape(-1)
        base = np.asarray(self.base_values)
        return self.values[:, :, k], (base[:, k] if base.ndim == 2 else np.full(len(self.values), base[k]))

    def class_label(self, k: int | None) -> str:
        if k is None:
            return "all classes"
        return str(self.classes[k]) if self.classes and k < len(self.classes) else f"class {k}"

    def default_class(self, row: int | None = None) -> int | None:
        if not self.multiclass and self.method == "shap":
            return None
        if self.predicted is not None and len(self.predicted):
            if row is not None:
                return int(self.predicted[row])
            return int(np.bincount(self.predicted).argmax())
        return 0

    def mean_abs(self):
        """Mean |SHAP| per feature (and class), largest first, as a DataFrame."""
        import pandas as pd

        v = np.abs(self.values).mean(axis=0)
        if v.ndim == 1:
            df = pd.DataFrame({"mean_abs_shap": v}, index=self.features)
        else:
            df = pd.DataFrame(v, index=self.features, columns=[self.class_label(k) for k in range(v.shape[1])])
            df["total"] = df.sum(axis=1)
        return df.sort_values(df.columns[-1], ascending=False)

    # -- pictures -----------------------------------------------------------------------------
    def picture(self, name: str, row: int | None = None, k: int | None = None) -> bytes:
        """The PNG of picture *name* (of *row*, for class index *k*), drawn once and kept."""
        key = f"{name}:{row}:{k}"
        if key in self.images:
            return self.images[key]
        png = rendering.render(self.picture_spec(name, row, k), rendering.PNG)
        if png is None:
            raise MlopsError("no renderer draws explanation pictures (import mlops_jupyter registers them)")
        self.images[key] = png
        return png

    def picture_spec(self, name: str, row: int | None = None, k: int | None = None) -> ExplanationPicture:
        """What picture *name* shows, as data for a face to draw."""
        if name == "bar":
            if k is None and self.multiclass:
                return ExplanationPicture("bar", dict(
                    values=self.values, features=self.features,
                    classes=[self.class_label(i) for i in range(self.values.shape[2])],
                    title=f"Global importance ({self.output})"))
            v, _ = self.class_values(k)
            return ExplanationPicture("bar", dict(values=v, features=self.features, classes=None,
                                                  title=f"Global importance ({self._out_label(k)})"))
        if name == "beeswarm":
            v, _ = self.class_values(k)
            return ExplanationPicture("beeswarm", dict(
                values=v, data=self.data.to_numpy(), features=self.features,
                title=f"SHAP values, {self.n_rows:,} rows ({self._out_label(k)})"))
        if name == "waterfall":
            v, base = self.class_values(k)
            row_data = self.data.to_numpy()[row]
            return ExplanationPicture("waterfall", dict(values=v[row], base=float(base[row]), row_data=row_data,
                                                        features=self.features,
                                                        title=f"Row {row}: {self._out_label(k)}"))
        if name == "lime":
            got = self.lime_row(row)
            return ExplanationPicture("lime", dict(weights=got["weights"],
                                                   title=f"Row {row}: LIME for {got['class']}"))
        raise BadInput(f"no picture {name!r}")

    def _out_label(self, k: int | None) -> str:
        if self.multiclass and k is not None:
            return f"{self.output}, class {self.class_label(k)}"
        return self.output

    def standard_pictures(self) -> dict[str, bytes]:
        """The pictures stored with the explanation: global bars and beeswarm, the default row."""
        out = {}
        if self.values is not None:
            k = self.default_class()
            out["global_bar.png"] = self.picture("bar", None, None if self.multiclass else k)
            out["beeswarm.png"] = self.picture("beeswarm", None, k)
            out[f"waterfall_row{self.row}.png"] = self.picture("waterfall", self.row, self.default_class(self.row))
        for r in sorted(self.lime):
            out[f"lime_row{r}.png"] = self.picture("lime", r)
        return out

    # -- LIME ---------------------------------------------------------------------------------
    def lime_row(self, row: int) -> dict:
        if row in self.lime:
            return self.lime[row]
        if self._model is None:
            raise MlopsError("the model is not at hand to explain more rows with LIME; run explain again")
        self.lime[row] = _lime_one(self, row)
        return self.lime[row]

    # -- display ------------------------------------------------------------------------------
    def __str__(self) -> str:
        head = f"{self.method.upper()} explanation of {self.n_rows:,} rows by {self.explainer}"
        if self.cached:
            head += " (from the store)"
        lines = [head, *[f"  {n}" for n in self.notes]]
        if self.values is not None:
            top = self.mean_abs().head(8)
            lines.append("  top features by mean |SHAP|: " + ", ".join(
                f"{f} {v:.3g}" for f, v in zip(top.index, top.iloc[:, -1])))
        for r, got in sorted(self.lime.items()):
            lines.append(f"  LIME row {r} ({got['class']}): " + ", ".join(f"{f} {w:+.3g}" for f, w in got["weights"][:6]))
        return "\n".join(lines)

    def _ipython_display_(self) -> None:
        rendering.show(self)

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)


# -- helpers --------------------------------------------------------------------------------------------
def _numeric(dtype) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(dtype) or is_bool_dtype(dtype)


def _final_estimator(model):
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def _is_tree(model) -> bool:
    top = type(model).__module__.split(".")[0]
    return top in TREE_MODULES or type(model).__name__ in TREE_CLASSES


def _is_linear(model) -> bool:
    return type(model).__module__.startswith("sklearn.linear_model") and hasattr(model, "coef_")


def _is_classifier(model) -> bool:
    return hasattr(model, "predict_proba") or getattr(model, "_estimator_type", None) == "classifier"


def _as_frame(X, features: list[str] | None = None):
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


def _check_fitted(model) -> None:
    from .flavors import check_fitted

    check_fitted(model, "explaining it")
    if not hasattr(model, "predict"):
        raise BadInput(f"a {type(model).__name__} has no predict(): give a fitted model")


def _predict_fn(model, columns, dtypes, proba: bool, decode: dict | None = None):
    """A function of a numpy array, as explainers call it, that feeds the model a frame like X
    (*decode*: column position -> categories, for columns that travel as codes)."""
    import pandas as pd

    fn = model.predict_proba if proba else model.predict
    wants_frame = hasattr(model, "feature_names_in_") or bool(decode) or any(not _numeric(t) for t in dtypes)

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


# -- the verb -------------------------------------------------------------------------------------------
def explain(model: Any, X: Any, method: str = "shap", rows: int = 1000, row: int | None = None,
            background: Any = None, class_: Any = None, cache: bool = True, progress: bool = True,
            pickle: bool = False, out=None) -> Explanation:
    """Explain *model* on *X* with SHAP (default) or LIME; see the module docstring.

    Args:
        model: a fitted model, or a registered one by ref (``churn@production``).
        X: a DataFrame (pandas or polars), an array, or a dataset ref (``test@v2``).
        method: ``shap`` or ``lime``.
        rows: explain at most this many rows (the first ones) - deep tree ensembles are slow.
        row: the row shown in the per-row views (default 0).
        background: rows for the model-agnostic and linear explainers and for LIME
            (default: a sample of 100 rows of X).
        class_: for classifiers, the class the per-row views start on (default: predicted).
        out: a function to say what will be done (the magic prints; default: silent).
    """
    from ..store import open_store
    from .registry import Registry

    if method not in ("shap", "lime"):
        raise BadInput(f"unknown method {method!r}: use shap or lime")
    if not isinstance(rows, int) or rows < 1:
        raise BadInput("--rows must be a positive number")
    store = open_store()
    reg = Registry(store)
    model_version = None
    model_digest = None
    if isinstance(model, str):
        model_version = reg.get(model)
        model_digest = model_version.digest
        model = reg.load_version(model_version, allow_pickle=pickle)
    else:
        model_version = REGISTERED.get(model)
        if model_version is not None:
            model_digest = model_version.digest
    data_version = None
    if isinstance(X, str):
        from .. import data

        data_version = data.get(X).ref
        X = data.load(X)
    else:
        from ..data.api import version_of

        data_version = version_of(X)
    _check_fitted(model)
    names = getattr(model, "feature_names_in_", None)
    Xf = _as_frame(X, [str(c) for c in names] if names is not None else None)
    if len(Xf) == 0:
        raise BadInput("X has no rows to explain")
    if Xf.shape[1] == 0:
        raise BadInput("X has no columns to explain")
    if model_version is not None and model_version.signature:
        from .signature import check

        check(model_version.signature, Xf)
        cols = [c["name"] for c in model_version.signature.get("columns", [])]
        if cols and list(Xf.columns) != cols:
            Xf = Xf[cols]
    total = len(Xf)
    Xe = Xf.iloc[:rows]
    row = 0 if row is None else row
    if not 0 <= row < len(Xe):
        raise BadInput(f"--row {row} is outside the {len(Xe):,} explained rows (0..{len(Xe) - 1})")
    bg = _as_frame(background, list(Xf.columns)) if background is not None else None
    if bg is not None and list(bg.columns) != list(Xf.columns):
        missing = [c for c in Xf.columns if c not in bg.columns]
        if missing:
            raise BadInput(f"--background lacks column(s) {', '.join(map(str, missing[:10]))}")
        bg = bg[list(Xf.columns)]
    if method == "lime":
        text = [str(c) for c, t in Xe.dtypes.items() if not _numeric(t)]
        if text:
            raise BadInput(f"LIME cannot perturb non-numeric column(s) {', '.join(text[:10])}: encode them as "
                           "numbers first, or use --method shap")
    try:
        model.predict(Xe.iloc[:1])
    except Exception as e:
        raise BadInput(f"the model cannot predict on X: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if class_ is not None:
        labels = [str(c) for c in getattr(model, "classes_", [])]
        if str(class_) not in labels:
            raise BadInput(f"--class {class_!r} is not one of the model's classes"
                           + (f": {', '.join(labels)}" if labels else " (it has none: not a classifier)"))
    options = {"method": method, "rows": len(Xe), "row": row, "class": None if class_ is None else str(class_),
               "background": frame_digest(bg) if bg is not None else None, "v": 1}
    model_digest = model_digest or content_digest(model)
    data_digest = frame_digest(Xe)
    key = None
    if model_digest:
        from ..store.blobs import hash_bytes

        key = hash_bytes(json.dumps([model_digest, data_digest, options], sort_keys=True).encode())
        if cache:
            got = _from_store(store, key)
            if got is not None:
                got._model = model
                got._background = bg
                got.model_version = model_version.ref if model_version else None
                got.data_version = data_version
                return got
    say = out or (lambda s: None)
    if total > len(Xe):
        say(f"explaining the first {len(Xe):,} of {total:,} rows (--rows changes this)")
    if method == "shap":
        ex = _shap(model, Xe, bg, progress, say, pool=Xf)
    else:
        ex = _lime_setup(model, Xe, bg if bg is not None else Xf, bg is not None)
    ex.row = row
    ex.key = key
    ex._model = model
    ex.model_version = model_version.ref if model_version else None
    ex.data_version = data_version
    if ex.classes is not None and _is_classifier(model):
        try:
            pred = np.asarray(model.predict(Xe))
            index = {str(c): i for i, c in enumerate(ex.classes)}
            ex.predicted = np.array([index.get(str(p), 0) for p in pred])
        except Exception:
            ex.predicted = None
    if class_ is not None and ex.classes is not None:
        ex.start_class = [str(c) for c in ex.classes].index(str(class_))
    if method == "lime":
        ex.lime_row(row)
    if key is not None:
        _to_store(store, ex, model_digest, data_digest, options, model_version)
    return ex


# model objects registered or loaded in this session -> their ModelVersion, so that explaining the
# object links the version
REGISTERED = ObjectMap()


def _shap(model, Xe, bg, progress: bool, say, pool=None) -> Explanation:
    import warnings

    try:
        import shap
    except ImportError:
        raise BadInput("SHAP explanations need the shap package: pip install shap") from None
    est = _final_estimator(model)
    features = [str(c) for c in Xe.columns]
    classes = list(getattr(model, "classes_", [])) or None
    notes: list[str] = []
    classifier = _is_classifier(model)
    explainer = None
    name = ""
    output = "prediction"
    numeric = all(_numeric(t) for t in Xe.dtypes)
    if est is model and _is_tree(model) and numeric:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                explainer = shap.TreeExplainer(model)
            name = "TreeExplainer (exact, tree path dependent)"
            output = "log-odds" if classifier and type(model).__name__.startswith(("GradientBoosting", "XGB", "LGBM")) \
                else ("probability" if classifier else "prediction")
        except Exception as e:  # a tree model shap does not know
            notes.append(f"TreeExplainer does not support this model ({str(e).splitlines()[0][:80]})")
            explainer = None
    sample = bg if bg is not None else (pool if pool is not None else Xe)
    if len(sample) > BACKGROUND:
        sample = sample.sample(BACKGROUND, random_state=0)
    bg_note = (f"background: {len(sample)} rows " + ("of --background" if bg is not None else "sampled from X"))
    if explainer is None and est is model and _is_linear(model) and numeric:
        explainer = shap.LinearExplainer(model, sample.to_numpy(dtype=float))
        name = "LinearExplainer"
        output = "log-odds" if classifier else "prediction"
        notes.append(bg_note)
    encode = None
    if explainer is None:
        import pandas as pd

        # explainers mask numbers: text and categorical columns travel as codes, decoded for the model
        cats = {c: pd.Index(pd.concat([Xe[c], sample[c]]).astype(object).unique())
                for c, t in Xe.dtypes.items() if not _numeric(t)}

        def encode(df):
            out = df.copy()
            for c, index in cats.items():
                out[c] = index.get_indexer(df[c].astype(object))
            return out.to_numpy(dtype=float)

        f = _predict_fn(model, list(Xe.columns), list(Xe.dtypes), proba=classifier and hasattr(model, "predict_proba"),
                        decode={list(Xe.columns).index(c): index for c, index in cats.items()})
        masker = shap.maskers.Independent(encode(sample), max_samples=len(sample))
        explainer = shap.PermutationExplainer(f, masker, feature_names=features)
        name = "PermutationExplainer (model-agnostic)"
        output = "probability" if classifier and hasattr(model, "predict_proba") else "prediction"
        notes.append(bg_note)
    is_tree = name.startswith("TreeExplainer")
    arr = Xe if is_tree else Xe.to_numpy(dtype=float) if name.startswith("Linear") else encode(Xe)

    def run(part):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if name.startswith("Permutation"):
                    return explainer(part, silent=True)
                return explainer(part)
        except (MlopsError, KeyboardInterrupt):
            raise
        except Exception as e:
            raise MlopsError(f"SHAP's {name.split(' ')[0]} failed on this model: {type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None

    n = len(Xe)
    # time a small first chunk; go on in one call when the rest is quick, else in chunks under a bar
    first = min(n, 5 if not is_tree else 20)
    t0 = time.perf_counter()
    parts = [run(arr.iloc[:first] if is_tree else arr[:first])]
    per_row = (time.perf_counter() - t0) / first
    left = n - first
    if left:
        estimate = per_row * left
        if estimate > 1.0:
            say(f"SHAP {name}: {n:,} rows, about {estimate:.0f} s")
            from tqdm.auto import tqdm

            step = max(1, int(1.0 / max(per_row, 1e-9)))  # about a second a chunk: the bar moves, calls stay few
            with tqdm(total=n, initial=first, unit="row", desc="SHAP", disable=not progress, leave=False) as bar:
                i = first
                while i < n:
                    j = min(n, i + step)
                    parts.append(run(arr.iloc[i:j] if is_tree else arr[i:j]))
                    bar.update(j - i)
                    i = j
        else:
            parts.append(run(arr.iloc[first:] if is_tree else arr[first:]))
    values = np.concatenate([np.asarray(p.values) for p in parts])
    base = np.concatenate([np.asarray(p.base_values).reshape(len(p.values), -1) for p in parts])
    if base.shape[1] == 1:
        base = base[:, 0]
    if values.ndim == 3 and values.shape[2] == 1:
        values, base = values[:, :, 0], base
    if values.ndim == 2 and classifier and classes and len(classes) == 2:
        output = f"{output} of class {classes[1]}"
    return Explanation("shap", name, features, Xe.reset_index(drop=True), values, base, classes, output, notes)


def _lime_setup(model, Xe, train, from_user: bool) -> Explanation:
    features = [str(c) for c in Xe.columns]
    classes = list(getattr(model, "classes_", [])) or None
    ex = Explanation("lime", "LimeTabularExplainer", features, Xe.reset_index(drop=True), None, None, classes,
                     "probability" if _is_classifier(model) else "prediction",
                     [f"training statistics: {min(len(train), 1000)} rows "
                      + ("of --background" if from_user else "of X")])
    ex._background = train
    return ex


def _lime_one(ex: Explanation, row: int) -> dict:
    try:
        from lime.lime_tabular import LimeTabularExplainer
    except ImportError:
        raise BadInput("LIME explanations need the lime package: pip install lime") from None
    model = ex._model
    classifier = _is_classifier(model) and hasattr(model, "predict_proba")
    if ex._lime_explainer is None:
        train = ex._background if ex._background is not None else ex.data
        if len(train) > 1000:
            train = train.sample(1000, random_state=0)
        ex._lime_explainer = LimeTabularExplainer(
            train.to_numpy(dtype=float), feature_names=ex.features,
            class_names=[str(c) for c in ex.classes] if ex.classes else None,
            mode="classification" if classifier else "regression", discretize_continuous=True, random_state=0)
    f = _predict_fn(model, list(ex.data.columns), list(ex.data.dtypes), proba=classifier)
    x = ex.data.iloc[row].to_numpy(dtype=float)
    if classifier:
        k = ex.default_class(row) if ex.predicted is not None else int(np.argmax(f(x[None, :])[0]))
        got = ex._lime_explainer.explain_instance(x, f, num_features=min(10, len(ex.features)), labels=(k,),
                                                  num_samples=2000)
        return {"class": ex.class_label(k), "weights": [(str(a), float(b)) for a, b in got.as_list(label=k)]}
    got = ex._lime_explainer.explain_instance(x, f, num_features=min(10, len(ex.features)), num_samples=2000)
    return {"class": "the prediction", "weights": [(str(a), float(b)) for a, b in got.as_list()]}


# -- the store ----------------------------------------------------------------------------------------
def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _to_store(store, ex: Explanation, model_digest: str, data_digest: str, options: dict, model_version) -> None:
    from ..data import frames
    from ..store import schema as S
    from ..tracking.run import active_run

    files: dict[str, bytes] = {"data.parquet": frames.to_parquet(frames.to_arrow(ex.data))}
    if ex.values is not None:
        files["values.npy"] = _npy(np.asarray(ex.values, dtype=np.float64))
        files["base_values.npy"] = _npy(np.asarray(ex.base_values, dtype=np.float64))
    if ex.predicted is not None:
        files["predicted.npy"] = _npy(np.asarray(ex.predicted, dtype=np.int64))
    if ex.lime:
        files["lime.json"] = json.dumps({str(k): v for k, v in ex.lime.items()}).encode()
    files.update(ex.standard_pictures())
    stored = {name: store.blobs.put_bytes(b) for name, b in files.items()}
    meta = {"explainer": ex.explainer, "features": ex.features, "classes": _jsonable_list(ex.classes),
            "output": ex.output, "notes": ex.notes, "row": ex.row}
    run = active_run()
    data_version_id = None
    if ex.data_version:
        from ..data.api import get as data_get

        try:
            data_version_id = data_get(ex.data_version).id
        except MlopsError:
            data_version_id = None
    row = dict(key=ex.key, method=ex.method, model_digest=model_digest, data_digest=data_digest,
               model_version_id=model_version.id if model_version else None, data_version_id=data_version_id,
               run_id=run.run_id if run else None, created=time.time(), options=json.dumps(options),
               meta=json.dumps(meta))

    def work(conn):
        ins = store.meta.insert_statement(S.explanations).on_conflict_do_nothing()
        conn.execute(ins, [row])
        conn.execute(S.explanation_files.delete().where(S.explanation_files.c.key == ex.key))
        conn.execute(S.explanation_files.insert(), [dict(key=ex.key, name=n, digest=d, size=s)
                                                    for n, (d, s) in stored.items()])

    store.meta.run_transaction(work)
    if run is not None:
        run.store.meta.add_artifacts([dict(run_id=run.run_id, path=f"explanations/{ex.key[:12]}/{n}", digest=d,
                                           size=s, kind="file") for n, (d, s) in stored.items()])


def _jsonable_list(xs):
    if xs is None:
        return None
    return [x.item() if hasattr(x, "item") else x for x in xs]


def _from_store(store, key: str) -> Explanation | None:
    import sqlalchemy as sa

    from ..data import frames
    from ..store import schema as S

    with store.meta.read() as conn:
        r = conn.execute(sa.select(S.explanations).where(S.explanations.c.key == key)).first()
        if r is None:
            return None
        files = {f.name: f.digest for f in conn.execute(
            sa.select(S.explanation_files).where(S.explanation_files.c.key == key))}
    try:
        meta = json.loads(r.meta)
        data = frames.read_parquet(store.blobs.get_bytes(files["data.parquet"]))

        def npy(name):
            return np.load(io.BytesIO(store.blobs.get_bytes(files[name])), allow_pickle=False) if name in files \
                else None

        ex = Explanation(r.method, meta["explainer"], meta["features"], data, npy("values.npy"),
                         npy("base_values.npy"), meta["classes"], meta["output"], meta["notes"], row=meta["row"],
                         predicted=npy("predicted.npy"), key=key, cached=True)
        if "lime.json" in files:
            ex.lime = {int(k): {"class": v["class"], "weights": [tuple(w) for w in v["weights"]]}
                       for k, v in json.loads(store.blobs.get_bytes(files["lime.json"])).items()}
        k_all = None if ex.multiclass else ex.default_class()
        names = {"global_bar.png": f"bar:None:{k_all}", "beeswarm.png": f"beeswarm:None:{ex.default_class()}",
                 f"waterfall_row{ex.row}.png": f"waterfall:{ex.row}:{ex.default_class(ex.row)}"}
        for fname, digest in files.items():
            if fname in names:
                ex.images[names[fname]] = store.blobs.get_bytes(digest)
            elif fname.startswith("lime_row") and fname.endswith(".png"):
                ex.images[f"lime:{int(fname[8:-4])}:None"] = store.blobs.get_bytes(digest)
        return ex
    except (MlopsError, KeyError, ValueError):
        return None  # a damaged entry is computed again
