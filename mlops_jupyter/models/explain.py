"""SHAP and LIME explanations, stored and shown as one view (global importance, one row, LIME).

    ex = mj.explain(clf, X_test, y=y_test)              # SHAP, explainer chosen from the model
    ex = mj.explain("churn@production", X_test, method="lime", row=17)

The explainer follows the model: tree ensembles -> TreeExplainer (exact), linear models ->
LinearExplainer, anything else -> PermutationExplainer on a bounded background sample
(:mod:`.explain_shap`); networks (torch, Keras) -> DeepExplainer or its fallbacks (:mod:`.explain_nets`).
LIME is seeded, so a row gets the same explanation wherever it is asked for (:mod:`.explain_lime`).
For a binary classifier every picture explains the positive class (``classes_[1]``); for more
classes, a chosen one, or each class side by side.

Each picture is a Vega-Lite chart (:mod:`mlops_jupyter.charts.explain`). Results are stored
(values as .npy, the explained rows as Parquet, the pictures as SVG, :mod:`.explain_store`),
linked to the model version and data version when known, and a repeat of the same call (same
model content, same data, same options) is answered from the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import rendering
from ..exceptions import BadInput, MlopsError
from ..identity import ObjectMap
from .explain_lime import SEED
from .explain_model import as_frame, check_fitted, content_digest, frame_digest, is_classifier, labels_of, numeric

PICTURES = ("global", "beeswarm", "waterfall", "lime")
NAME_LIMIT = 40  # characters of a feature name in "name = value" labels
CONDITION_NAME_LIMIT = 28  # and in LIME's conditions, which also carry one or two bounds
KEPT_PICTURES = 48  # SVGs kept drawn per explanation (a waterfall is about 25 KB)


@dataclass
class Explanation:
    method: str  # shap | lime
    explainer: str
    features: list[str]
    data: Any  # the explained rows (DataFrame, index reset; their labels are in ``index``)
    values: np.ndarray | None  # SHAP: (rows, features) or (rows, features, classes)
    base_values: np.ndarray | None
    classes: list | None
    output: str  # what the values explain: "probability", "log-odds of class 1", "prediction", ...
    notes: list[str] = field(default_factory=list)
    row: int = 0
    start_class: int | None = None  # the class the per-row views start on (None: the default)
    predicted: np.ndarray | None = None  # predicted class index per explained row (classifiers)
    proba: np.ndarray | None = None  # predicted probabilities, rows x classes (classifiers)
    prediction: np.ndarray | None = None  # predicted value per row (regressors)
    index: list[str] | None = None  # each explained row's label in the frame's index
    labels: list | None = None  # each explained row's true label, when given
    seed: int = SEED  # LIME's sampling
    lime: dict = field(default_factory=dict)  # row -> {"class", "k", "weights", "score", "settings"}
    images: dict = field(default_factory=dict)  # picture key -> SVG
    key: str | None = None
    cached: bool = False
    model_version: str | None = None
    data_version: str | None = None
    model: Any = field(default=None, repr=False)  # the model at hand, to explain more rows with LIME
    lime_training: Any = field(default=None, repr=False)  # LIME's training sample (a frame)

    @property
    def n_rows(self) -> int:
        return len(self.data)

    @property
    def per_class(self) -> bool:
        """SHAP values come one set per class (rows x features x classes)."""
        return self.values is not None and self.values.ndim == 3

    @property
    def multiclass(self) -> bool:
        """A classifier of more than two classes (its pictures explain one class, or each)."""
        return self.classes is not None and len(self.classes) > 2

    @property
    def binary(self) -> bool:
        return self.classes is not None and len(self.classes) == 2

    # -- classes ------------------------------------------------------------------------------
    def default_class(self, row: int | None = None) -> int | None:
        """The class a picture explains unless another is chosen: the positive one of a binary
        classifier (or the one asked for with ``class_``); for more classes the class predicted
        for *row* (the most often predicted one without a row); None for a regressor."""
        if self.classes is None:
            return None
        if self.binary:
            return self.start_class if self.start_class is not None else 1
        if self.predicted is not None and len(self.predicted):
            if row is not None:
                return int(self.predicted[row])
            return int(np.bincount(self.predicted).argmax())
        return 0

    def row_class(self, row: int) -> int | None:
        """The class the per-row views start on for *row*."""
        if self.start_class is not None:
            return self.start_class
        return self.default_class(row)

    def class_values(self, k: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(values, base values) for class index *k* (the default class when None); for a binary
        model explained as one output (class 1), class 0's are its mirror image."""
        base = np.asarray(self.base_values)
        if self.per_class:
            k = self.default_class() if k is None else k
            return self.values[:, :, k], (base[:, k] if base.ndim == 2 else np.full(len(self.values), base[k]))
        v, b = self.values, base.reshape(-1)
        if self.binary and k == 0:
            if "log-odds" in self.output:
                return -v, -b
            if "probability" in self.output:
                return -v, 1.0 - b
        return v, b

    def class_label(self, k: int | None) -> str:
        if k is None:
            return "all classes"
        return str(self.classes[k]) if self.classes and k < len(self.classes) else f"class {k}"

    def measure(self, k: int | None) -> str:
        """What the values of class *k* are in: "log-odds of class 1", "probability of class a"."""
        if self.classes is None:
            return self.output
        label = self.class_label(k if k is not None else self.default_class())
        base = self.output.split(" of class ")[0]
        return f"{base} of class {label}"

    def target(self, k: int | None) -> str:
        """What a positive contribution raises: "P(1)", or "the prediction" of a regressor."""
        if self.classes is None:
            return "the prediction"
        return f"P({self.class_label(k if k is not None else self.default_class())})"

    def mean_abs(self):
        """Mean |SHAP| per feature, largest first, as a DataFrame: of the positive class for a
        binary classifier, one column per class and their total for more classes."""
        import pandas as pd

        if self.per_class and not self.multiclass:
            v, _ = self.class_values(self.default_class())
            df = pd.DataFrame({"mean_abs_shap": np.abs(v).mean(axis=0)}, index=self.features)
        elif self.per_class:
            v = np.abs(self.values).mean(axis=0)
            df = pd.DataFrame(v, index=self.features, columns=[self.class_label(k) for k in range(v.shape[1])])
            df["total"] = df.sum(axis=1)
        else:
            df = pd.DataFrame({"mean_abs_shap": np.abs(self.values).mean(axis=0)}, index=self.features)
        return df.sort_values(df.columns[-1], ascending=False)

    # -- rows ---------------------------------------------------------------------------------
    def row_name(self, row: int) -> str:
        """The row's label in the frame's index ("17")."""
        return str(self.index[row]) if self.index and row < len(self.index) else str(row)

    def row_label(self, row: int) -> str:
        """What the row picker shows: "row 17 · label 1 · P(1)=0.93" (the probability of the
        positive class, or of the predicted one for more classes)."""
        bits = [f"row {self.row_name(row)}"]
        if self.labels is not None and row < len(self.labels):
            bits.append(f"label {self.labels[row]}")
        if self.proba is not None and self.classes is not None:
            k = self.default_class(row) if self.binary else (
                int(self.predicted[row]) if self.predicted is not None else int(np.argmax(self.proba[row])))
            bits.append(f"P({self.class_label(k)})={float(self.proba[row, k]):.2f}")
        elif self.predicted is not None and self.classes is not None:
            bits.append(f"predicted {self.class_label(int(self.predicted[row]))}")
        elif self.prediction is not None:
            bits.append(f"prediction {float(self.prediction[row]):.4g}")
        return " · ".join(bits)

    # -- pictures -----------------------------------------------------------------------------
    def chart(self, name: str, row: int | None = None, k: int | None = None):
        """Picture *name* (``global``, ``beeswarm``, ``waterfall``, ``lime``) of *row*, for class
        index *k*, as a :class:`~mlops_jupyter.charts.Chart`. ``global`` with k=None shows every
        class of a multiclass model side by side, and the positive class of a binary one."""
        from ..charts import explain as charts

        if name == "lime":
            got = self.lime_row(self.row if row is None else row)
            r = self.row if row is None else row
            regression = got.get("k") is None
            target = "the prediction" if regression else f"class {got['class']}"
            note = f"LIME's local linear model for {target}"
            if got.get("score") is not None:
                note += f" (fit R² {got['score']:.2f} on its samples)"
            return charts.lime_weights(self._conditions(got["weights"]), target=target, settings=got["settings"], regression=regression,
                                       n_features=len(self.features), title=self.row_label(r), note=note)
        if self.values is None:
            raise BadInput(f"a {self.method.upper()} explanation has no {name} picture")
        from .explain_images import image_chart

        if (heat_map := image_chart(self, name, row, k)) is not None:  # images: heat maps, not bars
            return heat_map
        if name == "global":
            if k is None and self.multiclass:
                v = np.abs(self.values).mean(axis=0)
                per = {self.class_label(i): v[:, i].tolist() for i in range(v.shape[1])}
                return charts.global_importance(self.features, per, measure=f"mean |SHAP value| ({self.output})",
                                                title="Global importance per class",
                                                note=f"{self.n_rows:,} rows; each class's bars side by side")
            k = self.default_class() if k is None else k
            v, _ = self.class_values(k)
            return charts.global_importance(self.features, np.abs(v).mean(axis=0).tolist(),
                                            measure=f"mean |SHAP value| ({self.measure(k)})",
                                            title=self._global_title(k), note=f"{self.n_rows:,} rows")
        if name == "beeswarm":
            k = self.default_class() if k is None else k
            v, _ = self.class_values(k)
            title = "SHAP value of each row" + (f" for class {self.class_label(k)}" if self.classes else "")
            return charts.beeswarm(self.features, v, self.data.to_numpy(), measure=f"SHAP value ({self.measure(k)})",
                                   title=title)
        if name == "waterfall":
            r = self.row if row is None else row
            k = self.row_class(r) if k is None else k
            v, base = self.class_values(k)
            values = self.data.iloc[r].tolist()
            contributions = [(f"{_cut(f)} = {_short(x)}", float(c)) for f, x, c in zip(self.features, values, v[r])]
            return charts.waterfall(contributions, float(base[r]), measure=self.measure(k), target=self.target(k),
                                    title=self.row_label(r))
        raise BadInput(f"no picture {name!r}: one of {', '.join(PICTURES)}")

    def _conditions(self, weights: list) -> list:
        """LIME's conditions with long feature names shortened, so both bounds stay readable
        ("1.01 < monthly_charges_in_loca… <= 2.22"); as they are if shortening makes two alike."""
        long = sorted((f for f in self.features if len(f) > CONDITION_NAME_LIMIT), key=len, reverse=True)
        out = []
        for cond, w in weights:
            for f in long:
                if f in cond:
                    cond = cond.replace(f, _cut(f, CONDITION_NAME_LIMIT))
                    break
            out.append((cond, w))
        return out if len({c for c, _ in out}) == len(out) else weights

    def _global_title(self, k: int | None) -> str:
        if self.classes is None:
            return "Global importance"
        title = f"Global importance for class {self.class_label(k)}"
        return title + (" (the positive class)" if self.binary and k == 1 else "")

    def picture_key(self, name: str, row: int | None = None, k: int | None = None) -> str:
        return f"{name}:{row}:{k}"

    def svg(self, name: str, row: int | None = None, k: int | None = None) -> str:
        """Picture *name* drawn as SVG (for saved notebooks and the static view), drawn once and
        kept."""
        key = self.picture_key(name, row, k)
        if key not in self.images:
            if len(self.images) >= KEPT_PICTURES:  # a view clicked through many rows: forget the oldest
                self.images.pop(next(iter(self.images)))
            self.images[key] = self.chart(name, row, k).svg()
        return self.images[key]

    def standard_views(self) -> list[tuple[str, int | None, int | None]]:
        """The pictures shown first, as (name, row, class): global importance and the beeswarm
        of the default class, the starting row's waterfall, each LIME row."""
        views: list[tuple[str, int | None, int | None]] = []
        if self.values is not None:
            views.append(("global", None, None if self.multiclass else self.default_class()))
            views.append(("beeswarm", None, self.default_class()))
            views.append(("waterfall", self.row, self.row_class(self.row)))
        views.extend(("lime", r, None) for r in sorted(self.lime))
        return views

    def standard_pictures(self) -> dict[str, tuple[str, str]]:
        """The pictures stored with the explanation: file name -> (picture key, SVG)."""
        files = {"global": "global_importance.svg", "beeswarm": "beeswarm.svg"}
        out = {}
        for name, row, k in self.standard_views():
            fname = files.get(name) or f"{name}_row{row}.svg"
            out[fname] = (self.picture_key(name, row, k), self.svg(name, row, k))
        return out

    # -- LIME ---------------------------------------------------------------------------------
    def lime_row(self, row: int) -> dict:
        """LIME's explanation of *row* (computed on first use, with the explanation's seed)."""
        if row in self.lime:
            return self.lime[row]
        if not 0 <= row < self.n_rows:
            raise BadInput(f"row {row} is outside the {self.n_rows:,} explained rows (0..{self.n_rows - 1})")
        if self.model is None:
            raise MlopsError("the model is not at hand to explain more rows with LIME; run explain again")
        from .explain_lime import explain_row, training_sample

        text = [str(c) for c, t in self.data.dtypes.items() if not numeric(t)]
        if text:
            raise BadInput(f"LIME cannot perturb non-numeric column(s) {', '.join(text[:10])}: encode them as "
                           "numbers first")
        classifier = is_classifier(self.model) and hasattr(self.model, "predict_proba")
        k = None
        if classifier:
            k = self.row_class(row)
            if k is None:
                k = int(np.argmax(self.model.predict_proba(self.data.iloc[[row]])[0]))
        training = self.lime_training if self.lime_training is not None else training_sample(self.data, self.seed)
        got = explain_row(self.model, self.data, row, training=training, classifier=classifier, k=k,
                          class_names=[str(c) for c in self.classes] if self.classes else None, seed=self.seed)
        got["class"] = self.class_label(k) if classifier else "the prediction"
        self.lime[row] = got
        return got

    # -- display ------------------------------------------------------------------------------
    def summary(self) -> str:
        """One line: what was explained, how, and the top features."""
        line = f"{self.method.upper()} explanation of {self.n_rows:,} rows by {self.explainer.split(' (')[0]}"
        if self.values is not None:
            top = self.mean_abs().head(3)
            line += " · top features: " + ", ".join(map(str, top.index))
        if self.lime:
            line += f" · LIME row{'s' if len(self.lime) > 1 else ''} " + ", ".join(
                self.row_name(r) for r in sorted(self.lime))
        return line

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
            lines.append(f"  LIME {self.row_label(r)} ({got['class']}): "
                         + ", ".join(f"{f} {w:+.3g}" for f, w in got["weights"][:6]))
        if self.lime:
            s = next(iter(self.lime.values())).get("settings", {})
            lines.append("  LIME settings: " + ", ".join(f"{k} {v}" for k, v in s.items()))
        return "\n".join(lines)

    def _ipython_display_(self) -> None:
        rendering.show(self)

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)


def _cut(name: str, limit: int = NAME_LIMIT) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


def _short(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    s = str(v)
    return s if len(s) <= 16 else s[:15] + "…"


def _predictions(ex: Explanation, model, Xe) -> None:
    """What the model says about each explained row: its class and probabilities, or its value."""
    try:
        if ex.classes is not None and is_classifier(model):
            pred = np.asarray(model.predict(Xe))
            index = {str(c): i for i, c in enumerate(ex.classes)}
            ex.predicted = np.array([index.get(str(p), 0) for p in pred])
            if hasattr(model, "predict_proba"):
                ex.proba = np.asarray(model.predict_proba(Xe), dtype=float)
        elif ex.classes is None:
            ex.prediction = np.asarray(model.predict(Xe), dtype=float).reshape(len(Xe), -1)[:, 0]
    except Exception:  # a model that predicts differently in bulk: the views go without
        pass


# -- the verb -------------------------------------------------------------------------------------------
def explain(model: Any, X: Any, method: str = "shap", rows: int = 1000, row: int | None = None,
            background: Any = None, class_: Any = None, y: Any = None, seed: int = SEED, cache: bool = True,
            progress: bool = True, pickle: bool = False, out=None) -> Explanation:
    """Explain *model* on *X* with SHAP (default) or LIME; see the module docstring.

    Args:
        model: a fitted model, or a registered one by ref (``churn@production``).
        X: a DataFrame (pandas or polars), an array, or a dataset ref (``test@v2``).
        method: ``shap`` or ``lime``.
        rows: explain at most this many rows (the first ones) - deep tree ensembles are slow.
        row: the position of the row shown first in the per-row views (default 0).
        background: rows for the model-agnostic, linear and network explainers and for LIME
            (default: a sample of X: 100 rows for SHAP, 200 for a network, 1000 for LIME).
        class_: for classifiers, the class the per-row views start on (default: the positive
            class of a binary model, the predicted one for more classes).
        y: the true labels of X's rows, shown by the row picker ("row 17 · label 1 · P(1)=0.93").
        seed: LIME's sampling seed (the same seed gives the same LIME explanation of a row).
        out: a function to say what will be done (the magic prints; default: silent).
    """
    from ..store import open_store
    from . import explain_store
    from .explain_lime import training_sample
    from .explain_nets import explain_network, is_network
    from .registry import Registry

    if method not in ("shap", "lime"):
        raise BadInput(f"unknown method {method!r}: use shap or lime")
    if not isinstance(rows, int) or rows < 1:
        raise BadInput("--rows must be a positive number")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 32:
        raise BadInput(f"--seed must be a whole number from 0 to {2 ** 32 - 1}, not {seed!r}")
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
    if is_network(model):
        return explain_network(model, X, method=method, rows=rows, row=row, background=background, class_=class_, y=y,
                               seed=seed, cache=cache, progress=progress, out=out, store=store,
                               model_version=model_version, model_digest=model_digest, data_version=data_version)
    check_fitted(model)
    names = getattr(model, "feature_names_in_", None)
    Xf = as_frame(X, [str(c) for c in names] if names is not None else None)
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
    labels = labels_of(y, total, len(Xe))
    bg = as_frame(background, list(Xf.columns)) if background is not None else None
    if bg is not None and list(bg.columns) != list(Xf.columns):
        missing = [c for c in Xf.columns if c not in bg.columns]
        if missing:
            raise BadInput(f"--background lacks column(s) {', '.join(map(str, missing[:10]))}")
        bg = bg[list(Xf.columns)]
    if method == "lime":
        text = [str(c) for c, t in Xe.dtypes.items() if not numeric(t)]
        if text:
            raise BadInput(f"LIME cannot perturb non-numeric column(s) {', '.join(text[:10])}: encode them as "
                           "numbers first, or use --method shap")
    try:
        model.predict(Xe.iloc[:1])
    except Exception as e:
        raise BadInput(f"the model cannot predict on X: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if class_ is not None:
        known = [str(c) for c in getattr(model, "classes_", [])]
        if str(class_) not in known:
            raise BadInput(f"--class {class_!r} is not one of the model's classes"
                           + (f": {', '.join(known)}" if known else " (it has none: not a classifier)"))
    options = {"method": method, "rows": len(Xe), "row": row, "class": None if class_ is None else str(class_),
               "background": frame_digest(bg) if bg is not None else None, "seed": int(seed), "v": 2}
    model_digest = model_digest or content_digest(model)
    data_digest = frame_digest(Xe)
    lime_from = bg if bg is not None else Xf
    key = None
    if model_digest:
        from ..store.blobs import hash_bytes

        key = hash_bytes(json.dumps([model_digest, data_digest, options], sort_keys=True).encode())
        if cache:
            fields = explain_store.load(store, key)
            if fields is not None:
                got = Explanation(**fields)
                got.model = model
                got.lime_training = training_sample(lime_from, got.seed)
                got.model_version = model_version.ref if model_version else None
                got.data_version = data_version
                if labels is not None:
                    got.labels = labels
                if class_ is not None and got.classes is not None:
                    got.start_class = [str(c) for c in got.classes].index(str(class_))
                return got
    say = out or (lambda s: None)
    if total > len(Xe):
        say(f"explaining the first {len(Xe):,} of {total:,} rows (--rows changes this)")
    if method == "shap":
        from .explain_shap import shap_values

        ex = Explanation(**shap_values(model, Xe, bg, progress, say, pool=Xf))
    else:
        ex = Explanation("lime", "LimeTabularExplainer", [str(c) for c in Xe.columns], Xe.reset_index(drop=True),
                         None, None, list(getattr(model, "classes_", [])) or None,
                         "probability" if is_classifier(model) else "prediction")
    ex.lime_training = training_sample(lime_from, seed)
    if method == "lime":
        ex.notes.append(f"training sample: {len(ex.lime_training):,} rows "
                        + ("of --background" if bg is not None else "of X"))
    ex.row, ex.key, ex.model, ex.seed = row, key, model, int(seed)
    ex.model_version = model_version.ref if model_version else None
    ex.data_version = data_version
    ex.index = [str(i) for i in Xe.index]
    ex.labels = labels
    _predictions(ex, model, Xe)
    if class_ is not None and ex.classes is not None:
        ex.start_class = [str(c) for c in ex.classes].index(str(class_))
    if method == "lime":
        ex.lime_row(row)
    if key is not None:
        explain_store.save(store, ex, model_digest, data_digest, options, model_version)
    return ex


# model objects registered or loaded in this session -> their ModelVersion, so that explaining the
# object links the version
REGISTERED = ObjectMap()
