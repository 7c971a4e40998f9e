"""The kernels we start to execute notebooks listen on IPC, so they have nothing to warn about."""

import json
import subprocess
import textwrap

import nbformat
import pytest

from .conftest import PY, python_env, run_cli

pytestmark = pytest.mark.slow

CELL = textwrap.dedent("""
    from ipykernel.kernelapp import IPKernelApp
    app = IPKernelApp.instance()
    print(app.transport, app.ip)
""")


def test_executed_notebook_kernel_uses_ipc_and_prints_no_warning(project, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, project / "k.ipynb")
    runtime = tmp_path / "runtime"
    code = ("from mlops_jupyter.jobs import execute_notebook\n"
            "execute_notebook('k.ipynb', 'out.ipynb', progress=False)\n")
    r = subprocess.run([PY, "-c", code], cwd=project, capture_output=True, text=True, timeout=180,
                       env={**python_env(), "JUPYTER_RUNTIME_DIR": str(runtime)})
    assert r.returncode == 0, r.stderr
    assert "without encryption" not in r.stderr and "IPKernelApp" not in r.stderr, r.stderr
    out = nbformat.read(project / "out.ipynb", as_version=4)
    transport, ip = out.cells[-1].outputs[0]["text"].split()
    assert transport == "ipc"
    assert ip.startswith(str(runtime))  # a folder only this user can open, not the working folder
    assert (runtime.stat().st_mode & 0o077) == 0
    # the sockets and the connection file are gone once the kernel is shut down
    assert not [p for p in runtime.iterdir() if p.name.startswith("mlops-")], list(runtime.iterdir())


def test_job_run_output_is_clean(project):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("print(x)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, project / "plain.ipynb")
    r = run_cli("promote", "plain.ipynb", "--name", "plain", cwd=project)
    assert r.returncode == 0, r.stderr
    r = run_cli("job", "run", "plain", "-p", "x", "2", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "IPKernelApp" not in r.stderr and "WARNING" not in r.stderr, r.stderr
    json.dumps(r.stdout)  # printable
