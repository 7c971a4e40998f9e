"""The house plan (ARCHITECTURE.md) holds: import contracts (import-linter, over every import,
those inside functions too), each shown to fail when broken on purpose; every area in a layer;
no module over 700 lines; no private name used across modules."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from collections import defaultdict
from pathlib import Path

import pytest

from .conftest import python_env

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mlops_jupyter"
LINT_IMPORTS = [sys.executable, "-c", "import sys\nfrom importlinter.cli import lint_imports_command\n"
                "sys.exit(lint_imports_command())"]
MAX_LINES = 700


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _lint(cwd: Path, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    pytest.importorskip("importlinter")  # installed on Python 3.11 and later (the test extra)
    env = python_env()
    if pythonpath is not None:  # the copy is imported, not the installed package
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([*LINT_IMPORTS, "--no-cache", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_import_contracts_are_kept():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BROKEN" not in r.stdout


def test_every_area_is_in_a_layer():
    """A new top-level module or package is placed in the plan, or this fails (an unlisted area
    would escape the layers contract)."""
    layers = next(c for c in _config()["contracts"] if c["id"] == "layers")["layers"]
    listed = {name.strip("() ") for layer in layers for name in layer.replace("|", ":").split(":")}
    areas = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    unplaced = areas - listed - {"__init__", "__main__", "_version"}
    assert not unplaced, f"not in any layer of pyproject's [tool.importlinter]: {sorted(unplaced)}"


# One violation per contract, each in a copy of the package: (contract, file, the import added).
BREAKS = {
    "layers": ("tracking/values.py", "from ..widgets import html  # domain importing a face"),
    "areas-acyclic": ("tracking/values.py", "from ..data import catalog  # data imports tracking"),
    "domain-no-ui": ("models/signature.py", "import IPython  # the domain importing the kernel's UI"),
}


@pytest.mark.parametrize("contract", sorted(BREAKS))
def test_each_contract_fails_when_broken_on_purpose(contract, tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "mlops_jupyter", ignore=shutil.ignore_patterns(
        "__pycache__", "labextension", "*.js", "*.css", "*.map"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    kept = _lint(copy, "--contract", contract, pythonpath=copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr  # the untouched copy keeps it

    module, line = BREAKS[contract]
    target = copy / "mlops_jupyter" / module
    target.write_text(target.read_text() + f"\n\ndef _broken():\n    {line}\n")  # inside a function
    broken = _lint(copy, "--contract", contract, pythonpath=copy)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    name = next(c["name"] for c in _config()["contracts"] if c["id"] == contract)
    assert f"{name} BROKEN" in " ".join(broken.stdout.split()), broken.stdout


def test_no_module_is_over_700_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (at most {MAX_LINES} lines): {long}"


# Private names that are public API of the libraries they come from.
THIRD_PARTY = {"_mapping", "_asdict", "_fields", "_replace", "_repr_html_", "_repr_mimebundle_",
               "_repr_markdown_", "_repr_png_", "_repr_svg_", "_repr_json_", "_ipython_display_"}


def private_uses(package: Path) -> list[str]:
    """Uses of a name that starts with one underscore outside the module defining it: imported
    (``from .x import _y``) or reached as an attribute (``store.meta._y``) when the package defines
    it elsewhere only."""
    trees = {}
    defined = defaultdict(set)
    for path in package.rglob("*.py"):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        tree = ast.parse(path.read_text(), str(path))
        trees[path] = (module, tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined[node.name].add(module)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        defined[t.id].add(module)
                    elif isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                        defined[t.attr].add(module)

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__") and name not in THIRD_PARTY

    found = []
    for path, (module, tree) in trees.items():
        where = path.relative_to(package.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(package.name)):
                found += [f"{where}:{node.lineno} imports {a.name}" for a in node.names
                          if private(a.name) and a.name != "_version"]
            elif isinstance(node, ast.Attribute) and private(node.attr):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                owners = defined.get(node.attr, set())
                if owners and module not in owners:
                    found.append(f"{where}:{node.lineno} uses .{node.attr} of {', '.join(sorted(owners))}")
    return sorted(found)


def test_no_private_name_is_used_across_modules():
    assert private_uses(PACKAGE) == []


def test_the_private_name_check_finds_a_use(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("def _helper():\n    pass\n\nclass Store:\n    def _retry(self):\n"
                                           "        pass\n")
    (tmp_path / "pkg" / "b.py").write_text("from .a import _helper\n\ndef f(store):\n    store._retry()\n")
    assert private_uses(tmp_path / "pkg") == ["pkg/b.py:1 imports _helper", "pkg/b.py:4 uses ._retry of pkg.a"]
