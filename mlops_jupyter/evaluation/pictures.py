"""An evaluation's pictures, from its stored document (:mod:`mlops_jupyter.charts.evaluation`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..charts import Chart
    from .report import Evaluation

# the figures drawn per group (the 0..1 ones side by side; a regressor's errors on their own scales)
SLICE_FIGURES = {"classification": ["accuracy", "precision", "recall", "f1", "roc_auc"],
                 "regression": ["mae", "rmse", "r2"]}


def charts(ev: Evaluation) -> dict[str, Chart]:
    """name -> Chart, for the pictures this evaluation has something to show in."""
    from ..charts import evaluation as C

    out: dict[str, Chart] = {}
    f = ev.figures
    if ev.task == "classification":
        if ev.confusion:
            out["confusion"] = C.confusion(ev.confusion, ev.classes or [])
        if ev.curves.get("roc"):
            out["roc"] = C.roc(ev.curves["roc"], f.get("roc_auc"))
        if ev.curves.get("pr"):
            out["pr"] = C.precision_recall(ev.curves["pr"], f.get("pr_auc"), ev.best_threshold)
        cal = ev.curves.get("calibration")
        if cal and cal.get("observed"):
            out["calibration"] = C.calibration(cal["mean_predicted"], cal["observed"], cal["counts"], ev.positive,
                                               f.get("brier"))
    else:
        if ev.residuals and ev.residuals.get("predicted"):
            r = ev.residuals
            out["residuals"] = C.residuals(r["predicted"], r["residual"], r["shown"], r["rows"])
        h = ev.residual_histogram
        if h and h.get("counts"):
            out["residual_histogram"] = C.residual_histogram(h["edges"], h["counts"])
    for s in ev.slices:
        figs = [x for x in SLICE_FIGURES[ev.task] if x in s["figures"]]
        out[f"slices:{s['column']}"] = C.slices(s["column"], s["groups"], figs, f, s["min_group"])
    if ev.baseline and ev.baseline.get("comparison"):
        b = ev.baseline
        out["baseline"] = C.baseline(b["comparison"], ev.model, b["model"], b.get("level", 0.95))
    return out
