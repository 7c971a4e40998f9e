"""Content-addressed blob store: a blob's name is the BLAKE3 hash of its bytes.

Local folders are written with a temporary file and an atomic rename; any other
fsspec URL (``s3://...``) goes through fsspec. Every read verifies the hash.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Iterator

from ..exceptions import BadInput, IntegrityError, NotFound

CHUNK = 1 << 20
BIG_CHUNK = 8 << 20
WINDOW = 64 << 20  # bytes of a large file mapped at a time while hashing
SMALL = 1 << 20  # files up to this size are read whole
PACK_MEMBER_MAX = 256 << 10  # files up to this size go into a pack when many are added at once
PACK_MIN = 32  # ... that is, at least this many new ones
PACK_MAX = 128 << 20  # bytes per pack
_counter = itertools.count()
EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"  # BLAKE3 of b""
_HEX = set("0123456789abcdef")


def _hasher():
    from blake3 import blake3

    return blake3(max_threads=blake3.AUTO)


def hash_bytes(data: bytes) -> str:
    from blake3 import blake3

    return blake3(data).hexdigest()


def _check_digest(digest: str) -> str:
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise BadInput(f"not a blob digest: {digest!r}")
    return digest


class BlobStore:
    """Blobs addressed by BLAKE3 digest under a local folder or an fsspec URL."""

    def __init__(self, url: str):
        self.url = url
        if "://" in url and not url.startswith("file://"):
            import fsspec

            self.fs, self.root = fsspec.core.url_to_fs(url)
            self.local = None
        else:
            self.fs = None
            self.root = url[len("file://"):] if url.startswith("file://") else url
            self.local = Path(self.root)
            self.local.mkdir(parents=True, exist_ok=True)
        self._dirs: set[str] = set()
        self._tmp_ready = False
        self._root = str(self.local) if self.local is not None else None

    # -- layout ---------------------------------------------------------------
    def _rel(self, digest: str) -> str:
        return f"{digest[:2]}/{digest[2:]}"

    def path(self, digest: str) -> str:
        _check_digest(digest)
        if self.local is not None:
            return f"{self._root}/{digest[:2]}/{digest[2:]}"
        return f"{self.root.rstrip('/')}/{self._rel(digest)}"

    def exists(self, digest: str) -> bool:
        p = self.path(digest)
        if self.local is None:
            return self.fs.exists(p)
        try:
            # An empty file under a non-empty digest is a write that was killed before it began.
            return os.stat(p).st_size > 0 or digest == EMPTY
        except FileNotFoundError:
            return False

    # -- writing --------------------------------------------------------------
    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store *data*; return ``(digest, size)``. Storing the same bytes twice is free."""
        digest = hash_bytes(data)
        if self.local is not None:
            self._commit_local(digest, data)
        elif not self.exists(digest):
            self.fs.pipe_file(self.path(digest), data)
        return digest, len(data)

    def put_small(self, path: str) -> tuple[str, int]:
        """Store a small file (at most SMALL bytes) read whole: the fast path for folders of
        many files, two opens and one write per new file."""
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > SMALL:
                return self.put_file(path)
            data = f.read()  # sized from fstat: no 1 MiB buffer per file
        return self.put_bytes(data)

    def put_file(self, path: str | os.PathLike, progress=None) -> tuple[str, int]:
        """Stream a file into the store, hashing while copying (one pass, bounded memory).

        Small files are read whole; large ones in 8 MiB chunks, with the hash of a chunk
        computed on a second thread while the chunk is written, so hashing rides along
        with the copy. *progress*, when given, is called with the bytes done per chunk.
        """
        src = os.fspath(path)
        try:
            size = os.path.getsize(src)
        except OSError:
            raise NotFound(f"no such file: {src}") from None
        if os.path.isdir(src):
            raise NotFound(f"not a file: {src}")
        if size <= SMALL:
            with open(src, "rb") as f:
                data = f.read()
            digest, n = self.put_bytes(data)
            if progress:
                progress(n)
            return digest, n
        if self.local is None:
            h, size = _hasher(), 0
            with open(src, "rb") as f:
                while chunk := f.read(BIG_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    if progress:
                        progress(len(chunk))
            digest = h.hexdigest()
            if not self.exists(digest):
                self.fs.put_file(src, self.path(digest))
            return digest, size
        return self._put_large_local(src, progress)

    def _put_large_local(self, src: str, progress) -> tuple[str, int]:
        """The kernel copies the file (copy_file_range, as cp does) while this thread hashes it
        through a sliding memory map (BLAKE3 on both cores): one read of the data each, in
        parallel, with memory bounded by the window. A file that changes meanwhile is refused."""
        import mmap
        from concurrent.futures import ThreadPoolExecutor

        tmp = self._tmp_name("put")
        h = _hasher()
        try:
            with open(src, "rb") as f:
                before = os.fstat(f.fileno())
                size = before.st_size
                with ThreadPoolExecutor(1, thread_name_prefix="mlops-copy") as pool:
                    copying = pool.submit(_kernel_copy, src, tmp, size)
                    off = 0
                    while off < size:
                        n = min(WINDOW, size - off)
                        with mmap.mmap(f.fileno(), n, offset=off, access=mmap.ACCESS_READ) as m:
                            h.update(m)  # releases the GIL; multi-threaded
                        off += n
                        if progress:
                            progress(n)
                    copying.result()
                after = os.fstat(f.fileno())
            if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (size, before.st_mtime_ns, before.st_ctime_ns) \
                    or os.path.getsize(tmp) != size:
                raise BadInput(f"{src} changed while it was being stored; try again")
            digest = h.hexdigest()
            self._place(tmp, digest)
        except BaseException:
            _unlink(tmp)
            raise
        return digest, size

    def _tmp_name(self, prefix: str) -> str:
        if not self._tmp_ready:
            os.makedirs(f"{self._root}/tmp", exist_ok=True)
            self._tmp_ready = True
        return f"{self._root}/tmp/{prefix}-{os.getpid()}-{threading.get_ident()}-{next(_counter)}"

    def _commit_local(self, digest: str, data: bytes) -> None:
        """Small blobs are created in place with one write() (no temporary file: a rename costs
        ten times the write on ext4). SIGKILL cannot split a write() to a regular file, so a
        killed writer leaves either nothing or an empty file, which ``exists`` does not count
        and the next writer replaces; every read verifies the hash in any case."""
        final = self.path(digest)
        sub = final[:-63]
        if sub not in self._dirs:
            os.makedirs(sub, exist_ok=True)
            self._dirs.add(sub)
        for _ in range(2):
            try:
                fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                break
            except FileExistsError:
                try:
                    if digest == EMPTY or os.stat(final).st_size > 0:
                        return  # stored before (or by another writer just now) with the same content
                except FileNotFoundError:
                    continue
                _unlink(final)  # the empty leftover of a killed writer
        else:
            return
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        except BaseException:
            _unlink(final)
            raise

    def _place(self, tmp: str, digest: str, chmod: bool = True) -> None:
        final = self.path(digest)
        if os.path.exists(final):
            _unlink(tmp)
            return
        sub = final[:-63]
        if sub not in self._dirs:
            os.makedirs(sub, exist_ok=True)
            self._dirs.add(sub)
        if chmod:
            os.chmod(tmp, 0o444)
        os.replace(tmp, final)

    # -- reading --------------------------------------------------------------
    def _open_raw(self, digest: str) -> BinaryIO:
        try:
            if self.local is not None:
                return open(self.path(digest), "rb")
            return self.fs.open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest[:12]} is missing from {self.url}") from None

    def get_bytes(self, digest: str) -> bytes:
        with self._open_raw(digest) as f:
            data = f.read()
        actual = hash_bytes(data)
        if actual != digest:
            raise IntegrityError(digest, actual)
        return data

    def iter_chunks(self, digest: str) -> Iterator[bytes]:
        """Yield the blob's bytes in chunks; raises IntegrityError at the end if corrupted."""
        h = _hasher()
        with self._open_raw(digest) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                yield chunk
        if h.hexdigest() != digest:
            raise IntegrityError(digest, h.hexdigest())

    def copy_to(self, digest: str, dest: str | os.PathLike) -> None:
        """Write the blob to *dest* atomically, verifying it on the way."""
        _write_atomic(dest, self.iter_chunks(digest))

    # -- packs ----------------------------------------------------------------
    def pack_writer(self) -> "PackWriter":
        return PackWriter(self)

    def read_member(self, pack: str, offset: int, size: int, digest: str) -> bytes:
        """The bytes of a file stored inside *pack*, verified against its own digest."""
        if self.local is not None:
            try:
                fd = os.open(self.path(pack), os.O_RDONLY)
            except FileNotFoundError:
                raise NotFound(f"pack {pack[:12]} is missing from {self.url}") from None
            try:
                data = os.pread(fd, size, offset)
            finally:
                os.close(fd)
        else:
            with self._open_raw(pack) as f:
                f.seek(offset)
                data = f.read(size)
        actual = hash_bytes(data)
        if actual != digest:
            raise IntegrityError(digest, actual)
        return data

    def copy_member_to(self, pack: str, offset: int, size: int, digest: str, dest: str | os.PathLike) -> None:
        _write_atomic(dest, [self.read_member(pack, offset, size, digest)])

    def verify(self, digest: str) -> bool:
        try:
            for _ in self.iter_chunks(digest):
                pass
        except (IntegrityError, NotFound):
            return False
        return True

    # -- housekeeping ---------------------------------------------------------
    def digests(self) -> Iterator[str]:
        if self.local is not None:
            for sub in sorted(self.local.iterdir()):
                if len(sub.name) == 2 and sub.is_dir():
                    for f in sub.iterdir():
                        d = sub.name + f.name
                        if len(d) == 64:
                            yield d
            return
        for p in self.fs.find(self.root):
            parts = p.rstrip("/").split("/")
            if len(parts) >= 2 and len(parts[-2]) == 2:
                d = parts[-2] + parts[-1]
                if len(d) == 64:
                    yield d

    def size(self, digest: str) -> int:
        p = self.path(digest)
        return os.path.getsize(p) if self.local is not None else self.fs.size(p)

    def delete(self, digest: str) -> None:
        p = self.path(digest)
        if self.local is not None:
            _unlink(p)
        else:
            self.fs.rm(p)

    def clean_tmp(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by writers that died (older than an hour)."""
        import time

        if self.local is None or not (self.local / "tmp").is_dir():
            return 0
        n, cutoff = 0, time.time() - older_than
        for f in (self.local / "tmp").iterdir():
            try:
                if f.stat().st_mtime < cutoff:
                    f.unlink()
                    n += 1
            except FileNotFoundError:
                pass
        return n


def _kernel_copy(src: str, dst: str, size: int) -> None:
    """Copy in the kernel (copy_file_range; sendfile through shutil where it is missing)."""
    fi = os.open(src, os.O_RDONLY)
    try:
        fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            off = 0
            try:
                while off < size:
                    n = os.copy_file_range(fi, fo, min(size - off, 1 << 30))
                    if n == 0:
                        break
                    off += n
            except (AttributeError, OSError):
                os.lseek(fi, off, os.SEEK_SET)
                os.lseek(fo, off, os.SEEK_SET)
                while chunk := os.read(fi, CHUNK * 8):
                    os.write(fo, chunk)
        finally:
            os.close(fo)
    finally:
        os.close(fi)


def _write_atomic(dest: str | os.PathLike, chunks) -> None:
    """Write *chunks* to *dest* through a temporary file beside it, renamed into place at the end."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        _unlink(tmp)
        raise


class PackWriter:
    """Many small files written as one blob (a pack), hashed as they are appended.

    Creating a file costs far more than writing 4 KiB into one (on ext4 about ten times),
    and an object store charges per request: a folder of 10,000 small files becomes one
    pack instead of 10,000 blobs. The pack is named by its own digest and placed
    atomically by ``finish``; each member keeps its own digest, checked on every read.
    """

    def __init__(self, blobs: BlobStore):
        self.blobs = blobs
        if blobs.local is not None:
            self.tmp = blobs._tmp_name("pack")
        else:
            fd, self.tmp = tempfile.mkstemp(prefix="mlops-pack-")
            os.close(fd)
        self._f = open(self.tmp, "wb", buffering=4 << 20)
        from blake3 import blake3

        self._h = blake3()
        self.size = 0

    def add(self, data: bytes) -> int:
        """Append *data*; returns its offset in the pack."""
        offset = self.size
        self._f.write(data)
        self._h.update(data)
        self.size += len(data)
        return offset

    def finish(self) -> str:
        """Place the pack in the store; returns its digest."""
        self._f.close()
        digest = self._h.hexdigest()
        try:
            if self.blobs.local is not None:
                self.blobs._place(self.tmp, digest)
            else:
                if not self.blobs.exists(digest):
                    self.blobs.fs.put_file(self.tmp, self.blobs.path(digest))
                _unlink(self.tmp)
        except BaseException:
            self.abort()
            raise
        return digest

    def abort(self) -> None:
        self._f.close()
        _unlink(self.tmp)


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
