"""What the code ran on: interpreter, host, installed and imported packages, git state, environment
variables (redacted)."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
import threading

from ..identity import current_user
from .redact import redact_mapping

_dist_cache: dict = {}
_dist_lock = threading.Lock()


def _site_key() -> tuple:
    key = []
    for p in sys.path:
        try:
            key.append((p, os.stat(p).st_mtime_ns))
        except OSError:
            pass
    return tuple(key)


def _distributions() -> tuple[dict, dict]:
    """(top-level module -> [dist names], dist name -> version), cached until sys.path changes."""
    key = _site_key()
    with _dist_lock:
        if _dist_cache.get("key") == key:
            return _dist_cache["modmap"], _dist_cache["versions"]
        from importlib import metadata as md

        versions = {}
        for d in md.distributions():
            name = d.metadata.get("Name")
            if name and name not in versions:
                versions[name] = d.version
        modmap = md.packages_distributions()
        _dist_cache.update(key=key, modmap=modmap, versions=versions)
        return modmap, versions


def imported_packages() -> dict[str, str]:
    """Versions of the installed distributions whose modules this process imported."""
    modmap, versions = _distributions()
    tops = {name.partition(".")[0] for name in list(sys.modules)}
    out = {}
    for top in tops:
        for dist in modmap.get(top, ()):
            if dist in versions:
                out[dist] = versions[dist]
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def freeze() -> str:
    """Every installed distribution, pip-freeze style."""
    _, versions = _distributions()
    return "".join(f"{n}=={v}\n" for n, v in sorted(versions.items(), key=lambda kv: kv[0].lower()))


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode("utf-8", "replace")


def git_state(cwd: str | None = None) -> tuple[dict, str | None]:
    """({commit, branch, dirty, remote}, dirty diff text or None); empty outside a repo."""
    cwd = cwd or os.getcwd()
    from ..config import git_root

    if git_root(cwd) is None:  # not a repository: spare the subprocess
        return {}, None
    head = _git(["rev-parse", "HEAD"], cwd)
    if head is None:
        return {}, None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd) or ""
    info = {
        "commit": head.strip(),
        "branch": (_git(["rev-parse", "--abbrev-ref", "HEAD"], cwd) or "").strip() or None,
        "dirty": bool(status.strip()),
    }
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    if remote:
        info["remote"] = re.sub(r"//[^@/]+@", "//", remote.strip())  # no credentials in URLs
    diff = _git(["diff", "HEAD", "--no-ext-diff", "--no-color"], cwd) if info["dirty"] else None
    return info, diff


def environment(notebook: str | None = None) -> dict:
    """The facts recorded in a run's ``env`` (cheap; the slow parts are in :func:`capture`)."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "host": socket.gethostname(),
        "user": current_user(),
        "cwd": os.getcwd(),
        "notebook": notebook,
    }


def environment_variables() -> dict[str, str]:
    return redact_mapping(dict(sorted(os.environ.items())))
