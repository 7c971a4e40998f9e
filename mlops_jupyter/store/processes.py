"""Is the process that started a run still the one running? (Light: the terminal's quick
listings use it without importing the store.)"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

# A run whose writer has not beaten for this long on another host is taken as crashed.
STALE_HEARTBEAT = 600.0


def process_start_time(pid: int) -> float | None:
    """When process *pid* started (seconds since boot on Linux), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rfind(b")") + 2:].split()
        return float(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int, started: float | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if started is not None:
        now_started = process_start_time(pid)
        if now_started is not None and abs(now_started - started) > 1e-6:
            return False  # the pid was reused by another process
    return True


def run_is_dead(row: Any, host: str | None = None, now: float | None = None) -> bool:
    """Has the process of a ``running`` run (a row with host, pid, pid_start, heartbeat and
    start_time, as attributes or keys) ended without ending it? On this host its process is asked;
    on another, a heartbeat older than STALE_HEARTBEAT says so."""
    get = row.__getitem__ if isinstance(row, dict) else lambda k: getattr(row, k)
    host = socket.gethostname() if host is None else host
    if get("host") == host and get("pid"):
        if get("pid") == os.getpid() and get("pid_start") == process_start_time(os.getpid()):
            return False
        return not pid_alive(get("pid"), get("pid_start"))
    return (time.time() if now is None else now) - (get("heartbeat") or get("start_time")) > STALE_HEARTBEAT
