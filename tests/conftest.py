import os
import subprocess
import sys
from pathlib import Path

import pytest

from .backends import BACKEND_ENV, BACKENDS, SHARED_MODULES
from .backends import postgres_admin_url, postgres_url, s3_endpoint, s3_url  # noqa: F401 (fixtures)

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


def pytest_generate_tests(metafunc):
    """The core, data and registry suites run on each backend: SQLite + a local folder, and
    PostgreSQL + S3; so do the tests of the other faces marked ``backends`` (magics, CLI, jobs,
    serving, lab routes, monitoring). ``MLOPS_TEST_EVERY_BACKEND=1`` runs every test that uses a
    project on both."""
    if "project" not in metafunc.fixturenames:
        return
    if (metafunc.module.__name__.rsplit(".", 1)[-1] in SHARED_MODULES
            or metafunc.definition.get_closest_marker("backends") is not None
            or os.environ.get("MLOPS_TEST_EVERY_BACKEND") == "1"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request):
    return getattr(request, "param", "sqlite")


@pytest.fixture
def project(tmp_path, monkeypatch, backend, request):
    """A fresh project folder (with .mlops/) as the working directory, on the test's backend."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    BACKEND_ENV.clear()
    if backend == "postgresql+s3":
        BACKEND_ENV["MLOPS_STORE_URL"] = request.getfixturevalue("postgres_url")
        BACKEND_ENV["MLOPS_ARTIFACTS_URL"] = request.getfixturevalue("s3_url")
        for var in ("MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL"):
            monkeypatch.setenv(var, BACKEND_ENV[var])
    monkeypatch.chdir(tmp_path)
    from mlops_jupyter.config import init_project

    init_project(tmp_path)
    _reset()
    yield tmp_path
    _reset()
    BACKEND_ENV.clear()
    if backend == "postgresql+s3":
        # Everything went to the shared store, from this process and every one it started (kernels,
        # workers, servers): nothing fell back to a local database or blob folder.
        local = [p for p in (tmp_path / ".mlops").rglob("*")
                 if p.is_file() and (p.name.startswith("mlops.db") or "objects" in p.parts)]
        assert not local, f"written to the local store instead of the shared one: {local[:5]}"


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
    env.update(BACKEND_ENV)  # the test's shared store, when it runs on one
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


PY = sys.executable


def untitled_notebook(folder):
    """What JupyterLab's launcher writes before anything is saved: Untitled.ipynb with no cells
    (the Jupyter server's own contents manager makes it). Returns its path."""
    from jupyter_server.services.contents.filemanager import FileContentsManager
    from nbformat.sign import NotebookNotary

    manager = FileContentsManager(root_dir=str(folder))
    # its own notary would start a Jupyter application in this process, which reconfigures logging
    # and so closes the stream of every handler (Keras' absl handler holds pytest's capture)
    manager.notary = NotebookNotary(db_file=":memory:", secret=b"tests")
    return Path(folder) / manager.new_untitled(type="notebook")["path"]


def run_cli(*args, cwd=None, env=None, timeout=120):
    """``mlops ARGS`` in a new process, as a user types it (no standard input); *env* defaults to
    :func:`python_env` (the test's store)."""
    return subprocess.run([PY, "-m", "mlops_jupyter.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=python_env() if env is None else env, timeout=timeout, stdin=subprocess.DEVNULL)


def tamper(store, digest: str, change) -> None:
    """Change a stored blob's bytes in place (local folder or object store), as damage would."""
    path = store.blobs.path(digest)
    if store.blobs.local is not None:
        os.chmod(path, 0o644)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(change(data))
    else:
        data = store.blobs.fs.cat_file(path)
        store.blobs.fs.pipe_file(path, change(data))


def stored_bytes(store) -> bytes:
    """Everything the metadata store holds, as bytes: the SQLite file, or every row of every table."""
    store.writer.flush()
    if store.meta.dialect == "sqlite":
        return (store.settings.mlops_dir / "mlops.db").read_bytes()
    from mlops_jupyter.store import schema

    out = []
    with store.meta.read() as conn:
        for table in schema.metadata.sorted_tables:
            out += [repr(tuple(r)) for r in conn.execute(table.select())]
    return "\n".join(out).encode()
