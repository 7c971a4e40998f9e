"""SHAP values: the explainer follows the model (tree ensembles -> TreeExplainer, exact; linear
models -> LinearExplainer; anything else -> PermutationExplainer on a bounded background sample),
run in chunks under a progress bar when the work will take more than about a second."""

from __future__ import annotations

import time

import numpy as np

from ..exceptions import BadInput, MlopsError
from .explain_model import (
    final_estimator,
    is_classifier,
    is_linear,
    is_tree,
    numeric,
    predict_fn,
)

BACKGROUND = 100  # rows of background for the linear and model-agnostic explainers


def shap_values(model, Xe, bg, progress: bool, say, pool=None) -> dict:
    """SHAP values of *model* on the rows *Xe*, with the explainer its kind allows (see
    :mod:`mlops_jupyter.models.explain`); the fields of an ``Explanation``."""
    import warnings

    try:
        import shap
    except ImportError:
        raise BadInput("SHAP explanations need the shap package: pip install shap") from None
    est = final_estimator(model)
    features = [str(c) for c in Xe.columns]
    classes = list(getattr(model, "classes_", [])) or None
    notes: list[str] = []
    classifier = is_classifier(model)
    explainer = None
    name = ""
    output = "prediction"
    all_numeric = all(numeric(t) for t in Xe.dtypes)
    if est is model and is_tree(model) and all_numeric:
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
    if explainer is None and est is model and is_linear(model) and all_numeric:
        explainer = shap.LinearExplainer(model, sample.to_numpy(dtype=float))
        name = "LinearExplainer"
        output = "log-odds" if classifier else "prediction"
        notes.append(bg_note)
    encode = None
    if explainer is None:
        import pandas as pd

        # explainers mask numbers: text and categorical columns travel as codes, decoded for the model
        cats = {c: pd.Index(pd.concat([Xe[c], sample[c]]).astype(object).unique())
                for c, t in Xe.dtypes.items() if not numeric(t)}

        def encode(df):
            out = df.copy()
            for c, index in cats.items():
                out[c] = index.get_indexer(df[c].astype(object))
            return out.to_numpy(dtype=float)

        f = predict_fn(model, list(Xe.columns), list(Xe.dtypes), proba=classifier and hasattr(model, "predict_proba"),
                        decode={list(Xe.columns).index(c): index for c, index in cats.items()})
        masker = shap.maskers.Independent(encode(sample), max_samples=len(sample))
        explainer = shap.PermutationExplainer(f, masker, feature_names=features)
        name = "PermutationExplainer (model-agnostic)"
        output = "probability" if classifier and hasattr(model, "predict_proba") else "prediction"
        notes.append(bg_note)
    by_tree = name.startswith("TreeExplainer")
    arr = Xe if by_tree else Xe.to_numpy(dtype=float) if name.startswith("Linear") else encode(Xe)

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
    first = min(n, 5 if not by_tree else 20)
    t0 = time.perf_counter()
    parts = [run(arr.iloc[:first] if by_tree else arr[:first])]
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
                    parts.append(run(arr.iloc[i:j] if by_tree else arr[i:j]))
                    bar.update(j - i)
                    i = j
        else:
            parts.append(run(arr.iloc[first:] if by_tree else arr[first:]))
    values = np.concatenate([np.asarray(p.values) for p in parts])
    base = np.concatenate([np.asarray(p.base_values).reshape(len(p.values), -1) for p in parts])
    if base.shape[1] == 1:
        base = base[:, 0]
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim == 2 and classifier and classes and len(classes) == 2:
        output = f"{output} of class {classes[1]}"
    return dict(method="shap", explainer=name, features=features, data=Xe.reset_index(drop=True), values=values,
                base_values=base, classes=classes, output=output, notes=notes)
