"""The local PostgreSQL server for the team benchmarks: Debian's cluster on 127.0.0.1 (started when it
is not running, stopped again at the end if started here), a login role, and fresh databases that are
dropped afterwards. tests/backends.py builds its pytest fixtures on the same functions."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

ROLE = "mlops_bench"
PASSWORD = "mlops_bench"


def _psql(sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def pg_version() -> str | None:
    """The newest PostgreSQL server version Debian's packages installed here, or None."""
    try:
        versions = [v for v in os.listdir("/usr/lib/postgresql") if v.isdigit()]
    except FileNotFoundError:
        return None
    return max(versions, key=int) if versions else None


@contextmanager
def local_cluster(version: str, role: str, password: str, attributes: str = "CREATEDB") -> Iterator[str]:
    """Debian's cluster *version*/main on 127.0.0.1 (created and started when it is not running,
    stopped again on the way out if started here), with login *role*; yields its admin URL
    (``postgresql+psycopg://role:pw@127.0.0.1:5432``, no database). Needs root. The tests use it too."""
    status = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, timeout=30).stdout
    mine = [line for line in status.splitlines() if line.split()[:2] == [version, "main"]]
    started = False
    if not mine:
        subprocess.run(["pg_createcluster", version, "main"], check=True, capture_output=True, timeout=120)
    if not mine or "online" not in mine[0]:
        r = subprocess.run(["pg_ctlcluster", version, "main", "start"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {r.stderr.strip()}")
        started = True
    try:
        deadline = time.time() + 60
        while _psql("SELECT 1").returncode != 0:
            if time.time() > deadline:
                raise RuntimeError("PostgreSQL did not accept connections within 60 s")
            time.sleep(0.5)
        r = _psql(f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                  f"CREATE ROLE {role} LOGIN {attributes} PASSWORD '{password}'; END IF; END$$;")
        if r.returncode != 0:
            raise RuntimeError(f"cannot create the role {role}: {r.stderr.strip()}")
        yield f"postgresql+psycopg://{role}:{password}@127.0.0.1:5432"
    finally:
        if started:
            subprocess.run(["pg_ctlcluster", version, "main", "stop"], capture_output=True, timeout=120)


@contextmanager
def server() -> Iterator[str | None]:
    """The benchmarks' admin URL on the local server, or None when there is no usable server here
    (the caller reports the benchmark as skipped)."""
    version = pg_version()
    if version is None or shutil.which("pg_lsclusters") is None or os.geteuid() != 0:
        yield None  # needs Debian's postgresql package, and root to start it and create the role
        return
    with local_cluster(version, ROLE, PASSWORD) as url:
        yield url


@contextmanager
def fresh_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new empty database's URL; dropped (connections and all) on the way out."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{admin_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
