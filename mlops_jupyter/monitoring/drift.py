"""Data drift between a reference and a current sample, feature by feature.

Every statistic is computed for every feature; one of them, the feature's *method*, decides
whether the feature drifted:

=================  =====================  ==========================  ==========
method             applies to             drifts when                 default
=================  =====================  ==========================  ==========
``wasserstein``    numeric                Wasserstein / ref. std >=   0.1  (numeric default)
``jensenshannon``  categorical            JS distance (base 2) >=     0.1  (categorical default)
``psi``            numeric, categorical   PSI >=                      0.2
``ks``             numeric                KS p-value <                0.05
``chi2``           categorical            chi-square p-value <        0.05
=================  =====================  ==========================  ==========

The methods are registered in :data:`drift_methods`; another is one :class:`DriftMethod` and one
``register`` line.

Distances are noisy on small samples: when either side has at most 1,000 rows, the defaults
are the tests instead (``ks`` for numeric, ``chi2`` for categorical features).

The dataset drifts when the share of drifted features (among those compared) is at least
``threshold`` (default 0.5). Features that cannot be compared (missing on one side, all null,
a single value, different types on each side, an empty side) are listed with the reason.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import rendering
from ..exceptions import BadInput
from ..registry import Registry
from . import stats

@dataclass(frozen=True)
class DriftMethod:
    """How one statistic decides whether a feature drifted.

    Args:
        applies: the feature types it applies to (``"numeric"``, ``"categorical"``).
        statistic: the name of the statistic in a feature's row (``stats.numeric`` and
            ``stats.categorical`` compute the built-in ones in one pass).
        default_threshold: the threshold when the user gives none.
        kind: ``"pvalue"`` drifts below the threshold, ``"distance"`` at or above it.
        compute: for a statistic of its own, ``compute(ref, cur) -> float`` over the sorted finite
            values of each side (numeric) or the value counts of each side (categorical).
    """

    applies: tuple[str, ...]
    statistic: str
    default_threshold: float
    kind: str = "distance"
    compute: Callable[[Any, Any], float] | None = None


#: Drift methods by name: a new one is a :class:`DriftMethod` and one ``register`` line.
drift_methods: Registry[DriftMethod] = Registry("drift method")
drift_methods.register("wasserstein", DriftMethod(("numeric",), "wasserstein_norm", 0.1))
drift_methods.register("jensenshannon", DriftMethod(("categorical",), "jensenshannon", 0.1))
drift_methods.register("psi", DriftMethod(("numeric", "categorical"), "psi", 0.2))
drift_methods.register("ks", DriftMethod(("numeric",), "ks_pvalue", 0.05, "pvalue"))
drift_methods.register("chi2", DriftMethod(("categorical",), "chi2_pvalue", 0.05, "pvalue"))


def _method(name: str, unknown: str = "unknown drift method") -> DriftMethod:
    if name not in drift_methods:
        raise BadInput(f"{unknown} {name!r}; methods: {', '.join(drift_methods.names())}")
    return drift_methods.get(name)


DEFAULT_METHOD = {"numeric": "wasserstein", "categorical": "jensenshannon"}
SMALL_METHOD = {"numeric": "ks", "categorical": "chi2"}  # when either side has at most SMALL rows
SMALL = 1000
DATASET_THRESHOLD = 0.5
COLUMNS = ["feature", "type", "method", "score", "threshold", "drift", "severity", "status", "reason",
           "ks_stat", "ks_pvalue", "wasserstein", "wasserstein_norm", "psi", "chi2", "chi2_pvalue",
           "jensenshannon", "n_ref", "n_cur", "null_ref", "null_cur", "null_change", "unseen", "unseen_share",
           "mean_ref", "mean_cur"]


@dataclass
class DriftReport:
    """Per-feature drift (``features``, a DataFrame sorted by severity) and the ``summary``."""

    features: Any
    summary: dict
    histograms: dict = field(repr=False, default_factory=dict)
    id: int | None = None

    @property
    def drift_share(self) -> float | None:
        return self.summary["drift_share"]

    @property
    def dataset_drift(self) -> bool:
        return bool(self.summary["dataset_drift"])

    @property
    def drifted(self) -> list[str]:
        f = self.features
        return list(f.loc[f["drift"] == True, "feature"])  # noqa: E712 (a column of True/False/None)

    @property
    def skipped(self) -> dict[str, str]:
        f = self.features[self.features["status"] == "skipped"]
        return dict(zip(f["feature"], f["reason"]))

    def __str__(self) -> str:
        s = self.summary
        head = (f"drift: {s['n_drifted']} of {s['n_compared']} features drifted"
                + (f" (share {s['drift_share']:.2f}, dataset threshold {s['threshold']:.2f})"
                   if s["drift_share"] is not None else "")
                + f" -> {'DATASET DRIFT' if s['dataset_drift'] else 'no dataset drift'}")
        lines = [head, f"  reference: {s['reference']}", f"  current:   {s['current']}"]
        for note in s.get("notes", []):
            lines.append(f"  note: {note}")
        for r in self.features.itertuples():
            if r.status == "skipped":
                lines.append(f"  {r.feature:<24} skipped: {r.reason}")
            else:
                lines.append(f"  {r.feature:<24} {'DRIFT' if r.drift else 'ok':<6}{r.method} {_num(r.score)} "
                             f"(threshold {_num(r.threshold)}){'; ' + r.reason if r.reason else ''}")
        if self.id is not None:
            lines.append(f"  saved as drift report {self.id}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)

    def _ipython_display_(self) -> None:
        rendering.show(self)


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


# -- options ------------------------------------------------------------------------------------
def _methods(method, columns: list[str], small: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    """(method per type, method per column) from ``"psi"``, ``{"numeric": "ks"}`` or ``{"age": "psi"}``."""
    by_type = dict(SMALL_METHOD if small else DEFAULT_METHOD)
    by_col: dict[str, str] = {}
    if method is None:
        return by_type, by_col
    items = {"numeric": method, "categorical": method} if isinstance(method, str) else dict(method)
    for key, m in items.items():
        applies = _method(m).applies
        if key in ("numeric", "categorical"):
            if isinstance(method, str) and key not in applies:
                continue  # e.g. method="ks": numeric features use it, categorical keep their default
            if key not in applies:
                raise BadInput(f"drift method {m} does not apply to {key} features")
            by_type[key] = m
        elif key in columns:
            by_col[key] = m
        else:
            raise BadInput(f"drift method given for {key!r}, which is neither a compared column nor "
                           "'numeric'/'categorical'")
    return by_type, by_col


def _thresholds(thresholds) -> dict[str, float]:
    out = {name: method.default_threshold for name, method in drift_methods.items()}
    for m, t in (thresholds or {}).items():
        method = _method(m, "threshold for unknown drift method")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise BadInput(f"threshold for {m} must be a number above 0, got {t!r}")
        if method.kind == "pvalue" and t >= 1:
            raise BadInput(f"threshold for {m} is a p-value: between 0 and 1, got {t}")
        out[m] = float(t)
    return out


# -- one feature ----------------------------------------------------------------------------------
def _kind(s) -> str:
    import pandas as pd

    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt):
        return "numeric"
    return "categorical"


def _floats(s) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(s.dtype) or pd.api.types.is_timedelta64_dtype(s.dtype):
        isna = s.isna().to_numpy()
        x = s.to_numpy().view("i8").astype(np.float64)
        x[isna] = np.nan
        return x
    if isinstance(s.dtype, np.dtype):  # numpy ints and floats: the column's own array, no copy (NaN is null)
        return s.to_numpy()
    return s.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable extension types


def _counts(s) -> tuple[dict, int]:
    vc = s.value_counts(dropna=True, sort=False)
    counts = {(k.item() if hasattr(k, "item") else k): int(v) for k, v in vc.items() if v}
    return counts, int(len(s) - sum(counts.values()))


def _feature(name: str, ref, cur, method: str, threshold: float, pvalues: bool) -> tuple[dict, dict | None]:
    row: dict[str, Any] = {"feature": name, "status": "ok", "reason": ""}
    n_ref, n_cur = len(ref), len(cur)
    kr, kc = _kind(ref), _kind(cur)
    if kr != kc:
        return _skip(row, f"types differ: {ref.dtype} in reference, {cur.dtype} in current"), None
    row["type"] = kr
    hist = None
    if kr == "numeric":
        ws = stats.workspace()
        a, null_a, inf_a = stats.finite_sorted(_floats(ref), ws.get("a", n_ref, np.float64))
        b, null_b, inf_b = stats.finite_sorted(_floats(cur), ws.get("b", n_cur, np.float64))
        row.update(n_ref=len(a), n_cur=len(b), null_ref=_rate(null_a, n_ref), null_cur=_rate(null_b, n_cur))
        if inf_a or inf_b:
            row["reason"] = f"non-finite values left out ({inf_a:,} in reference, {inf_b:,} in current)"
        problem = _empty_problem(len(a), len(b), n_ref, n_cur)
        if problem:
            return _skip(row, problem), None
        if a[0] == a[-1]:
            other = float(np.mean(b != a[0]))
            if other == 0:
                return _skip(row, f"a single value on both sides ({a[0]:.6g})"), None
            return _skip(row, f"a single value in reference ({a[0]:.6g}); {other:.1%} of current differs"), None
        sides = (a, b)
        res = stats.numeric(a, b, pvalues=pvalues or method == "ks", ws=ws)
        hist = res.pop("hist")
        row.update(res)
    else:
        rc, null_a = _counts(ref)
        cc, null_b = _counts(cur)
        row.update(n_ref=n_ref - null_a, n_cur=n_cur - null_b, null_ref=_rate(null_a, n_ref),
                   null_cur=_rate(null_b, n_cur))
        problem = _empty_problem(sum(rc.values()), sum(cc.values()), n_ref, n_cur)
        if problem:
            return _skip(row, problem), None
        if len(rc) == 1 and set(cc) <= set(rc):
            return _skip(row, f"a single value on both sides ({next(iter(rc))!r})"), None
        sides = (rc, cc)
        res = stats.categorical(rc, cc)
        hist = res.pop("hist")
        row.update(res)
        row["unseen"] = ", ".join(res["unseen"]) + (" …" if res["unseen_count"] > len(res["unseen"]) else "")
        row["unseen_share"] = res["unseen_share"]
        if res["unseen_count"]:
            row["reason"] = (f"{res['unseen_count']} categor{'y' if res['unseen_count'] == 1 else 'ies'} not in "
                             f"reference ({res['unseen_share']:.1%} of current)")
    row["null_change"] = row["null_cur"] - row["null_ref"]
    if abs(row["null_change"]) >= 0.05:
        note = f"null rate {row['null_ref']:.1%} -> {row['null_cur']:.1%}"
        row["reason"] = f"{row['reason']}; {note}" if row["reason"] else note
    spec = drift_methods.get(method)
    if spec.compute is not None:  # a statistic of its own: on the sorted values or the counts
        row[spec.statistic] = float(spec.compute(*sides))
    kind = spec.kind
    score = row.get(spec.statistic, math.nan)
    row.update(method=method, score=score, threshold=threshold)
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return _skip(row, f"{method} is undefined here"), hist
    if kind == "pvalue":
        row["drift"] = bool(score < threshold)
        row["severity"] = math.log(max(score, 1e-300)) / math.log(threshold)
    else:
        row["drift"] = bool(score >= threshold)
        row["severity"] = score / threshold
    return row, hist


def _rate(k: int, n: int) -> float:
    return k / n if n else math.nan


def _empty_problem(valid_ref: int, valid_cur: int, n_ref: int, n_cur: int) -> str | None:
    if n_ref == 0 or n_cur == 0:
        return f"{'reference' if n_ref == 0 else 'current'} has no rows"
    if valid_ref == 0 or valid_cur == 0:
        return f"all values are null in {'reference' if valid_ref == 0 else 'current'}"
    return None


def _skip(row: dict, reason: str) -> dict:
    row.update(status="skipped", drift=None, reason=reason)
    return row


# -- the dataset ----------------------------------------------------------------------------------
def compute(reference, current, columns: list[str] | None = None, threshold: float = DATASET_THRESHOLD,
            method=None, thresholds: dict | None = None, pvalues: bool = True, workers: int | None = None,
            progress: bool = False, labels: tuple[str, str] = ("reference", "current")) -> DriftReport:
    """Drift between two DataFrames (no store involved)."""
    import pandas as pd

    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise BadInput(f"dataset threshold is a share of features, above 0 and at most 1, got {threshold!r}")
    t0 = time.perf_counter()
    notes: list[str] = []
    if columns is None:
        columns = list(dict.fromkeys([*map(str, reference.columns), *map(str, current.columns)]))
    else:
        columns = [str(c) for c in columns]
        if not columns:
            raise BadInput("no columns to compare")
        if len(set(columns)) != len(columns):
            raise BadInput("a column is named twice in columns")
    by_type, by_col = _methods(method, columns, small=min(len(reference), len(current)) <= SMALL)
    limits = _thresholds(thresholds)
    ref_cols = {str(c): c for c in reference.columns}
    cur_cols = {str(c): c for c in current.columns}
    if not len(reference):
        notes.append("reference has no rows")
    if not len(current):
        notes.append("current has no rows")

    def one(name: str):
        if not len(reference) or not len(current):
            return _skip({"feature": name, "status": "ok"},
                         f"{'reference' if not len(reference) else 'current'} has no rows"), None
        if name not in ref_cols or name not in cur_cols:
            side = "reference" if name not in ref_cols else "current"
            if name not in ref_cols and name not in cur_cols:
                side = "both"
            return _skip({"feature": name, "status": "ok"}, f"missing in {side}"), None
        ref, cur = reference[ref_cols[name]], current[cur_cols[name]]
        if isinstance(ref, pd.DataFrame) or isinstance(cur, pd.DataFrame):
            return _skip({"feature": name, "status": "ok"}, "the column name is not unique"), None
        m = by_col.get(name) or by_type[_kind(ref)]
        if _kind(ref) not in drift_methods.get(m).applies:
            return _skip({"feature": name, "status": "ok"}, f"method {m} does not apply to a {_kind(ref)} "
                                                            "feature"), None
        try:
            return _feature(name, ref, cur, m, limits[m], pvalues)
        except (TypeError, ValueError) as e:  # e.g. unorderable mixed objects
            return _skip({"feature": name, "status": "ok"}, f"could not be compared: {e}"), None

    workers = workers or min(len(columns), os.cpu_count() or 1) or 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(columns), unit="feature", desc="drift", leave=False)
    results: list = []
    with ThreadPoolExecutor(workers) as ex:  # each worker thread has its own workspace, freed with it
        for r in ex.map(one, columns):
            results.append(r)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    rows = [r for r, _ in results]
    hists = {r["feature"]: h for r, h in results if h is not None}
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["drift"] = df["drift"].astype(object)
    df = df.sort_values(["status", "severity"], ascending=[True, False], na_position="last", kind="stable")
    df = df.reset_index(drop=True)
    compared = int((df["status"] == "ok").sum())
    drifted = int((df["drift"] == True).sum())  # noqa: E712
    share = drifted / compared if compared else None
    if not compared:
        notes.append("no feature could be compared")
    summary = {
        "reference": labels[0], "current": labels[1], "n_ref": int(len(reference)), "n_cur": int(len(current)),
        "n_features": len(columns), "n_compared": compared, "n_drifted": drifted, "drift_share": share,
        "threshold": float(threshold), "dataset_drift": bool(share is not None and share >= threshold),
        "methods": {**by_type, **by_col}, "thresholds": limits, "notes": notes,
        "seconds": round(time.perf_counter() - t0, 4),
    }
    return DriftReport(df, summary, hists)


def drift(reference, current, columns: list[str] | None = None, threshold: float = DATASET_THRESHOLD,
          method=None, thresholds: dict | None = None, since=None, until=None, model: str | None = None,
          save: bool = True, progress: bool | None = None) -> DriftReport:
    """Data drift of *current* against *reference*; each a DataFrame, a data version
    (``"train@v2"``) or a served model's logged traffic (``"serving:churn@production"``, over
    ``since``/``until``: ``"24h"``, ``"7d"``, an ISO date or a timestamp).

    The report is saved to the store (``save=False``: not), linked to the model version (from a
    ``serving:`` side, or ``model="churn@v3"``) and the data versions involved, so ``monitor``
    shows drift over time."""
    from .sources import parse_time, resolve

    t_since, t_until = parse_time(since, "since"), parse_time(until, "until")
    ref = resolve(reference, t_since, t_until, "reference")
    cur = resolve(current, t_since, t_until, "current")
    if (since or until) and ref.window is None and cur.window is None:
        raise BadInput("since/until choose a window of served traffic: neither side is serving:MODEL@ALIAS")
    if progress is None:
        progress = len(ref.frame) * len(ref.frame.columns) + len(cur.frame) * len(cur.frame.columns) > 5_000_000
    report = compute(ref.frame, cur.frame, columns=columns, threshold=threshold, method=method,
                     thresholds=thresholds, progress=progress, labels=(ref.label, cur.label))
    report.summary["notes"] = ref.notes + cur.notes + report.summary["notes"]
    mname, mversion = cur.model or ref.model, cur.version if cur.model else ref.version
    if model is not None:
        from ..models.registry import Registry
        from ..store import open_store

        v = Registry(open_store()).get(model)
        mname, mversion = v.name, v.version
    report.summary.update(model=mname, version=mversion,
                          datasets=[d for d in (ref.dataset, cur.dataset) if d],
                          window=list(cur.window or ref.window or (None, None)))
    if save:
        from .history import save_report

        report.id = save_report(report)
    return report
