"""The promoted job's image, for real: podman builds it from a Debian base made with debootstrap
(no image registry is reachable here), from a wheelhouse with no network; the container retrains,
then serves, and answers a prediction on 127.0.0.1."""

import os
import shutil
import subprocess
import time
import uuid

import httpx
import pytest

from mlops_jupyter.cli import main

from .system import ensure_apt
from .test_jobs import write_notebook
from .test_serving import free_port

pytestmark = pytest.mark.slow
BASE = "localhost/mlops-python-base:bookworm"


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    why = ensure_apt({"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"})
    if why:
        pytest.skip(f"container tests: {why}")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    # This machine's limits: runc as the runtime, nofile and nproc within what the host allows.
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n'
                    '[engine]\nruntime = "runc"\n')
    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    have = subprocess.run(["podman", "image", "exists", BASE], env=env, timeout=60).returncode == 0
    if not have:  # the base is cached in podman's store for the next run: it never changes
        root = tmp_path_factory.mktemp("rootfs")
        r = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm",
                            str(root), "http://deb.debian.org/debian"], capture_output=True, text=True,
                           timeout=1800, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            pytest.skip(f"debootstrap could not make a base image: {r.stderr.strip().splitlines()[-1:]}")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "import", "-", BASE], stdin=tar.stdout, env=env, check=True, capture_output=True,
                       timeout=600)
        tar.wait()
        shutil.rmtree(root, ignore_errors=True)
    return env


def test_job_image_builds_offline_retrains_and_serves(project, podman, monkeypatch):
    for k, v in podman.items():
        monkeypatch.setenv(k, v)
    write_notebook(project / "train.ipynb")
    import mlops_jupyter as mj
    from .test_jobs import champion

    champion(0.5)
    tag = f"localhost/mlops-test-job:{uuid.uuid4().hex[:8]}"
    assert main(["promote", "train.ipynb", "--name", "churn-job", "--model", "churn", "--metric", "auc",
                 "--image", tag]) == 0
    assert main(["job", "build", "churn-job", "--engine", "podman", "--wheelhouse", "--base", BASE]) == 0
    health = subprocess.run(["podman", "image", "inspect", "--format", "{{json .Config.Healthcheck}}", tag],
                            capture_output=True, text=True, env=podman, timeout=60).stdout
    assert "mlops_jupyter.jobs.health" in health
    data = project / "container-store"
    data.mkdir()
    os.chown(data, 10001, 10001)  # the image's non-root user
    name = f"mlops-test-{uuid.uuid4().hex[:8]}"
    try:
        r = subprocess.run(["podman", "run", "--rm", "--name", name + "-retrain", "-v", f"{data}:/data", tag,
                            "retrain", "--grid", "C=0.1,1", "--workers", "2"], capture_output=True, text=True,
                           env=podman, timeout=900)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert "2 execution(s)" in r.stdout and "is now churn@production" in r.stdout
        port = free_port()
        subprocess.run(["podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080",
                        "-e", "MLOPS_SERVE_TOKEN=s3cret", "-v", f"{data}:/data", tag, "serve"],
                       check=True, capture_output=True, env=podman, timeout=120)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, env=podman).stdout
            raise AssertionError(f"the container did not become ready: {logs[-2000:]}")
        row = [{"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}]
        assert httpx.post(url + "/predict", json=row).status_code == 401  # listening beyond 127.0.0.1: a token
        r = httpx.post(url + "/predict", json=row, headers={"Authorization": "Bearer s3cret"}, timeout=10)
        assert r.status_code == 200 and r.json()["model_version"] == "churn@v1" and r.json()["predictions"] in ([0], [1])
        check = subprocess.run(["podman", "healthcheck", "run", name], capture_output=True, text=True, env=podman,
                               timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "5", name], capture_output=True, env=podman, timeout=120)
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, env=podman, timeout=120)
    assert mj.models.get("churn@production").version == 1  # the host's store was not touched
