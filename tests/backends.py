"""The shared-store backends the core, data and registry suites also run against: a real
PostgreSQL server (Debian's package, started on 127.0.0.1 when it is not running; a fresh database
per test) and an S3 API (moto's server, started on 127.0.0.1 by the tests; a fresh bucket per
test). Both are stopped at the end of the session if the tests started them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from bench.pgserver import fresh_database, local_cluster, pg_version

from .system import ensure_apt, stop_group

PG_USER = "mlops_test"
PG_PASSWORD = "mlops_test"
S3_REGION = "eu-west-1"  # not us-east-1: bucket creation there takes no location constraint

# Test modules whose tests run once per backend (the core, data and registry suites).
SHARED_MODULES = {"test_store", "test_tracking", "test_query", "test_data", "test_models", "test_audit",
                  "test_encryption"}
BACKENDS = ["sqlite", "postgresql+s3"]

# What the backend fixture set for this test, handed on to the subprocesses tests start.
BACKEND_ENV: dict[str, str] = {}


@pytest.fixture(scope="session")
def postgres_admin_url():
    """A PostgreSQL superuser URL on 127.0.0.1 (the server started if it was not running, and
    stopped at the end of the session if started here)."""
    if os.geteuid() != 0 and shutil.which("pg_ctlcluster") is None:
        pytest.skip("PostgreSQL tests need Debian's postgresql package (apt-get install postgresql as root)")
    reason = ensure_apt({"pg_ctlcluster": "postgresql"})
    if reason:
        pytest.skip(reason)
    version = pg_version()
    if version is None:
        pytest.skip("postgresql is installed but no server version is present under /usr/lib/postgresql")
    with local_cluster(version, PG_USER, PG_PASSWORD, "SUPERUSER") as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin_url):
    """A fresh database for one test; dropped afterwards."""
    from mlops_jupyter.store import close_store

    with fresh_database(postgres_admin_url, "mlops_t") as url:
        try:
            yield url
        finally:
            close_store()  # the store's connections go before the database does


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1; stopped by its PID at the end of the session."""
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    from .test_serving import free_port

    port = free_port()
    log = open(os.devnull, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError("moto's S3 server did not start")
            time.sleep(0.2)
    try:
        yield url
    finally:
        stop_group(proc)
        log.close()


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": S3_REGION}


@pytest.fixture
def s3_url(s3_endpoint, monkeypatch):
    """A fresh bucket for one test, as an ``s3://bucket/prefix`` URL (credentials in the environment)."""
    import boto3

    env = dict(S3_ENV, AWS_ENDPOINT_URL=s3_endpoint)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    bucket = f"mlops-t-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name=S3_REGION).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": S3_REGION})
    BACKEND_ENV.update(env)
    yield f"s3://{bucket}/blobs"
