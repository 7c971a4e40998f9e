"""Evaluation of model versions: every figure against scikit-learn's function and every slice against
fairlearn on the same predictions, the store answering a repeat, bootstrap intervals that cover a
known difference, bad input as one line with nothing stored, and the magic and the command."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn import metrics as M

import mlops_jupyter as mj
from mlops_jupyter.exceptions import BadInput

from .conftest import run_cli

pytestmark = pytest.mark.timeout(300)


def churn_frame(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"tenure": rng.normal(size=n), "spend": rng.normal(size=n),
                       "region": rng.choice(["north", "south", "east", "west", "islands"], n,
                                            p=[0.35, 0.3, 0.2, 0.145, 0.005]),
                       "age_band": rng.choice(["<30", "30-50", "50+"], n)})
    logit = 1.2 * df.tenure - 0.8 * df.spend + np.where(df.region == "south", 0.6, 0.0)
    df["churned"] = np.where(logit + rng.logistic(size=n) > 0, "yes", "no")
    return df


FEATURES = ["tenure", "spend"]


def register_two(df):
    from sklearn.linear_model import LogisticRegression

    good = LogisticRegression().fit(df[FEATURES], df.churned)
    weak = LogisticRegression().fit(df[["tenure"]].assign(spend=0.0)[FEATURES], df.churned)
    mj.models.register(good, "churn", example=df[FEATURES].head())
    mj.models.register(weak, "churn", example=df[FEATURES].head(), alias="production")
    return good, weak


def evaluations_count(store):
    from mlops_jupyter.store import schema as S

    with store.meta.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(S.evaluations)).scalar()


def test_figures_and_slices_equal_scikit_learn_and_fairlearn(project, store):
    from fairlearn.metrics import (MetricFrame, count, demographic_parity_difference,
                                   equalized_odds_difference)

    train, test = churn_frame(4000, 0), churn_frame(3000, 1)
    good, _ = register_two(train)
    test_v = mj.data.add(test, name="test")
    ev = mj.evaluate("churn@v1", test_v.ref, target="churned", by=["region", "age_band"], min_group=40)
    proba = good.predict_proba(test[FEATURES])
    s, y, pred = proba[:, 1], test.churned.to_numpy(), good.predict(test[FEATURES])
    want = {"accuracy": M.accuracy_score(y, pred), "precision": M.precision_score(y, pred, pos_label="yes"),
            "recall": M.recall_score(y, pred, pos_label="yes"), "f1": M.f1_score(y, pred, pos_label="yes"),
            "roc_auc": M.roc_auc_score(y, s), "pr_auc": M.average_precision_score(y, s, pos_label="yes"),
            "log_loss": M.log_loss(y, proba), "brier": M.brier_score_loss(y, s, pos_label="yes"),
            "f1_macro": M.f1_score(y, pred, average="macro"),
            "precision_weighted": M.precision_score(y, pred, average="weighted")}
    for name, value in want.items():
        assert ev.figures[name] == pytest.approx(value, abs=1e-12), name
    assert ev.figure("auc") == ev.figures["roc_auc"]
    assert ev.positive == "yes" and ev.classes == ["no", "yes"]
    assert ev.confusion == M.confusion_matrix(y, pred, labels=["no", "yes"]).tolist()
    per = {c["class"]: c for c in ev.per_class}
    assert per["no"]["recall"] == pytest.approx(M.recall_score(y, pred, pos_label="no"))
    assert per["yes"]["support"] == int((y == "yes").sum())
    # the curves: thinned, ends kept, the area under the stored ROC close to the figure
    roc = ev.curves["roc"]["yes"]
    assert len(roc["x"]) <= 400 and roc["x"][0] == 0.0 and roc["x"][-1] == 1.0 and roc["y"][-1] == 1.0
    assert np.trapezoid(roc["y"], roc["x"]) == pytest.approx(want["roc_auc"], abs=0.01)
    # the best threshold is the F1-maximizing cut of the scores
    bt = ev.best_threshold
    assert M.f1_score(y == "yes", s >= bt["threshold"]) == pytest.approx(bt["f1"], abs=1e-9)
    cuts = np.unique(s)
    assert max(M.f1_score(y == "yes", s >= c) for c in cuts[::max(1, len(cuts) // 300)]) <= bt["f1"] + 1e-12
    from sklearn.calibration import calibration_curve

    observed, _ = calibration_curve(y == "yes", s, n_bins=10)
    assert ev.curves["calibration"]["observed"] == pytest.approx(observed.tolist())
    # slices: fairlearn's MetricFrame on the same predictions, sizes kept, small groups marked
    for column in ("region", "age_band"):
        sl = ev.slice(column)
        mf = MetricFrame(metrics={"recall": lambda a, b: M.recall_score(a, b, pos_label="yes"),
                                  "accuracy": M.accuracy_score, "n": count},
                         y_true=y, y_pred=pred, sensitive_features=test[column])
        for g in sl["groups"]:
            assert g["recall"] == pytest.approx(mf.by_group.loc[g["group"], "recall"], abs=1e-12)
            assert g["count"] == mf.by_group.loc[g["group"], "n"]
            assert g["small"] == (g["count"] < 40)
        big = mf.by_group[mf.by_group.n >= 40]
        assert sl["gap"]["recall"] == pytest.approx(big.recall.max() - big.recall.min(), abs=1e-12)
        assert sl["ratio"]["accuracy"] == pytest.approx(big.accuracy.min() / big.accuracy.max(), abs=1e-12)
        groups = test[column].isin(big.index).to_numpy()
        kw = dict(sensitive_features=test[column][groups])
        yb, pb = (y[groups] == "yes").astype(int), (pred[groups] == "yes").astype(int)
        assert sl["fairness"]["demographic_parity_difference"] == pytest.approx(
            demographic_parity_difference(yb, pb, **kw), abs=1e-12)
        assert sl["fairness"]["equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(yb, pb, **kw), abs=1e-12)
    islands = next(g for g in ev.slice("region")["groups"] if g["group"] == "islands")
    assert islands["small"] and islands["count"] < 40  # marked, not hidden
    assert ev.slice_gap("recall", "region") == ev.slice("region")["gap"]["recall"]
    with pytest.raises(BadInput, match="no slices by 'tenure'"):
        ev.slice_gap("recall", "tenure")
    # the version shows it; the pictures are valid Vega-Lite 5
    v = mj.models.get("churn@v1")
    assert v.evaluations[0]["data"] == "test@v1" and v.evaluations[0]["figures"]["roc_auc"] == ev.figures["roc_auc"]
    charts = ev.charts()
    assert set(charts) == {"confusion", "roc", "pr", "calibration", "slices:region", "slices:age_band"}
    _valid(charts)


def _valid(charts):
    import altair
    import jsonschema

    path = os.path.join(os.path.dirname(altair.__file__), "vegalite", "v5", "schema", "vega-lite-schema.json")
    with open(path) as f:
        validator = jsonschema.Draft7Validator(json.load(f))
    for name, chart in charts.items():
        errors = [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(chart.spec)]
        assert not errors, (name, errors)
        json.dumps(chart.spec, allow_nan=False)
        assert chart.svg().startswith("<svg")


def test_multiclass_and_regression_figures(project):
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.preprocessing import label_binarize

    rng = np.random.default_rng(3)
    n = 2500
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    X["kind"] = np.select([X.a > 0.5, X.b > 0], [2, 1], 0)
    X["kind"] = np.where(rng.random(n) < 0.15, rng.integers(0, 3, n), X.kind)
    X["g"] = rng.choice(["x", "y"], n)
    clf = LogisticRegression().fit(X[["a", "b"]], X.kind)
    mj.models.register(clf, "kinds", example=X[["a", "b"]])
    ev = mj.evaluate("kinds@v1", X, target="kind", by="g")
    P, pred, y = clf.predict_proba(X[["a", "b"]]), clf.predict(X[["a", "b"]]), X.kind.to_numpy()
    assert ev.data.startswith("a DataFrame (digest ")
    for name, value in {"accuracy": M.accuracy_score(y, pred), "f1": M.f1_score(y, pred, average="macro"),
                        "roc_auc": M.roc_auc_score(y, P, multi_class="ovr"),
                        "pr_auc": M.average_precision_score(label_binarize(y, classes=[0, 1, 2]), P),
                        "log_loss": M.log_loss(y, P), "brier": M.brier_score_loss(y, P, labels=[0, 1, 2])}.items():
        assert ev.figures[name] == pytest.approx(value, abs=1e-12), name
    assert len(ev.per_class) == 3 and set(ev.curves["roc"]) == {"0", "1", "2"}
    assert ev.slice("g")["fairness"] == {}  # parity and equalized odds need two classes
    _valid(ev.charts())

    X["price"] = 3 * X.a - X.b + rng.normal(size=n) + 10
    reg = LinearRegression().fit(X[["a", "b"]], X.price)
    mj.models.register(reg, "price", example=X[["a", "b"]])
    ev = mj.evaluate("price@v1", X, target="price", by=["g"])
    p = reg.predict(X[["a", "b"]])
    for name, value in {"mae": M.mean_absolute_error(X.price, p), "rmse": M.root_mean_squared_error(X.price, p),
                        "r2": M.r2_score(X.price, p), "mape": M.mean_absolute_percentage_error(X.price, p)}.items():
        assert ev.figures[name] == pytest.approx(value, abs=1e-12), name
    assert ev.residuals["shown"] == 2000 and ev.residuals["rows"] == n
    assert sum(ev.residual_histogram["counts"]) == n
    edges = ev.residual_histogram["edges"]
    assert all(round((b - a) / (edges[1] - edges[0]), 9) == 1 for a, b in zip(edges, edges[1:]))
    assert set(ev.charts()) == {"residuals", "residual_histogram", "slices:g"}
    _valid(ev.charts())


@pytest.mark.backends
def test_a_repeat_is_answered_from_the_store(project, store):
    df = churn_frame(3000, 2)
    register_two(df)
    ref = mj.data.add(df, name="test").ref
    first = mj.evaluate("churn@v1", ref, target="churned", by=["region"])
    assert not first.cached and evaluations_count(store) == 1
    again = mj.evaluate("churn@v1", ref, target="churned", by=["region"])
    assert again.cached and again.seconds < first.seconds
    assert {**again.to_dict(), "seconds": 0} == {**first.to_dict(), "seconds": 0}
    # the same content given as a frame, or other options, or other rows: a new evaluation
    assert not mj.evaluate("churn@v1", ref, target="churned", by=["age_band"]).cached
    assert not mj.evaluate("churn@v1", df.iloc[:2000], target="churned").cached
    assert mj.evaluate("churn@v1", df.iloc[:2000], target="churned").cached
    assert evaluations_count(store) == 3
    # a damaged document is computed again, not shown
    from mlops_jupyter.store import schema as S

    with store.meta.read() as conn:
        digest = conn.execute(sa.select(S.evaluations.c.digest).where(S.evaluations.c.key == first.key)).scalar()
    from .conftest import tamper

    tamper(store, digest, lambda b: b[:-20])
    again = mj.evaluate("churn@v1", ref, target="churned", by=["region"])
    assert not again.cached and again.figures == first.figures


def test_bootstrap_intervals_cover_a_known_difference(project):
    """Two fixed models on a population where their true difference is measured on 400,000 rows;
    the 95% interval from each of 20 independent test samples should hold it about 19 times."""
    from mlops_jupyter.evaluation.compare import compare
    from mlops_jupyter.evaluation.evaluate import predict

    train = churn_frame(4000, 10)
    register_two(train)
    reg_good, reg_weak = mj.models.get("churn@v1"), mj.models.get("churn@production")
    good, weak = mj.models.load("churn@v1"), mj.models.load("churn@production")
    population = churn_frame(400_000, 11)

    def preds(df):
        y = df.churned.to_numpy()
        return (predict(reg_good, good, df[FEATURES], "classification", None, "churned", y),
                predict(reg_weak, weak, df[FEATURES], "classification", None, "churned", y))

    a, b = preds(population)
    truth = {f: c["difference"] for f, c in compare(a, b, 10, 0).items()}
    assert truth["roc_auc"] > 0.03  # a real gap to find
    covered = {f: 0 for f in ("accuracy", "roc_auc", "log_loss", "f1")}
    detected = 0
    for i in range(20):
        sample = population.sample(1500, random_state=100 + i)
        comp = compare(*preds(sample), 300, i)
        for f in covered:
            covered[f] += comp[f]["low"] <= truth[f] <= comp[f]["high"]
        detected += comp["roc_auc"]["verdict"] == "better"
    assert all(n >= 16 for n in covered.values()), covered  # 95% intervals: about 19 of 20
    assert detected >= 18
    # and the whole path: the version against its baseline on one sample
    ev = mj.evaluate("churn@v1", population.sample(3000, random_state=7), target="churned",
                     baseline="churn@production", resamples=200, seed=5)
    c = ev.baseline["comparison"]["roc_auc"]
    assert c["low"] < c["difference"] < c["high"] and c["verdict"] == "better"
    assert ev.baseline["model"] == "churn@v2" and ev.baseline["figures"]["roc_auc"] == c["baseline"]
    assert "baseline" in ev.charts()


def test_resampled_figures_equal_scikit_learn_with_weights():
    from sklearn.preprocessing import label_binarize

    from mlops_jupyter.evaluation.metrics import Predictions
    from mlops_jupyter.evaluation.resample import Resampler

    rng = np.random.default_rng(4)
    n = 1500
    W = np.vstack([np.ones(n), rng.integers(0, 3, n).astype(float), np.bincount(rng.integers(0, n, n), minlength=n)])
    cases = []
    P = rng.dirichlet([1, 1], n).round(2)  # ties in the scores
    P[:, 0] = 1 - P[:, 1]
    y = rng.choice(["no", "yes"], n)
    p = Predictions("classification", y, np.array(["no", "yes"])[P.argmax(1)], P, ["no", "yes"], "yes")
    kw = dict(pos_label="yes")
    cases.append((p, {"accuracy": lambda w: M.accuracy_score(p.y, p.pred, sample_weight=w),
                      "precision": lambda w: M.precision_score(p.y, p.pred, sample_weight=w, **kw),
                      "recall": lambda w: M.recall_score(p.y, p.pred, sample_weight=w, **kw),
                      "f1": lambda w: M.f1_score(p.y, p.pred, sample_weight=w, **kw),
                      "roc_auc": lambda w: M.roc_auc_score(p.y == "yes", P[:, 1], sample_weight=w),
                      "pr_auc": lambda w: M.average_precision_score(p.y, P[:, 1], sample_weight=w, **kw),
                      "log_loss": lambda w: M.log_loss(p.y, P, sample_weight=w),
                      "brier": lambda w: M.brier_score_loss(p.y, P[:, 1], sample_weight=w, **kw)}))
    Q = rng.dirichlet([1, 1, 1], n)
    y3 = rng.integers(0, 3, n)
    q = Predictions("classification", y3, Q.argmax(1), Q, [0, 1, 2], None)
    mk = dict(average="macro", zero_division=0)
    cases.append((q, {"precision": lambda w: M.precision_score(y3, q.pred, sample_weight=w, **mk),
                      "f1": lambda w: M.f1_score(y3, q.pred, sample_weight=w, **mk),
                      "roc_auc": lambda w: M.roc_auc_score(y3, Q, multi_class="ovr", sample_weight=w),
                      "pr_auc": lambda w: M.average_precision_score(label_binarize(y3, classes=[0, 1, 2]), Q,
                                                                    sample_weight=w),
                      "brier": lambda w: M.brier_score_loss(y3, Q, sample_weight=w)}))
    yr = rng.normal(size=n) * 3 + 1
    r = Predictions("regression", yr, yr + rng.normal(size=n))
    cases.append((r, {"mae": lambda w: M.mean_absolute_error(yr, r.pred, sample_weight=w),
                      "rmse": lambda w: M.root_mean_squared_error(yr, r.pred, sample_weight=w),
                      "r2": lambda w: M.r2_score(yr, r.pred, sample_weight=w),
                      "mape": lambda w: M.mean_absolute_percentage_error(yr, r.pred, sample_weight=w)}))
    for pred, fns in cases:
        got = Resampler(pred).figures(W)
        for name, fn in fns.items():
            for i, w in enumerate(W):
                assert got[name][i] == pytest.approx(fn(w), abs=1e-12), (name, i)


def test_bad_input_is_one_line_and_nothing_is_stored(project, store, ip):
    from IPython.core.error import UsageError
    from sklearn.linear_model import LinearRegression

    df = churn_frame(600, 5)
    register_two(df)
    ref = mj.data.add(df, name="test").ref
    reg = LinearRegression().fit(df[FEATURES], df.tenure * 2)
    mj.models.register(reg, "spend-model", example=df[FEATURES])
    cases = [
        (dict(data=ref, target="left"), "test@v1 has no column 'left'"),
        (dict(data=df.assign(churned="no"), target="churned"), "target 'churned' is constant"),
        (dict(data=ref, target="churned", by=["region", "city"]), "--by city: no such column in test@v1"),
        (dict(data=df.drop(columns=["spend"]), target="churned"), "lacks column(s) spend"),
        (dict(data=ref, target="churned", baseline="spend-model@v1"),
         "the baseline spend-model@v1 is a regressor and churn@v1 a classifier"),
        (dict(data=df.assign(churned=np.where(df.churned == "yes", "maybe", "no")), target="churned"),
         "holds value(s) the model never predicts ('maybe')"),
        (dict(data=ref, target="churned", baseline="churn@v1"), "the baseline is churn@v1 itself"),
        (dict(data=ref, target="churned", resamples=3), "resamples must be a whole number of at least 10"),
    ]
    for kw, message in cases:
        with pytest.raises(BadInput) as e:
            mj.evaluate("churn@v1", progress=False, **kw)
        assert message in str(e.value) and "\n" not in str(e.value), (message, str(e.value))
    assert evaluations_count(store) == 0
    ip.user_ns["frame"] = df.drop(columns=["spend"])
    for line, message in [("evaluate churn@v1 frame --target churned", "lacks column(s) spend"),
                          ("evaluate churn@v1 nothing --target churned", "neither a DataFrame variable"),
                          ("evaluate churn@v1 test@v1", "the following arguments are required: --target")]:
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            ip.run_line_magic("mlops", line)
    r = run_cli("evaluate", "churn@v1", ref, "--target", "churned", "--by", "city")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--by city" in r.stderr, r.stderr
    assert evaluations_count(store) == 0


def test_magic_and_command(project, ip):
    df = churn_frame(3000, 6)
    register_two(df)
    ip.user_ns["test_df"] = df
    ev = ip.run_line_magic("mlops", "evaluate churn@v1 test_df --target churned --by region --baseline "
                                    "churn@production --resamples 50")
    assert ev.baseline["model"] == "churn@v2" and ev.slice("region")["groups"]
    html = ev._repr_html_()
    for part in ("Evaluation of churn@v1", "ROC AUC", "By region", "demographic parity difference", "<svg",
                 "islands (small)", "95% interval"):
        assert part in html, part
    ref = mj.data.add(df, name="test").ref
    r = run_cli("evaluate", "churn@v1", ref, "--target", "churned", "--by", "region,age_band", "--save", "ev.html")
    assert r.returncode == 0, r.stderr
    for part in ("evaluation of churn@v1 on test@v1", "ROC AUC", "by region", "by age_band", "largest gap",
                 "saved ev.html"):
        assert part in r.stdout, part
    page = (project / "ev.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 6
    r = run_cli("evaluate", "churn@v1", ref, "--target", "churned", "--by", "region,age_band", "--save", "ev.json")
    assert r.returncode == 0 and "answered from the store" in r.stdout
    doc = json.loads((project / "ev.json").read_text())
    assert doc["data"] == "test@v1" and doc["slices"][1]["column"] == "age_band"
    r = run_cli("model", "show", "churn@v1")
    assert "evaluations:" in r.stdout and "test@v1 (3,000 rows, by region, age_band)" in r.stdout


def test_a_network_is_evaluated_through_its_predictor(project):
    """A PyTorch classifier (stored as a torch.export program) is evaluated on a frame like any model:
    its probabilities are the softmax of its outputs, its classes the signature's."""
    import warnings

    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(net.parameters(), 0.05)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.tensor(X)), torch.tensor(y)).backward()
        opt.step()
    mj.models.register(net, "net", example=X[:8])
    df = pd.DataFrame(X, columns=list("abcd")).assign(y=y, g=rng.choice(["p", "q"], 400))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about the frame's read-only columns, either
        ev = mj.evaluate("net@v1", df, target="y", by="g", progress=False)
    P = torch.softmax(net(torch.tensor(X)), 1).detach().numpy()
    assert ev.classes == [0, 1] and ev.figures["roc_auc"] == pytest.approx(M.roc_auc_score(y, P[:, 1]), abs=1e-6)
    assert ev.figures["log_loss"] == pytest.approx(M.log_loss(y, P), abs=1e-5)
    assert [g["group"] for g in ev.slice("g")["groups"]] == ["p", "q"]
