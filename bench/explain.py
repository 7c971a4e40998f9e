"""Explanations and registry loads: ours beside calling shap / skops directly, in one process.

    python -m bench.explain [--quick]

Workload: a 100-tree GradientBoostingClassifier on 20 features, 1,000 rows to explain (as in
the issue); a 100-tree RandomForest for the slow-tree case. "shap directly" is what a user
types to get the same result: TreeExplainer + the three views (bar, beeswarm, waterfall)
saved as PNG; we also give the values-only time for reference.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
import warnings

from .common import fmt_spread, fmt_time, table

QUICK = "--quick" in sys.argv
N = 5 if not QUICK else 3


def med(fn, n=N):
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    return statistics.median(xs), min(xs), max(xs)


def main() -> None:
    warnings.simplefilter("ignore")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import pandas as pd
    import shap
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    os.chdir(tempfile.mkdtemp(prefix="bench-explain-"))
    import mlops_jupyter as mj
    from mlops_jupyter.config import init_project

    init_project(os.getcwd())
    X, y = make_classification(n_samples=5000, n_features=20, n_informative=8, random_state=0)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    Xe = X.iloc[:1000]
    gb = GradientBoostingClassifier(n_estimators=100, random_state=0).fit(X, y)

    import matplotlib.pyplot as plt

    def shap_values():
        return shap.TreeExplainer(gb)(Xe)

    def shap_with_views():
        sv = shap.TreeExplainer(gb)(Xe)
        for draw in (lambda: shap.plots.bar(sv, show=False), lambda: shap.plots.beeswarm(sv, show=False),
                     lambda: shap.plots.waterfall(sv[0], show=False)):
            draw()
            plt.savefig(io.BytesIO(), format="png")
            plt.close("all")

    def ours():
        ex = mj.explain(gb, Xe, cache=False, progress=False)
        ex._repr_html_()  # the pictures, as displayed

    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "mlops_jupyter")
    ip.user_ns.update(gb=gb, Xe=Xe)

    def magic():
        ex = ip.run_line_magic("mlops", "explain gb Xe --no-cache")
        ex._repr_html_()

    ours()  # warm: imports, first figure
    shap_with_views()
    a = med(shap_values)
    b = med(shap_with_views)
    c = med(ours)
    m = med(magic)
    mj.explain(gb, Xe)  # store it once

    def cached():
        ex = mj.explain(gb, Xe)
        assert ex.cached
        ex._repr_html_()

    d = med(cached)
    table("SHAP, 1,000 rows x 20 features, 100-tree GradientBoostingClassifier", [
        "", "time", "vs shap + views", "vs shap values only"], [
        ["shap: TreeExplainer values", fmt_spread(a), "", ""],
        ["shap: values + bar, beeswarm, waterfall PNGs", fmt_spread(b), "", ""],
        ["mj.explain (values, 3 Vega-Lite charts with their SVG, stored)", fmt_spread(c), f"{(c[0] / b[0] - 1) * 100:+.0f}%",
         f"{(c[0] / a[0] - 1) * 100:+.0f}%"],
        ["%mlops explain --no-cache", fmt_spread(m), f"{(m[0] / b[0] - 1) * 100:+.0f}%", ""],
        ["repeat answered from the store (displayed)", fmt_spread(d), "", ""],
    ])

    rf = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X, y)
    rows = 200 if QUICK else 1000
    t = time.perf_counter()
    shap.TreeExplainer(rf)(X.iloc[:rows])
    t_shap = time.perf_counter() - t
    t = time.perf_counter()
    mj.explain(rf, X.iloc[:rows], cache=False, progress=False)
    t_ours = time.perf_counter() - t
    table(f"SHAP, {rows:,} rows, 100-tree RandomForestClassifier (deep trees)", ["", "time"], [
        ["shap TreeExplainer directly", fmt_time(t_shap)],
        ["mj.explain (in chunks, with a progress bar)", f"{fmt_time(t_ours)} ({(t_ours / t_shap - 1) * 100:+.0f}%)"]])

    import skops.io as sio

    v = mj.models.register(gb, name="churn", example=X, alias="production")
    from mlops_jupyter.store import open_store

    raw = open_store().blobs.get_bytes(v.digest)
    trusted = sio.get_untrusted_types(data=raw)
    lib = med(lambda: sio.loads(raw, trusted=trusted), n=9)
    ours_load = med(lambda: mj.models.load("churn@production"), n=9)
    table("load a registered scikit-learn model (100-tree GB, skops)", ["", "time", "beyond the library"], [
        ["skops.io.loads of the bytes", fmt_spread(lib), ""],
        ["mj.models.load('churn@production')", fmt_spread(ours_load), fmt_time(ours_load[0] - lib[0])]])


if __name__ == "__main__":
    main()
