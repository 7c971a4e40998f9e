"""LIME for one row: a local linear model fitted on samples drawn around the row.

The same row gives the same explanation wherever it is asked for (``explain(..., method="lime")``
or the LIME tab of a SHAP explanation): the bins come from one training sample (the background
when given, else the frame, at most ``TRAINING_ROWS`` rows drawn with the seed), and each row is
explained by a LIME explainer seeded afresh, so neither depends on which rows were explained
before it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exceptions import BadInput
from .explain_model import predict_fn

NUM_SAMPLES = 5000  # samples drawn around the row (LIME's own default)
DISCRETIZER = "quartile"  # continuous features are binned at the training sample's quartiles
TRAINING_ROWS = 1000  # rows of the training sample the bins and sampling statistics come from
NUM_FEATURES = 10  # conditions in the local model
SEED = 0


def training_sample(frame, seed: int = SEED):
    """The rows LIME's bins and sampling statistics come from: *frame*, at most ``TRAINING_ROWS``
    rows drawn with *seed*."""
    if len(frame) > TRAINING_ROWS:
        frame = frame.sample(TRAINING_ROWS, random_state=seed)
    return frame


def settings(seed: int, training_rows: int) -> dict[str, Any]:
    """What decides a LIME explanation besides the model and the row, as shown under its chart."""
    return {"num_samples": NUM_SAMPLES, "discretizer": DISCRETIZER, "seed": int(seed),
            "training_rows": int(training_rows)}


def explain_row(model, rows, row: int, *, training, classifier: bool, k: int | None, class_names: list[str] | None,
                seed: int = SEED) -> dict[str, Any]:
    """LIME's weights for row *row* of the frame *rows*, for class index *k* of a classifier.

    Returns ``{"k", "weights": [(condition, weight)], "score": R² of the local model on its
    samples, "settings"}``.
    """
    try:
        from lime.lime_tabular import LimeTabularExplainer
    except ImportError:
        raise BadInput("LIME explanations need the lime package: pip install lime") from None
    features = [str(c) for c in rows.columns]
    explainer = LimeTabularExplainer(
        training.to_numpy(dtype=float), feature_names=features, class_names=class_names,
        mode="classification" if classifier else "regression", discretize_continuous=True,
        discretizer=DISCRETIZER, random_state=np.random.RandomState(seed))
    f = predict_fn(model, list(rows.columns), list(rows.dtypes), proba=classifier)
    x = rows.iloc[row].to_numpy(dtype=float)
    n = min(NUM_FEATURES, len(features))
    if classifier:
        got = explainer.explain_instance(x, f, num_features=n, labels=(k,), num_samples=NUM_SAMPLES)
        weights = got.as_list(label=k)
        score = got.score
    else:
        got = explainer.explain_instance(x, f, num_features=n, num_samples=NUM_SAMPLES)
        weights = got.as_list()
        score = got.score
    return {"k": k, "weights": [(str(a), float(b)) for a, b in weights], "score": _score(score),
            "settings": settings(seed, len(training))}


def _score(score: Any) -> float | None:
    if isinstance(score, dict):  # older LIME: one score per label
        score = next(iter(score.values()), None)
    try:
        return float(score)
    except (TypeError, ValueError):
        return None
