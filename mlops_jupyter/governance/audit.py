"""``mlops model audit churn@v3``: what a version's file would do when loaded, whether its bytes are still
the ones registered, and the dependencies pinned for its job's image with their licences.

- A pickle is scanned by picklescan (:mod:`mlops_jupyter.store.pickles`): the globals it imports or
  calls outside the safe list. Other formats load without running code from the file; a skops file
  names the types it was trusted with when registered.
- The file is read back through the blob store, which hashes it: BLAKE3 must equal the digest the
  registry holds.
- The job that registers the model (job.toml's ``[model] name``) pins its image's requirements in
  ``requirements.txt``; each is listed with the licence its installed distribution declares
  (``License-Expression``, else ``License``, else the ``License ::`` classifiers), or "not installed
  here". Without a job, the version's own library is listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import rendering
from ..exceptions import IntegrityError, MlopsError, NotFound


@dataclass
class AuditReport:
    ref: str
    flavor: str
    digest: str
    size: int
    scan: dict | None  # a pickle's scan (store.pickles), None for formats that run no code
    safe_format: str | None  # why a format that is not a pickle runs no code when loaded
    digest_ok: bool | None
    digest_note: str
    job: str | None = None
    dependencies: list[dict] = field(default_factory=list)  # name, version, licence
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        from ..store.pickles import unsafe

        return self.digest_ok is not False and (self.scan is None or not unsafe(self.scan))

    @property
    def verdict(self) -> str:
        from ..store.pickles import describe

        if self.digest_ok is False:
            return f"the file no longer matches the registry ({self.digest_note})"
        if self.scan is not None and not self.ok:
            return f"unsafe: the pickle {describe(self.scan)}"
        if self.scan is not None:
            return f"a pickle (loaded only with --pickle): {describe(self.scan)}"
        return f"safe to load: {self.safe_format}"

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)

    def __str__(self) -> str:
        return rendering.render(self, rendering.TEXT)


SAFE_FORMATS = {
    "sklearn": "skops, which builds only the types trusted when it was registered",
    "xgboost": "XGBoost's own UBJSON model format (data, no code)",
    "lightgbm": "LightGBM's model text (data, no code)",
    "torch": "a torch.export program with safetensors weights (no pickle)",
    "keras": "a .keras archive (JSON configuration and HDF5 weights), loaded in Keras' safe mode",
}


def audit(ref: str, store=None, dependencies: bool = True) -> AuditReport:
    """The audit of version *ref* (see the module docstring)."""
    from ..models.registry import Registry
    from ..store import open_store

    store = store or open_store()
    v = Registry(store).get(ref)
    data = None
    try:  # the blob store hashes what it reads and raises IntegrityError when it differs from the digest
        if v.flavor == "pickle":  # its bytes are scanned next
            data = store.blobs.get_bytes(v.digest)
        else:  # read through, not held: a network's file can be large
            for _ in store.blobs.iter_chunks(v.digest):
                pass
        digest_ok, note = True, "BLAKE3 of the stored file equals the registry's digest"
    except IntegrityError as e:
        digest_ok, note = False, str(e)
    except NotFound:
        digest_ok, note = False, "the file is missing from the blob store"
    except MlopsError as e:
        digest_ok, note = None, f"could not be read: {e}"
    scan = None
    if v.flavor == "pickle" and data is not None:
        from ..store.pickles import scan_pickle

        scan = scan_pickle(data)
    rep = AuditReport(v.ref, v.flavor, v.digest, v.size, scan, SAFE_FORMATS.get(v.flavor), digest_ok, note)
    if v.flavor == "sklearn" and v.trusted:
        rep.notes.append(f"skops trusts {len(v.trusted)} type(s) for this file: "
                         + ", ".join(v.trusted[:6]) + (", ..." if len(v.trusted) > 6 else ""))
    if dependencies:
        rep.job, rep.dependencies = _dependencies(v)
        if rep.job is None:
            rep.notes.append(f"no job registers {v.name}: the version's own library is listed")
    return rep


def _dependencies(v) -> tuple[str | None, list[dict]]:
    from ..jobs.spec import iter_jobs

    for _folder, spec, _problem in iter_jobs():
        if spec is not None and spec.model == v.name and spec.folder is not None:
            path = spec.folder / "requirements.txt"
            if path.is_file():
                return spec.name, [_licence(name, version) for name, version in _pins(path.read_text())]
    if v.library:
        return None, [_licence(v.library, v.library_version)]
    return None, []


def _pins(text: str) -> list[tuple[str, str | None]]:
    """(name, the version ``==`` pins or None) of each requirement line; pip's options (``-r``,
    ``--index-url``) and lines that are not requirements (a URL) are skipped."""
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        out.append((req.name, next((s.version for s in req.specifier if s.operator == "=="), None)))
    return out


def _licence(name: str, pinned: str | None) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, metadata, packages_distributions

    try:
        md = metadata(name)
    except PackageNotFoundError:
        dists = packages_distributions().get(name)  # an import name (sklearn): its distribution
        try:
            md = metadata(dists[0]) if dists else None
        except PackageNotFoundError:
            md = None
        if md is None:
            return {"name": name, "version": pinned, "licence": "not installed here", "installed": None}
        name = md.get("Name") or name
    licence = md.get("License-Expression") or ""
    if not licence:
        text = (md.get("License") or "").strip()
        licence = text.splitlines()[0][:80] if text and len(text) < 200 else ""
    if not licence:
        classes = [c.split("::")[-1].strip() for c in md.get_all("Classifier") or [] if c.startswith("License ::")]
        licence = ", ".join(classes)
    return {"name": name, "version": pinned, "licence": licence or "not declared", "installed": md.get("Version")}
