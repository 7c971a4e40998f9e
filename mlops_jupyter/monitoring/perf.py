"""Live model performance from the prediction logs: volume, latency and predictions per time
window and model version; with labels (``log_labels`` or the server's ``/feedback``) accuracy,
precision, recall, F1 and ROC AUC for classifiers, MAE, RMSE and R2 for regressors."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from .. import rendering
from ..exceptions import BadInput

_STEPS = [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400]
CLASSIFIER_METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc"]
REGRESSOR_METRICS = ["mae", "rmse", "r2"]


def pick_window(span: float) -> float:
    """About two dozen windows over the span, at a round size."""
    for step in _STEPS:
        if span / step <= 24:
            return float(step)
    return float(_STEPS[-1])


def _label(seconds: float) -> str:
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass
class MonitorReport:
    label: str  # what was asked: churn@production (v3)
    name: str
    version: int | None  # the version the ref points to now (None: every version)
    task: str  # classification | regression | unknown
    start: float
    end: float
    window: float
    windows: Any  # DataFrame: a row per (window start, version)
    overall: Any  # DataFrame: a row per version over the whole span
    drift: Any = None  # DataFrame of saved drift reports in the span
    notes: list[str] = field(default_factory=list)

    def figures(self, version: int | None = None) -> dict[str, float | None]:
        """The whole span's figures of *version* (default: the version the ref points to, else all)."""
        version = self.version if version is None else version
        o = self.overall
        if version is not None and len(o):
            o = o[o["version"] == version]
        out: dict[str, float | None] = {}
        if not len(o):
            return {k: (0 if k in ("requests", "rows", "labeled_rows") else None) for k in FIGURES}
        r = o.iloc[0].to_dict() if len(o) == 1 else _overall_row(o)
        for k in FIGURES:
            v = r.get(k)
            out[k] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        return out

    def describe_span(self) -> str:
        def fmt(t):
            return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")

        return (f"{fmt(self.start)} – {fmt(self.end)}, windows of {_label(self.window)}; "
                f"{self.task}; versions: {', '.join(f'v{v}' for v in self.overall['version']) or 'none'}")

    def chart_columns(self) -> list[tuple[str, str]]:
        cols = [("requests", "requests per window"), ("latency_p99_ms", "latency p99 (ms)")]
        if self.task == "classification":
            cols += [("accuracy", "accuracy (labeled rows)"), ("f1", "F1"), ("positive_share", "share predicted "
                                                                                              "positive")]
        elif self.task == "regression":
            cols += [("rmse", "RMSE (labeled rows)"), ("prediction_mean", "mean prediction")]
        return [(c, t) for c, t in cols if c in self.windows.columns and self.windows[c].notna().any()]

    def table_columns(self) -> list[str]:
        base = ["start", "version", "requests", "rows", "latency_p50_ms", "latency_p99_ms", "labeled_rows"]
        more = CLASSIFIER_METRICS + ["positive_share"] if self.task == "classification" else \
            REGRESSOR_METRICS + ["prediction_mean"]
        return base + more

    def __str__(self) -> str:
        lines = [f"monitor {self.label}: {self.describe_span()}"]
        lines += [f"  note: {n}" for n in self.notes]
        for r in self.overall.to_dict("records"):
            figs = [f"{r['requests']:,} requests", f"{r['rows']:,} rows",
                    f"p50 {_fmt(r.get('latency_p50_ms'))} ms", f"p99 {_fmt(r.get('latency_p99_ms'))} ms",
                    f"{r['labeled_rows']:,} labeled"]
            for k in (CLASSIFIER_METRICS if self.task == "classification" else REGRESSOR_METRICS):
                if r.get(k) is not None and not (isinstance(r[k], float) and math.isnan(r[k])):
                    figs.append(f"{k} {r[k]:.4g}")
            lines.append(f"  v{r['version']}: " + ", ".join(figs))
        if self.drift is not None and len(self.drift):
            last = self.drift.iloc[-1]
            share = "n/a" if last["drift_share"] is None or math.isnan(last["drift_share"]) else f"{last['drift_share']:.2f}"
            lines.append(f"  drift: {len(self.drift)} saved report(s); latest #{last['id']}: share {share}"
                         f"{' (DATASET DRIFT)' if last['dataset_drift'] else ''}")
        return "\n".join(lines)

    def chart(self):
        """Requests, latency and quality per window, and drift share, on one clock-time axis."""
        from ..charts.monitor import monitor_chart

        w = self.windows
        windows = w.to_dict("records") if len(w) else []
        drift = []
        if self.drift is not None and len(self.drift):
            drift = self.drift.dropna(subset=["drift_share"])[["created", "drift_share"]].to_dict("records")
        return monitor_chart(windows, self.chart_columns() if len(w) else [], start=self.start, end=self.end,
                             window=self.window, drift=drift, title=f"monitor {self.label}")

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)

    def _ipython_display_(self) -> None:
        rendering.show(self)


def _fmt(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


FIGURES = ["requests", "rows", "labeled_rows", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
           *CLASSIFIER_METRICS, *REGRESSOR_METRICS, "positive_share", "prediction_mean"]


def _overall_row(o) -> dict:
    # several versions together: sums of counts, row-weighted means of the rest (an approximation
    # used only when no single version is asked for)
    out = {k: float(o[k].sum()) for k in ("requests", "rows", "labeled_rows")}
    w = o["labeled_rows"].to_numpy(dtype=float)
    for k in FIGURES:
        if k in out or k not in o:
            continue
        vals = o[k].to_numpy(dtype=float)
        ok = ~np.isnan(vals)
        weights = w[ok] if k in CLASSIFIER_METRICS + REGRESSOR_METRICS else o["rows"].to_numpy(dtype=float)[ok]
        out[k] = float(np.average(vals[ok], weights=weights)) if ok.any() and weights.sum() > 0 else None
    return out


# -- figures of one group ------------------------------------------------------------------------------
def _latency(req) -> dict:
    lat = req["latency"].dropna().to_numpy(dtype=float) * 1000
    out = {"requests": int(len(req)), "rows": int(req["n_rows"].sum())}
    if len(lat):
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        out.update(latency_p50_ms=float(p50), latency_p95_ms=float(p95), latency_p99_ms=float(p99))
    return out


def _classes_of(signature: dict | None) -> list | None:
    return (signature or {}).get("classes")


def _quality(rows, task: str, classes: list | None) -> dict:
    """Prediction distribution and, on labeled rows, the task's metrics."""
    out: dict[str, Any] = {}
    preds = rows["prediction"]
    if task == "classification":
        pos = classes[-1] if classes and len(classes) == 2 else None
        if pos is not None:
            out["positive_share"] = float((preds == pos).mean()) if len(preds) else None
    elif task == "regression":
        vals = _to_float(preds)
        out["prediction_mean"] = float(np.nanmean(vals)) if len(vals) and not np.isnan(vals).all() else None
    lab = rows[rows["label"].notna()]
    out["labeled_rows"] = int(len(lab))
    if not len(lab):
        return out
    if task == "classification":
        out.update(_classification(lab, classes))
    elif task == "regression":
        out.update(_regression(lab))
    return out


def _to_float(s) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def _align_labels(y_true: list, classes: list | None) -> list:
    """Labels posted as JSON may be "1" for class 1 or 1 for class "1": map them onto the classes."""
    if not classes:
        return y_true
    by_text = {str(c): c for c in classes}
    return [y if y in classes else by_text.get(str(y), y) for y in y_true]


def _classification(lab, classes: list | None) -> dict:
    from sklearn import metrics as M

    y_true = _align_labels(list(lab["label"]), classes)
    y_pred = list(lab["prediction"])
    try:
        out = {"accuracy": float(M.accuracy_score(y_true, y_pred))}
        binary = classes is not None and len(classes) == 2
        kw = {"pos_label": classes[-1], "average": "binary"} if binary else {"average": "macro"}
        out["precision"] = float(M.precision_score(y_true, y_pred, zero_division=0, **kw))
        out["recall"] = float(M.recall_score(y_true, y_pred, zero_division=0, **kw))
        out["f1"] = float(M.f1_score(y_true, y_pred, zero_division=0, **kw))
    except (TypeError, ValueError):
        return {}
    probs = lab["probabilities"] if "probabilities" in lab else None
    if classes and probs is not None and probs.notna().all() and len(set(map(str, y_true))) > 1:
        try:
            p = np.array(list(probs), dtype=float)
            if binary:
                out["roc_auc"] = float(M.roc_auc_score([y == classes[1] for y in y_true], p[:, 1]))
            else:
                out["roc_auc"] = float(M.roc_auc_score(y_true, p, multi_class="ovr", labels=classes))
        except (TypeError, ValueError, IndexError):
            pass
    return out


def _regression(lab) -> dict:
    y, p = _to_float(lab["label"]), _to_float(lab["prediction"])
    ok = ~(np.isnan(y) | np.isnan(p))
    y, p = y[ok], p[ok]
    if not len(y):
        return {}
    err = p - y
    out = {"mae": float(np.abs(err).mean()), "rmse": float(math.sqrt((err ** 2).mean()))}
    if len(y) > 1 and y.var() > 0:
        out["r2"] = float(1 - (err ** 2).sum() / ((y - y.mean()) ** 2).sum())
    return out


# -- the report ----------------------------------------------------------------------------------------
def monitor(ref: str, since="7d", until=None, window=None, now: float | None = None) -> MonitorReport:
    """Performance of a served model from its logged traffic, per window and version.

    *ref* is ``NAME``, ``NAME@ALIAS`` or ``NAME@vN``: every version of NAME that served in the
    span is shown; ``figures()`` answers for the version the ref points to."""
    import pandas as pd

    from ..models.registry import Registry, parse_model_ref
    from ..serving import predlog
    from ..store import open_store
    from .history import reports
    from ..config import parse_duration
    from .sources import parse_time

    store = open_store()
    reg = Registry(store)
    name, _, _ = parse_model_ref(ref)
    v = reg.get(ref) if "@" in ref or "/" in ref else None
    if v is None and not reg.has_model(name):
        reg.get(ref)  # the registry's own "no model ..." error
    now = time.time() if now is None else now
    start = parse_time(since, "--since", now) if since is not None else None
    end = parse_time(until, "--until", now) if until is not None else now
    req = predlog.requests(store.meta, name, start, end)
    if start is None:
        start = float(req["at"].min()) if len(req) else end - 7 * 86400
    if end <= start:
        raise BadInput("the span is empty: --since is not before --until")
    step = parse_duration(window, "--window") if window is not None else pick_window(end - start)
    sig = (v or reg.get(name)).signature
    task = "classification" if _classes_of(sig) or (sig or {}).get("task") == "classification" else "regression"
    if sig is None:
        task = "unknown"
    label = f"{ref}" + (f" (v{v.version})" if v is not None and ref != v.ref else "")
    notes: list[str] = []
    rows = predlog.read(store.meta, name, since=start, until=end, with_labels=True, probabilities=True)
    if not len(req):
        notes.append("no logged requests in this span (is the server logging? --log-sample 0 logs nothing)")
    elif not rows["label"].notna().any():
        notes.append("no labels yet: post them with mj.log_labels(request_ids, y_true) or POST /feedback")
    classes = _classes_of(sig)
    req = req.assign(start=start + ((req["at"] - start) // step) * step)
    rows = rows.assign(start=start + ((rows["at"].astype(float) - start) // step) * step) if len(rows) else rows
    records = []
    by_window = dict(iter(rows.groupby(["start", "version"], sort=False))) if len(rows) else {}
    empty = rows.iloc[:0]
    for (w, ver), g in req.groupby(["start", "version"], sort=True):
        r = {"start": float(w), "version": int(ver), **_latency(g)}
        if len(rows):
            r.update(_quality(by_window.get((w, ver), empty), task, classes))
        records.append(r)
    cols = ["start", "version", *FIGURES]
    windows = pd.DataFrame(records, columns=cols)
    overall = []
    for ver, g in req.groupby("version", sort=True):
        r = {"version": int(ver), **_latency(g)}
        if len(rows):
            r.update(_quality(rows[rows["version"] == ver], task, classes))
        else:
            r["labeled_rows"] = 0
        overall.append(r)
    overall_df = pd.DataFrame(overall, columns=["version", *FIGURES])
    return MonitorReport(label=label, name=name, version=v.version if v is not None else None, task=task,
                         start=start, end=end, window=step, windows=windows, overall=overall_df,
                         drift=reports(model=name, since=start, until=end), notes=notes)


def log_labels(request_ids, y_true, rows=None) -> int:
    """Ground truth for logged predictions: ``log_labels(ids, y)`` gives row 0 of each request its
    label; ``rows=[...]`` names the row of a multi-row request; ``log_labels("id", [y0, y1, ...])``
    labels every row of one request. Returns how many labels were stored; a later label for the
    same row replaces the earlier one. Ids the store does not know are refused in one message."""
    from ..serving import predlog
    from ..store import open_store

    if isinstance(request_ids, str):
        labels = list(y_true) if isinstance(y_true, (list, tuple, np.ndarray)) or hasattr(y_true, "tolist") \
            else [y_true]
        triples = [(request_ids, i, y) for i, y in enumerate(labels)]
    else:
        ids = list(request_ids)
        labels = list(y_true.tolist() if hasattr(y_true, "tolist") else y_true)
        if len(ids) != len(labels):
            raise BadInput(f"{len(ids)} request ids but {len(labels)} labels: give one label per id")
        row_list = [0] * len(ids) if rows is None else list(rows)
        if len(row_list) != len(ids):
            raise BadInput(f"{len(ids)} request ids but {len(row_list)} rows")
        triples = list(zip(ids, row_list, labels))
    clean = []
    for rid, row, y in triples:
        predlog.check_request_id(rid)
        if hasattr(y, "item"):
            y = y.item()
        if isinstance(y, (dict, list)) or (isinstance(y, float) and not math.isfinite(y)):
            raise BadInput(f"label for {rid} row {row} should be a finite number, a string or a boolean")
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or row < 0:
            raise BadInput(f"row {row!r} of {rid} should be a whole number from 0")
        clean.append((rid, int(row), y))
    meta = open_store().meta
    known = predlog.known_ids(meta, sorted({rid for rid, _, _ in clean}))
    unknown = sorted({rid for rid, _, _ in clean} - known)
    if unknown:
        raise BadInput(f"{len(unknown)} request id(s) not in the prediction log (e.g. {unknown[0]}); nothing stored")
    return predlog.write_labels(meta, clean)
