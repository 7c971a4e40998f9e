"""Evidently's own virtual environment for bench.drift (Evidently 0.7 needs pandas<3; ours runs on
pandas 3). Made once under ~/.cache/mlops-bench, reused afterwards."""

from __future__ import annotations

import os
import subprocess
import sys

VERSION = "0.7.23"
DEFAULT = os.path.expanduser(f"~/.cache/mlops-bench/evidently-{VERSION}")


def _python(path: str) -> str:
    return os.path.join(path, "bin", "python")


def _works(python: str) -> bool:
    if not os.path.exists(python):
        return False
    r = subprocess.run([python, "-c", "import evidently, pandas, pyarrow; print(evidently.__version__)"],
                       capture_output=True, text=True, env={**os.environ, "DO_NOT_TRACK": "1"}, timeout=300)
    return r.returncode == 0 and r.stdout.strip() == VERSION


def ensure_venv(path: str | None = None) -> str | None:
    """The venv's interpreter, with evidently installed; None (and one line why) when it cannot be made."""
    path = path or DEFAULT
    python = _python(path)
    if _works(python):
        return python
    print(f"making Evidently's environment in {path} (once) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", path], check=True, capture_output=True, timeout=300)
        subprocess.run([python, "-m", "pip", "install", "-q", f"evidently=={VERSION}", "pandas<3", "pyarrow"],
                       check=True, capture_output=True, timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        err = getattr(e, "stderr", b"") or b""
        print(f"evidently: no environment ({(err.decode(errors='replace').strip().splitlines() or [str(e)])[-1]})")
        return None
    return python if _works(python) else None
