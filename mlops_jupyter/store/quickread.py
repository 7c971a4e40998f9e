"""Listings read straight from a project's SQLite store with the standard library's ``sqlite3``.

``mlops runs ls``, ``data ls`` and ``model ls`` in a terminal answer in a fraction of the time
when they need not import SQLAlchemy (about 350 ms on a small machine: more than everything else
the command does). These are the same reads as :class:`~mlops_jupyter.store.metadata.MetadataStore`,
the data catalog and the model registry make, as SQL text; ``tests/test_cli.py`` compares both ways
on one store. Whatever this module is not sure of gives ``None``, and the command goes the usual
way: another database, a schema this version would first migrate, a filter or a sort, a run whose
process died (the usual way marks it crashed), a name the usual way would refuse with a message.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sqlite3
import time
from contextlib import closing
from typing import Any

from .processes import run_is_dead

# The schema these queries were written for; tests/test_cli.py fails when schema.SCHEMA_VERSION
# moves on, so that a migration is checked against them.
SCHEMA_VERSION = 12
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def connect(store_url: str) -> sqlite3.Connection | None:
    """A read-only connection to the SQLite store at *store_url*, or None when this module should
    not answer for it."""
    if not store_url.startswith("sqlite:///"):
        return None
    path = store_url[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:" or not os.path.isfile(path):
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        conn.execute("PRAGMA busy_timeout=60000")
        if conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] != SCHEMA_VERSION:
            conn.close()
            return None
    except sqlite3.Error:
        return None
    conn.row_factory = sqlite3.Row
    return conn


def _in(ids: list[str]) -> str:
    return ",".join("?" * len(ids))


def _needs_reaping(conn: sqlite3.Connection) -> bool:
    """Would MetadataStore.reap_crashed mark a run crashed? (Then the usual way does it.)"""
    host, now = socket.gethostname(), time.time()
    return any(run_is_dead(dict(r), host, now) for r in conn.execute(
        "SELECT host, pid, pid_start, heartbeat, start_time FROM runs WHERE status = 'running'"))


def runs(store_url: str, limit: int | None = None, user: str | None = None) -> list[dict] | None:
    """Runs newest first, each with ``params``, ``metrics`` (last values) and ``tags``: what
    ``tracking.query.search_runs`` gives without a filter or a sort."""
    conn = connect(store_url)
    if conn is None:
        return None
    with closing(conn):
        if _needs_reaping(conn):
            return None
        sql = "SELECT * FROM runs" + (" WHERE username = ?" if user is not None else "")
        sql += " ORDER BY start_time DESC" + (" LIMIT ?" if limit is not None else "")
        args: list[Any] = ([user] if user is not None else []) + ([limit] if limit is not None else [])
        rows = [dict(r) for r in conn.execute(sql, args)]
        by_id = {r["run_id"]: r for r in rows}
        for r in rows:
            r["params"], r["metrics"], r["tags"] = {}, {}, {}
        ids = list(by_id)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for r in conn.execute(f"SELECT run_id, key, value FROM params WHERE run_id IN ({_in(chunk)})", chunk):
                by_id[r["run_id"]]["params"][r["key"]] = json.loads(r["value"])
            for r in conn.execute(f"SELECT run_id, key, value FROM latest_metrics WHERE run_id IN ({_in(chunk)})",
                                  chunk):
                by_id[r["run_id"]]["metrics"][r["key"]] = math.nan if r["value"] is None else r["value"]
            for r in conn.execute(f"SELECT run_id, key, value FROM tags WHERE run_id IN ({_in(chunk)})", chunk):
                by_id[r["run_id"]]["tags"][r["key"]] = r["value"]
        return rows


def datasets(store_url: str) -> list[dict] | None:
    """The latest version of every dataset, by name: the data catalog's ``datasets()``."""
    conn = connect(store_url)
    if conn is None:
        return None
    with closing(conn):
        return [dict(r) for r in conn.execute(
            "SELECT dv.* FROM dataset_versions dv JOIN (SELECT name, max(version) AS v FROM dataset_versions "
            "GROUP BY name) latest ON dv.name = latest.name AND dv.version = latest.v ORDER BY dv.name")]


def dataset_versions(store_url: str, name: str) -> list[dict] | None:
    """The versions of one dataset, oldest first (None also when there are none: the usual way
    says so)."""
    conn = connect(store_url) if isinstance(name, str) and _NAME.match(name) and ".." not in name else None
    if conn is None:
        return None
    with closing(conn):
        rows = [dict(r) for r in conn.execute(
            "SELECT * FROM dataset_versions WHERE name = ? ORDER BY version", (name,))]
    return rows or None


def models(store_url: str) -> list[tuple[dict, list[str]]] | None:
    """The latest version of every model with the model's aliases (``alias->vN``)."""
    conn = connect(store_url)
    if conn is None:
        return None
    with closing(conn):
        rows = [dict(r) for r in conn.execute(
            "SELECT mv.* FROM model_versions mv JOIN (SELECT name, max(version) AS v FROM model_versions "
            "GROUP BY name) latest ON mv.name = latest.name AND mv.version = latest.v ORDER BY mv.name")]
        aliases: dict[str, list[str]] = {}
        for r in conn.execute("SELECT name, alias, version FROM model_aliases ORDER BY alias"):
            aliases.setdefault(r["name"], []).append(f"{r['alias']}->v{r['version']}")
    return [(r, aliases.get(r["name"], [])) for r in rows]


def model_versions(store_url: str, name: str) -> list[tuple[dict, list[str]]] | None:
    """The versions of one model, oldest first, each with the aliases it holds."""
    conn = connect(store_url) if isinstance(name, str) and _NAME.match(name) and ".." not in name else None
    if conn is None:
        return None
    with closing(conn):
        rows = [dict(r) for r in conn.execute("SELECT * FROM model_versions WHERE name = ? ORDER BY version",
                                              (name,))]
        aliases: dict[int, list[str]] = {}
        for r in conn.execute("SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,)):
            aliases.setdefault(r["version"], []).append(r["alias"])
    return [(r, aliases.get(r["version"], [])) for r in rows] or None
