"""``mj.evaluate`` beside scikit-learn and fairlearn called directly, on the same predictions.

    python -m bench.evaluate [--quick] [--no-anchor]

Workload: a binary LogisticRegression (8 numeric features) evaluated on 1,000,000 labelled rows
(--quick: 200,000) with 3 slice columns (6, 4 and 3 groups). The anchor computes the same figures
with the libraries directly, in this process: ``predict_proba``, then scikit-learn's accuracy,
precision, recall, F1, ROC AUC, average precision, log loss, Brier score, the per-class and averaged
precision/recall/F1, the confusion matrix, the ROC, precision-recall and calibration curves, and per
slice column fairlearn's ``MetricFrame`` over the same figures (one for the labels, one for the
probabilities) plus its demographic parity and equalized odds differences. The floor is the same
figures with scikit-learn (and fairlearn's rate functions) on each group's rows cut by pandas. Ours is
``mj.evaluate(version, data, target, by=[3 columns], cache=False)`` on a fresh project: it also loads
the model from the registry, reads the data version from the store (or hashes a DataFrame given in
memory), and stores the evaluation. The repeat is the same call answered from the store.
Median of 3 rounds, the sides interleaved.

Targets (issue 25): at most 1.5x the direct computation; a repeat answered in under 50 ms.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

from .common import table

QUICK = "--quick" in sys.argv
NO_ANCHOR = "--no-anchor" in sys.argv  # ours and the floor only (the anchor takes minutes at a million rows)
ROWS = 200_000 if QUICK else 1_000_000
ROUNDS = 3
FEATURES = [f"x{i}" for i in range(8)]
SLICES = ["region", "age_band", "channel"]


def make_rows(n: int, seed: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    df["region"] = rng.choice(["north", "south", "east", "west", "centre", "islands"], n,
                              p=[0.3, 0.25, 0.2, 0.15, 0.09, 0.01])
    df["age_band"] = rng.choice(["<25", "25-40", "40-60", "60+"], n)
    df["channel"] = rng.choice(["web", "app", "store"], n)
    logit = df[FEATURES].to_numpy() @ np.linspace(1.0, -0.6, len(FEATURES)) + (df.region == "south") * 0.5
    df["churned"] = (logit + rng.logistic(size=n) > 0).astype(int)
    return df


def direct(model, df) -> float:
    """The same figures with scikit-learn and fairlearn called directly."""
    from fairlearn.metrics import (MetricFrame, count, demographic_parity_difference, equalized_odds_difference,
                                   false_positive_rate, selection_rate, true_positive_rate)
    from sklearn import metrics as M
    from sklearn.calibration import calibration_curve

    t = time.perf_counter()
    y = df.churned.to_numpy()
    P = model.predict_proba(df[FEATURES])
    s, pred = P[:, 1], model.classes_[P.argmax(1)]
    M.accuracy_score(y, pred), M.precision_score(y, pred), M.recall_score(y, pred), M.f1_score(y, pred)
    M.roc_auc_score(y, s), M.average_precision_score(y, s), M.log_loss(y, P, labels=[0, 1])
    M.brier_score_loss(y, s)
    M.precision_recall_fscore_support(y, pred, labels=[0, 1], zero_division=0)
    for avg in ("macro", "weighted"):
        M.precision_recall_fscore_support(y, pred, labels=[0, 1], average=avg, zero_division=0)
    M.confusion_matrix(y, pred, labels=[0, 1]), M.roc_curve(y, s), M.precision_recall_curve(y, s)
    calibration_curve(y, s, n_bins=10)
    labels = {"count": count, "accuracy": M.accuracy_score, "precision": M.precision_score,
              "recall": M.recall_score, "f1": M.f1_score, "selection_rate": selection_rate,
              "true_positive_rate": true_positive_rate, "false_positive_rate": false_positive_rate}
    scores = {"roc_auc": lambda a, b: M.roc_auc_score(a, b[:, 1]),
              "pr_auc": lambda a, b: M.average_precision_score(a, b[:, 1]),
              "log_loss": lambda a, b: M.log_loss(a, b, labels=[0, 1]),
              "brier": lambda a, b: M.brier_score_loss(a, b[:, 1])}
    for c in SLICES:
        MetricFrame(metrics=labels, y_true=y, y_pred=pred, sensitive_features=df[c]).by_group
        MetricFrame(metrics=scores, y_true=y, y_pred=P, sensitive_features=df[c]).by_group
        demographic_parity_difference(y, pred, sensitive_features=df[c])
        equalized_odds_difference(y, pred, sensitive_features=df[c])
    return time.perf_counter() - t


def floor(model, df) -> float:
    """The same figures with scikit-learn and fairlearn's rate functions on each group's rows cut by
    pandas, without MetricFrame: the least the work can cost."""
    import pandas as pd
    from fairlearn.metrics import false_positive_rate, selection_rate, true_positive_rate
    from sklearn import metrics as M
    from sklearn.calibration import calibration_curve

    t = time.perf_counter()
    y = df.churned.to_numpy()
    P = model.predict_proba(df[FEATURES])
    s, pred = P[:, 1], model.classes_[P.argmax(1)]
    labels = [M.accuracy_score, M.precision_score, M.recall_score, M.f1_score, selection_rate, true_positive_rate,
              false_positive_rate]
    scores = [lambda a, b: M.roc_auc_score(a, b[:, 1]), lambda a, b: M.average_precision_score(a, b[:, 1]),
              lambda a, b: M.log_loss(a, b, labels=[0, 1]), lambda a, b: M.brier_score_loss(a, b[:, 1])]
    for fn in labels[:4]:
        fn(y, pred)
    for fn in scores:
        fn(y, P)
    M.precision_recall_fscore_support(y, pred, labels=[0, 1], zero_division=0)
    for avg in ("macro", "weighted"):
        M.precision_recall_fscore_support(y, pred, labels=[0, 1], average=avg, zero_division=0)
    M.confusion_matrix(y, pred, labels=[0, 1]), M.roc_curve(y, s), M.precision_recall_curve(y, s)
    calibration_curve(y, s, n_bins=10)
    for c in SLICES:
        for _, idx in pd.Series(df[c].to_numpy()).groupby(df[c].to_numpy()).indices.items():
            for fn in labels:
                fn(y[idx], pred[idx])
            for fn in scores:
                fn(y[idx], P[idx])
    return time.perf_counter() - t


def main() -> None:
    warnings.simplefilter("ignore")
    from sklearn.linear_model import LogisticRegression

    folder = tempfile.mkdtemp(prefix="bench-evaluate-")
    os.chdir(folder)
    import mlops_jupyter as mj

    mj.init(folder)
    train, test = make_rows(50_000, 0), make_rows(ROWS, 1)
    model = LogisticRegression(max_iter=500).fit(train[FEATURES], train.churned)
    mj.models.register(model, "churn", example=train[FEATURES].head())
    ref = mj.data.add(test, name="test").ref
    fresh = make_rows(ROWS, 1)  # the same rows in a new frame: not known as a version in this process
    times: dict[str, list[float]] = {"direct": [], "floor": [], "ref": [], "frame": []}
    for i in range(ROUNDS):
        times["direct"].append(float("nan") if NO_ANCHOR else direct(model, test))
        times["floor"].append(floor(model, test))
        t = time.perf_counter()
        mj.evaluate("churn@v1", ref, target="churned", by=SLICES, cache=False, progress=False)
        times["ref"].append(time.perf_counter() - t)
        t = time.perf_counter()
        mj.evaluate("churn@v1", fresh, target="churned", by=SLICES, cache=False, progress=False)
        times["frame"].append(time.perf_counter() - t)
    repeat: dict[str, list[float]] = {"ref": [], "frame": []}
    for _ in range(7):
        for kind, data in (("ref", ref), ("frame", fresh)):
            t = time.perf_counter()
            ev = mj.evaluate("churn@v1", data, target="churned", by=SLICES, progress=False)
            repeat[kind].append(time.perf_counter() - t)
            assert ev.cached
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = {k: f"{statistics.median(v):.2f} s [{min(v):.2f}–{max(v):.2f}]" for k, v in times.items()}
    table(f"evaluate a binary classifier on {ROWS:,} rows with 3 slice columns (median of {ROUNDS})",
          ["side", "time", "vs direct"],
          [["scikit-learn + fairlearn's MetricFrame directly", spread["direct"], "1.00x"],
           ["floor: scikit-learn on each group's rows", spread["floor"], f"{med['floor'] / med['direct']:.2f}x"],
           ["mj.evaluate(version, 'test@v1')", spread["ref"], f"{med['ref'] / med['direct']:.2f}x"],
           ["mj.evaluate(version, DataFrame)", spread["frame"], f"{med['frame'] / med['direct']:.2f}x"]])
    print(f"\nmj.evaluate over the floor: {med['ref'] / med['floor']:.2f}x (version), "
          f"{med['frame'] / med['floor']:.2f}x (DataFrame)")
    table("the same evaluation again, answered from the store (median of 7)", ["data given as", "time"],
          [["a dataset version (test@v1)", f"{statistics.median(repeat['ref']) * 1e3:.1f} ms"],
           [f"a DataFrame ({ROWS:,} rows hashed)", f"{statistics.median(repeat['frame']) * 1e3:.1f} ms"]])
    print("\ntargets: at most 1.5x the direct computation; a repeat under 50 ms")


if __name__ == "__main__":
    main()
