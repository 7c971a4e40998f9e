"""Files and folders as dataset versions: scan, hash + store, check out.

Hashing rides along with the copy into the blob store (one pass); unchanged files
are recognised by the stat cache without reading them; many small files are
stored by a pool of threads (the syscalls and BLAKE3 release the GIL).
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import BadInput, MlopsError, NotFound
from .statcache import StatCache, fingerprint

WORKERS = min(8, (os.cpu_count() or 2) * 2)
PROGRESS_BYTES = 256 << 20  # show a bar past this much to hash
PROGRESS_FILES = 2000


@dataclass
class FileEntry:
    path: str  # relative, with / separators
    abspath: str
    size: int
    mode: int
    fp: tuple
    digest: str | None = None
    pack: str | None = None  # the pack holding it, when it was stored in one
    offset: int | None = None
    placed: bool = False  # its bytes are known to be in the store (written by this add)

    def row(self) -> dict:
        return {"path": self.path, "digest": self.digest, "size": self.size, "mode": self.mode,
                "pack": self.pack, "pack_offset": self.offset}


def scan(root: str | os.PathLike) -> tuple[str, list[FileEntry]]:
    """('file' | 'dir', entries) for a file or every regular file under a folder."""
    root = os.path.abspath(os.fspath(root))
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise NotFound(f"no such file or folder: {root}") from None
    if stat.S_ISREG(st.st_mode):
        return "file", [FileEntry(os.path.basename(root), root, st.st_size, stat.S_IMODE(st.st_mode), fingerprint(st))]
    if not stat.S_ISDIR(st.st_mode):
        raise BadInput(f"{root} is neither a file nor a folder")
    entries: list[FileEntry] = []
    cut = len(root) + 1
    stack = [root]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.name in (".mlops", ".git", ".ipynb_checkpoints", ".DS_Store"):
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file():  # regular files, and symlinks to them (their content)
                    s = e.stat()
                    rel = e.path[cut:].replace(os.sep, "/") if os.sep != "/" else e.path[cut:]
                    entries.append(FileEntry(rel, e.path, s.st_size, stat.S_IMODE(s.st_mode), fingerprint(s)))
    entries.sort(key=lambda f: f.path)
    return "dir", entries


def _each(fn, items: list, name: str) -> None:
    """Apply *fn* to every item: on a pool of threads when there are many (file syscalls release the GIL)."""
    if len(items) > 8:
        with ThreadPoolExecutor(WORKERS, thread_name_prefix=name) as pool:
            list(pool.map(fn, items))
    else:
        for item in items:
            fn(item)


def _bar(total: int, unit: str, desc: str, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, desc=desc, disable=not show, leave=False)


def store_files(blobs, cache: StatCache | None, root: str, entries: list[FileEntry], locate) -> int:
    """Fill in each entry's digest, storing new content; returns bytes actually hashed.

    Files the stat cache knows are not read. Large files are stored one by one (each uses
    both cores: hashing beside a kernel copy). Many small files go into packs: their
    digests are looked up first (*locate*: digest -> (pack, offset) of content already
    stored), so identical content is still stored once.
    """
    import time

    from ..store.blobs import PACK_MEMBER_MAX, PACK_MIN

    started_ns = time.time_ns()
    known = cache.load(os.path.abspath(root)) if cache else {}
    todo: list[FileEntry] = []
    for e in entries:
        hit = known.get(e.abspath)
        if hit and hit[0] == e.fp:
            e.digest = hit[1]  # where its bytes are is settled by place() if a version needs it
        else:
            todo.append(e)
    if not todo:
        return 0
    total = sum(e.size for e in todo)
    show = total > PROGRESS_BYTES or len(todo) > PROGRESS_FILES
    bar = _bar(total, "B", "hashing + storing", show)
    try:
        small = [e for e in todo if e.size <= PACK_MEMBER_MAX]
        for e in todo:
            if e.size > PACK_MEMBER_MAX:
                e.digest, e.size = blobs.put_file(e.abspath, progress=bar.update)
                e.placed = True
        if len(small) >= PACK_MIN:
            _pack(blobs, small, locate, bar)
        else:
            for e in small:
                e.digest, e.size = blobs.put_small(e.abspath)
                e.placed = True
                bar.update(e.size)
    finally:
        bar.close()
    if cache:
        cache.update([(e.abspath, e.fp, e.digest) for e in todo], started_ns)
    return total


BATCH_BYTES = 32 << 20  # small files read and hashed per lookup of what the store already has


def _pack(blobs, small: list[FileEntry], locate, bar) -> None:
    """Store small files into packs, one after another on this thread (creating files in
    one folder tree serialises in the file system; threads made it slower, not faster)."""
    from ..store.blobs import PACK_MAX, hash_bytes

    writer = None
    in_writer: list[FileEntry] = []
    first: dict[str, FileEntry] = {}  # digest -> the entry that stored it in this add
    dupes: list[FileEntry] = []

    def seal():
        nonlocal writer
        digest = writer.finish()
        for x in in_writer:
            x.pack = digest
        in_writer.clear()
        writer = None

    try:
        i = 0
        while i < len(small):
            batch, datas, nbytes = [], [], 0
            while i < len(small) and (not batch or nbytes < BATCH_BYTES):
                e = small[i]
                i += 1
                with open(e.abspath, "rb") as f:
                    data = f.read()
                e.digest, e.size = hash_bytes(data), len(data)
                batch.append(e)
                datas.append(data)
                nbytes += len(data)
            where = locate([e.digest for e in batch if e.digest not in first])
            for e, data in zip(batch, datas):
                if e.digest in first:
                    dupes.append(e)
                elif e.digest in where:
                    e.pack, e.offset = where[e.digest]
                else:
                    if writer is None or writer.size + len(data) > PACK_MAX:
                        if writer is not None:
                            seal()
                        writer = blobs.pack_writer()
                    e.offset = writer.add(data)
                    in_writer.append(e)
                    first[e.digest] = e
                e.placed = True
            bar.update(nbytes)
        if writer is not None:
            seal()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    for e in dupes:
        src = first[e.digest]
        e.pack, e.offset = src.pack, src.offset


def place(blobs, entries: list[FileEntry], locate) -> None:
    """Settle where each file's bytes are stored, for a new version. Files that this add
    did not write (stat-cache hits) are looked up; content the store no longer has (gc,
    a wiped store) is stored again from the file: a cache hit names content, not proof
    that the store holds it."""
    todo = [e for e in entries if not e.placed]
    if not todo:
        return
    where = locate(list({e.digest for e in todo}))
    for e in todo:
        loc = where.get(e.digest)
        if loc is not None:
            e.pack, e.offset = loc
        elif blobs.exists(e.digest):
            e.pack = e.offset = None
        else:
            e.digest, e.size = blobs.put_file(e.abspath)
            e.pack = e.offset = None
        e.placed = True


def _safe_target(dest: Path, rel: str) -> Path:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\x00" in rel:
        raise MlopsError(f"refusing to write an unsafe path from the store: {rel!r}")
    return dest.joinpath(*parts)


@dataclass
class CheckoutReport:
    target: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    overwritten: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"checked out to {self.target}: {len(self.written)} files written, "
                f"{len(self.unchanged)} already identical"
                + (f", {len(self.overwritten)} overwritten" if self.overwritten else ""))


def checkout_files(blobs, cache: StatCache | None, files: list[dict], dest: Path, single: bool,
                   force: bool = False) -> CheckoutReport:
    """Write *files* (path, digest, size, mode) under *dest*; refuse to clobber differing files."""
    from ..store.blobs import new_hasher

    dest = Path(dest).resolve()
    targets = []
    for f in files:
        target = dest if single and dest.suffix and not dest.is_dir() else _safe_target(dest, f["path"])
        targets.append((f, target))
    import time

    started_ns = time.time_ns()
    known = cache.load(str(dest)) if cache else {}
    report = CheckoutReport(dest)
    conflicts = []
    plan = []
    for f, target in targets:
        if target.exists():
            if target.is_dir():
                conflicts.append(str(target))
                continue
            st = target.stat()
            hit = known.get(str(target))
            same = False
            if st.st_size == f["size"]:
                if hit and hit[0] == fingerprint(st):
                    same = hit[1] == f["digest"]
                else:
                    h = new_hasher()
                    with open(target, "rb") as fh:
                        while chunk := fh.read(8 << 20):
                            h.update(chunk)
                    same = h.hexdigest() == f["digest"]
            if same:
                if stat.S_IMODE(st.st_mode) != f["mode"]:
                    os.chmod(target, f["mode"])
                report.unchanged.append(f["path"])
                continue
            if not force:
                conflicts.append(str(target))
                continue
            report.overwritten.append(f["path"])
        plan.append((f, target))
    if conflicts:
        shown = ", ".join(conflicts[:5]) + (f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
        raise BadInput(f"checkout would overwrite {len(conflicts)} file(s) that differ from the version: "
                       f"{shown}; pass --force to overwrite")
    total = sum(f["size"] for f, _ in plan)
    bar = _bar(total, "B", "checking out", total > PROGRESS_BYTES or len(plan) > PROGRESS_FILES)
    updates = []
    try:
        def one(item):
            f, target = item
            if f.get("pack"):
                blobs.copy_member_to(f["pack"], f["pack_offset"], f["size"], f["digest"], target)
            else:
                blobs.copy_to(f["digest"], target)
            os.chmod(target, f["mode"])
            bar.update(f["size"])
            updates.append((str(target), fingerprint(os.stat(target)), f["digest"]))

        _each(one, plan, "mlops-checkout")
    finally:
        bar.close()
    if cache:
        cache.update(updates, started_ns)
    report.written = [f["path"] for f, _ in plan]
    return report
