"""``mj.evaluate``: a model version on labelled rows, stored with both versions.

    ev = mj.evaluate("churn@v3", "test@v2", target="churned", by=["region"], baseline="churn@production")

The same model content on the same data content with the same options is answered from the store;
anything wrong with the input (a missing or constant target, a missing grouping column, rows that
do not fit the signature, a baseline of another task) is one line, and nothing is stored.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..exceptions import BadInput
from .metrics import Predictions, check_labels, classification, plain, regression
from .report import FORMAT, Evaluation

MIN_GROUP = 30
RESAMPLES = 200


def check_options(by, min_group, resamples, seed, positive) -> tuple[list[str], dict]:
    """The slice columns and the options as stored; one line for a bound a number breaks."""
    if by is None:
        by = []
    elif isinstance(by, str):
        by = [b.strip() for b in by.split(",") if b.strip()]
    by = list(dict.fromkeys(str(b) for b in by))
    for name, value, lo in (("min_group", min_group, 1), ("resamples", resamples, 10), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise BadInput(f"{name} must be a whole number of at least {lo}, not {value!r}")
    if resamples > 100_000:
        raise BadInput(f"resamples must be at most 100000, not {resamples}")
    return by, {"by": by, "min_group": int(min_group), "resamples": int(resamples), "seed": int(seed),
                "positive": plain(positive)}


def _key(model_digest: str, data_digest: str, target: str, baseline_digest: str | None, options: dict) -> str:
    import json

    from ..store.blobs import hash_bytes

    return hash_bytes(json.dumps([FORMAT, model_digest, data_digest, target, baseline_digest, options],
                                 sort_keys=True, default=str).encode())


def _resolve_data(data: Any, label: str | None = None) -> tuple[Any, str, int | None, str]:
    """(frame or None (a version, loaded when needed), label, data version id, content digest)."""
    if isinstance(data, str):
        from ..data.api import get

        dv = get(data)
        return None, dv.ref, dv.id, dv.digest
    from ..data import frames
    from ..data.api import get, version_of
    from ..models.signature import as_pandas

    if not frames.is_frame(data):
        raise BadInput(f"evaluate needs a DataFrame or a dataset version (test@v2), not a {type(data).__name__}")
    df = as_pandas(data)
    digest = frames.content_digest(df)
    ref = version_of(data)
    if ref is not None:
        dv = get(ref)
        return df, dv.ref, dv.id, digest
    return df, f"{label or 'a DataFrame'} (digest {digest[:12]})", None, digest


def _task(model: Any, predictor: Any, signature: dict | None) -> str:
    task = (signature or {}).get("task") or getattr(predictor, "task", None)
    if task:
        return task
    if hasattr(model, "predict_proba"):
        return "classification"
    try:
        from sklearn.base import is_classifier

        if is_classifier(model):
            return "classification"
    except ImportError:
        pass
    return "regression"


def _features(df, target: str, by: list[str], v, model) -> Any:
    """The columns the model reads: its signature's, else its fitted feature names, else all but the
    target (checked against the signature: one line when the rows do not fit)."""
    from ..models.signature import check

    sig = v.signature or {}
    cols = [c["name"] for c in sig.get("columns", [])] if sig.get("type") == "dataframe" else None
    if cols is None:
        names = getattr(model, "feature_names_in_", None)
        cols = [str(c) for c in names] if names is not None else None
    if cols is not None:
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise BadInput(f"the data does not fit {v.ref}'s signature: it lacks column(s) {', '.join(missing[:10])}")
        X = df[cols]
    else:
        X = df.drop(columns=[target] + [b for b in by if b != target])
    check(sig or None, X, "the data")
    return X


def predict(v, predictor, X, task: str, positive: Any, target: str, y) -> Predictions:
    """Version *v*'s predictions on X beside the true values (one line when it cannot); *predictor* is
    its loaded model as ``flavors.predictor`` gives it (a scikit-learn-like model is its own)."""
    try:
        if task == "regression":
            pred = np.asarray(predictor.predict(X), dtype=float).reshape(len(X), -1)[:, 0]
            return Predictions("regression", np.asarray(y, dtype=float), pred)
        classes = getattr(predictor, "classes_", None)
        if classes is None:
            classes = (v.signature or {}).get("classes")
        proba = None
        if hasattr(predictor, "predict_proba"):
            try:
                proba = np.asarray(predictor.predict_proba(X), dtype=float)
            except AttributeError:  # a classifier made without probabilities (SVC(probability=False))
                proba = None
        if proba is not None and classes is not None and proba.shape[1] == len(classes):
            classes_arr = np.asarray(classes)
            pred = classes_arr[np.argmax(proba, axis=1)]
        else:
            pred = np.asarray(predictor.predict(X))
            if classes is None:
                classes = sorted(set(np.unique(pred).tolist()) | set(np.unique(np.asarray(y)).tolist()))
            proba = None
    except BadInput:
        raise
    except Exception as e:
        raise BadInput(f"{v.ref} cannot predict these rows: {type(e).__name__}: {str(e)[:200]}") from None
    classes = [plain(c) for c in classes]
    y = np.asarray(y)
    if y.dtype.kind in "biuf" and np.asarray(classes).dtype.kind in "biu":
        if np.all(np.mod(y, 1) == 0):
            y = y.astype(np.asarray(classes).dtype)
    check_labels(y, classes, target)
    if len(classes) == 2:
        positive = classes[1] if positive is None else positive
    if positive is not None and positive not in classes:
        raise BadInput(f"positive class {positive!r} is not one of the model's classes "
                       f"({', '.join(repr(c) for c in classes)})")
    return Predictions("classification", y, pred, proba, classes, positive if len(classes) == 2 else None)


def evaluate(model: Any, data: Any, target: str, by: Any = None, baseline: Any = None, min_group: int = MIN_GROUP,
             resamples: int = RESAMPLES, seed: int = 0, positive: Any = None, cache: bool = True,
             pickle: bool = False, progress: bool = True, label: str | None = None) -> Evaluation:
    """Evaluate model version *model* on *data*'s rows against their *target* column.

    Args:
        model: a registered version (``churn@v3``, ``churn@production``) or its ModelVersion.
        data: a dataset version (``test@v2``) or a DataFrame (pandas or polars) holding the target.
        target: the column of true labels or values.
        by: grouping column(s) for slices (``["region", "age_band"]`` or ``"region,age_band"``).
        baseline: another version of the same task, evaluated on the same rows and compared figure by
            figure with a bootstrap interval of the difference.
        min_group: groups with fewer rows are marked small and left out of the gaps.
        resamples, seed: the bootstrap's resamples and seed.
        positive: the positive class of a binary classifier (default: the second of its classes).
        cache: answer from the store when this evaluation was made before.
        pickle: allow loading a version saved as a pickle (runs code from its file).
        label: what a DataFrame given as *data* is called in the report (``test.csv``); its content
            digest is added.
    """
    from ..models.registry import Registry
    from ..store import open_store
    from . import store as evstore

    started = time.perf_counter()
    _needs()
    if not isinstance(target, str) or not target:
        raise BadInput("name the target column: target='churned'")
    by, options = check_options(by, min_group, resamples, seed, positive)
    st = open_store()
    reg = Registry(st)
    v = _version(reg, model, "model")
    bv = None
    if baseline is not None:
        bv = _version(reg, baseline, "baseline")
        if bv.digest == v.digest and bv.id == v.id:
            raise BadInput(f"the baseline is {v.ref} itself: name another version")
    df, data_label, data_version_id, data_digest = _resolve_data(data, label)
    key = _key(v.digest, data_digest, target, bv.digest if bv else None, options)
    if cache:
        found = evstore.load(st, key)
        if found is not None:
            found.seconds = time.perf_counter() - started
            return found
    from tqdm.auto import tqdm

    steps = 2 + len(by) + (1 + resamples if bv is not None else 0)
    with tqdm(total=steps, desc=f"evaluate {v.ref}", unit="step", disable=not progress, delay=1.0,
              mininterval=0.2) as bar:
        def step(what: str) -> None:
            bar.set_postfix_str(what, refresh=False)
            bar.update(1)

        if df is None:
            from ..data.api import load

            df = load(data)
        if target not in df.columns:
            raise BadInput(f"{data_label} has no column {target!r} (columns: {', '.join(map(str, df.columns[:12]))})")
        y = df[target]
        if len(df) == 0:
            raise BadInput(f"{data_label} has no rows")
        if y.isna().any():
            raise BadInput(f"target {target!r} has {int(y.isna().sum()):,} missing value(s): drop or fill them first")
        if y.nunique() < 2:
            raise BadInput(f"target {target!r} is constant ({y.iloc[0]!r}) in {data_label}: nothing to evaluate")
        missing = [b for b in by if b not in df.columns]
        if missing:
            raise BadInput(f"--by {', '.join(missing)}: no such column in {data_label} "
                           f"(columns: {', '.join(map(str, df.columns[:12]))})")
        from .slices import groups_of

        groups = {b: groups_of(df[b], b) for b in by}
        loaded = reg.load_version(v, allow_pickle=pickle)
        from ..models import flavors

        predictor = flavors.predictor(loaded, v.flavor, v.signature)
        task = _task(loaded, predictor, v.signature)
        X = _features(df, target, by, v, loaded)
        base = None
        if bv is not None:
            base_model = reg.load_version(bv, allow_pickle=pickle)
            base_predictor = flavors.predictor(base_model, bv.flavor, bv.signature)
            base_task = _task(base_model, base_predictor, bv.signature)
            if base_task != task:
                raise BadInput(f"the baseline {bv.ref} is a {_noun(base_task)} and {v.ref} a {_noun(task)}: "
                               "compare versions of the same task")
            base_X = _features(df, target, by, bv, base_model)
        p = predict(v, predictor, X, task, positive, target, y.to_numpy())
        step("predicted")
        if bv is not None:
            base = predict(bv, base_predictor, base_X, task, p.positive, target, y.to_numpy())
            if task == "classification" and base.classes != p.classes:
                raise BadInput(f"the baseline {bv.ref} predicts classes {base.classes} and {v.ref} {p.classes}: "
                               "compare versions of the same classes")
            step("baseline predicted")
        parts = classification(p) if task == "classification" else regression(p, seed)
        step("figures")
        from .slices import slice_report

        slices = []
        for b in by:
            slices.append(slice_report(p, b, groups[b], min_group))
            step(f"slices by {b}")
        baseline_doc = None
        if base is not None:
            from .compare import compare
            from .metrics import figures_of

            bar.set_postfix_str(f"bootstrap of {resamples} resamples", refresh=False)
            base_figures = figures_of(base)  # each side's figures once: the comparison reads them too
            comparison = compare(p, base, resamples, seed, tick=bar.update, figures=(parts["figures"], base_figures))
            baseline_doc = {"model": bv.ref, "version_id": bv.id, "figures": base_figures,
                            "comparison": comparison, "resamples": resamples, "seed": seed, "level": 0.95}
    from ..tracking.run import active_run_id

    notes = []
    if task == "regression" and parts.get("zero_targets"):
        notes.append(f"{parts['zero_targets']:,} row(s) have a target of 0: MAPE divides by scikit-learn's "
                     "epsilon there and is very large")
    if task == "classification" and p.proba is None:
        notes.append(f"{v.ref} gives no probabilities: no ROC AUC, PR AUC, log loss, Brier score or curves")
    ev = Evaluation(key=key, model=v.ref, model_version_id=v.id, data=data_label, data_version_id=data_version_id,
                    data_digest=data_digest, target=target, task=task, rows=int(len(df)), figures=parts["figures"],
                    classes=p.classes, positive=p.positive, per_class=parts.get("per_class", []),
                    confusion=parts.get("confusion"), curves=parts.get("curves", {}),
                    best_threshold=parts.get("best_threshold"), residuals=parts.get("residuals"),
                    residual_histogram=parts.get("residual_histogram"), slices=slices, baseline=baseline_doc,
                    options=options, notes=notes, created=time.time(), run_id=active_run_id())
    ev.seconds = time.perf_counter() - started
    evstore.save(st, ev, v.digest, bv.id if bv is not None else None)
    return ev


def _version(reg, ref: Any, what: str):
    """The registry version *ref* names: a ref, a ModelVersion, or a model object this session
    registered or loaded."""
    from ..models.explain import REGISTERED
    from ..models.registry import ModelVersion

    if isinstance(ref, ModelVersion):
        return ref
    if isinstance(ref, str):
        return reg.get(ref)
    known = REGISTERED.get(ref)
    if known is not None:
        return known
    raise BadInput(f"{what} must be a registered version such as churn@v3 or churn@production, not a "
                   f"{type(ref).__name__} (register the model first: mj.models.register)")


def _needs() -> None:
    import importlib.util

    missing = [pkg for m, pkg in (("sklearn", "scikit-learn"), ("fairlearn", "fairlearn"))
               if importlib.util.find_spec(m) is None]
    if missing:
        raise BadInput(f"evaluation needs {' and '.join(missing)}: pip install 'mlops-jupyter[evaluate]'")


def _noun(task: str) -> str:
    return "classifier" if task == "classification" else "regressor"
