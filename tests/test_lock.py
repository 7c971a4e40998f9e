"""The committed test lock (requirements/test.lock) still satisfies pyproject.toml.

A requirement added to the package or its ``test`` extra, a bound changed or a requirement dropped
without refreshing the lock (the command is at the top of the lock) fails here, on every Python the
lock covers, before a fresh machine finds out.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "test.lock"
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)\s*(?:;\s*(.+))?$")


def _environment(python: str) -> dict[str, str]:
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def _pins() -> list[tuple[str, Version, Marker | None]]:
    pins = []
    for line in LOCK.read_text().splitlines():
        m = _PIN.match(line.strip())
        if m:
            pins.append((canonicalize_name(m.group(1)), Version(m.group(2)), Marker(m.group(3)) if m.group(3) else None))
    return pins


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements() -> list[Requirement]:
    p = _project()
    return [Requirement(r) for r in p["dependencies"] + p["optional-dependencies"]["test"]]


def test_lock_says_how_to_refresh_it():
    head = LOCK.read_text().splitlines()[:2]
    assert "uv pip compile pyproject.toml --extra test" in head[1] and "-o requirements/test.lock" in head[1]
    readme = (ROOT / "README.md").read_text()
    assert head[1].strip(" #") in readme, "the README's development section gives the lock's refresh command"


@pytest.mark.parametrize("python", PYTHONS)
def test_lock_pins_every_requirement_within_its_bounds(python):
    env = _environment(python)
    pinned: dict[str, list[Version]] = {}
    for name, version, marker in _pins():
        if marker is None or marker.evaluate(env):
            pinned.setdefault(name, []).append(version)
    doubled = {n: v for n, v in pinned.items() if len(v) > 1}
    assert not doubled, f"Python {python}: more than one pin applies: {doubled}"
    problems = []
    for req in _requirements():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        if name not in pinned:
            problems.append(f"{req} is not in the lock")
        elif not req.specifier.contains(pinned[name][0], prereleases=True):
            problems.append(f"{req}: the lock pins {pinned[name][0]}")
    assert not problems, (f"requirements/test.lock no longer satisfies pyproject.toml on Python {python}: "
                          + "; ".join(problems) + " (refresh it with the command at its top)")


def test_lock_has_no_direct_requirement_pyproject_dropped():
    """Packages the lock says came from pyproject.toml are exactly its requirements (a dropped
    requirement would stay pinned, and installed, until the lock is refreshed)."""
    text = LOCK.read_text()
    direct = set()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = _PIN.match(block.splitlines()[0].strip())
        if m and "mlops-jupyter (pyproject.toml)" in block:
            direct.add(canonicalize_name(m.group(1)))
    wanted = {canonicalize_name(r.name) for r in _requirements()}
    assert direct == wanted, f"only in the lock: {sorted(direct - wanted)}; only in pyproject: {sorted(wanted - direct)}"


def test_no_extra_requires_boto3_directly():
    """A bare boto3 beside s3fs makes pip backtrack for minutes (the newest boto3 pins a botocore
    no aiobotocore release accepts): boto3 comes only through what moto and aiobotocore need."""
    for extra, reqs in _project()["optional-dependencies"].items():
        assert not any(canonicalize_name(Requirement(r).name) in ("boto3", "botocore") for r in reqs), extra
