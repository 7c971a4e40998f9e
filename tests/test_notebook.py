"""Real notebooks through a real kernel (papermill / nbclient)."""

import os

import nbformat
import pytest

import mlops_jupyter as mj

pytestmark = pytest.mark.slow


def make_nb(path, *sources, parameters=None):
    nb = nbformat.v4.new_notebook()
    cells = []
    if parameters is not None:
        c = nbformat.v4.new_code_cell(parameters)
        c.metadata["tags"] = ["parameters"]
        cells.append(c)
    cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.backends
def test_papermill_parameters_and_failures(project):
    from papermill.exceptions import PapermillExecutionError

    from mlops_jupyter.jobs import execute_notebook
    from mlops_jupyter.store import close_store

    nb = make_nb(project / "train.ipynb",
                 "%load_ext mlops_jupyter",
                 "%mlops track start training --param kind=line",
                 "import mlops_jupyter as mj\nfor s in range(3): mj.log(loss=1/(s+1), step=s)",
                 "raise RuntimeError('data went missing')",
                 "%mlops track stop",
                 parameters="n_estimators = 10\nlr = 0.1")
    close_store()
    with pytest.raises(PapermillExecutionError):
        execute_notebook(nb, project / "out.ipynb", parameters={"n_estimators": 300}, progress=False)
    close_store()
    rec = mj.get_run("training")
    # the kernel was shut down after the failing cell: the run ended as failed, not left running
    assert rec.status == "failed"
    assert rec.params["papermill.n_estimators"] == 300 and rec.params["kind"] == "line"
    assert rec.metrics == {"loss": pytest.approx(1 / 3)}
    assert [c["status"] for c in rec.cells()][-1] == "error"
    assert rec.row["notebook"] == str(nb)

    nb2 = make_nb(project / "cellrun.ipynb", "%load_ext mlops_jupyter",
                  "%%mlops track wholecell\nimport mlops_jupyter as mj\nmj.log(acc=0.5)\nraise ValueError('bad')")
    with pytest.raises(PapermillExecutionError):
        execute_notebook(nb2, project / "out2.ipynb", progress=False)
    close_store()
    assert mj.get_run("wholecell").status == "failed"


def test_notebook_name_found_from_jupyter_session(project, monkeypatch):
    """Under Jupyter Server the kernel gets JPY_SESSION_NAME; the run is named after the notebook."""
    from nbclient import NotebookClient

    from mlops_jupyter.store import close_store

    path = make_nb(project / "churn model.ipynb", "%load_ext mlops_jupyter", "%mlops log acc=0.75")
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(project)}}).execute()
    close_store()
    rec = mj.get_run("last")
    assert rec.name == "churn model" and rec.row["notebook"] == str(path)
    assert rec.status == "finished" and rec.metrics == {"acc": 0.75}
    assert rec.tags.get("mlops.autostarted") == "true"


def test_plain_papermill_cli_records_the_notebook(project):
    """`papermill in.ipynb out.ipynb -p ...` from a terminal: the run knows its notebook and parameters."""
    import subprocess
    import sys

    from mlops_jupyter.store import close_store

    from .conftest import python_env

    make_nb(project / "nightly.ipynb", "%load_ext mlops_jupyter", "%%mlops track nightly\nx = alpha * 2",
            parameters="alpha = 1")
    r = subprocess.run([sys.executable, "-m", "papermill", "nightly.ipynb", "out.ipynb", "-p", "alpha", "5"],
                       cwd=project, env=python_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    close_store()
    rec = mj.get_run("nightly")
    assert rec.status == "finished" and rec.params == {"papermill.alpha": 5}
    assert rec.row["notebook"] == str(project / "nightly.ipynb")


def test_data_magics_in_a_kernel_show_a_notebook_progress_bar(project):
    """Long adds draw tqdm's notebook widget in Jupyter (not terminal text); results come back as values."""
    from nbclient import NotebookClient

    raw = project / "raw"
    raw.mkdir()
    for i in range(2500):
        (raw / f"f{i:05d}.bin").write_bytes(os.urandom(64))
    path = make_nb(project / "data.ipynb", "%load_ext mlops_jupyter",
                   "%mlops data add raw --name raw -m first",
                   "import pandas as pd\ndf = pd.DataFrame({'id': range(5), 'x': [1.0, 2, 3, 4, 5]})\n"
                   "%mlops data add df --name train",
                   "back = %mlops data load train@v1\nassert back.equals(df), back",
                   "%mlops data checkout raw@v1 --to restored")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(project)}}).execute()
    add_out = nb.cells[1].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in add_out), add_out
    assert not any(o.get("name") == "stderr" and "hashing" in o.get("text", "") for o in add_out)
    assert len(list((project / "restored").iterdir())) == 2500
    assert mj.data.get("raw@v1").n_files == 2500 and mj.data.get("train").rows == 5


@pytest.mark.backends
def test_register_and_explain_in_a_kernel(project):
    """The registry and the explanation widget through a real kernel, as a notebook user runs them."""
    from nbclient import NotebookClient

    path = make_nb(project / "explain.ipynb", "%load_ext mlops_jupyter",
                   "from sklearn.datasets import make_classification\n"
                   "from sklearn.ensemble import GradientBoostingClassifier\nimport pandas as pd\n"
                   "X, y = make_classification(n_samples=300, n_features=5, random_state=0)\n"
                   "X_train = pd.DataFrame(X, columns=list('abcde'))\n"
                   "clf = GradientBoostingClassifier(n_estimators=10).fit(X_train, y)",
                   "%mlops model register clf --name churn --example X_train --alias production",
                   "model = %mlops model load churn@production\nassert (model.predict(X_train) == y).mean() > 0.8",
                   "%mlops explain churn@production X_train --rows 100")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(project)}}).execute()
    out = nb.cells[4].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in out), out
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    assert mj.models.get("churn@production").explanations
