"""Monitoring: drift statistics checked against scipy and by hand, bad input reported per
feature, drift against data versions and logged traffic of a real server, performance from
the prediction logs with labels, the retraining rule, and `mlops monitor check` retraining a
promoted job through a real kernel."""

import json
import math
import re

import httpx
import nbformat
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

import mlops_jupyter as mj
from mlops_jupyter.cli import main
from mlops_jupyter.monitoring import stats as S
from mlops_jupyter.monitoring.drift import compute
from mlops_jupyter.jobs.rule import RuleError, parse

from .test_jobs import TRAIN, write_notebook
from .test_serving_ops import _serve, _stop

H = {"Authorization": "Bearer t0k"}


def _sorted(x):
    return S.finite_sorted(np.asarray(x, dtype=float).copy())[0]


# -- statistics --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n1,n2,decimals", [(1, 1, 3), (3, 2, 0), (40, 70, 1), (5000, 3000, 1), (9000, 12000, 8),
                                             (200_000, 150_000, 2)])
def test_numeric_statistics_match_scipy(n1, n2, decimals):
    rng = np.random.default_rng(n1 + n2)
    a = np.round(rng.normal(size=n1), decimals)  # rounding makes ties, within and across the samples
    b = np.round(rng.normal(0.05, 1.2, size=n2), decimals)
    r = S.numeric(_sorted(a), _sorted(b))
    k = stats.ks_2samp(a, b)
    assert r["ks_stat"] == pytest.approx(k.statistic, abs=1e-12)
    en = n1 * n2 / (n1 + n2)  # above 50,000: the limiting distribution, within 1% of scipy's kstwo
    assert r["ks_pvalue"] == pytest.approx(k.pvalue, rel=1e-9 if en <= 50_000 else 1e-2, abs=1e-12)
    assert r["wasserstein"] == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-12)
    if a.std() > 0:
        assert r["wasserstein_norm"] == pytest.approx(stats.wasserstein_distance(a, b) / a.std(), rel=1e-9)


def test_large_samples_use_the_limiting_distribution():
    from scipy.special import kolmogorov

    rng = np.random.default_rng(3)
    for shift in (0.0, 0.004, 0.08):
        a, b = rng.normal(size=160_000), rng.normal(shift, 1, size=150_000)
        r = S.numeric(_sorted(a), _sorted(b))
        k = stats.ks_2samp(a, b)
        en = 160_000 * 150_000 / 310_000
        assert r["ks_stat"] == pytest.approx(k.statistic, abs=1e-12)
        assert r["ks_pvalue"] == pytest.approx(kolmogorov(math.sqrt(en) * k.statistic), rel=1e-12)
        assert r["ks_pvalue"] == pytest.approx(k.pvalue, rel=1e-2, abs=1e-12)


def test_categorical_statistics_match_scipy():
    ref = {"a": 120, "b": 300, "c": 80, "d": 5}
    cur = {"a": 90, "b": 150, "c": 140, "e": 20}
    r = S.categorical(ref, cur)
    cats = ["a", "b", "c", "d", "e"]
    table = np.array([[ref.get(c, 0) for c in cats], [cur.get(c, 0) for c in cats]])
    chi = stats.chi2_contingency(table, correction=False)
    assert r["chi2"] == pytest.approx(chi.statistic, rel=1e-12)
    assert r["chi2_pvalue"] == pytest.approx(chi.pvalue, rel=1e-9, abs=1e-300)
    assert r["jensenshannon"] == pytest.approx(jensenshannon(table[0], table[1], base=2), rel=1e-12)
    assert r["unseen"] == ["e"] and r["unseen_share"] == pytest.approx(20 / 400)


def test_psi_by_hand():
    # numeric: bins at the reference's deciles: 1..10 gives ten bins of one value each
    ref = np.arange(1, 11, dtype=float)
    cur = np.array([1, 1, 1, 1, 1, 2, 3, 4, 5, 6], dtype=float)
    by_hand = (0.5 - 0.1) * math.log(0.5 / 0.1) + 4 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert S.numeric(_sorted(ref), _sorted(cur))["psi"] == pytest.approx(by_hand, rel=1e-12)
    # categorical: the categories are the bins
    r = S.categorical({"a": 50, "b": 50}, {"a": 75, "b": 25})
    assert r["psi"] == pytest.approx((0.75 - 0.5) * math.log(1.5) + (0.25 - 0.5) * math.log(0.5), rel=1e-12)


# -- the report ----------------------------------------------------------------------------------------
def _frames(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"age": rng.normal(40, 10, n), "income": rng.lognormal(10, 1, n),
                        "plan": rng.choice(["basic", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
                        "steady": rng.normal(0, 1, n), "when": pd.Timestamp("2026-01-01") + pd.to_timedelta(
                            rng.integers(0, 86400 * 30, n), unit="s")})
    cur = pd.DataFrame({"age": rng.normal(48, 10, n), "income": rng.lognormal(10, 1, n),
                        "plan": rng.choice(["basic", "pro", "team", "enterprise"], n, p=[0.3, 0.3, 0.3, 0.1]),
                        "steady": rng.normal(0, 1, n), "when": pd.Timestamp("2026-03-01") + pd.to_timedelta(
                            rng.integers(0, 86400 * 30, n), unit="s")})
    return ref, cur


def test_report_sorted_by_severity_with_unseen_categories_and_null_rates():
    ref, cur = _frames()
    cur.loc[cur.index[: len(cur) // 4], "income"] = np.nan
    r = compute(ref, cur)
    f = r.features
    assert set(f["feature"][:3]) == {"when", "plan", "age"}  # the drifted ones first
    assert list(f["severity"].dropna()) == sorted(f["severity"].dropna(), reverse=True)
    assert set(r.drifted) == {"age", "plan", "when"}
    plan = f.set_index("feature").loc["plan"]
    assert plan["unseen"] == "enterprise" and "1 category not in reference" in plan["reason"]
    income = f.set_index("feature").loc["income"]
    assert income["null_cur"] == pytest.approx(0.25, abs=0.001) and "null rate 0.0% -> 25.0%" in income["reason"]
    assert r.summary["drift_share"] == pytest.approx(3 / 5) and r.dataset_drift
    html = r._repr_html_()
    assert html.count("<svg") == 5 and "enterprise" not in html.split("<title>")[0]
    assert "DATASET DRIFT" in str(r)


def test_methods_and_thresholds_can_be_chosen():
    ref, cur = _frames()
    r = compute(ref, cur, method={"numeric": "ks", "categorical": "chi2", "steady": "psi"},
                thresholds={"ks": 0.01, "psi": 0.5})
    m = r.features.set_index("feature")
    assert m.loc["age", "method"] == "ks" and m.loc["age", "threshold"] == 0.01 and m.loc["age", "drift"]
    assert m.loc["plan", "method"] == "chi2" and m.loc["steady", "method"] == "psi"
    assert m.loc["steady", "score"] == m.loc["steady", "psi"] and not m.loc["steady", "drift"]
    r = compute(ref, cur, method="psi", threshold=0.9)
    assert set(r.features["method"]) == {"psi"} and not r.dataset_drift
    r = compute(ref, cur, method="ks")  # numeric features use it; categorical keep their default
    assert set(r.features.set_index("feature")["method"]) == {"ks", "jensenshannon"}
    for kw, msg in [({"method": "t-test"}, "unknown drift method"), ({"thresholds": {"ks": 2}}, "p-value"),
                    ({"thresholds": {"psi": -1}}, "above 0"), ({"method": {"nope": "psi"}}, "neither a compared"),
                    ({"method": {"categorical": "ks"}}, "does not apply"), ({"threshold": 0}, "share of features"),
                    ({"columns": []}, "no columns")]:
        with pytest.raises(mj.BadInput, match=msg):
            compute(ref, cur, **kw)


def test_bad_input_is_reported_per_feature_never_a_crash():
    ref = pd.DataFrame({"ok": np.arange(100.0), "only_ref": 1.0, "nulls": np.nan, "const": 5.0,
                        "const_both": 2, "dtype": np.arange(100.0), "mixed": [1, "a"] * 50,
                        "inf": np.r_[np.arange(98.0), np.inf, -np.inf]})
    cur = pd.DataFrame({"ok": np.arange(100.0) + 1, "only_cur": "x", "nulls": np.arange(100.0),
                        "const": np.r_[np.full(90, 5.0), np.arange(10.0) + 10], "const_both": 2,
                        "dtype": ["a"] * 100, "mixed": [2, "b"] * 50, "inf": np.arange(100.0)})
    r = compute(ref, cur)
    reasons = r.skipped
    assert reasons["only_ref"] == "missing in current" and reasons["only_cur"] == "missing in reference"
    assert reasons["nulls"] == "all values are null in reference"
    assert reasons["const"].startswith("a single value in reference (5); 10.0% of current differs")
    assert reasons["const_both"] == "a single value on both sides (2)"
    assert reasons["dtype"] == "types differ: float64 in reference, str in current"
    f = r.features.set_index("feature")
    assert f.loc["mixed", "status"] == "ok" and f.loc["mixed", "unseen_share"] == 1.0  # compared as categories
    assert "non-finite values left out (2 in reference, 0 in current)" in f.loc["inf", "reason"]
    assert r.summary["n_compared"] == 3
    empty = compute(ref, cur.iloc[:0])
    assert empty.summary["n_compared"] == 0 and empty.drift_share is None and not empty.dataset_drift
    assert "current has no rows" in empty.summary["notes"] and "no feature could be compared" in str(empty) + \
        " ".join(empty.summary["notes"])
    assert set(empty.skipped.values()) >= {"current has no rows"}


# -- the faces, data versions and the store ---------------------------------------------------------
def test_drift_magic_against_a_data_version_saves_the_report(ip, capsys):
    ref, cur = _frames(500)
    ip.user_ns.update(train=ref, cur=cur)
    ip.run_line_magic("mlops", "data add train")
    report = ip.run_line_magic("mlops", "drift train@v1 cur --columns age,plan --threshold 0.2 --method "
                                        "numeric=wasserstein,categorical=jensenshannon "
                                        "--feature-threshold jensenshannon=0.5")
    assert report.features["feature"].tolist() == ["age", "plan"]
    assert report.drifted == ["age"] and report.summary["threshold"] == 0.2 and report.dataset_drift
    assert report.summary["reference"] == "train@v1" and report.summary["datasets"] == ["train@v1"]
    saved = mj.monitoring.load_report(report.id)
    assert saved.features["feature"].tolist() == ["age", "plan"] and saved.summary["n_drifted"] == 1
    from IPython.core.error import UsageError

    for line, msg in [("drift train@v1 nope", "neither a DataFrame variable"),
                      ("drift train@v9 cur", "train@v9"), ("drift train@v1 cur --threshold 2", "between 0 and 1"),
                      ("drift train@v1 cur --method zz", "unknown drift method"),
                      ("drift train@v1 cur --since 24h", "neither side is serving"),
                      ("drift train@v1 serving:churn@production --since yesterday", "neither a duration")]:
        with pytest.raises(UsageError, match=msg):
            ip.run_line_magic("mlops", line)
    assert len(mj.monitoring.reports()) == 1


def test_drift_cli_on_files_and_versions(project, capsys, tmp_path):
    ref, cur = _frames(300)
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    assert main(["drift", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.csv"), "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "features drifted" in out and "age" in out
    assert main(["drift", str(tmp_path / "ref.parquet"), str(tmp_path / "missing.csv")]) == 2
    assert "no file" in capsys.readouterr().err
    assert main(["drift", "a", "b", "--feature-threshold", "ks"]) == 2


# -- serving traffic, labels, performance, the rule and the check -------------------------------------
def _champion_with_training_data():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 4)), columns=list("abcd"))
    y = (X.a > 0).astype(int)
    with mj.start_run("champion") as r:
        mj.data.add(X, name="train")
        r.log_metric("auc", 0.6)
        return mj.models.register(LogisticRegression().fit(X, y), name="churn", example=X, alias="production"), X


def _traffic(port, X, shift=0.0, n=40):
    ids, truth = [], []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=H, timeout=10) as c:
        for i in range(n):
            row = X.iloc[i % len(X)].to_dict()
            row["a"] += shift
            row["b"] -= shift
            r = c.post("/predict", json=[row], params={"proba": "true"})
            assert r.status_code == 200, r.text
            ids.append(r.json()["request_id"])
            truth.append(int(X.iloc[i % len(X)]["a"] > 0))  # the label the world reveals later
    return ids, truth


@pytest.mark.backends
def test_monitor_from_logged_traffic_and_labels(store, capsys):
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    from mlops_jupyter.serving import predlog
    from mlops_jupyter.store import open_store

    v, X = _champion_with_training_data()
    bg, port = _serve("churn@production")
    try:
        ids, truth = _traffic(port, X, shift=0.0, n=30)
        # labels from the server's /feedback for half, from mj.log_labels for the rest
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=H) as c:
            r = c.post("/feedback", json=[{"request_id": i, "label": y} for i, y in zip(ids[:15], truth[:15])])
            assert r.status_code == 200, r.text
        _wait_logged(30)
        assert mj.log_labels(ids[15:], truth[15:]) == 15
        with pytest.raises(mj.BadInput, match="not in the prediction log"):
            mj.log_labels(["0" * 32], [1])
        with pytest.raises(mj.BadInput, match="one label per id"):
            mj.log_labels(ids[:2], [1])
    finally:
        _stop(port)
    rows = predlog.read(open_store().meta, "churn", with_labels=True, probabilities=True)
    m = mj.monitor("churn@production", since="1h")
    fig = m.figures()
    assert fig["requests"] == 30 and fig["labeled_rows"] == 30
    y_pred, p1 = rows["prediction"].tolist(), [p[1] for p in rows["probabilities"]]
    y_true = rows["label"].tolist()
    assert fig["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert fig["f1"] == pytest.approx(f1_score(y_true, y_pred))
    assert fig["roc_auc"] == pytest.approx(roc_auc_score(y_true, p1))
    assert fig["latency_p99_ms"] > 0 and m.task == "classification"
    html = m._repr_html_()
    assert "<svg" in html and "accuracy" in html
    assert main(["monitor", "churn@production", "--since", "1h"]) == 0
    out = capsys.readouterr().out
    assert "v1: 30 requests" in out and "accuracy" in out
    assert main(["monitor", "churn@production", "--since", "soon"]) == 2
    assert main(["monitor", "nomodel"]) == 2


def _wait_logged(n, model="churn", timeout=10):
    import time

    from mlops_jupyter.serving import predlog
    from mlops_jupyter.store import open_store

    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(predlog.requests(open_store().meta, model)) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} requests logged after {timeout} s")


def test_rules_parse_safely_with_positions():
    r = parse("drift_share > 0.3 or accuracy < 0.8")
    assert r.names == ["accuracy", "drift_share"]
    assert r.evaluate({"drift_share": 0.5, "accuracy": None}) == (True, [
        "drift_share (0.5) > 0.3", "accuracy unknown in this window (a rule fires only when the known figures "
                                   "decide it)"])
    assert parse("not accuracy > 0.8").evaluate({"accuracy": None})[0] is False  # unknown, not true
    assert parse("not accuracy > 0.8 or requests > 5").evaluate({"accuracy": None, "requests": 9})[0] is True
    assert parse("accuracy < 0.8 and requests > 5").evaluate({"accuracy": None, "requests": 9})[0] is False
    assert r.evaluate({"drift_share": 0.1, "accuracy": 0.9})[0] is False
    assert parse("not (0.2 < drift_share <= 0.5) and requests >= 10").evaluate(
        {"drift_share": 0.6, "requests": 10})[0] is True
    assert parse("rmse > -1").evaluate({"rmse": 0.0})[0] is True
    for text, msg, col in [("drift_share > 0.3 or acuracy < 0.8", "unknown figure 'acuracy' (did you mean accuracy?)",
                            22), ("drift_share >", "does not parse", None),
                           ("__import__('os').system('id')", "only figures", 1), ("drift_share", "alone", 1),
                           ("(drift_share > 1) > 2", "compared again", 2), ("drift_share + 1 > 2", "operator '+'", 13),
                           ("0.3 < 0.5", "needs a figure", 1), ("", "empty", None), ("drift_share in [1]", "only <", 1)]:
        with pytest.raises(RuleError, match=re.escape(msg)) as e:
            parse(text)
        if col:
            assert f"at column {col} (near " in str(e.value) and "\n" not in str(e.value)


def test_a_bad_rule_is_refused_when_promoted_or_edited(project, capsys):
    _champion_with_training_data()
    write_notebook(project / "train.ipynb")
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc",
                 "--retrain-when", "drift_share > 0.3 or acc < 0.8"]) == 2
    err = capsys.readouterr().err
    assert "unknown figure 'acc'" in err and "at column 22 (near 'acc < 0.8')" in err
    assert not (project / "jobs" / "churn-job").exists()
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc"]) == 0
    toml = (project / "jobs" / "churn-job" / "job.toml").read_text()
    assert 'retrain_when = "drift_share > 0.3"' in toml and 'window = "24h"' in toml
    (project / "jobs" / "churn-job" / "job.toml").write_text(toml.replace("drift_share > 0.3", "drift_share >> 0.3"))
    capsys.readouterr()
    for argv in (["job", "show", "churn-job"], ["monitor", "check", "churn-job"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "[retrain] retrain_when: operator '>>' is not allowed" in err and "at column 13 (near '>> 0.3')" in err


@pytest.mark.backends
def test_monitor_check_retrains_when_drift_fires(project, capsys):
    v, X = _champion_with_training_data()
    write_notebook(project / "train.ipynb", TRAIN)
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc",
                 "--retrain-when", "drift_share >= 0.5 or accuracy < 0.5"]) == 0
    bg, port = _serve("churn@production")
    try:
        _traffic(port, X, shift=0.0, n=40)
        _wait_logged(40)
        capsys.readouterr()
        assert main(["monitor", "check", "churn-job"]) == 0  # same distribution, no labels: nothing fires
        out = capsys.readouterr().out
        assert "decision: no retraining (not fired)" in out and "accuracy unknown" in out
        _traffic(port, X, shift=3.0, n=60)
        _wait_logged(100)
    finally:
        _stop(port)
    assert main(["monitor", "check", "churn-job", "--dry-run"]) == 3
    out = capsys.readouterr().out
    assert "fired: drift_share" in out and "dry run: would retrain" in out
    assert len(mj.runs(where="name = 'retrain churn-job'")) == 0
    assert main(["monitor", "check", "churn-job"]) == 3
    out = capsys.readouterr().out
    assert "retraining churn-job" in out and "retrained (run" in out
    batch = mj.runs(where="name = 'retrain churn-job'")
    assert len(batch) == 1 and mj.get_run(batch.iloc[0]["run_id"]).tags["mlops.trigger"] == "monitor"
    checks = mj.monitoring.checks("churn-job")
    assert checks["fired"].tolist() == [False, True, True]
    assert checks["outcome"].iloc[-1].startswith("retrained (run") and checks["drift_report"].notna().all()
    assert checks["figures"].iloc[-1]["drift_share"] == 0.5  # a and b moved, c and d did not
    reports = mj.monitoring.reports(model="churn")
    assert len(reports) == 3 and reports["current"].str.contains("traffic of churn@production").all()
    assert json.loads(json.dumps(checks["figures"].iloc[0]))["requests"] == 40


@pytest.mark.slow
def test_drift_widget_in_a_kernel(project):
    """In a notebook the report is a widget (filter: all / drifted / skipped)."""
    from nbclient import NotebookClient

    from .test_notebook import make_nb

    path = make_nb(project / "monitor.ipynb", "%load_ext mlops_jupyter",
                   "import numpy as np, pandas as pd\nrng = np.random.default_rng(0)\n"
                   "train = pd.DataFrame({'x': rng.normal(size=3000), 'plan': rng.choice(list('abc'), 3000)})\n"
                   "today = pd.DataFrame({'x': rng.normal(1, 1, 3000), 'plan': rng.choice(list('abd'), 3000)})",
                   "%mlops data add train",
                   "%mlops drift train@v1 today",
                   "import mlops_jupyter as mj\nr = mj.drift(train, today, save=False)\nprint(sorted(r.drifted))")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(project)}}).execute()
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    out = nb.cells[3].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in out), out
    assert "['plan', 'x']" in "".join(o.get("text", "") for o in nb.cells[4].outputs)
    assert len(mj.monitoring.reports()) == 1


def test_container_check_command_treats_a_fired_rule_as_success(project, tmp_path):
    """The image's `check` command: exit 3 from `mlops monitor check` (fired, retrained) is a success
    for a CronJob; other failures pass through."""
    import os
    import subprocess

    from mlops_jupyter.jobs.spec import JobSpec
    from mlops_jupyter.jobs.templates import entrypoint

    script = tmp_path / "entrypoint.sh"
    script.write_text(entrypoint(JobSpec(name="j", model="churn")))
    fake = tmp_path / "bin"
    fake.mkdir()
    for code, expected in ((3, 0), (0, 0), (1, 1), (2, 2)):
        (fake / "mlops").write_text(f"#!/bin/sh\necho \"mlops $*\"\nexit {code}\n")
        (fake / "mlops").chmod(0o755)
        r = subprocess.run(["sh", str(script), "check", "--dry-run"], capture_output=True, text=True,
                           env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}, timeout=30)
        assert r.returncode == expected and r.stdout.strip() == "mlops monitor check /app --dry-run", r


def test_regressor_ab_traffic_per_version_and_empty_windows(ip, capsys):
    """Two versions behind an A/B split: figures per version and window; MAE/RMSE/R2 from labels;
    an empty window is reported, not an error; the magic shows charts."""
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    from mlops_jupyter.serving import predlog
    from mlops_jupyter.store import open_store

    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["x1", "x2", "x3"])
    y = 2 * X.x1 - X.x2 + rng.normal(0, 0.1, 300)
    mj.data.add(X, name="houses")
    mj.models.register(LinearRegression().fit(X, y), name="price", example=X, alias="production")
    mj.models.register(Ridge(alpha=50).fit(X, y), name="price", example=X)
    empty = mj.drift("houses@v1", "serving:price@production", since="1h")
    assert empty.summary["n_compared"] == 0 and set(empty.skipped.values()) == {"current has no rows"}
    assert any("no logged requests of price@v1" in n for n in empty.summary["notes"])
    assert "no logged requests" in str(mj.monitor("price@production", since="1h"))
    bg, port = _serve("price@v1:0.5,price@v2:0.5")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=H, timeout=10) as c:
            for i in range(60):
                r = c.post("/predict", json={"columns": list(X.columns), "data": [X.iloc[i].tolist(),
                                                                                  X.iloc[i + 100].tolist()]})
                assert r.status_code == 200, r.text
                mj_ids = r.json()["request_id"]
                c.post("/feedback", json={"request_id": mj_ids, "labels": [float(y[i]), float(y[i + 100])]})
        _wait_logged(60, model="price")
    finally:
        _stop(port)
    rows = predlog.read(open_store().meta, "price")
    m = mj.monitor("price", since="1h", window="10m")
    assert m.task == "regression" and sorted(m.overall["version"]) == [1, 2]
    for v in (1, 2):
        sub = rows[rows["version"] == v]
        fig = m.figures(v)
        assert fig["rows"] == len(sub) and fig["labeled_rows"] == len(sub) > 10
        assert fig["mae"] == pytest.approx(mean_absolute_error(sub["label"], sub["prediction"]))
        assert fig["rmse"] == pytest.approx(mean_squared_error(sub["label"], sub["prediction"]) ** 0.5)
        assert fig["r2"] == pytest.approx(r2_score(sub["label"], sub["prediction"]))
    assert m.figures(1)["rmse"] < m.figures(2)["rmse"]  # the heavily regularized challenger is worse
    assert set(m.windows["version"]) == {1, 2} and m.windows["requests"].sum() == 60
    shown = ip.run_line_magic("mlops", "monitor price@production --since 1h")
    html = shown._repr_html_()
    assert "<svg" in html and "RMSE" in html and "v2" in html
    drawn = shown.chart().spec["usermeta"]["mlops"]  # one picture: panels on one time axis
    assert drawn["versions"] == ["v1", "v2"] and {"requests", "rmse"} <= set(drawn["columns"])
    report = ip.run_line_magic("mlops", "drift houses@v1 serving:price@v2 --since 1h")
    assert report.summary["model"] == "price" and report.summary["version"] == 2
    assert report.summary["n_cur"] == len(rows[rows["version"] == 2])
    later = mj.monitor("price@production", since="1h")
    assert len(later.drift) == 2 and "drift share" in later._repr_html_()


def test_a_registered_drift_method_decides_drift(project):
    """Adding a drift statistic is one DriftMethod and one register line; it is used by name."""
    import numpy as np
    import pandas as pd

    from mlops_jupyter.monitoring.drift import DriftMethod, compute, drift_methods

    def median_shift(ref, cur):  # sorted finite values of each side
        return abs(float(np.median(cur)) - float(np.median(ref))) / (float(ref[-1] - ref[0]) or 1.0)

    drift_methods.register("median_shift", DriftMethod(("numeric",), "median_shift", 0.2, compute=median_shift))
    try:
        rng = np.random.default_rng(0)
        ref = pd.DataFrame({"x": rng.normal(0, 1, 2000), "city": rng.choice(["a", "b"], 2000)})
        cur = pd.DataFrame({"x": rng.normal(3, 1, 2000), "city": rng.choice(["a", "b"], 2000)})
        report = compute(ref, cur, method="median_shift")
        row = report.features.set_index("feature").loc["x"]
        assert row["method"] == "median_shift" and bool(row["drift"])
        assert row["score"] == pytest.approx(median_shift(np.sort(ref["x"].to_numpy()), np.sort(cur["x"].to_numpy())))
        assert report.features.set_index("feature").loc["city", "method"] == "jensenshannon"  # numeric only
        with pytest.raises(mj.BadInput, match="unknown drift method .nope.; methods: .*median_shift"):
            compute(ref, cur, method="nope")
    finally:
        drift_methods.unregister("median_shift")
