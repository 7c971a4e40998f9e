"""How long pip takes to resolve each extra on a fresh machine, with and without the lock.

For each extra, a new virtual environment (the pip it comes with, no cache) resolves the package's
requirements plus the extra's (``pip install --dry-run``, so nothing is installed and the figure is
resolving plus fetching what pip needs to decide), as ``pip install "mlops-jupyter[EXTRA]"`` from the
registry would; ``test`` also with ``-c requirements/test.lock``, as the README's second command.
Network time is part of every figure: run it on the machine being judged.

    python -m bench.install [--new-pip] [EXTRA ...]   # default: team demo lab test

``--new-pip`` first upgrades the venv's pip to the newest release (the pip that comes with a Python
may be years older: pip 23.2 reads a package's requirements by downloading the whole wheel, some
900 MB for ``[test]``, where newer pips read them from the index).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirements(extra: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"][extra]


def resolve(extra: str, lock: bool = False, new_pip: bool = False) -> tuple[float, int, int, str]:
    """(seconds, pip's exit code, packages chosen, pip's version) for one extra in a new venv."""
    with tempfile.TemporaryDirectory(prefix="bench-install-") as work:
        venv = os.path.join(work, "venv")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        if new_pip:
            subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "-U", "pip"],
                           check=True, capture_output=True)
        pip = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "--version"], capture_output=True,
                             text=True).stdout.split()[1]
        reqs = os.path.join(work, "requirements.txt")
        Path(reqs).write_text("\n".join(_requirements(extra)) + "\n")
        report = os.path.join(work, "report.json")
        argv = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--dry-run", "--no-cache-dir", "-q",
                "--report", report, "-r", reqs]
        if lock:
            argv += ["-c", str(ROOT / "requirements" / "test.lock")]
        t = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - t
        n = 0
        if r.returncode == 0:
            import json

            n = len(json.loads(Path(report).read_text())["install"])
        else:
            print(r.stderr[-2000:], file=sys.stderr)
        return seconds, r.returncode, n, pip


def main(argv: list[str]) -> None:
    new_pip = "--new-pip" in argv
    extras = [a for a in argv if a != "--new-pip"]
    rows = []
    pip = "?"
    for extra in extras or ["team", "demo", "lab", "test"]:
        for lock in ([False, True] if extra == "test" else [False]):
            s, rc, n, pip = resolve(extra, lock, new_pip)
            rows.append([f"[{extra}]" + (" -c requirements/test.lock" if lock else ""), f"{s:.0f} s",
                         str(n) if rc == 0 else f"failed ({rc})", "ok" if rc == 0 and s < 60 else "OVER 60 s"])
    table(f"pip {pip} in a new venv, no cache: resolve (dry run)", ["install", "time", "packages", "goal"], rows)


if __name__ == "__main__":
    main(sys.argv[1:])
