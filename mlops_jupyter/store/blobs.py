"""Content-addressed blob store: a blob's name is the BLAKE3 hash of its bytes.

Local folders are written with a temporary file and an atomic rename; any other
fsspec URL (``s3://...``) goes through fsspec. Every read verifies the hash.

With a key (``MLOPS_ENCRYPTION_KEY``; see ``crypto``) new blobs are stored encrypted
(AES-256-GCM in segments); a blob's name stays the hash of its plaintext, so dedupe and
every reference are unchanged, and blobs stored in the clear before the key was set are
still read (told apart by the envelope's magic bytes).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Iterator

from ..exceptions import BadInput, IntegrityError, NotFound
from .crypto import AES256GCM, HEADER, HEADER_SIZE, MAGIC

CHUNK = 1 << 20
BIG_CHUNK = 8 << 20
WINDOW = 64 << 20  # bytes of a large file mapped at a time while hashing
SMALL = 1 << 20  # files up to this size are read whole
PACK_MEMBER_MAX = 256 << 10  # files up to this size go into a pack when many are added at once
PACK_MIN = 32  # ... that is, at least this many new ones
PACK_MAX = 128 << 20  # bytes per pack
SEGMENT_LOG2 = 20  # an encrypted blob is sealed in segments of 1 MiB ...
PACK_SEGMENT_LOG2 = 14  # ... a pack in 16 KiB ones: reading a 4 KiB member decrypts at most 32 KiB
_counter = itertools.count()
EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"  # BLAKE3 of b""
_HEX = set("0123456789abcdef")


def new_hasher():
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
    """Blobs addressed by BLAKE3 digest under a local folder or an fsspec URL.

    With *key* (a ``crypto.Key``) new blobs are written encrypted and encrypted ones can be
    read; without, encrypted blobs are refused with a BadInput naming ``MLOPS_ENCRYPTION_KEY``.
    """

    def __init__(self, url: str, key=None):
        self.url = url
        self.key = key
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
        self._openers: dict = {}  # (digest, header) -> Opener of recently read encrypted blobs (a pack: per member)

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
    def _sealer(self, prefix: bytes, seg_log2: int = SEGMENT_LOG2):
        """How new content is stored: None for as is; a Sealer when a key is set (encrypted), or
        when content stored without one begins as an envelope does (wrapped in plaintext mode,
        so that it is never read as one)."""
        if self.key is None and prefix[:len(MAGIC)] != MAGIC:
            return None
        from .crypto import Sealer

        return Sealer(self.key, seg_log2)

    def _encode(self, data: bytes):
        sealer = self._sealer(data[:len(MAGIC)])
        return data if sealer is None else sealer.seal_all(data)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store *data*; return ``(digest, size)``. Storing the same bytes twice is free."""
        digest = hash_bytes(data)
        if self.local is not None:
            self._commit_local(digest, data)
        elif not self.exists(digest):
            self.fs.pipe_file(self.path(digest), bytes(self._encode(data)))
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
        if self.key is None:
            with open(src, "rb") as f:
                prefix = f.read(len(MAGIC))
        sealer = self._sealer(b"" if self.key is not None else prefix)
        if sealer is not None:
            return self._put_sealed(src, sealer, progress)
        if self.local is None:
            h, size = new_hasher(), 0
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
        h = new_hasher()
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

    def _put_sealed(self, src: str, sealer, progress) -> tuple[str, int]:
        """Encrypt a large file into a temporary file while hashing it (one read of the data),
        then place it (local) or upload it unless the store has it already (fsspec)."""
        if self.local is not None:
            tmp = self._tmp_name("put")
        else:
            fd, tmp = tempfile.mkstemp(prefix="mlops-put-")
            os.close(fd)
        try:
            with open(tmp, "wb") as out:
                digest, size = _seal_file(src, out, sealer, progress)
            if self.local is not None:
                self._place(tmp, digest)
            else:
                if not self.exists(digest):
                    self.fs.put_file(tmp, self.path(digest))
                _unlink(tmp)
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
        and the next writer replaces; every read verifies the hash in any case. An encrypted
        blob is sealed whole into one buffer for the same reason (and only once the file is
        ours: content already stored costs no encryption)."""
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
                view = memoryview(self._encode(data))
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

    def _opener(self, head: bytes, digest: str):
        """The Opener for a blob's header; kept for the next read of the same blob (a header holds
        the blob's random salt, so an equal header is the same blob key)."""
        cached = self._openers.get((digest, head))
        if cached is not None:
            return cached
        from .crypto import Opener

        op = Opener(head, self.key, digest)
        if op.encrypted:
            if len(self._openers) >= 256:
                self._openers.clear()
            self._openers[(digest, head)] = op
        return op

    def _stored_size(self, f, digest: str) -> int:
        if self.local is not None:
            return os.fstat(f.fileno()).st_size
        size = getattr(f, "size", None)
        return size if size is not None else self.fs.size(self.path(digest))

    def get_bytes(self, digest: str) -> bytes:
        with self._open_raw(digest) as f:
            data = f.read()
        if data[:len(MAGIC)] == MAGIC:
            op = self._opener(data[:HEADER_SIZE], digest)
            n, _ = op.segments(len(data))
            data = bytes(op.open_run(0, n, memoryview(data)[HEADER_SIZE:]))
        actual = hash_bytes(data)
        if actual != digest:
            raise IntegrityError(digest, actual)
        return data

    def iter_chunks(self, digest: str) -> Iterator[bytes]:
        """Yield the blob's bytes in chunks (at most 1 MiB); raises IntegrityError at the end if
        corrupted. An encrypted blob is opened one segment at a time: a segment that fails
        authentication raises before any of its bytes are yielded."""
        h = new_hasher()
        with self._open_raw(digest) as f:
            head = f.read(HEADER_SIZE)
            if head[:len(MAGIC)] != MAGIC:
                chunk = head + f.read(CHUNK - len(head))
                while chunk:
                    h.update(chunk)
                    yield chunk
                    chunk = f.read(CHUNK)
            else:
                op = self._opener(head, digest)
                n, _ = op.segments(self._stored_size(f, digest))
                per = max(1, CHUNK // op.segment)  # segments opened per chunk (a pack's are small)
                for first in range(0, n, per):
                    count = min(per, n - first)
                    chunk = bytes(op.open_run(first, n, f.read(count * (op.segment + op.tag))))
                    h.update(chunk)
                    yield chunk
        if h.hexdigest() != digest:
            raise IntegrityError(digest, h.hexdigest())

    def copy_to(self, digest: str, dest: str | os.PathLike) -> None:
        """Write the blob to *dest* atomically, verifying it on the way."""
        write_atomic(dest, self.iter_chunks(digest))

    # -- packs ----------------------------------------------------------------
    def pack_writer(self) -> "PackWriter":
        return PackWriter(self)

    def read_member(self, pack: str, offset: int, size: int, digest: str) -> bytes:
        """The bytes of a file stored inside *pack*, verified against its own digest.

        *offset* counts in the pack's plaintext; in an encrypted pack only the segments that
        cover the member are read and decrypted."""
        if self.local is not None:
            try:
                fd = os.open(self.path(pack), os.O_RDONLY)
            except FileNotFoundError:
                raise NotFound(f"pack {pack[:12]} is missing from {self.url}") from None
            try:
                data = self._read_range(pack, lambda at, n: os.pread(fd, n, at), lambda: os.fstat(fd).st_size,
                                        offset, size)
            finally:
                os.close(fd)
        else:
            with self._open_raw(pack) as f:
                def read_at(at: int, n: int) -> bytes:
                    f.seek(at)
                    return f.read(n)

                data = self._read_range(pack, read_at, lambda: self._stored_size(f, pack), offset, size)
        actual = hash_bytes(data)
        if actual != digest:
            raise IntegrityError(digest, actual)
        return data

    def _read_range(self, pack: str, read_at, stored_size, offset: int, size: int) -> bytes:
        head = read_at(0, HEADER_SIZE)
        if head[:len(MAGIC)] != MAGIC:
            return head[offset:offset + size] if offset + size <= len(head) else read_at(offset, size)
        op = self._opener(head, pack)
        if size <= 0:
            return b""
        n, plain = op.segments(stored_size())
        if offset + size > plain:
            return b""  # past the end of the pack: the member's digest check reports it
        first, last = offset // op.segment, (offset + size - 1) // op.segment
        step = op.segment + op.tag
        run = op.open_run(first, n, read_at(HEADER_SIZE + first * step, (last - first + 1) * step))
        skip = offset - first * op.segment
        return bytes(memoryview(run)[skip:skip + size])

    def key_id_of(self, digest: str) -> str | None:
        """The id of the key *digest* is encrypted with (hex); None for a blob stored in the clear."""
        with self._open_raw(digest) as f:
            head = f.read(HEADER_SIZE)
        if len(head) < HEADER_SIZE or head[:len(MAGIC)] != MAGIC:
            return None
        _, _, mode, _, _, key_id, _ = HEADER.unpack(head)
        return key_id.hex() if mode == AES256GCM else None

    def copy_member_to(self, pack: str, offset: int, size: int, digest: str, dest: str | os.PathLike) -> None:
        write_atomic(dest, [self.read_member(pack, offset, size, digest)])

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
        """Bytes the blob takes in the store (an encrypted one: its plaintext and 16 bytes per
        segment and 36 of header)."""
        p = self.path(digest)
        return os.path.getsize(p) if self.local is not None else self.fs.size(p)

    def delete(self, digest: str) -> None:
        p = self.path(digest)
        self._openers.clear()
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


def _read_into(f, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _seal_file(src: str, out, sealer, progress) -> tuple[str, int]:
    """Seal the file *src* into *out*, hashing it on the way: one read of the data. Each 8 MiB
    chunk is hashed on one thread (BLAKE3 releases the GIL) and its sealed form written on
    another while this one reads and encrypts the next (AES-GCM, several GB/s); two buffers of
    each kind bound the memory. A file that changes meanwhile is refused."""
    from concurrent.futures import ThreadPoolExecutor

    h = new_hasher()
    step = BIG_CHUNK  # a whole number of segments
    with open(src, "rb", buffering=0) as f:
        before = os.fstat(f.fileno())
        size = before.st_size
        out.write(sealer.header)
        bufs = (bytearray(step), bytearray(step))
        sealed = tuple(memoryview(bytearray(sealer.sealed_size(step))) for _ in range(2))
        pending: tuple[list, list] = ([], [])  # what still uses each pair of buffers
        off = index = k = 0
        with ThreadPoolExecutor(1, thread_name_prefix="mlops-hash") as hashing, \
                ThreadPoolExecutor(1, thread_name_prefix="mlops-write") as writing:
            try:
                while True:
                    slot = k & 1
                    for fut in pending[slot]:
                        fut.result()  # the pair is free again (and a failed write stops us here)
                    n = min(step, size - off)
                    view = memoryview(bufs[slot])[:n]
                    if _read_into(f, view) != n:
                        raise BadInput(f"{src} changed while it was being stored; try again")
                    m, index = sealer.seal_into(view, index, off + n >= size, sealed[slot])
                    pending[slot][:] = [hashing.submit(h.update, view), writing.submit(out.write, sealed[slot][:m])]
                    off += n
                    k += 1
                    if progress:
                        progress(n)
                    if off >= size:
                        break
            except BaseException:
                for fut in pending[0] + pending[1]:
                    fut.cancel()  # leaving the with-blocks waits for the ones running
                raise
            for fut in pending[0] + pending[1]:
                fut.result()
        after = os.fstat(f.fileno())
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (size, before.st_mtime_ns, before.st_ctime_ns):
        raise BadInput(f"{src} changed while it was being stored; try again")
    return h.hexdigest(), size


def save_file(dest: str | os.PathLike, data: bytes) -> str:
    """Write a file the user asked for (a page, a card, an exported model) atomically; a folder that
    cannot be written is one line (BadInput). Returns the path."""
    from ..exceptions import BadInput

    try:
        write_atomic(dest, [data])
    except OSError as e:
        raise BadInput(f"cannot write {os.fspath(dest)}: {e.strerror}") from None
    return os.fspath(dest)


def write_atomic(dest: str | os.PathLike, chunks) -> None:
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

    With a key the pack is one encrypted blob like any other, sealed in 16 KiB segments as
    members arrive; members keep their offsets in the plaintext, and ``read_member`` decrypts
    just the segments that cover one.
    """

    def __init__(self, blobs: BlobStore):
        self.blobs = blobs
        if blobs.local is not None:
            self.tmp = blobs._tmp_name("pack")
        else:
            fd, self.tmp = tempfile.mkstemp(prefix="mlops-pack-")
            os.close(fd)
        self._f = open(self.tmp, "wb", buffering=4 << 20)
        self._sink = None
        if blobs.key is not None:
            from .crypto import SegmentSink

            self._sink = SegmentSink(self._f, blobs._sealer(b"", PACK_SEGMENT_LOG2))
        self._out = self._sink or self._f
        self._prefix = b""
        from blake3 import blake3

        self._h = blake3()
        self.size = 0

    def add(self, data: bytes) -> int:
        """Append *data*; returns its offset in the pack."""
        offset = self.size
        self._out.write(data)
        if len(self._prefix) < len(MAGIC):
            self._prefix += bytes(data[:len(MAGIC) - len(self._prefix)])
        self._h.update(data)
        self.size += len(data)
        return offset

    def finish(self) -> str:
        """Place the pack in the store; returns its digest."""
        try:
            if self._sink is not None:
                self._sink.close()
            self._f.close()
            if self._sink is None and self._prefix == MAGIC:
                self._wrap()
        except BaseException:
            self.abort()
            raise
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

    def _wrap(self) -> None:
        """A pack stored without a key that begins as an envelope does gets a plaintext header."""
        import shutil

        from .crypto import Sealer

        with open(self.tmp, "rb") as src, open(self.tmp + ".wrap", "wb") as out:
            out.write(Sealer(None, PACK_SEGMENT_LOG2).header)
            shutil.copyfileobj(src, out, BIG_CHUNK)
        os.replace(self.tmp + ".wrap", self.tmp)

    def abort(self) -> None:
        self._f.close()
        _unlink(self.tmp)
        _unlink(self.tmp + ".wrap")


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
