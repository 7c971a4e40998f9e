"""A notebook JupyterLab just created and nobody saved, through a real kernel (nbclient)."""

import nbformat
import pytest

import mlops_jupyter as mj

from .conftest import untitled_notebook

pytestmark = pytest.mark.slow


def test_untitled_notebook_in_a_kernel(project, monkeypatch):
    from nbclient import NotebookClient

    from mlops_jupyter.store import close_store

    # JupyterLab's launcher: the server writes Untitled.ipynb (no cells) and starts the kernel with
    # JPY_SESSION_NAME naming it; what the user types stays in the browser until a save.
    on_disk = untitled_notebook(project)
    monkeypatch.setenv("JPY_SESSION_NAME", str(on_disk))
    sources = ["%load_ext mlops_jupyter",
               "%mlops log loss=abc",
               "%mlops rnus",
               "import mlops_jupyter as mj\nprint(len(mj.runs()), mj.active_run())",
               "%mlops log loss=0.5",
               "mj.log(loss=0.4)",
               "%mlops track stop"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(project)}}).execute()
    close_store()

    def text(i):
        return "".join(o.get("text", "") for o in nb.cells[i].outputs if o.get("output_type") == "stream")

    # a UsageError reaches the notebook as one line on stderr, no traceback
    assert nb.cells[1].outputs == [{"output_type": "stream", "name": "stderr",
                                    "text": "UsageError: metric 'loss' must be a number, got 'abc'\n"}]
    assert nb.cells[2].outputs == [{"output_type": "stream", "name": "stderr",
                                    "text": "UsageError: mlops: unknown command 'rnus'; did you mean `runs`?\n"}]
    assert text(3).strip() == "0 None"  # the bad value started no run
    rec = mj.get_run("last")
    assert text(4).strip() == (f"mlops: no run was active, so run 'Untitled' ({rec.run_id[:8]}) was started to "
                               "hold what you log; end it with %mlops track stop")
    assert text(5) == ""  # said once
    assert text(6).splitlines() == [f"mlops: Untitled.ipynb was never saved (the file on disk has no cells): run "
                                    f"'Untitled' keeps no notebook snapshot; its 3 executed cells are recorded "
                                    f"instead (%mlops show {rec.run_id[:8]})",
                                    f"run 'Untitled' ({rec.run_id[:8]}) finished"]
    assert rec.name == "Untitled" and rec.status == "finished" and rec.row["notebook"] == str(on_disk)
    assert rec.history()["loss"] == [(0, 0.5), (1, 0.4)]
    assert not any(a["kind"] == "notebook" for a in rec.artifacts)
    assert [c["source"] for c in rec.cells()] == sources[4:]
