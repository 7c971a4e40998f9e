import os
import sys

import pytest

ENV_VARS = ("MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL", "MLOPS_HOME", "MLOPS_NOTEBOOK_PATH", "MLOPS_RUN_ID",
            "MLOPS_PARENT_RUN_ID", "JPY_SESSION_NAME", "PAPERMILL_INPUT_PATH")


def _reset():
    from mlops_jupyter.store import close_store
    from mlops_jupyter.tracking import run as tracking

    for r in reversed(tracking.active_runs()):
        try:
            r.end("killed")
        except Exception:
            pass
    tracking._reset_for_tests()
    close_store()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project folder (with .mlops/) as the working directory."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    from mlops_jupyter.config import init_project

    init_project(tmp_path)
    _reset()
    yield tmp_path
    _reset()


@pytest.fixture
def store(project):
    from mlops_jupyter.store import open_store

    return open_store()


@pytest.fixture
def ip(project):
    """A real IPython shell with the extension loaded; errors in cells are re-raised by run()."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlops_jupyter")
    yield shell
    from mlops_jupyter import magics

    shell.run_line_magic("unload_ext", "mlops_jupyter")
    magics._state.update(recorder=None, magics=None)


def run_cell(shell, source):
    """Run a cell as the kernel would (events fire) and return the ExecutionResult."""
    return shell.run_cell(source, store_history=True)


SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


PY = sys.executable
