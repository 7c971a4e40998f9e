"""A machine-local cache (path, size, mtime, ctime, inode) -> BLAKE3 digest.

Re-adding an unchanged file or folder reads no file content: a file whose stat
fingerprint matches the cache is taken to have the cached digest. It lives in
``.mlops/statcache.db`` (plain sqlite3), beside but apart from the shared store,
because inode numbers and mtimes mean nothing on another machine.

A file changed within the timestamp granularity of when it was hashed could keep the
same fingerprint ("racily clean", as git calls it): such entries are not trusted and
the file is hashed again.
"""

from __future__ import annotations

import os
import sqlite3
import threading

from ..store.metadata import use_wal

RACY_NS = 50_000_000  # 50 ms: coarser than any file system's timestamp tick


def fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class StatCache:
    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._local = threading.local()
        conn = self._conn()
        conn.execute("CREATE TABLE IF NOT EXISTS cache (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
                     "ctime_ns INTEGER, ino INTEGER, digest TEXT, checked_ns INTEGER)")
        conn.commit()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60)
            use_wal(conn, self.path)  # processes adding data together may create the cache together
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def load(self, prefix: str) -> dict[str, tuple]:
        """Trusted entries under folder *prefix* (or the file itself): path -> (fingerprint, digest)."""
        conn = self._conn()
        rows = conn.execute(
            "SELECT path, size, mtime_ns, ctime_ns, ino, digest, checked_ns FROM cache WHERE path = ? OR "
            "(path >= ? AND path < ?)", (prefix, prefix + os.sep, prefix + chr(ord(os.sep) + 1))).fetchall()
        return {r[0]: (r[1:5], r[5]) for r in rows if max(r[2], r[3]) < r[6] - RACY_NS}

    def update(self, entries: list[tuple[str, tuple, str]], checked_ns: int) -> None:
        """Remember digests; *checked_ns* is when hashing started (before any file was read)."""
        if not entries:
            return
        conn = self._conn()
        with conn:
            conn.executemany("INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(p, *fp, d, checked_ns) for p, fp, d in entries])
