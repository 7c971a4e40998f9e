"""Housekeeping of a store: garbage-collect unreferenced blobs, verify every blob, and check that the
files of model versions stored as archives (PyTorch programs, Keras ``.keras`` files) can be read."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field

from ..exceptions import IntegrityError, NotFound


@dataclass
class GcReport:
    removed: int = 0
    freed: int = 0
    kept: int = 0
    dry_run: bool = False
    tmp_removed: int = 0

    def __str__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (f"gc: {verb} {self.removed} unreferenced blobs ({self.freed:,} bytes); "
                f"{self.kept} blobs in use")


@dataclass
class FsckReport:
    checked: int = 0
    corrupted: list[tuple[str, list[str]]] = field(default_factory=list)
    missing: list[tuple[str, list[str]]] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (model NAME@vN (flavor), what is wrong)
    unsafe: list[tuple[str, str]] = field(default_factory=list)  # (NAME@vN, what loading its pickle would run)

    @property
    def ok(self) -> bool:
        return not self.corrupted and not self.missing and not self.damaged and not self.unsafe

    def __str__(self) -> str:
        lines = [f"fsck: {self.checked} blobs checked, {len(self.corrupted)} corrupted, "
                 f"{len(self.missing)} missing" + (f", {len(self.damaged)} damaged models" if self.damaged else "")
                 + (f", {len(self.unsafe)} unsafe pickles" if self.unsafe else "")]
        for label, items in (("corrupted", self.corrupted), ("missing", self.missing)):
            for digest, users in items:
                lines.append(f"  {label} {digest[:16]}  used by: {', '.join(users) or 'nothing'}")
        for version, problem in self.damaged:
            lines.append(f"  damaged {version}: {problem}")
        for version, problem in self.unsafe:
            lines.append(f"  unsafe {version}: {problem}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Archive:
    """What a model file of one flavor holds: a zip with these members, some JSON, some safetensors
    (an 8-byte little-endian header length, then a JSON header), some HDF5."""

    members: tuple[str, ...]
    json: tuple[str, ...] = ()
    safetensors: tuple[str, ...] = ()
    hdf5: tuple[str, ...] = ()


# The model flavors whose files fsck opens, by the standard library alone: fsck imports neither
# torch nor keras. Kept in step with models/torch_format.FILES and Keras' .keras layout
# (tests/test_nets_integrations.py compares them).
MODEL_ARCHIVES = {
    "torch": Archive(("program.json", "weights.safetensors", "constants.safetensors", "example.safetensors"),
                     json=("program.json",),
                     safetensors=("weights.safetensors", "constants.safetensors", "example.safetensors")),
    "keras": Archive(("config.json", "model.weights.h5", "metadata.json"), json=("config.json", "metadata.json"),
                     hdf5=("model.weights.h5",)),
}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def archive_problem(data: bytes, archive: Archive) -> str | None:
    """What keeps *data* from being read as *archive* (one phrase), or None when it reads."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
            missing = [m for m in archive.members if m not in names]
            if missing:
                return f"{', '.join(missing)} missing from the archive"
            for name in archive.members:
                problem = _member_problem(name, z.read(name), archive)
                if problem:
                    return f"{name}: {problem}"
    except zipfile.BadZipFile as e:
        return f"not a readable zip archive ({e})"
    except (zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, zlib.error) as e:
        # a member cut short (EOFError), a broken deflate stream (zlib.error), an unknown compression
        return f"the archive cannot be read ({type(e).__name__}: {e})"
    return None


def _member_problem(name: str, data: bytes, archive: Archive) -> str | None:
    if name in archive.json:
        try:
            json.loads(data)
        except ValueError:
            return "not JSON"
    elif name in archive.safetensors:
        return _safetensors_problem(data)
    elif name in archive.hdf5 and not data.startswith(HDF5_SIGNATURE):
        return "not an HDF5 file"
    return None


def _safetensors_problem(data: bytes) -> str | None:
    if len(data) < 8:
        return "shorter than a safetensors header"
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        return f"safetensors header of {size} bytes in a {len(data)}-byte file"
    try:
        header = json.loads(data[8:8 + size])
    except ValueError:
        return "safetensors header is not JSON"
    if not isinstance(header, dict):
        return "safetensors header is not a JSON object"
    body = len(data) - 8 - size
    for key, t in header.items():
        if key == "__metadata__":
            continue
        offsets = t.get("data_offsets") if isinstance(t, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1] <= body):
            return f"tensor {key} lies outside the file"
    return None


def gc(store, dry_run: bool = False) -> GcReport:
    """Delete blobs that no run, dataset or model references."""
    if not dry_run:
        from .access import gc_gate

        gc_gate(store)  # on the shared store, only admins may
    store.writer.flush()
    keep = store.meta.referenced_digests()
    report = GcReport(dry_run=dry_run)
    for digest in list(store.blobs.digests()):
        if digest in keep:
            report.kept += 1
            continue
        report.removed += 1
        report.freed += store.blobs.size(digest)
        if not dry_run:
            store.blobs.delete(digest)
    if not dry_run:
        report.tmp_removed = store.blobs.clean_tmp()
        if report.removed:
            from . import audit

            store.meta.run_transaction(lambda c: audit.record(c, "gc", store.settings.artifacts_url, None, None,
                                                        {"removed": report.removed, "freed": report.freed}))
    return report


def fsck(store, progress=None) -> FsckReport:
    """Re-hash every referenced blob; report corrupted and missing ones with their users, model
    versions whose archive (:data:`MODEL_ARCHIVES`) does not read, and pickled versions that would run
    something dangerous when loaded, one line each."""
    store.writer.flush()
    report = FsckReport()
    present = set(store.blobs.digests())
    referenced = sorted(store.meta.referenced_digests() | present)
    opened = _versions_stored_as(store, {*MODEL_ARCHIVES, "pickle"})  # files fsck opens, not only hashes
    iterator = progress(referenced) if progress else referenced
    for digest in iterator:
        report.checked += 1
        if digest not in present:
            report.missing.append((digest, store.meta.blob_users(digest)))
        elif digest in opened:
            try:
                data = store.blobs.get_bytes(digest)  # one read: hashed, then opened
            except (IntegrityError, NotFound):  # as verify() counts them
                report.corrupted.append((digest, store.meta.blob_users(digest)))
                continue
            scan = None
            for label, flavor in opened[digest]:
                if flavor == "pickle":  # what loading it would run, read without running it
                    from .pickles import describe, scan_pickle, unsafe

                    scan = scan or scan_pickle(data)
                    if unsafe(scan):
                        report.unsafe.append((label, describe(scan)))
                    continue
                problem = archive_problem(data, MODEL_ARCHIVES[flavor])
                if problem:
                    report.damaged.append((f"model {label} ({flavor})", problem))
        elif not store.blobs.verify(digest):
            report.corrupted.append((digest, store.meta.blob_users(digest)))
    report.damaged.sort()  # by model and version, not by digest
    report.unsafe.sort()
    return report


def _versions_stored_as(store, flavors: set[str]) -> dict[str, list[tuple[str, str]]]:
    """digest -> [(NAME@vN, flavor)] of the model versions stored in one of *flavors*."""
    import sqlalchemy as sa

    from . import schema as S

    mv = S.model_versions
    out: dict[str, list[tuple[str, str]]] = {}
    with store.meta.read() as conn:
        for r in conn.execute(sa.select(mv.c.name, mv.c.version, mv.c.flavor, mv.c.digest)
                              .where(mv.c.flavor.in_(sorted(flavors))).order_by(mv.c.name, mv.c.version)):
            out.setdefault(r.digest, []).append((f"{r.name}@v{r.version}", r.flavor))
    return out
