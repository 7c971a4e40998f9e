"""System packages some tests need (podman, debootstrap, ...): installed on first use with apt-get
when the suite runs as root on Debian/Ubuntu (as CI does), otherwise the test is skipped with
the reason. Nothing here runs unless such a test is collected and run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading

_lock = threading.Lock()
_updated: list[bool] = []


def ensure_apt(commands: dict[str, str]) -> str | None:
    """Make sure each command is on PATH, installing its package; None when all are there,
    else why they cannot be (for pytest.skip)."""
    missing = {cmd: pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None}
    if not missing:
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return f"needs {', '.join(sorted(set(missing.values())))} (apt-get install as root)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with _lock:
        if not _updated:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600,
                           stdin=subprocess.DEVNULL)
            _updated.append(True)
        r = subprocess.run(["apt-get", "install", "-y", "-qq",
                            *sorted(set(missing.values()))], env=env, capture_output=True, text=True, timeout=1200,
                           stdin=subprocess.DEVNULL)
    still = [cmd for cmd in missing if shutil.which(cmd) is None]
    if still:
        return f"could not install {', '.join(still)}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
    return None


def stop_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a server a test started in its own session (``start_new_session=True``): SIGTERM to its
    process group, SIGKILL if it has not gone within *timeout* seconds."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
