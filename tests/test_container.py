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


@pytest.mark.backends
def test_job_image_builds_offline_retrains_and_serves(project, backend, podman, monkeypatch):
    """On the embedded store the container keeps its own store in a /data volume; on the shared one
    (the image then carries mlops-jupyter[team]) it retrains against the team's PostgreSQL and S3,
    taking @production from the host's champion, and serves the new version from there."""
    for k, v in podman.items():
        monkeypatch.setenv(k, v)
    shared = backend != "sqlite"
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
    port = free_port()
    if shared:  # the host's network: PostgreSQL and the S3 server listen on its 127.0.0.1
        from .backends import BACKEND_ENV

        assert "mlops-jupyter[team]==" in (project / "jobs" / "churn-job" / "requirements.txt").read_text()
        passed = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                             "AWS_ENDPOINT_URL")}
        passed.update(BACKEND_ENV, MLOPS_SERVE_PORT=str(port))
        where = ["--network", "host", *[a for k, v in passed.items() for a in ("-e", f"{k}={v}")]]
    else:
        where = ["-p", f"127.0.0.1:{port}:8080"]
    try:
        r = subprocess.run(["podman", "run", "--rm", "--name", name + "-retrain", "-v", f"{data}:/data", *where, tag,
                            "retrain", "--grid", "C=0.1,1", "--workers", "2"], capture_output=True, text=True,
                           env=podman, timeout=900)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert "2 execution(s)" in r.stdout and "is now churn@production" in r.stdout
        subprocess.run(["podman", "run", "-d", "--name", name, "-e", "MLOPS_SERVE_TOKEN=s3cret", "-v",
                        f"{data}:/data", *where, tag, "serve"], check=True, capture_output=True, env=podman,
                       timeout=120)
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
            logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, env=podman)
            raise AssertionError(f"the container did not become ready: {(logs.stdout + logs.stderr)[-3000:]}")
        row = [{"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}]
        assert httpx.post(url + "/predict", json=row).status_code == 401  # listening beyond 127.0.0.1: a token
        r = httpx.post(url + "/predict", json=row, headers={"Authorization": "Bearer s3cret"}, timeout=10)
        served = "churn@v2" if shared else "churn@v1"  # the shared store's challenger; the container's own first
        assert r.status_code == 200 and r.json()["model_version"] == served and r.json()["predictions"] in ([0], [1])
        check = subprocess.run(["podman", "healthcheck", "run", name], capture_output=True, text=True, env=podman,
                               timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "5", name], capture_output=True, env=podman, timeout=120)
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, env=podman, timeout=120)
    if shared:  # one store for the host and the container: the retrained version holds @production here too
        assert mj.models.get("churn@production").version == 2 and not any(data.iterdir())
    else:
        assert mj.models.get("churn@production").version == 1  # the host's store was not touched
