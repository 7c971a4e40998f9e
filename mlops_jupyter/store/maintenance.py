"""Housekeeping of a store: garbage-collect unreferenced blobs, verify every blob."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    @property
    def ok(self) -> bool:
        return not self.corrupted and not self.missing

    def __str__(self) -> str:
        lines = [f"fsck: {self.checked} blobs checked, {len(self.corrupted)} corrupted, "
                 f"{len(self.missing)} missing"]
        for label, items in (("corrupted", self.corrupted), ("missing", self.missing)):
            for digest, users in items:
                lines.append(f"  {label} {digest[:16]}  used by: {', '.join(users) or 'nothing'}")
        return "\n".join(lines)


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
    """Re-hash every referenced blob; report corrupted and missing ones with their users."""
    store.writer.flush()
    report = FsckReport()
    present = set(store.blobs.digests())
    referenced = sorted(store.meta.referenced_digests() | present)
    iterator = progress(referenced) if progress else referenced
    for digest in iterator:
        report.checked += 1
        if digest not in present:
            report.missing.append((digest, store.meta.blob_users(digest)))
        elif not store.blobs.verify(digest):
            report.corrupted.append((digest, store.meta.blob_users(digest)))
    return report
