"""Binder: binder/environment.yml installs exactly what pyproject.toml declares for it (the
dependencies, the `lab` and `demo` extras, the build requirements) with the same bounds, and
postBuild builds the package itself without bringing in anything else."""

import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
EXTRAS = ("lab", "demo")  # what Binder's JupyterLab needs: the panel, and what the example notebooks import


def _requirements(lines: list[str], where: str) -> dict[str, Requirement]:
    """Requirements by normalized name; one name listed twice with different bounds is a failure."""
    out: dict[str, Requirement] = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name in out and _shape(out[name]) != _shape(req):
            pytest.fail(f"{where} lists {req.name} twice, differently: {out[name]} and {req}")
        out[name] = req
    return out


def _shape(req: Requirement) -> tuple:
    return req.specifier, str(req.marker or ""), tuple(sorted(req.extras))


def pyproject_wants(text: str) -> dict[str, Requirement]:
    data = tomllib.loads(text)
    lines = list(data["project"]["dependencies"])
    for extra in EXTRAS:
        lines += data["project"]["optional-dependencies"][extra]
    lines += data["build-system"]["requires"]
    return _requirements(lines, "pyproject.toml")


def binder_installs(text: str) -> tuple[list, dict[str, Requirement]]:
    """(conda dependencies, pip requirements) of an environment.yml."""
    deps = yaml.safe_load(text)["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = [line for d in deps if isinstance(d, dict) for line in d.get("pip", [])]
    return conda, _requirements(pip, "binder/environment.yml")


def differences(pyproject_text: str, environment_text: str) -> list[str]:
    want = pyproject_wants(pyproject_text)
    _, got = binder_installs(environment_text)
    problems = [f"missing from binder/environment.yml: {want[n]}" for n in sorted(set(want) - set(got))]
    problems += [f"in binder/environment.yml but not in pyproject.toml (dependencies, {', '.join(EXTRAS)} extras, "
                 f"build-system): {got[n]}" for n in sorted(set(got) - set(want))]
    problems += [f"{n}: pyproject.toml says {want[n]!s}, binder/environment.yml says {got[n]!s}"
                 for n in sorted(set(want) & set(got)) if _shape(want[n]) != _shape(got[n])]
    return problems


def test_binder_installs_what_pyproject_declares():
    problems = differences((ROOT / "pyproject.toml").read_text(), (BINDER / "environment.yml").read_text())
    assert not problems, "\n".join(problems)


def test_the_comparison_catches_drift():
    """Each kind of drift is reported (so the test above can fail)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    env = (BINDER / "environment.yml").read_text()
    assert "- pandas>=2.1,<4\n" in env and "- shap>=0.46\n" in env and "- uvloop>=0.19; sys_platform" in env
    for changed, expect in [
        (env.replace("- pandas>=2.1,<4\n", "- pandas>=2.1,<3\n"), "pandas: pyproject.toml says pandas<4,>=2.1"),
        (env.replace("- pandas>=2.1,<4\n", "- pandas\n"), "pandas: pyproject.toml says"),
        (re.sub(r"\n *- shap>=0.46\n", "\n", env), "missing from binder/environment.yml: shap>=0.46"),
        (env.replace("- shap>=0.46\n", "- shap>=0.46\n      - xgboost>=2.0\n"), "but not in pyproject.toml"),
        (env.replace("sys_platform != 'win32'", "sys_platform == 'linux'"), "uvloop: pyproject.toml says"),
        (env.replace("- scikit-learn>=1.4,<2\n", "- scikit_learn>=1.4,<2\n"), None),  # the same name, normalized
        (env.replace("- scikit-learn>=1.4,<2\n", "- scikit-learn<2,>=1.4\n"), None),  # the same bounds, reordered
    ]:
        assert changed != env
        found = differences(pyproject, changed)
        if expect is None:
            assert found == []
        else:
            assert len(found) == 1 and expect in found[0], found
    # and a bound changed in pyproject.toml only
    assert differences(pyproject.replace('"lime>=0.2"', '"lime>=0.3"'), env) == [
        "lime: pyproject.toml says lime>=0.3, binder/environment.yml says lime>=0.2"]


def test_binder_conda_part_has_python_node_and_pip_only():
    conda, pip = binder_installs((BINDER / "environment.yml").read_text())
    assert yaml.safe_load((BINDER / "environment.yml").read_text())["channels"] == ["conda-forge"]
    names = {re.split(r"[=<>! ]", d, maxsplit=1)[0] for d in conda}
    assert names == {"python", "nodejs", "pip"}, conda  # everything else comes from the pip list, checked above
    python = next(d for d in conda if d.startswith("python"))
    m = re.fullmatch(r"python\s*=\s*(\d+\.\d+)", python)
    assert m, f"pin Python to a minor version: {python}"
    requires = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    assert Version(m.group(1)) in requires
    node = next(d for d in conda if d.startswith("nodejs"))
    bound = re.fullmatch(r"nodejs\s*>=\s*(\d+)", node)
    assert bound and int(bound.group(1)) >= 20, node  # the TypeScript build (@jupyter/builder) needs a current Node
    assert not names & set(pip)


def test_postbuild_builds_the_package_and_nothing_else():
    post = BINDER / "postBuild"
    assert os.access(post, os.X_OK) and post.read_text().startswith("#!/bin/bash\n")
    text = post.read_text()
    assert "set -euo pipefail" in text
    commands = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    installs = [c for c in commands if re.search(r"\b(pip|conda|mamba|npm|jlpm)\b.*\binstall\b", c)]
    assert installs == ["python -m pip install --no-deps --no-build-isolation --no-cache-dir ."], installs
    # the panel must be there when the image is built, not found missing at launch
    assert any("jupyter labextension list" in c and "mlops-jupyter" in c for c in commands)
    assert any("jupyter server extension list" in c and "mlops_jupyter" in c for c in commands)
    # JupyterLab opens with the quickstart
    imports = [c for c in commands if c.startswith("jupyter lab workspaces import ")]
    assert imports == ["jupyter lab workspaces import binder/workspace.json"]
    workspace = json.loads((BINDER / "workspace.json").read_text())
    main = workspace["data"]["layout-restorer:data"]["main"]
    assert main["current"] == "notebook:notebooks/quickstart.ipynb" in main["dock"]["widgets"]
    opened = workspace["data"]["notebook:notebooks/quickstart.ipynb"]["data"]["path"]
    assert (ROOT / opened).is_file() and workspace["metadata"]["id"] == "default"


def test_readme_badge_launches_the_quickstart():
    import re
    from urllib.parse import parse_qs, urlparse

    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((https://mybinder\.org/v2/gh/[^)]+)\)", readme)
    assert len(links) == 1, links
    start = parse_qs(urlparse(links[0]).query)["urlpath"][0]
    assert start.startswith("lab/tree/")
    assert (ROOT / start.removeprefix("lab/tree/")).is_file(), start
    assert start.endswith("notebooks/quickstart.ipynb")
