"""The promotion gate: a challenger whose own logged metric beats the champion's, but which is worse on
the job's evaluation data, is held back whichever way the move was proposed (retrain, tune, monitor
check), each through real kernels; a good one passes; the refusal names the clause and its figures.
"""

import json
import re

import nbformat
import pytest

import mlops_jupyter as mj
from mlops_jupyter.cli import main
from mlops_jupyter.jobs.gate import parse_gate
from mlops_jupyter.jobs.rule import RuleError

from .test_jobs import write_notebook

pytestmark = pytest.mark.timeout(900)

SETUP = ("import numpy as np\nimport pandas as pd\n"
         "def rows(n, seed):\n"
         "    rng = np.random.default_rng(seed)\n"
         "    df = pd.DataFrame({'a': rng.normal(size=n), 'b': rng.normal(size=n),\n"
         "                       'region': rng.choice(['north', 'south', 'east'], n)})\n"
         "    df['y'] = (df.a - 0.5 * df.b + 0.7 * rng.normal(size=n) > 0).astype(int)\n"
         "    return df\n")
# `noise` corrupts the main feature (a worse model); `bonus` is added to the logged auc (a leaky
# validation that flatters it): the job's own metric then prefers the worse model.
CELLS = [
    nbformat.v4.new_code_cell("%load_ext mlops_jupyter\nnoise = 0.0\nbonus = 0.0", metadata={"tags": ["parameters"]}),
    nbformat.v4.new_code_cell(
        SETUP + "from sklearn.linear_model import LogisticRegression\nfrom sklearn.metrics import roc_auc_score\n"
        "import mlops_jupyter as mj\ntrain = rows(2000, 0)\nX = train[['a', 'b']].copy()\n"
        "X['a'] = X['a'] + noise * np.random.default_rng(1).normal(size=len(X))\n"
        "clf = LogisticRegression().fit(X, train.y)\n"
        "auc = roc_auc_score(train.y, clf.predict_proba(X)[:, 1])\nmj.log(auc=auc + bonus)"),
    nbformat.v4.new_code_cell("%mlops model register clf --name churn --example X --alias production"),
]
GATE = "auc >= baseline - 0.002 and max_slice_gap(recall, region) <= 0.15"


def holdout():
    ns: dict = {}
    exec(SETUP, ns)
    return ns["rows"](3000, 7)


def last_decision():
    """The decision.json of the newest retraining batch."""
    from mlops_jupyter.store import open_store

    runs = [mj.get_run(r) for r in mj.runs(where="name = 'retrain churn-job'")["run_id"]]
    newest = max(runs, key=lambda r: r.row["start_time"])
    digest = next(a["digest"] for a in newest.artifacts if a["path"] == "decision.json")
    return json.loads(open_store().blobs.get_bytes(digest))


def test_gate_rules_parse_and_refuse_with_positions():
    assert parse_gate(GATE).text == GATE
    for text, message in [("baseline > 0.5", "baseline stands for the figure it is compared with"),
                          ("auc * 2 > 1", "operator '*' is not allowed"),
                          ("max_slice_gap(recal, region) < 0.1", "unknown figure 'recal' (did you mean recall?)"),
                          ("max_slice_gap(recall) < 0.1", "max_slice_gap takes 2 argument(s)"),
                          ("selection_rate < 0.3", "selection_rate is a figure of groups"),
                          ("__import__('os').system('id') > 0", "unknown function")]:
        with pytest.raises(RuleError, match=re.escape(message)):
            parse_gate(text)


@pytest.mark.backends
def test_the_gate_holds_back_a_worse_challenger_in_retrain_tune_and_monitor_check(project, capsys):
    mj.data.add(holdout(), name="holdout")
    nb = write_notebook(project / "train.ipynb", CELLS)
    assert main(["promote", str(nb), "--name", "churn-job", "--model", "churn", "--metric", "auc",
                 "--gate", GATE, "--gate-data", "holdout@v1",
                 "--gate-target", "y", "--retrain-when", "requests >= 0"]) == 0
    toml = (project / "jobs" / "churn-job" / "job.toml").read_text()
    assert "[gate]" in toml and 'data = "holdout@v1"' in toml and 'target = "y"' in toml
    capsys.readouterr()

    # the first model: no champion, so the comparisons with the baseline hold
    assert main(["retrain", "churn-job"]) == 0
    out = capsys.readouterr().out
    assert "is now churn@production" in out and "no champion yet" in out, out
    assert mj.models.get("churn@production").version == 1

    # a worse model that logs a better auc: proposed by the metric, refused by the gate
    assert main(["retrain", "churn-job", "--grid", "noise=3.0", "bonus=0.4"]) == 0
    out = capsys.readouterr().out
    assert "churn@v2" in out and "refuses it on holdout@v1" in out and "fails: auc (" in out, out
    assert ">= baseline(auc) (" in out and "churn@v1 keeps @production" in out
    assert mj.models.get("churn@production").version == 1
    d = last_decision()
    assert d["promoted"] is False and d["gate"]["holds"] is False and d["gate"]["failed"][0].startswith("auc (")
    assert d["gate"]["values"]["auc"] < d["gate"]["values"]["baseline(auc)"] - 0.002
    ev = mj.models.get("churn@v2").evaluations
    assert ev and ev[0]["data"] == "holdout@v1" and ev[0]["options"]["by"] == ["region"]

    # the same through a search: every trial worse, each logging a better auc
    capsys.readouterr()
    assert main(["tune", "churn-job", "--space", "noise=float:2.0:4.0", "bonus=float:0.4:0.5", "--trials", "2",
                 "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "refuses it on holdout@v1" in out and "keeps @production" in out, out
    assert mj.models.get("churn@production").version == 1

    # and through monitoring: the rule fires, the retraining's challenger is held back
    toml = (project / "jobs" / "churn-job" / "job.toml").read_text()
    toml = toml.replace("[retrain]\n", "[retrain]\ngrid = { noise = [3.5], bonus = [0.45] }\n")
    (project / "jobs" / "churn-job" / "job.toml").write_text(toml)
    assert main(["monitor", "check", "churn-job"]) == 3
    out = capsys.readouterr().out
    assert "retrained (run" in out and "refuses it on holdout@v1" in out, out
    assert mj.models.get("churn@production").version == 1
    history = mj.models.history("churn")
    assert history["to"].tolist() == ["v1"]  # the alias never moved after v1

    # a good challenger (the same model, logged a little higher) passes the gate and takes the alias
    assert main(["retrain", "churn-job", "--grid", "bonus=0.01"]) == 0
    out = capsys.readouterr().out
    assert "is now churn@production" in out and "the gate holds on holdout@v1" in out, out
    assert mj.models.get("churn@production").version > 1


def test_a_bad_gate_is_refused_when_promoted_or_edited(project, capsys):
    nb = write_notebook(project / "train.ipynb", CELLS)
    base = ["promote", str(nb), "--name", "churn-job", "--model", "churn", "--metric", "auc"]
    assert main(base + ["--gate", "auc >> 0.5", "--gate-data", "holdout@v1", "--gate-target", "y"]) == 2
    err = capsys.readouterr().err
    assert "[gate] rule: operator '>>' is not allowed" in err and err.strip().count("\n") == 0
    assert main(base + ["--gate", "auc > 0.5"]) == 2
    assert "a gate needs --gate, --gate-data, --gate-target; missing --gate-data, --gate-target" in \
        capsys.readouterr().err
    assert not (project / "jobs" / "churn-job").exists()
    assert main(base + ["--gate", "auc > 0.5", "--gate-data", "holdout@v1", "--gate-target", "y"]) == 0
    path = project / "jobs" / "churn-job" / "job.toml"
    path.write_text(path.read_text().replace('rule = "auc > 0.5"', 'rule = "max_slice_gap(auc) > 0.5"'))
    capsys.readouterr()
    assert main(["job", "show", "churn-job"]) == 2
    assert "[gate] rule: max_slice_gap takes 2 argument(s)" in capsys.readouterr().err
    # the gate's options are held to the evaluation's own bounds when the job is read, not when it decides
    path.write_text(path.read_text().replace('rule = "max_slice_gap(auc) > 0.5"', 'rule = "auc > 0.5"\nresamples = 5'))
    assert main(["job", "show", "churn-job"]) == 2
    assert "[gate] resamples must be a whole number of at least 10, not 5" in capsys.readouterr().err
