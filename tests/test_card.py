"""Model cards and audits: a card with every section from a version that was trained in a run,
evaluated, explained, served with labelled traffic and drift-checked, as HTML, Markdown, at the model
server's GET /card and the panel's route; a malicious pickle flagged at register, refused at load
without running, and reported by audit, the card and fsck; dependencies and licences of a job."""

import json
import os

import httpx
import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mj
from mlops_jupyter.cli import main
from mlops_jupyter.exceptions import BadInput

from .test_monitoring import _wait_logged
from .test_serving_ops import _serve, _stop

pytestmark = pytest.mark.timeout(600)
H = {"Authorization": "Bearer t0k"}
SECTIONS = ["The model", "Intended use and limitations", "Training data and code", "Evaluation", "Explanations",
            "Monitoring", "Aliases", "Audit"]


def frame(n, seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"tenure": rng.normal(size=n), "spend": rng.normal(size=n)})
    df["region"] = rng.choice(["north", "south", "east"], n)
    df["churned"] = (df.tenure - df.spend + rng.normal(size=n) > 0).astype(int)
    return df


def full_version():
    """churn@v2 (production): trained in a run on a data version, evaluated against v1 with slices,
    explained, described."""
    from sklearn.linear_model import LogisticRegression

    train, test = frame(1500, 0), frame(1200, 1)
    with mj.start_run("train weak") as r:
        mj.data.add(train, name="train")
        weak = LogisticRegression().fit(train[["tenure"]].assign(spend=0.0), train.churned)
        mj.models.register(weak, "churn", example=train[["tenure", "spend"]])
    with mj.start_run("train churn") as r:
        mj.data.add(train, name="train")
        clf = LogisticRegression(C=0.5).fit(train[["tenure", "spend"]], train.churned)
        r.log_params({"C": 0.5})
        r.log_metric("auc", 0.81)
        mj.models.register(clf, "churn", example=train[["tenure", "spend"]], alias="production")
    ref = mj.data.add(test, name="test").ref
    mj.evaluate("churn@v2", ref, target="churned", by=["region"], baseline="churn@v1", resamples=50, progress=False)
    mj.explain("churn@v2", test[["tenure", "spend"]], rows=200, progress=False)
    mj.models.describe("churn@v2", intended_use="Rank customers by churn risk for the monthly call list.",
                       limitations="Not for new markets.")
    return train, test


def test_a_card_has_every_section_in_html_and_markdown(project, tmp_path):
    train, test = full_version()
    bg, port = _serve("churn@production")
    try:
        ids, truth = [], []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=H, timeout=10) as c:
            for i in range(30):
                row = test.iloc[i][["tenure", "spend"]].to_dict()
                r = c.post("/predict", json=[row], params={"proba": "true"})
                assert r.status_code == 200, r.text
                ids.append(r.json()["request_id"])
                truth.append(int(test.iloc[i].churned))
            _wait_logged(30)
            mj.log_labels(ids, truth)
            # the model server shows the card of what it serves, behind its token
            r = c.get("/card")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            assert "Model card: churn@v2" in r.text and all(f'data-section="{s}"' in r.text for s in SECTIONS)
            assert httpx.get(f"http://127.0.0.1:{port}/card", timeout=10).status_code == 401
            r = c.get("/card", params={"version": "churn@v9"})
            assert r.status_code == 404 and "not served here" in r.json()["error"]
    finally:
        _stop(port)
    mj.drift("train@v1", "serving:churn@v2", progress=False)
    card = mj.model_card("churn@production")
    html = card.html()
    for s in SECTIONS:
        assert f'data-section="{s}"' in html, s
    for text in ("LogisticRegression", "Rank customers by churn risk", "Not for new markets", "train@v1 (input)",
                 "train churn", "C=0.5", "on test@v1", "ROC AUC", "churn@v1", "95% interval", "by region",
                 "demographic parity difference", "SHAP", "30 logged", "accuracy=", "latest drift",
                 "production", "safe to load: skops", "BLAKE3 of the stored file"):
        assert text in html, text
    assert html.count("<svg") >= 6  # confusion, ROC, PR, calibration, baseline, SHAP importance
    assert card.monitoring["figures"]["accuracy"] == pytest.approx(
        np.mean(np.array(truth) == mj.models.load("churn@v2").predict(test.iloc[:30][["tenure", "spend"]])))
    # a later version without its own text shows the nearest one's, saying so
    from sklearn.linear_model import LogisticRegression

    mj.models.register(LogisticRegression().fit(train[["tenure", "spend"]], train.churned), "churn",
                       example=train[["tenure", "spend"]])
    later = mj.model_card("churn@v3").html()
    assert "Rank customers by churn risk" in later and "written for churn@v2" in later
    assert "no evaluation stored" in later and "no explanation stored" in later
    # Markdown with its pictures beside it; a self-contained page
    path = card.save(tmp_path / "card.md")
    md = open(path).read()
    for s in SECTIONS:
        assert f"## {s}" in md, s
    pictures = sorted(os.listdir(tmp_path / "card_files"))
    assert "evaluation1-roc.svg" in pictures and all(f"card_files/{p}" in md for p in pictures)
    page = open(card.save(tmp_path / "card.html")).read()
    assert page.startswith("<!doctype html>") and "<script" not in page and page.count("<svg") >= 6
    with pytest.raises(BadInput, match="as .html or .md"):
        card.save(tmp_path / "card.pdf")
    assert main(["model", "card", "churn@v2", "-o", str(tmp_path / "c.html")]) == 0
    assert main(["model", "card", "churn@v7"]) == 2


class Evil:
    """Pickles into a call of os.system (what a malicious model file does when unpickled)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Plain:
    def predict(self, X):
        return np.zeros(len(X))


def test_a_malicious_pickle_is_flagged_refused_and_reported(project, tmp_path, capsys):
    marker = tmp_path / "pwned"
    with pytest.warns(UserWarning, match=r"calls posix\.system .* loading it will be refused"):
        v = mj.models.register(Evil(marker), "evil", pickle=True)
    assert v.extra["scan"]["status"] == "dangerous"
    with pytest.raises(BadInput, match=r"refusing to unpickle evil@v1: it calls posix\.system"):
        mj.models.load("evil@v1", pickle=True)
    assert not marker.exists()  # nothing ran
    with pytest.raises(BadInput, match="pickle"):
        mj.models.load("evil@v1")  # and without --pickle it is refused before it is read
    capsys.readouterr()
    assert main(["model", "audit", "evil@v1"]) == 1
    out = capsys.readouterr().out
    assert "unsafe: the pickle calls posix.system" in out and "dangerous" in out
    assert "unsafe: the pickle calls posix.system" in mj.model_card("evil@v1").html()
    assert main(["fsck"]) == 1
    assert "unsafe evil@v1: calls posix.system" in capsys.readouterr().out
    assert not marker.exists()
    # a plain pickle loads when asked for; its names outside the safe list are listed, not refused
    mj.models.register(Plain(), "plain", pickle=True)
    assert isinstance(mj.models.load("plain@v1", pickle=True), Plain)
    rep = mj.model_audit("plain@v1")
    assert rep.ok and rep.scan["status"] == "suspicious" and any(f["name"] == "Plain" for f in rep.scan["findings"])


def test_audit_lists_the_jobs_pinned_dependencies_and_catches_a_changed_file(project, capsys):
    from sklearn.linear_model import LogisticRegression

    from .conftest import tamper
    from .test_jobs import write_notebook

    X = frame(200, 3)
    v = mj.models.register(LogisticRegression().fit(X[["tenure", "spend"]], X.churned), "churn",
                           example=X[["tenure", "spend"]])
    write_notebook(project / "train.ipynb")
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc"]) == 0
    rep = mj.model_audit("churn@v1")
    assert rep.job == "churn-job" and rep.ok
    names = {d["name"].lower(): d for d in rep.dependencies}
    assert names["scikit-learn"]["licence"] == "BSD-3-Clause" and names["scikit-learn"]["installed"]
    assert all(d["licence"] for d in rep.dependencies)
    from mlops_jupyter.store import open_store

    tamper(open_store(), v.digest, lambda b: b[:-1] + bytes([b[-1] ^ 1]))
    capsys.readouterr()
    assert main(["model", "audit", "churn@v1"]) == 1
    out = capsys.readouterr().out
    assert "the file no longer matches the registry" in out, out


def test_describe_and_bad_input(project, capsys):
    from sklearn.linear_model import LogisticRegression

    X = frame(100, 4)
    mj.models.register(LogisticRegression().fit(X[["tenure", "spend"]], X.churned), "churn",
                       example=X[["tenure", "spend"]])
    assert main(["model", "describe", "churn@v1"]) == 2
    assert "give --intended-use TEXT and/or --limitations TEXT" in capsys.readouterr().err
    assert main(["model", "describe", "churn@v1", "--limitations", "Small sample."]) == 0
    notes = mj.models.describe("churn@v1", intended_use="Demo.")
    assert notes["limitations"] == "Small sample." and notes["intended_use"] == "Demo."
    with pytest.raises(BadInput):
        mj.models.describe("churn@v1", intended_use="x" * 20_001)
    assert json.dumps(notes)
