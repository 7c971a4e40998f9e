"""``mlops job build``: the job's container image, with docker or podman.

``--wheelhouse`` first downloads every wheel the image needs into the job's ``wheelhouse/`` (and
builds a wheel of mlops-jupyter itself when it is installed from a source tree), then builds with
``PIP_NO_INDEX=true`` and no network, as an air-gapped site must.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from ..exceptions import BadInput, MlopsError
from .spec import JobSpec, find_job

DEFAULT_BASE = "python:3.11-slim"


class BuildFailed(MlopsError):
    """The container engine could not build the image."""


def find_engine(engine: str | None = None) -> str:
    names = [engine] if engine else ["docker", "podman"]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    if engine:
        raise BadInput(f"{engine} is not installed (or not on PATH)")
    raise BadInput("no container engine: install docker or podman (Debian/Ubuntu: apt-get install podman), "
                   "or build the job folder's Dockerfile elsewhere")


def _source_tree() -> Path | None:
    """The source tree mlops-jupyter is installed from (editable or from a local folder), if any."""
    import importlib.metadata as md
    import json

    try:
        text = md.distribution("mlops-jupyter").read_text("direct_url.json")
    except md.PackageNotFoundError:
        text = None
    if text:
        url = json.loads(text).get("url", "")
        if url.startswith("file://"):
            p = Path(url[len("file://"):])
            if (p / "pyproject.toml").is_file():
                return p
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else None


def fill_wheelhouse(spec: JobSpec, out: Callable[[str], None] = print) -> Path:
    """Every wheel ``requirements.txt`` needs, for this interpreter's version and platform."""
    assert spec.folder is not None
    house = spec.folder / "wheelhouse"
    house.mkdir(exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    src = _source_tree()
    if src is not None:
        out(f"building a wheel of mlops-jupyter from {src}")
        _check([*pip, "wheel", "--no-deps", "-q", "-w", str(house), str(src)], "building the mlops-jupyter wheel")
    out(f"downloading the wheels of {spec.folder / 'requirements.txt'} into {house} "
        f"(Python {sys.version_info.major}.{sys.version_info.minor}, this platform)")
    _check([*pip, "download", "-q", "--only-binary=:all:", "--find-links", str(house), "-d", str(house),
            "-r", str(spec.folder / "requirements.txt")], "downloading wheels")
    n = len(list(house.glob("*.whl")))
    size = sum(f.stat().st_size for f in house.glob("*.whl"))
    out(f"wheelhouse: {n} wheels, {size / 2**20:,.0f} MiB")
    return house


def _check(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
        raise BuildFailed(f"{what} failed: " + " | ".join(tail))


def build_command(engine: str, spec: JobSpec, tag: str, base: str, wheelhouse: bool) -> list[str]:
    assert spec.folder is not None
    cmd = [engine, "build", "-t", tag, "--build-arg", f"BASE={base}"]
    if Path(engine).name == "podman":
        cmd += ["--format", "docker"]  # keeps HEALTHCHECK (the OCI format has none)
    if wheelhouse:
        cmd += ["--build-arg", "PIP_NO_INDEX=true", "--network", "none"]
    extra = os.environ.get("MLOPS_BUILD_ARGS", "").split()  # e.g. --ulimit nofile=20000:20000 on tight hosts
    return [*cmd, *extra, str(spec.folder)]


def build_image(job: str | os.PathLike | JobSpec, engine: str | None = None, wheelhouse: bool = False,
                base: str | None = None, tag: str | None = None, out: Callable[[str], None] = print) -> str:
    """Build the job's image; returns its name."""
    spec = job if isinstance(job, JobSpec) else find_job(job)
    exe = find_engine(engine)
    tag = tag or spec.image or f"mlops/{spec.name}:latest"
    if wheelhouse:
        fill_wheelhouse(spec, out)
    cmd = build_command(exe, spec, tag, base or DEFAULT_BASE, wheelhouse)
    out(f"building {tag} with {Path(exe).name} (base {base or DEFAULT_BASE}"
        f"{', from the wheelhouse, no network' if wheelhouse else ''})")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-30:]
        if line.upper().startswith("STEP ") or line.startswith("#") and " [" in line[:12]:
            out(f"  {line[:160]}")
    if proc.wait() != 0:
        raise BuildFailed(f"{Path(exe).name} build failed (exit {proc.returncode}):\n" + "\n".join(tail))
    out(f"built {tag}")
    return tag
