"""Encryption at rest: the same blob-store work in the clear and encrypted, side by side in one run.

    python -m bench.encryption [--quick]

Workloads are made here: a 1 GiB file of random bytes and a folder of 10,000 files of 4 KiB
(256 MiB and 2,000 with --quick). Each round stores them into a fresh local store, once in the
clear and once with a key (interleaved, so a slow spell of the disk falls on both alike), then
reads them back. Figures: median [min–max] of the rounds, and the ratio encrypted/clear (1.00x:
no cost). The page cache is warm; `sync` runs before each timed write.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time

from .common import fmt_spread, make_small_files, table

QUICK = "--quick" in sys.argv
BIG = (256 << 20) if QUICK else (1 << 30)
N_SMALL = 2000 if QUICK else 10_000
SMALL_SIZE = 4096
ROUNDS = 3 if QUICK else 5
MODES = ("clear", "encrypted")


def sync() -> None:
    """Let the writeback of earlier rounds settle before a timed write (see bench.data)."""
    os.sync()
    time.sleep(1.0)


def make_big(d: str) -> str:
    p = os.path.join(d, "big.bin")
    with open(p, "wb") as f:
        for _ in range(BIG // (64 << 20) or 1):
            f.write(os.urandom(min(BIG, 64 << 20)))
    return p


def make_small(d: str) -> str:
    return make_small_files(d, N_SMALL, SMALL_SIZE)


def warm(path: str) -> None:
    for root, _, files in os.walk(path) if os.path.isdir(path) else [(os.path.dirname(path), [], [os.path.basename(path)])]:
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                while f.read(8 << 20):
                    pass


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def project(work: str, tag: str, key: str | None):
    """A fresh project with its own store, opened with *key* (None: in the clear)."""
    from mlops_jupyter.config import init_project
    from mlops_jupyter.store import close_store

    root = tempfile.mkdtemp(prefix=f"proj-{tag}-", dir=work)
    init_project(root)
    os.environ["MLOPS_HOME"] = root
    if key:
        os.environ["MLOPS_ENCRYPTION_KEY"] = key
    else:
        os.environ.pop("MLOPS_ENCRYPTION_KEY", None)
    close_store()
    from mlops_jupyter.store import open_store

    return root, open_store()


def user_copy(src: str, dst: str) -> None:
    """Read and write through this process, 8 MiB at a time: the floor for any store that
    transforms the bytes (encryption cannot use the kernel's copy_file_range as `cp` does)."""
    buf = bytearray(8 << 20)
    with open(src, "rb", buffering=0) as f, open(dst, "wb") as out:
        while n := f.readinto(buf):
            out.write(memoryview(buf)[:n])


def floors(work: str, big: str, r: int) -> dict[str, float]:
    import subprocess

    got = {}
    sync()
    got["cp (copy_file_range in the kernel)"] = timed(
        lambda: subprocess.run(["cp", big, os.path.join(work, f"cp{r}")], check=True))
    sync()
    got["read + write in user space"] = timed(lambda: user_copy(big, os.path.join(work, f"user{r}")))
    return got


def one_round(work: str, big: str, small: str, key: str, r: int) -> dict[str, dict[str, float]]:
    """Every figure once for each mode, the modes in turn (which goes first alternates by round)."""
    import mlops_jupyter as mj

    out: dict[str, dict[str, float]] = {"floor": floors(work, big, r)}
    modes = MODES if r % 2 == 0 else MODES[::-1]
    for mode in modes:
        root, store = project(work, f"{mode}{r}", key if mode == "encrypted" else None)
        blobs, got = store.blobs, {}
        sync()
        digest = None

        def put():
            nonlocal digest
            digest = blobs.put_file(big)[0]

        def verify():
            assert blobs.verify(digest)

        label = f"{BIG >> 20} MiB file"
        got[f"{label}: put_file"] = timed(put)
        dest = os.path.join(root, "big.out")
        sync()
        got[f"{label}: get (copy_to)"] = timed(lambda: blobs.copy_to(digest, dest))
        got[f"{label}: verify (fsck)"] = timed(verify)
        files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(small) for f in fs)
        sync()
        digests = []
        got[f"{N_SMALL:,} files: put_small (a blob each)"] = timed(
            lambda: digests.extend(blobs.put_small(f)[0] for f in files))
        got[f"{N_SMALL:,} files: get_bytes"] = timed(lambda: [blobs.get_bytes(d) for d in digests])
        sync()
        got[f"{N_SMALL:,} files: data add (packs)"] = timed(lambda: mj.data.add(small, name="small"))
        sync()
        got[f"{N_SMALL:,} files: data checkout"] = timed(
            lambda: mj.data.checkout("small@v1", os.path.join(root, "back")))
        assert (mode == "encrypted") == (blobs.key_id_of(digest) is not None)
        out[mode] = got
    return out


def primitives(key: str) -> list[list[str]]:
    """AES-256-GCM and BLAKE3 alone on 1 MiB pieces (what large blobs are bounded by), and the
    CPU cost of sealing and opening one small blob (its own key, header, one segment), no I/O."""
    from blake3 import blake3
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from mlops_jupyter.store.blobs import SEGMENT_LOG2
    from mlops_jupyter.store.crypto import HEADER_SIZE, Opener, Sealer, parse_key

    data, n = os.urandom(1 << 20), 512
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    sealed = aead.encrypt(nonce, data, None)
    rows = []
    for name, fn in (("AES-256-GCM encrypt", lambda: aead.encrypt(nonce, data, None)),
                     ("AES-256-GCM decrypt", lambda: aead.decrypt(nonce, sealed, None)),
                     ("BLAKE3 (1 thread)", lambda: blake3(data).digest())):
        xs = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                fn()
            xs.append(n * len(data) / (time.perf_counter() - t) / 1e9)
        rows.append([name, f"{statistics.median(xs):.2f} GB/s [{min(xs):.2f}–{max(xs):.2f}]"])
    k, small, n = parse_key(key), os.urandom(SMALL_SIZE), 20_000
    blob = bytes(Sealer(k, SEGMENT_LOG2).seal_all(small))

    def open_small():
        op = Opener(blob[:HEADER_SIZE], k, "0" * 64)
        op.open_run(0, 1, memoryview(blob)[HEADER_SIZE:])

    for name, fn in ((f"seal one {SMALL_SIZE // 1024} KiB blob", lambda: Sealer(k, SEGMENT_LOG2).seal_all(small)),
                     (f"open one {SMALL_SIZE // 1024} KiB blob", open_small)):
        xs = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                fn()
            xs.append((time.perf_counter() - t) / n)
        rows.append([name, fmt_spread((statistics.median(xs), min(xs), max(xs)))])
    return rows


def main() -> None:
    from mlops_jupyter.store.crypto import generate_key

    print(f"# encryption benchmark ({'quick' if QUICK else 'full'}; local store; median [min–max] of "
          f"{ROUNDS} interleaved rounds; ratio = encrypted / clear time)")
    for var in ("MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL", "MLOPS_ENCRYPTION_KEY_FILE"):
        os.environ.pop(var, None)
    from mlops_jupyter.data import files as data_files

    data_files.PROGRESS_FILES = data_files.PROGRESS_BYTES = 1 << 62  # no progress bars between the tables
    saved = {k: os.environ.get(k) for k in ("MLOPS_HOME", "MLOPS_ENCRYPTION_KEY")}
    work = tempfile.mkdtemp(prefix="bench-enc-", dir=os.environ.get("MLOPS_BENCH_DIR", "/var/tmp"))
    try:
        big, small = make_big(work), make_small(work)
        warm(big)
        warm(small)
        key = generate_key()
        rounds = [one_round(work, big, small, key, r) for r in range(ROUNDS)]
    finally:
        from mlops_jupyter.store import close_store

        close_store()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        shutil.rmtree(work, ignore_errors=True)
    figures = list(rounds[0]["clear"])
    rows = []
    for fig in figures:
        spread = {m: (statistics.median(x := [r[m][fig] for r in rounds]), min(x), max(x)) for m in MODES}
        nbytes = BIG if "MiB file" in fig else N_SMALL * SMALL_SIZE
        rate = {m: f"{nbytes / spread[m][0] / 1e9:.2f} GB/s" for m in MODES}
        rows.append([fig, f"{fmt_spread(spread['clear'])} ({rate['clear']})",
                     f"{fmt_spread(spread['encrypted'])} ({rate['encrypted']})",
                     f"{spread['encrypted'][0] / spread['clear'][0]:.2f}x"])
    table(f"blob store, a {BIG >> 20} MiB file and {N_SMALL:,} files of {SMALL_SIZE // 1024} KiB",
          ["", "clear", "encrypted", "ratio"], rows)
    fl = {fig: (statistics.median(x := [r["floor"][fig] for r in rounds]), min(x), max(x)) for fig in rounds[0]["floor"]}
    table(f"floors: copying the {BIG >> 20} MiB file", ["", "time"],
          [[fig, f"{fmt_spread(m)} ({BIG / m[0] / 1e9:.2f} GB/s)"] for fig, m in fl.items()])
    table(f"primitives alone, one thread ({os.cpu_count()} cores here)", ["", "throughput / time"],
          primitives(key))


if __name__ == "__main__":
    main()
