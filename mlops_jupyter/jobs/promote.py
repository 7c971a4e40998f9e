"""``mlops promote``: turn a working notebook into a job folder.

``jobs/NAME/`` gets the notebook (outputs stripped, one ``parameters`` cell, ``skip-job`` cells
dropped), ``job.toml``, ``requirements.txt`` (what the notebook imports, pinned to what is
installed), a ``Dockerfile`` with ``serve`` and ``retrain`` commands, Kubernetes manifests, CI
files and a README. The folder is written next to the old one and swapped in, so a failure
leaves either the old folder or the new one, never half of each. A manifest of what was written
(``.promoted.json``) tells a folder edited by hand from one only promote has touched.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import BadInput, NotFound
from . import templates
from .cells import cell_python
from .parameters_cell import PYTHON_KERNEL, first_cell_parameters, infer_parameters, parameters_source
from .params import Parameter, check_identifier, storable, type_of
from .spec import JOB_FILE, NOTEBOOK, JobSpec, check_cron, check_job_name, check_retrain, direction_for

MANIFEST = ".promoted.json"
DEFAULT_RULE = "drift_share > 0.3"  # what `mlops monitor check` retrains on unless --retrain-when says otherwise
PARAMETERS_TAG = "parameters"
SKIP_TAG = "skip-job"


@dataclass
class Promotion:
    spec: JobSpec
    folder: Path
    files: dict[str, str]  # relative path -> content
    notes: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    created: bool = True

    def __str__(self) -> str:
        head = (f"promoted {self.spec.source or 'the notebook'} to {self.folder}" if self.created
                else f"updated {self.folder}")
        lines = [head]
        lines += [f"  {n}" for n in self.notes]
        if not self.created:
            lines.append("  changed: " + (", ".join(self.changed) if self.changed else "nothing"))
        lines.append(f"  run it: mlops job run {self.spec.name}"
                     + (f"   retrain: mlops retrain {self.spec.name}   build: mlops job build {self.spec.name}"
                        if self.spec.serves else f"   build: mlops job build {self.spec.name}"))
        return "\n".join(lines)


# -- the notebook ---------------------------------------------------------------------------------
def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def prepare_notebook(nb, params: dict[str, Any]) -> tuple[Any, dict[str, Parameter], list[str]]:
    """The job's notebook: outputs stripped, skip-job cells dropped, exactly one parameters cell.

    Returns (notebook, parameters, notes for the user)."""
    import nbformat

    notes: list[str] = []
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a deep copy
    kept = []
    dropped = 0
    for cell in nb.cells:
        if SKIP_TAG in _tags(cell):
            dropped += 1
            continue
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
            cell.metadata.pop("collapsed", None)
            cell.metadata.pop("scrolled", None)
        kept.append(cell)
    nb.cells = kept
    if dropped:
        notes.append(f"dropped {dropped} cell(s) tagged {SKIP_TAG}")
    nb.metadata.pop("papermill", None)
    ks = nb.metadata.get("kernelspec") or {}
    if (ks.get("language") or "python") != "python":
        raise BadInput(f"jobs run Python notebooks; this one's kernel is {ks.get('display_name') or ks.get('name')}")
    if ks.get("name") != "python3":  # the kernel every image and CI runner has
        if ks.get("name"):
            notes.append(f"kernel {ks['name']!r} replaced by python3 (the one the image and CI have)")
        nb.metadata["kernelspec"] = dict(PYTHON_KERNEL)
    tagged = [i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in _tags(c)]
    if len(tagged) > 1:
        raise BadInput(f"the notebook has {len(tagged)} cells tagged {PARAMETERS_TAG!r} (cells "
                       f"{', '.join(str(i + 1) for i in tagged)}); papermill needs exactly one")
    found: dict[str, Parameter] = {}
    cell_notes: list[str] = []
    if tagged:
        cell = nb.cells[tagged[0]]
        if cell.cell_type != "code":
            raise BadInput(f"cell {tagged[0] + 1} is tagged {PARAMETERS_TAG!r} but is not a code cell")
        found, cell_notes = infer_parameters(cell.source)
        index = tagged[0]
        where = "the notebook's parameters cell (read by papermill's inspection)"
    else:
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        index = code[0] if code else 0
        first = nb.cells[index] if code else None
        if not params and first is not None:
            found, lines = first_cell_parameters(first.source)
            if found:
                src = first.source.splitlines()
                code_src = cell_python(first.source) or ""
                if len(code_src.splitlines()) == len(src):  # magics kept the line numbers: move the lines
                    rest = [line for i, line in enumerate(src, 1) if i not in lines]
                    first.source = "\n".join(rest).strip("\n")
                    if not first.source.strip():
                        nb.cells.pop(index)
                else:  # left in place they would overwrite papermill's values: no parameters from there
                    notes.append("the first code cell's assignments could not be moved out of it (its magics "
                                 "change its line numbers): tag a parameters cell or use --param")
                    found = {}
        where = "the first code cell's literal assignments" if found else "--param"
    parameters = dict(found)
    for name, v in params.items():
        check_identifier(name)
        if type_of(v) is None:
            raise BadInput(f"parameter {name}: {v!r} is not a literal papermill can pass (a number, text, "
                           "true/false, None, a list or a mapping)")
        old = parameters.get(name)
        try:  # a new default keeps the notebook's annotation and help
            parameters[name] = Parameter.from_default(name, v, old.help if old else "",
                                                      annotation=old.annotation if old else None)
        except BadInput as e:
            raise BadInput(f"--param {name}: the notebook annotates it as {old.annotation if old else '?'}: {e}"
                           ) from None
    if tagged:
        if params:  # new defaults from --param: rewrite the cell
            nb.cells[index].source = parameters_source(parameters)
            notes.append(f"parameters cell updated with --param defaults: {', '.join(params)}")
    elif parameters:
        cell = nbformat.v4.new_code_cell(parameters_source(parameters), metadata={"tags": [PARAMETERS_TAG]})
        nb.cells.insert(index, cell)
        notes.append(f"made a {PARAMETERS_TAG!r} cell from {where}: {', '.join(parameters)} became parameters")
    else:
        notes.append("no parameters (no parameters cell, no --param, no literal assignments in the first code "
                     "cell): the job runs as it is")
    if tagged and not params:
        notes.append(f"parameters from {where}: {', '.join(parameters) or 'none'}")
    notes += cell_notes
    nb.nbformat, nb.nbformat_minor = 4, max(int(nb.get("nbformat_minor", 5)), 5)
    for i, cell in enumerate(nb.cells):  # ids stay unique after cells were dropped or added
        cell["id"] = f"cell-{i}"
    nbformat.validate(nb)
    return nb, parameters, notes


# -- requirements -----------------------------------------------------------------------------------
def imported_modules(nb) -> list[str]:
    """Top-level modules the notebook imports (and IPython extensions it loads)."""
    mods: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            s = line.strip()
            if s.startswith("%load_ext "):
                mods.extend(w.split(".")[0] for w in s.split()[1:])
        code = cell_python(cell.source)
        if code is None:
            continue
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                mods.extend(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.append(node.module.split(".")[0])
    seen: list[str] = []
    for m in mods:
        if m not in seen:
            seen.append(m)
    return seen


def requirements(nb) -> tuple[list[str], list[str]]:
    """Pinned requirement lines for what the notebook imports, and modules not found installed."""
    import importlib.metadata as md

    from .._version import __version__

    dists = md.packages_distributions()
    lines = {"mlops-jupyter": f"mlops-jupyter=={__version__}"}
    missing = []
    for mod in imported_modules(nb):
        if mod in sys.stdlib_module_names or mod == "mlops_jupyter":
            continue
        names = dists.get(mod)
        if not names:
            missing.append(mod)
            continue
        for dist in names:
            try:
                version = md.version(dist)
            except md.PackageNotFoundError:
                missing.append(mod)
                continue
            key = dist.lower().replace("_", "-")
            public, _, local = version.partition("+")
            # A local build label (torch's +cpu, +cu121) names a wheel of another index than PyPI: pin the
            # release, which any index resolves (the image's pip finds the CPU build where it is offered)
            lines.setdefault(key, f"{key}=={public}" + (f"  # here: {version}" if local else ""))
    return [lines[k] for k in sorted(lines)], missing


def _shared_store(root: Path) -> bool:
    """True when the project at *root* keeps its metadata in PostgreSQL, its blobs in an object store,
    or encrypts them: what the job's image needs the ``team`` extra for."""
    from ..config import settings
    from ..store.crypto import KEY_ENV

    cfg = settings(root, create=False)  # the environment, then the project's config (none: defaults)
    remote = "://" in cfg.artifacts_url and not cfg.artifacts_url.startswith("file://")  # as BlobStore tells
    return (cfg.store_url.startswith("postgresql") or remote or bool(cfg.encryption_key_file)
            or bool(os.environ.get(KEY_ENV)))


# -- the folder -------------------------------------------------------------------------------------
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _relative(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:  # another drive (Windows)
        return str(path)


def promote_notebook(notebook: str | os.PathLike, name: str, model: str | None = None, metric: str | None = None,
                     params: dict[str, Any] | None = None, direction: str | None = None, alias: str = "production",
                     schedule: str | None = None, image: str | None = None, smoke: dict[str, Any] | None = None,
                     force: bool = False, root: str | os.PathLike | None = None,
                     retrain_when: str | None = None, gate: dict[str, Any] | None = None) -> Promotion:
    """Write (or update) ``jobs/NAME/`` from *notebook*; see the module docstring."""
    import nbformat

    from .._version import __version__
    from ..config import find_root

    check_job_name(name)
    nb_path = Path(notebook).resolve()
    if not nb_path.is_file():
        raise NotFound(f"no notebook at {notebook}")
    if metric and not model:
        raise BadInput("--metric compares models: give --model too")
    if schedule:
        schedule = check_cron(schedule)
    if direction is not None and direction not in ("max", "min"):
        raise BadInput(f"--direction is max or min, not {direction!r}")
    if model:
        from ..data.catalog import check_name
        from ..models.registry import check_alias

        check_name(model, "model")
        check_alias(alias)
    try:
        nb = nbformat.read(str(nb_path), as_version=4)
    except Exception as e:
        raise BadInput(f"{notebook} is not a readable notebook: {e}") from None
    job_nb, parameters, notes = prepare_notebook(nb, dict(params or {}))
    model_note = job_model_note(job_nb, model, alias, nb_path.name, name, metric) if model else None
    base = Path(root) if root else (find_root(nb_path.parent) or nb_path.parent)
    folder = base / "jobs" / name
    spec = JobSpec(name=name, parameters=parameters, model=model, metric=metric,
                   direction=direction or (direction_for(metric) if metric else "max"), alias=alias,
                   schedule=schedule, image=image or f"mlops/{name}:{__version__}",
                   source=_relative(nb_path, base), workdir=_relative(nb_path.parent, folder), folder=folder)
    spec.smoke = spec.check_params(dict(smoke or {}), "--smoke: ")
    for k, val in spec.smoke.items():
        if not storable(val):
            raise BadInput(f"--smoke {k}: job.toml cannot hold {val!r} (TOML has no null)")
    spec.retrain = {"retrain_when": retrain_when or DEFAULT_RULE, "window": "24h"} if model else {}
    if retrain_when and not model:
        raise BadInput("--retrain-when needs --model: a plain batch job has no model to monitor")
    check_retrain(spec.retrain, spec)
    if gate:
        from .gate import check_gate

        if not model:
            raise BadInput("--gate needs --model: the gate decides about the model's alias")
        spec.gate = check_gate({k: v for k, v in gate.items() if v is not None})
        notes.append(f"a challenger takes {model}@{alias} only if, evaluated on {spec.gate['data']}, "
                     f"{spec.gate['rule']}")
        notes.append(f"models are compared on {metric} ({'higher' if spec.direction == 'max' else 'lower'} is "
                     f"better); the champion holds {model}@{alias}")
    if model_note:
        notes.append(model_note)
    reqs, missing = requirements(job_nb)
    if _shared_store(base):  # the image then needs the drivers the project's store does
        reqs = [f"mlops-jupyter[team]=={__version__}" if r.startswith("mlops-jupyter==") else r for r in reqs]
        notes.append("the project uses a shared store: the image installs mlops-jupyter[team] (psycopg, s3fs, "
                     "cryptography); give it MLOPS_STORE_URL and MLOPS_ARTIFACTS_URL when it runs")
    if missing:
        notes.append(f"not installed here, so not in requirements.txt: {', '.join(missing)}")
    files = {
        NOTEBOOK: nbformat.writes(job_nb) + "\n",
        JOB_FILE: spec.to_toml(),
        "requirements.txt": "\n".join(reqs) + "\n",
        "Dockerfile": templates.dockerfile(spec),
        ".dockerignore": templates.DOCKERIGNORE,
        "entrypoint.sh": templates.entrypoint(spec),
        "k8s/deployment.yaml": templates.k8s_deployment(spec) if spec.serves else None,
        "k8s/service.yaml": templates.k8s_service(spec) if spec.serves else None,
        "k8s/cronjob.yaml": templates.k8s_cronjob(spec),
        "k8s/cronjob-monitor.yaml": templates.k8s_cronjob(spec, "check") if spec.serves else None,
        "ci/github-workflow.yml": templates.github_workflow(spec),
        "ci/gitlab-ci.yml": templates.gitlab_ci(spec),
        "wheelhouse/README.md": templates.WHEELHOUSE_README,
        "wheelhouse/.gitignore": "*.whl\n",
        "README.md": templates.readme(spec),
    }
    files = {k: v for k, v in files.items() if v is not None}
    promotion = Promotion(spec, folder, files, notes)
    _write_folder(promotion, force)
    if promotion.created or promotion.changed:
        from ..store import audit, open_store

        open_store().meta.run_transaction(lambda c: audit.record(
            c, "promote", spec.name, None if promotion.created else "updated", spec.source,
            {"folder": str(folder), "model": spec.model, "alias": spec.alias, "changed": promotion.changed}))
    return promotion


def job_model_note(nb, model: str, alias: str, label: str, job: str, metric: str | None = None) -> str | None:
    """Check that the job's model will exist: registered already, or registered by the notebook
    (its first execution then creates ``MODEL@v1``). Returns a note for the user, or None.

    Raises:
        NotFound: no model of that name is registered and the notebook visibly registers none,
            with a did-you-mean over registered names and the names the notebook registers.
    """
    import difflib

    from ..models.registry import Registry
    from ..store import open_store
    from .registrations import registrations

    reg = Registry(open_store())
    found = registrations(nb)
    mine = [r for r in found if r.name == model]
    computed = [r for r in found if r.name is None]
    if reg.has_model(model):
        if mine or computed:
            return None
        return (f"{label} registers no model named {model} that promote can see: an execution that registers none "
                f"leaves {model}@{alias} where it is")
    if mine:
        # decide() finds no champion, so the first challenger becomes v1 and takes the alias
        return (f"{label} registers {model} (cell {mine[0].cell}, {mine[0].how}) and {model} has no version yet: "
                f"the first execution (mlops job run {job}, or mlops retrain {job}) creates {model}@v1, which "
                f"takes @{alias} (there is no champion yet{f'; the execution must log {metric}' if metric else ''})")
    theirs = sorted({r.name for r in found if r.name})
    models = reg.models()
    known = sorted(set(models["name"] if not models.empty else []) | set(theirs))
    close = difflib.get_close_matches(model, known, n=3)
    said = f" (it registers {', '.join(theirs)})" if theirs else ""
    guess = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    hidden = (f"; cell {computed[0].cell} registers a model whose name is computed, which promote cannot read: "
              "run the notebook once" if computed else "")
    raise NotFound(f"no model named {model!r} is registered, and {label} registers none under that name{said}"
                   f"{guess}{hidden} (register it in the notebook: %mlops model register VAR --name {model}; "
                   "or leave out --model for a plain job)")


def _write_folder(p: Promotion, force: bool) -> None:
    folder = p.folder
    old_manifest: dict[str, str] = {}
    if folder.exists():
        p.created = False
        try:
            old_manifest = json.loads((folder / MANIFEST).read_text())["files"]
        except (OSError, ValueError, KeyError):
            if not force:
                raise BadInput(f"{folder} exists and was not written by mlops promote (no {MANIFEST}): "
                               "pass --force to replace it") from None
        edited = []
        for rel, digest in old_manifest.items():
            f = folder / rel
            if f.is_file() and _digest(f.read_text(encoding="utf-8", errors="replace")) != digest:
                edited.append(rel)
        if edited and not force:
            raise BadInput(f"{folder} was edited by hand since it was promoted ({', '.join(sorted(edited))}): "
                           "pass --force to overwrite, or keep your edits and leave it")
        for rel, text in p.files.items():
            if old_manifest.get(rel) != _digest(text) or not (folder / rel).is_file():
                p.changed.append(rel)
        p.changed += [f"{rel} (removed)" for rel in old_manifest if rel not in p.files]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    try:
        for rel, text in p.files.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8")
            if rel.endswith(".sh"):
                dest.chmod(0o755)
        if folder.exists():  # keep what the user added that promote does not write (data, notes, ...)
            for f in folder.rglob("*"):
                rel = f.relative_to(folder).as_posix()
                if f.is_file() and rel not in p.files and rel not in old_manifest and rel != MANIFEST:
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, tmp / rel)
        (tmp / MANIFEST).write_text(json.dumps({"files": {k: _digest(v) for k, v in p.files.items()}},
                                               indent=1, sort_keys=True) + "\n")
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
            try:
                os.replace(tmp, folder)
            except BaseException:
                os.replace(old, folder)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def current_notebook() -> Path:
    """The notebook this kernel runs (for ``%mlops promote`` without a path)."""
    from ..tracking.notebook import notebook_path

    path = notebook_path()
    if not path or not str(path).endswith(".ipynb") or not Path(path).is_file():
        raise NotFound("cannot tell which notebook this kernel runs: give its path, "
                       "%mlops promote NOTEBOOK --name ...")
    return Path(path)
