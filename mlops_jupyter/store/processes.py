"""Is the process that started a run still the one running? (Light: the terminal's quick
listings use it without importing the store.)"""

from __future__ import annotations

import os


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
