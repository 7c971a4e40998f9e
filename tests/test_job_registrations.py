"""Promoting a notebook before its first run: promote reads which models the notebook registers
(from its code, magics included), accepts a model it will create, and the first execution
creates MODEL@v1 holding the job's alias."""

import nbformat
import pytest

import mlops_jupyter as mj
from mlops_jupyter.cli import main
from mlops_jupyter.jobs.registrations import registrations

from .conftest import run_cli


def notebook(path, *sources, parameters=None):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    if parameters is not None:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, str(path))
    return nb


IRIS = [
    "%load_ext mlops_jupyter",
    "import mlops_jupyter as mj\nfrom sklearn.datasets import load_iris\nfrom sklearn.linear_model import "
    "LogisticRegression\nX, y = load_iris(return_X_y=True, as_frame=True)\n"
    "clf = LogisticRegression(C=C, max_iter=500).fit(X[::2], y[::2])\n"
    "mj.log(acc=float((clf.predict(X[1::2]) == y[1::2]).mean()))",
    "%mlops model register clf --name iris --example X",
]


def test_registrations_are_read_from_code_and_magics(tmp_path):
    nb = notebook(
        tmp_path / "nb.ipynb",
        "import mlops_jupyter as mj\nfrom mlops_jupyter import models as m\n"
        "from mlops_jupyter.models import register as keep",
        "mj.models.register(clf, name='a')\nm.register(clf, 'b')\nkeep(clf, name=MODEL)",
        "%mlops model register clf --name d --alias production\n%mlops model register clf -n {MODEL}",
        "%%mlops track run1\nfor i in range(2):\n    mj.models.register(clf, name=f'e-{i}')",
        "import other as mj2\nmj2.models.register(clf, name='no')\n# mj.models.register(clf, name='no')\n"
        "s = \"mj.models.register(clf, name='no')\"\n%mlops model ls",
        parameters="MODEL = 'c'",
    )
    nb.cells.append(nbformat.v4.new_markdown_cell("%mlops model register clf --name no"))
    found = [(r.name, r.cell) for r in registrations(nb)]
    assert found == [("a", 3), ("b", 3), ("c", 3), ("d", 4), ("c", 4), (None, 5)]
    assert [r.how for r in registrations(nb)][:4] == ["mj.models.register", "m.register", "keep",
                                                      "%mlops model register"]
    # autologging that registers every fitted model
    nb = notebook(tmp_path / "auto.ipynb", "import mlops_jupyter as mj\nfrom mlops_jupyter import autolog",
                  "%mlops autolog --register churn\n%mlops autolog --register={MODEL}\n%mlops autolog --silent",
                  "mj.autolog(registered_model_name='f')\nautolog(registered_model_name=MODEL)\n"
                  "mj.autolog(registered_model_name=None)\nmj.autolog()", parameters="MODEL = 'g'")
    assert [(r.name, r.cell, r.how) for r in registrations(nb)] == [
        ("churn", 3, "%mlops autolog --register"), ("g", 3, "%mlops autolog --register"),
        ("f", 4, "mj.autolog(registered_model_name=)"), ("g", 4, "autolog(registered_model_name=)")]


def test_promote_before_the_first_run_says_what_the_first_run_creates(project, capsys):
    notebook(project / "train.ipynb", *IRIS, parameters="C = 1.0")
    assert main(["promote", "train.ipynb", "--name", "iris-job", "--model", "iris", "--metric", "acc"]) == 0
    out = capsys.readouterr().out
    assert ("train.ipynb registers iris (cell 4, %mlops model register) and iris has no version yet: the first "
            "execution (mlops job run iris-job, or mlops retrain iris-job) creates iris@v1, which takes @production "
            "(there is no champion yet; the execution must log acc)") in out


def test_promote_refuses_a_model_nobody_registers_with_a_did_you_mean(project, capsys):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    notebook(project / "train.ipynb", *IRIS, parameters="C = 1.0")
    X = np.random.default_rng(0).normal(size=(20, 2))
    mj.models.register(LogisticRegression().fit(X, X[:, 0] > 0), name="churn")
    for model, msg in [("iriss", "did you mean 'iris'?"), ("chrn", "did you mean 'churn'?"), ("zzz", "")]:
        assert main(["promote", "train.ipynb", "--name", "j", "--model", model]) == 2
        err = capsys.readouterr().err
        assert f"no model named {model!r} is registered, and train.ipynb registers none under that name (it " \
               "registers iris)" in err and msg in err and len(err.strip().splitlines()) == 1, err
    assert not (project / "jobs" / "j").exists()
    notebook(project / "computed.ipynb", "import mlops_jupyter as mj\nmj.models.register(clf, name=f'x{1}')")
    assert main(["promote", "computed.ipynb", "--name", "j", "--model", "x1"]) == 2
    assert "cell 1 registers a model whose name is computed" in capsys.readouterr().err
    # registered already, not visibly by this notebook: accepted, with a word of warning
    assert main(["promote", "train.ipynb", "--name", "j", "--model", "churn"]) == 0
    assert "registers no model named churn that promote can see" in capsys.readouterr().out


def test_skip_job_cells_do_not_count(project, capsys):
    nb = notebook(project / "train.ipynb", *IRIS, parameters="C = 1.0")
    nb.cells[-1].metadata["tags"] = ["skip-job"]
    nbformat.write(nb, str(project / "train.ipynb"))
    assert main(["promote", "train.ipynb", "--name", "j", "--model", "iris"]) == 2
    assert "registers none under that name" in capsys.readouterr().err


@pytest.mark.slow
def test_first_run_of_a_never_run_notebook_creates_v1_with_the_alias(project, capsys):
    notebook(project / "train.ipynb", *IRIS, parameters="C = 1.0")
    assert main(["promote", "train.ipynb", "--name", "iris-job", "--model", "iris", "--metric", "acc"]) == 0
    with pytest.raises(mj.NotFound):
        mj.models.get("iris@production")
    r = run_cli("job", "run", "iris-job", "-p", "C", "0.5", cwd=project, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "challenger iris@v1 (acc " in r.stdout and "is now iris@production: there was no iris@production" \
        in r.stdout, r.stdout
    v = mj.models.get("iris@production")
    assert v.version == 1 and v.metrics["acc"] > 0.8 and len(mj.models.versions("iris")) == 1
    run = mj.runs(where="tags.`mlops.job` = 'iris-job'").iloc[0]
    assert v.run_id == run["run_id"] and run["params.papermill.C"] == 0.5
