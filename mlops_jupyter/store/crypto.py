"""Encryption at rest for blobs: AES-256-GCM in segments, keyed by ``MLOPS_ENCRYPTION_KEY``.

A blob's address stays the BLAKE3 hash of its *plaintext*, so dedupe and every stored
reference keep working whether a blob is encrypted or not. What is stored is either the
plaintext as it always was (a store written before a key was set), or an envelope::

    header (36 bytes, also the associated data of every segment)
      magic    8  b"\\x89MLOPS\\x1a\\n"
      version  1  1
      mode     1  0 = plaintext, 1 = AES-256-GCM
      seg_log2 1  plaintext bytes per segment = 2**seg_log2 (1 MiB for blobs, 16 KiB for packs)
      reserved 1  0
      key id   8  first bytes of a BLAKE3 derivation of the key (zeros in plaintext mode)
      salt    16  random per blob (zeros in plaintext mode)
    segments: each segment of plaintext sealed alone, ciphertext + 16-byte GCM tag

Each blob is sealed under its own key, BLAKE3-keyed(root key, salt), so a segment's nonce can
be its position: index (11 bytes) + final flag (1 byte); GCM authenticates the nonce, so a
segment moved, dropped, or a blob cut at a segment boundary (the new last segment was not
sealed as final) fails its tag, as does any changed byte of the header or a segment. This is
the STREAM construction (Hoang et al., 2015) that Tink's streaming AEAD also uses. Segments
are what let large blobs stream and a pack member be read by decrypting only the segments
that cover it.

The plaintext mode exists for one case: without a key, content that itself begins with the
magic (say, an encrypted blob copied out of a store and logged as an artifact) is wrapped so
that it is never mistaken for an envelope.

``cryptography`` is imported only when a key is set or an encrypted blob is read.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from pathlib import Path

from ..exceptions import BadInput, IntegrityError

MAGIC = b"\x89MLOPS\x1a\n"
VERSION = 1
PLAIN, AES256GCM = 0, 1
HEADER = struct.Struct(">8sBBBB8s16s")
HEADER_SIZE = HEADER.size  # 36
TAG = 16
MIN_SEG_LOG2, MAX_SEG_LOG2 = 12, 24  # refuse headers that would make a reader allocate more
KEY_ENV = "MLOPS_ENCRYPTION_KEY"
KEY_FILE_ENV = "MLOPS_ENCRYPTION_KEY_FILE"
_KEY_FORMATS = "64 hex digits, or base64/urlsafe-base64 of 32 bytes"
_ID_CONTEXT = "mlops-jupyter 2025 blob encryption key id"
_ROOT_CONTEXT = "mlops-jupyter 2025 blob encryption root key"


class BlobAuthenticationError(IntegrityError):
    """A segment of an encrypted blob fails authentication: changed, cut short or damaged."""

    def __init__(self, digest: str, detail: str):
        super().__init__(digest)
        self.args = (f"blob {digest[:12]} is corrupted: {detail}",)


class Key:
    """A 256-bit master key. Only its id is ever shown; blobs are sealed with keys derived from it."""

    __slots__ = ("id", "source", "_root")

    def __init__(self, raw: bytes, source: str):
        from blake3 import blake3

        if len(raw) != 32:
            raise BadInput(f"{source}: the key must be 32 bytes, got {len(raw)}")
        self.id = blake3(raw, derive_key_context=_ID_CONTEXT).digest()[:8]
        self._root = blake3(raw, derive_key_context=_ROOT_CONTEXT).digest()
        self.source = source

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    def __repr__(self) -> str:
        return f"Key(id={self.id_hex}, source={self.source!r})"

    def _blob_key(self, salt: bytes):
        from blake3 import blake3
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(blake3(salt, key=self._root).digest())


def generate_key() -> str:
    """A new random key, as base64 (what ``MLOPS_ENCRYPTION_KEY`` or a key file takes)."""
    return base64.b64encode(os.urandom(32)).decode()


def write_key_file(path: str | os.PathLike, key: str) -> str:
    """Write *key* (its text) to a new file only its owner may read; returns the key id. An existing
    file is never overwritten (it may be the only copy of a key that blobs are sealed with)."""
    ident = parse_key(key, "the key").id_hex
    p = Path(path)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BadInput(f"{p} already exists; a key file is never overwritten (blobs may be sealed with it)") from None
    except OSError as e:
        raise BadInput(f"cannot write the key to {p}: {e.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, (key + "\n").encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        p.unlink(missing_ok=True)  # never a half-written key file
        raise
    os.close(fd)
    return ident


def parse_key(text: str | bytes, source: str = KEY_ENV) -> Key:
    """A key from hex or (urlsafe-)base64 text; BadInput names *source* and the formats taken."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise BadInput(f"{source}: not a key: give {_KEY_FORMATS}") from None
    s = text.strip()
    if s and len(s) % 2 == 0 and len(s) not in (43, 44) and all(c in "0123456789abcdefABCDEF" for c in s):
        raw, read_as = bytes.fromhex(s), "hex"  # 43-44 characters: base64 of 32 bytes, even if all hex digits
    else:
        t = s.replace("-", "+").replace("_", "/")
        try:
            raw, read_as = base64.b64decode(t + "=" * (-len(t) % 4), validate=True), "base64"
        except (binascii.Error, ValueError):
            raw = read_as = None
    if not raw:
        raise BadInput(f"{source}: not a key (neither hex nor base64): give {_KEY_FORMATS}")
    if len(raw) != 32:
        raise BadInput(f"{source}: the key read as {read_as} is {len(raw)} bytes, not 32: give {_KEY_FORMATS}")
    return Key(raw, source)


def read_key_file(path: str | os.PathLike) -> Key:
    """A key from a file holding its text (hex or base64) or its 32 raw bytes. A file that
    group or others may read or write is refused, as ssh refuses such a private key."""
    p = Path(path)
    source = f"key file {p}"
    try:
        with open(p, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read(4096)
    except FileNotFoundError:
        raise BadInput(f"encryption {source} does not exist (from {KEY_FILE_ENV} or [encryption] key_file)") from None
    except OSError as e:
        raise BadInput(f"encryption {source} cannot be read: {e.strerror}") from None
    if os.name == "posix" and st.st_mode & 0o077:
        raise BadInput(f"encryption {source} is open to group or others (mode {st.st_mode & 0o777:o}); "
                       f"run `chmod 600 {p}`")
    if len(data) == 32:
        return Key(data, source)
    return parse_key(data, source)


def load_key(cfg) -> Key | None:
    """The project's key: ``MLOPS_ENCRYPTION_KEY``, else the key file of ``MLOPS_ENCRYPTION_KEY_FILE``
    or ``[encryption] key_file`` (``cfg.encryption_key_file``); None when neither is set."""
    text = os.environ.get(KEY_ENV, "").strip()
    if text and os.environ.get(KEY_FILE_ENV):
        raise BadInput(f"both {KEY_ENV} and {KEY_FILE_ENV} are set; keep one")
    if text:
        return parse_key(text, KEY_ENV)
    path = getattr(cfg, "encryption_key_file", None) if cfg is not None else os.environ.get(KEY_FILE_ENV)
    return read_key_file(path) if path else None


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


class Sealer:
    """Seals one blob: its header, then its segments in order (``None`` key: plaintext mode)."""

    def __init__(self, key: Key | None, seg_log2: int):
        self.segment = 1 << seg_log2
        if key is None:
            self.tag = 0
            self.header = HEADER.pack(MAGIC, VERSION, PLAIN, seg_log2, 0, bytes(8), bytes(16))
            self._aead = None
        else:
            self.tag = TAG
            salt = os.urandom(16)
            self.header = HEADER.pack(MAGIC, VERSION, AES256GCM, seg_log2, 0, key.id, salt)
            self._aead = key._blob_key(salt)

    def sealed_size(self, n: int) -> int:
        """Bytes the segments of *n* plaintext bytes take (at least one segment, even for none)."""
        return n + max(1, -(-n // self.segment)) * self.tag

    def seal_into(self, data, first: int, last: bool, out: memoryview) -> tuple[int, int]:
        """Seal *data* as segments *first*, *first* + 1, ... (all full but the last; the last
        final when *last*) into *out*; returns the bytes written and the next segment index."""
        data = memoryview(data)
        n, seg, pos, i = len(data), self.segment, 0, first
        for start in range(0, max(n, 1), seg):
            piece = data[start:start + seg]
            end = pos + len(piece) + self.tag
            if self._aead is None:
                out[pos:end] = piece
            else:
                self._aead.encrypt_into(_nonce(i, last and start + seg >= n), piece, self.header, out[pos:end])
            pos, i = end, i + 1
        return pos, i

    def seal_all(self, data) -> bytearray:
        """The whole stored form of *data* in one buffer (for one write: see BlobStore._commit_local)."""
        out = bytearray(HEADER_SIZE + self.sealed_size(len(data)))
        out[:HEADER_SIZE] = self.header
        self.seal_into(data, 0, True, memoryview(out)[HEADER_SIZE:])
        return out


class SegmentSink:
    """A file-like ``write`` that seals what it is given into segments of a sealer, for writers
    that do not know their total size (packs). ``close`` seals the final segment."""

    def __init__(self, out, sealer: Sealer):
        self.out, self.sealer = out, sealer
        self._buf = bytearray()
        self._index = 0
        self._sealed = bytearray(sealer.segment + sealer.tag)
        out.write(sealer.header)

    def _emit(self, piece, final: bool) -> None:
        n, self._index = self.sealer.seal_into(piece, self._index, final, memoryview(self._sealed))
        self.out.write(memoryview(self._sealed)[:n])

    def write(self, data) -> None:
        seg = self.sealer.segment
        self._buf += data
        if len(self._buf) <= seg:
            return
        # keep at least one byte back: the segment holding the last byte is sealed as final
        full = (len(self._buf) - 1) // seg * seg
        view = memoryview(self._buf)
        try:
            for start in range(0, full, seg):
                self._emit(view[start:start + seg], False)
        finally:
            view.release()
        del self._buf[:full]

    def close(self) -> None:
        self._emit(self._buf, True)
        self._buf = bytearray()


class Opener:
    """Reads one envelope: checks its header against the key, then opens segments by index."""

    def __init__(self, head: bytes, key: Key | None, digest: str):
        self.digest = digest
        if len(head) < HEADER_SIZE:
            raise BlobAuthenticationError(digest, "its encryption header is cut short")
        magic, version, mode, seg_log2, _, key_id, salt = HEADER.unpack(head[:HEADER_SIZE])
        if version != VERSION:
            raise BadInput(f"blob {digest[:12]} is in blob format v{version}, which this mlops-jupyter "
                           f"does not know (it reads v{VERSION}); upgrade mlops-jupyter")
        if mode not in (PLAIN, AES256GCM) or not MIN_SEG_LOG2 <= seg_log2 <= MAX_SEG_LOG2:
            raise BlobAuthenticationError(digest, "its encryption header is damaged")
        self.header = head[:HEADER_SIZE]
        self.segment = 1 << seg_log2
        self.encrypted = mode == AES256GCM
        self.key_id = key_id.hex() if self.encrypted else None
        self.tag = TAG if self.encrypted else 0
        self._aead = None
        if self.encrypted:
            if key is None:
                raise BadInput(f"blob {digest[:12]} is encrypted (key id {key_id.hex()}) and no key is set: "
                               f"set {KEY_ENV} ({_KEY_FORMATS}) or {KEY_FILE_ENV}")
            if key.id != key_id:
                raise BadInput(f"blob {digest[:12]} was encrypted with key id {key_id.hex()}, but the key given "
                               f"({key.source}) has id {key.id_hex}: set the key this store was written with")
            self._aead = key._blob_key(salt)

    def segments(self, stored: int) -> tuple[int, int]:
        """(number of segments, plaintext size) of a stored envelope of *stored* bytes."""
        body = stored - HEADER_SIZE
        n = max(1, -(-body // (self.segment + self.tag)))
        last = body - (n - 1) * (self.segment + self.tag)
        if last < self.tag:
            raise BlobAuthenticationError(self.digest, "it is cut short (its last segment is incomplete)")
        return n, body - n * self.tag

    def open_one(self, index: int, final: bool, sealed) -> bytes:
        """The plaintext of one sealed segment (a new bytes object: nothing unauthenticated escapes)."""
        if self._aead is None:
            return bytes(sealed)
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(_nonce(index, final), sealed, self.header)
        except InvalidTag:
            raise self._failed(index) from None

    def _failed(self, index: int) -> BlobAuthenticationError:
        return BlobAuthenticationError(self.digest, f"segment {index} fails authentication (changed, cut short, "
                                                    f"reordered, or not sealed by this key)")

    def open_into(self, index: int, final: bool, sealed, out) -> None:
        """Open one sealed segment into *out* (exactly its plaintext size)."""
        if self._aead is None:
            out[:] = sealed
            return
        from cryptography.exceptions import InvalidTag

        try:
            self._aead.decrypt_into(_nonce(index, final), sealed, self.header, out)
        except InvalidTag:
            # decrypt_into has written unauthenticated bytes into out: the caller drops it
            raise self._failed(index) from None

    def open_run(self, first: int, n_total: int, sealed) -> bytes | bytearray:
        """Open the consecutive sealed segments *first*, *first* + 1, ... held in *sealed*."""
        step = self.segment + self.tag
        count = -(-len(sealed) // step)
        if count == 0 or len(sealed) - (count - 1) * step < self.tag:
            raise BlobAuthenticationError(self.digest, "it is cut short")
        if count == 1 and (first == n_total - 1 or len(sealed) == step):
            return self.open_one(first, first == n_total - 1, sealed)
        sealed = memoryview(sealed)
        size = len(sealed) - count * self.tag
        out = bytearray(size)
        view = memoryview(out)
        for k in range(count):
            i = first + k
            piece = sealed[k * step:(k + 1) * step]
            if i < n_total - 1 and len(piece) != step:
                raise BlobAuthenticationError(self.digest, "it is cut short")
            self.open_into(i, i == n_total - 1, piece, view[k * self.segment:k * self.segment + len(piece) - self.tag])
        return out
