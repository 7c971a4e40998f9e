"""The figures of one model on labelled rows, each by scikit-learn's own function on the predictions.

Classifiers: accuracy, precision, recall and F1 (of the positive class for two classes, macro-averaged
for more; every class and the macro and weighted averages are kept too), ROC AUC, PR AUC (average
precision), log loss, Brier score, the confusion matrix, the ROC, precision-recall and calibration
curves, and the threshold that maximizes F1. Regressors: MAE, RMSE, R², MAPE, residuals against
predictions and the residuals' distribution. Curves are thinned to at most ``CURVE_POINTS`` points
for storing and drawing; every figure is computed on all the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import BadInput

CURVE_POINTS = 400  # points kept of a ROC or precision-recall curve
SCATTER_POINTS = 2000  # residuals drawn against predictions
CALIBRATION_BINS = 10
MAX_CURVE_CLASSES = 10  # one-vs-rest curves drawn for at most this many classes

# which way each figure is better (the gate and the baseline comparison read it)
HIGHER = {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "r2", "precision_macro", "recall_macro",
          "f1_macro", "precision_weighted", "recall_weighted", "f1_weighted", "selection_rate"}
LOWER = {"log_loss", "brier", "mae", "rmse", "mape"}
CLASSIFIER_FIGURES = ["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss", "brier"]
REGRESSOR_FIGURES = ["mae", "rmse", "r2", "mape"]


@dataclass
class Predictions:
    """What a model said about the rows, beside their true values."""

    task: str  # classification | regression
    y: np.ndarray  # true labels (classification) or values (regression)
    pred: np.ndarray  # predicted labels or values
    proba: np.ndarray | None = None  # rows x classes, in ``classes`` order
    classes: list | None = None
    positive: Any = None  # the positive class of a binary classifier

    @property
    def binary(self) -> bool:
        return self.task == "classification" and len(self.classes or []) == 2

    @property
    def score(self) -> np.ndarray | None:
        """The positive class's probability (binary classifiers)."""
        if not self.binary or self.proba is None:
            return None
        return self.proba[:, self.classes.index(self.positive)]

    def take(self, idx: np.ndarray) -> Predictions:
        return Predictions(self.task, self.y[idx], self.pred[idx], None if self.proba is None else self.proba[idx],
                           self.classes, self.positive)


def figure_names(task: str) -> list[str]:
    return CLASSIFIER_FIGURES if task == "classification" else REGRESSOR_FIGURES


def scalar_functions(p: Predictions) -> dict[str, Any]:
    """figure -> function of Predictions giving it: the headline figures, for slices and resamples."""
    from sklearn import metrics as M

    if p.task == "regression":
        return {"mae": lambda q: M.mean_absolute_error(q.y, q.pred),
                "rmse": lambda q: M.root_mean_squared_error(q.y, q.pred),
                "r2": lambda q: M.r2_score(q.y, q.pred),
                "mape": lambda q: M.mean_absolute_percentage_error(q.y, q.pred)}
    fns: dict[str, Any] = {"accuracy": lambda q: M.accuracy_score(q.y, q.pred)}
    if p.binary:
        kw = dict(pos_label=p.positive, zero_division=0)
        fns.update(precision=lambda q: M.precision_score(q.y, q.pred, **kw),
                   recall=lambda q: M.recall_score(q.y, q.pred, **kw),
                   f1=lambda q: M.f1_score(q.y, q.pred, **kw))
        if p.proba is not None:
            fns.update(roc_auc=lambda q: M.roc_auc_score(q.y == q.positive, q.score),
                       pr_auc=lambda q: M.average_precision_score(q.y, q.score, pos_label=q.positive),
                       log_loss=lambda q: M.log_loss(q.y, q.proba, labels=q.classes),
                       brier=lambda q: M.brier_score_loss(q.y, q.score, pos_label=q.positive))
    else:
        kw = dict(labels=p.classes, average="macro", zero_division=0)
        fns.update(precision=lambda q: M.precision_score(q.y, q.pred, **kw),
                   recall=lambda q: M.recall_score(q.y, q.pred, **kw),
                   f1=lambda q: M.f1_score(q.y, q.pred, **kw))
        if p.proba is not None:
            fns.update(roc_auc=lambda q: M.roc_auc_score(q.y, q.proba, multi_class="ovr", labels=q.classes),
                       pr_auc=lambda q: M.average_precision_score(_onehot(q.y, q.classes), q.proba, average="macro"),
                       log_loss=lambda q: M.log_loss(q.y, q.proba, labels=q.classes),
                       brier=lambda q: M.brier_score_loss(q.y, q.proba, labels=q.classes))
    return fns


def figures_of(p: Predictions) -> dict[str, float | None]:
    """The headline figures of *p* on all its rows (None where undefined)."""
    return {name: safely(fn, p) for name, fn in scalar_functions(p).items()}


def _onehot(y: np.ndarray, classes: list) -> np.ndarray:
    from sklearn.preprocessing import label_binarize

    return label_binarize(y, classes=classes)


def safely(fn, q: Predictions) -> float | None:
    """A figure, or None where it is undefined on these rows (one class only, say)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = float(fn(q))
    except (ValueError, ZeroDivisionError):
        return None
    return v if np.isfinite(v) else None


def _thin_curve(x: np.ndarray, y: np.ndarray, t: np.ndarray | None) -> dict[str, list]:
    """At most CURVE_POINTS points of a curve, evenly along it (its ends kept)."""
    n = len(x)
    idx = np.unique(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(int)) if n > CURVE_POINTS \
        else np.arange(n)
    out = {"x": [round(float(v), 6) for v in x[idx]], "y": [round(float(v), 6) for v in y[idx]]}
    if t is not None:
        tt = t[np.minimum(idx, len(t) - 1)]
        out["threshold"] = [float(v) if np.isfinite(v) else None for v in tt]
    return out


def classification(p: Predictions) -> dict[str, Any]:
    """Every classifier figure and curve (see the module docstring)."""
    from sklearn import metrics as M

    fig = figures_of(p)
    prec, rec, f1, support = M.precision_recall_fscore_support(p.y, p.pred, labels=p.classes, zero_division=0)
    per_class = [{"class": plain(c), "precision": float(a), "recall": float(b), "f1": float(f), "support": int(s)}
                 for c, a, b, f, s in zip(p.classes, prec, rec, f1, support)]
    for avg in ("macro", "weighted"):
        a, b, f, _ = M.precision_recall_fscore_support(p.y, p.pred, labels=p.classes, average=avg, zero_division=0)
        fig.update({f"precision_{avg}": float(a), f"recall_{avg}": float(b), f"f1_{avg}": float(f)})
    out: dict[str, Any] = {
        "figures": fig, "per_class": per_class,
        "confusion": M.confusion_matrix(p.y, p.pred, labels=p.classes).tolist(), "curves": {}, "best_threshold": None}
    if p.proba is None:
        return out
    curves = out["curves"]
    if p.binary:
        s, truth = p.score, p.y == p.positive
        if truth.all() or not truth.any():
            return out
        fpr, tpr, thr = M.roc_curve(truth, s)
        curves["roc"] = {str(plain(p.positive)): _thin_curve(fpr, tpr, thr)}
        precision, recall, thr = M.precision_recall_curve(truth, s)
        curves["pr"] = {str(plain(p.positive)): _thin_curve(recall, precision, thr)}
        with np.errstate(invalid="ignore", divide="ignore"):
            f1s = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
        i = int(np.argmax(f1s))
        out["best_threshold"] = {"threshold": float(thr[i]), "f1": float(f1s[i]), "precision": float(precision[i]),
                                 "recall": float(recall[i])}
        from sklearn.calibration import calibration_curve

        true_share, mean_pred = calibration_curve(truth, s, n_bins=CALIBRATION_BINS, strategy="uniform")
        counts = np.histogram(s, bins=CALIBRATION_BINS, range=(0.0, 1.0))[0]
        curves["calibration"] = {"mean_predicted": mean_pred.tolist(), "observed": true_share.tolist(),
                                 "counts": [int(c) for c in counts if c > 0], "bins": CALIBRATION_BINS}
        return out
    onehot = _onehot(p.y, p.classes)
    roc, pr = {}, {}
    for j, c in enumerate(p.classes[:MAX_CURVE_CLASSES]):
        if onehot[:, j].all() or not onehot[:, j].any():
            continue
        fpr, tpr, thr = M.roc_curve(onehot[:, j], p.proba[:, j])
        roc[str(plain(c))] = _thin_curve(fpr, tpr, thr)
        precision, recall, thr = M.precision_recall_curve(onehot[:, j], p.proba[:, j])
        pr[str(plain(c))] = _thin_curve(recall, precision, thr)
    curves.update(roc=roc, pr=pr)
    return out


def regression(p: Predictions, seed: int = 0) -> dict[str, Any]:
    """Every regressor figure, residuals against predictions (a sample) and their histogram."""
    fig = figures_of(p)
    resid = p.y - p.pred
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(resid), SCATTER_POINTS, replace=False)) if len(resid) > SCATTER_POINTS \
        else np.arange(len(resid))
    counts, edges = _histogram(resid)
    return {"figures": fig,
            "residuals": {"predicted": [float(v) for v in p.pred[idx]], "residual": [float(v) for v in resid[idx]],
                          "shown": int(len(idx)), "rows": int(len(resid))},
            "residual_histogram": {"edges": edges, "counts": counts},
            "zero_targets": int((p.y == 0).sum())}


def _histogram(values: np.ndarray, bins: int = 30) -> tuple[list[int], list[float]]:
    """Counts over round-numbered bins covering *values* (edges at multiples of a 1-2-5 step)."""
    v = values[np.isfinite(values)]
    if not len(v):
        return [], []
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / bins
    mag = 10 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = np.floor(lo / step) * step
    n = int(np.ceil((hi - start) / step)) or 1
    edges = start + step * np.arange(n + 1)
    if edges[-1] < hi:
        edges = np.append(edges, edges[-1] + step)
    counts = np.histogram(v, bins=edges)[0]
    return [int(c) for c in counts], [float(round(e, 12)) for e in edges]


def plain(v: Any) -> Any:
    """A numpy scalar as the Python value it holds (JSON takes it)."""
    return v.item() if hasattr(v, "item") else v


def check_labels(y: np.ndarray, classes: list, target: str) -> None:
    """One line when the true labels hold a class the model cannot predict."""
    import pandas as pd

    known = set(classes)
    unknown = [v for v in pd.unique(y) if v not in known]
    if unknown:
        shown = ", ".join(repr(plain(v)) for v in unknown[:5])
        raise BadInput(f"target {target!r} holds value(s) the model never predicts ({shown}); it knows "
                       f"{', '.join(repr(plain(c)) for c in classes[:10])}")
