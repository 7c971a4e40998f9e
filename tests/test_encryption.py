"""Encryption at rest: blobs sealed with AES-256-GCM under MLOPS_ENCRYPTION_KEY, addressed by the hash of
their plaintext. Runs on both backends (a local folder; S3 through moto), reading the stored objects raw."""

import os

import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mj
from mlops_jupyter.exceptions import BadInput, IntegrityError
from mlops_jupyter.store.blobs import PACK_SEGMENT_LOG2, SEGMENT_LOG2, BlobStore, hash_bytes
from mlops_jupyter.store.crypto import HEADER_SIZE, MAGIC, TAG, generate_key, load_key, parse_key, read_key_file

from .conftest import python_env, run_cli, tamper

KEY = generate_key()
OTHER = generate_key()
MARKER = b"plaintext-marker-5d1e77c0"
SEG = 1 << SEGMENT_LOG2  # plaintext bytes per segment of a blob ...
PACK_SEG = 1 << PACK_SEGMENT_LOG2  # ... and of a pack


def key_id(text: str) -> str:
    return parse_key(text).id_hex


def use_key(monkeypatch, key: str | None):
    """Reopen the project's store with *key* (None: no key)."""
    from mlops_jupyter.store import close_store, open_store

    if key is None:
        monkeypatch.delenv("MLOPS_ENCRYPTION_KEY", raising=False)
    else:
        monkeypatch.setenv("MLOPS_ENCRYPTION_KEY", key)
    close_store()
    return open_store()


@pytest.fixture
def keyed(project, monkeypatch):
    """The project's store, opened with KEY."""
    return use_key(monkeypatch, KEY)


def raw(store, digest: str) -> bytes:
    """A stored object's bytes as they sit in the store (a local file, or an S3 object)."""
    p = store.blobs.path(digest)
    if store.blobs.local is not None:
        with open(p, "rb") as f:
            return f.read()
    return store.blobs.fs.cat_file(p)


def raw_objects(store) -> dict[str, bytes]:
    if store.blobs.fs is not None:
        store.blobs.fs.invalidate_cache()
    return {d: raw(store, d) for d in store.blobs.digests()}


def marked(n: int, seed: int = 0) -> bytes:
    """*n* random bytes with MARKER at the start, across the first segment boundary, and at the end."""
    rng = np.random.default_rng(seed)
    b = bytearray(rng.bytes(n))
    for at in (0, SEG - len(MARKER) // 2, n - len(MARKER)):
        if 0 <= at <= n - len(MARKER):
            b[at:at + len(MARKER)] = MARKER
    return bytes(b)


def tree(root, files: dict):
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    return root


def read_tree(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def small_files(n=40, tag=b""):
    return {f"d{i % 3}/f{i:03d}.txt": MARKER + tag + f" file {i} ".encode() * (1 + i) for i in range(n)}


def frame(n=300):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": np.arange(n), "x": rng.normal(size=n), "note": [MARKER.decode() + str(i) for i in range(n)]})


def one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# -- the whole product, encrypted ---------------------------------------------------------------------------------
def test_runs_data_models_and_checkout_work_encrypted_and_store_no_plaintext(keyed, project):
    from sklearn.linear_model import LogisticRegression

    store = keyed
    (project / "notes.txt").write_bytes(b"artifact " + MARKER)
    (project / "big.bin").write_bytes(marked(2 * SEG + 12345))
    with mj.start_run("train") as run:
        run.log_artifact(project / "notes.txt")
        run.log_artifact(project / "big.bin")
        run.log_text("text " + MARKER.decode(), "t.txt")
        run.log_dict({"m": MARKER.decode()}, "d.json")
    files = small_files()
    files["large.bin"] = marked(SEG + 5, seed=1)
    v_dir = mj.data.add(tree(project / "raw", files), name="raw")
    assert any(f["pack"] for f in v_dir.files)  # the small files went into an (encrypted) pack
    (project / "one.csv").write_bytes(b"a,b\n1," + MARKER + b"\n")
    mj.data.add(project / "one.csv")
    df = frame()
    mj.data.add(df, name="table")
    X = pd.DataFrame(np.random.default_rng(1).normal(size=(100, 3)), columns=[f"{MARKER.decode()}_{i}" for i in range(3)])
    y = (X.iloc[:, 0] > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    mj.models.register(clf, name="clf", example=X)

    # everything reads back
    rec = mj.get_run(run.run_id)
    assert rec.artifact_bytes("notes.txt") == b"artifact " + MARKER
    assert rec.artifact_bytes("big.bin") == (project / "big.bin").read_bytes()
    assert MARKER.decode() in rec.artifact_bytes("d.json").decode()
    mj.data.checkout("raw@v1", project / "back")
    assert read_tree(project / "back") == files
    mj.data.checkout("one.csv@v1", project / "one_back.csv")
    assert (project / "one_back.csv").read_bytes() == (project / "one.csv").read_bytes()
    pd.testing.assert_frame_equal(mj.data.load("table@v1"), df)
    assert (mj.models.load("clf@v1").predict_proba(X) == clf.predict_proba(X)).all()

    # what sits in the store: every object an envelope under this key, none holding the marker
    objects = raw_objects(store)
    assert len(objects) >= 8
    kid = key_id(KEY)
    with_marker = 0
    for digest, stored in objects.items():
        assert stored.startswith(MAGIC) and store.blobs.key_id_of(digest) == kid, digest
        assert MARKER not in stored, f"plaintext in stored object {digest[:12]}"
        with_marker += MARKER in store.blobs.get_bytes(digest)
    assert with_marker >= 7  # the marker is in the plaintexts (artifacts, pack, files, table, model): the check bites
    from mlops_jupyter.store.maintenance import fsck, gc

    assert fsck(store).ok and gc(store).removed == 0


def test_same_content_is_stored_once(keyed, project):
    store = keyed
    d1, _ = store.blobs.put_bytes(b"twice " + MARKER)
    before = raw(store, d1)
    d2, _ = store.blobs.put_bytes(b"twice " + MARKER)
    assert d1 == d2 == hash_bytes(b"twice " + MARKER)
    assert raw(store, d1) == before  # not written again (a new salt would have changed every byte)
    big = project / "big.bin"
    big.write_bytes(marked(SEG + 77))
    b1, _ = store.blobs.put_file(big)
    assert b1 == hash_bytes(big.read_bytes())
    raw_tree = tree(project / "raw", small_files())
    mj.data.add(raw_tree, name="raw")
    objects = raw_objects(store)
    # the same content again, by every path: no new object, no object rewritten
    assert store.blobs.put_file(big)[0] == b1
    import shutil

    shutil.copytree(raw_tree, project / "copy")
    v = mj.data.add(project / "copy", name="copy")
    assert raw_objects(store) == objects
    assert {f["pack"] for f in v.files} <= set(objects)
    (project / "copy.bin").write_bytes(big.read_bytes())
    with mj.start_run("r") as run:
        assert run.log_artifact(project / "copy.bin") == b1
    assert raw(store, b1) == objects[b1]


# -- wrong key, no key ---------------------------------------------------------------------------------------------
def test_wrong_key_is_one_clear_error_naming_both_key_ids(keyed, project, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    mj.data.add(tree(project / "raw", small_files()), name="raw")
    mj.data.add(frame(), name="table")
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    mj.models.register(LogisticRegression().fit(X, [0, 0, 1, 1]), name="clf")
    store = use_key(monkeypatch, OTHER)
    for read in (lambda: mj.data.load("table@v1"), lambda: mj.models.load("clf@v1"),
                 lambda: mj.data.checkout("raw@v1", project / "out")):
        with pytest.raises(BadInput) as e:
            read()
        msg = one_line(e)
        assert f"key id {key_id(KEY)}" in msg and f"has id {key_id(OTHER)}" in msg, msg
    assert not (project / "out").exists() or not any(p.is_file() for p in (project / "out").rglob("*"))
    from mlops_jupyter.store.maintenance import fsck

    with pytest.raises(BadInput, match=key_id(OTHER)):
        fsck(store)  # a wrong key is not corruption: fsck stops and says so
    use_key(monkeypatch, KEY)
    pd.testing.assert_frame_equal(mj.data.load("table@v1"), frame())


def test_no_key_is_one_clear_error_naming_the_variable(keyed, project, monkeypatch):
    mj.data.add(tree(project / "raw", small_files()), name="raw")
    mj.data.add(frame(), name="table")
    use_key(monkeypatch, None)
    with pytest.raises(BadInput) as e:
        mj.data.load("table@v1")
    msg = one_line(e)
    assert "MLOPS_ENCRYPTION_KEY" in msg and key_id(KEY) in msg and "no key" in msg
    with pytest.raises(BadInput, match="MLOPS_ENCRYPTION_KEY"):
        mj.data.checkout("raw@v1", project / "out")

    def cli(*args, key=None):
        env = python_env()
        env.pop("MLOPS_ENCRYPTION_KEY", None)
        if key:
            env["MLOPS_ENCRYPTION_KEY"] = key
        return run_cli(*args, cwd=project, env=env)

    r = cli("data", "checkout", "raw@v1", "--to", "cli_out")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "MLOPS_ENCRYPTION_KEY" in r.stderr
    r = cli("data", "checkout", "raw@v1", "--to", "cli_out", key=KEY)
    assert r.returncode == 0, r.stderr
    assert read_tree(project / "cli_out") == small_files()


# -- tampering, truncation, reordering ---------------------------------------------------------------------------
def _flip(at: int):
    return lambda b: b[:at] + bytes([b[at] ^ 0x01]) + b[at + 1:]


STEP = SEG + TAG


@pytest.mark.parametrize("damage", [
    pytest.param(_flip(HEADER_SIZE + STEP + 1000), id="byte-in-segment-1"),
    pytest.param(_flip(HEADER_SIZE - 3), id="byte-in-salt"),
    pytest.param(_flip(-1), id="byte-in-last-tag"),
    pytest.param(lambda b: b[:HEADER_SIZE + 2 * STEP], id="cut-at-segment-boundary"),
    pytest.param(lambda b: b[:-1], id="cut-one-byte"),
    pytest.param(lambda b: b[:HEADER_SIZE], id="header-only"),
    pytest.param(lambda b: b[:HEADER_SIZE - 10], id="cut-in-header"),
    pytest.param(lambda b: b[:HEADER_SIZE] + b[HEADER_SIZE + STEP:HEADER_SIZE + 2 * STEP] + b[HEADER_SIZE:HEADER_SIZE + STEP]
                 + b[HEADER_SIZE + 2 * STEP:], id="segments-swapped"),
    pytest.param(lambda b: b + b[-(5000 + TAG):], id="appended"),
])
def test_damage_is_an_integrity_error_never_garbage(keyed, project, damage):
    from mlops_jupyter.store.maintenance import fsck

    store = keyed
    data = marked(2 * SEG + 5000)
    (project / "big.bin").write_bytes(data)
    with mj.start_run("r") as run:
        digest = run.log_artifact(project / "big.bin")
    assert len(raw(store, digest)) == HEADER_SIZE + len(data) + 3 * TAG
    tamper(store, digest, damage)
    with pytest.raises(IntegrityError):
        store.blobs.get_bytes(digest)
    got = []
    with pytest.raises(IntegrityError):
        for chunk in store.blobs.iter_chunks(digest):
            got.append(chunk)
    assert data.startswith(b"".join(got))  # what was yielded before the error is the true plaintext
    with pytest.raises(IntegrityError):
        store.blobs.copy_to(digest, project / "out.bin")
    assert not (project / "out.bin").exists()
    rep = fsck(store)
    assert [d for d, _ in rep.corrupted] == [digest] and "big.bin" in str(rep)


def test_damaged_pack_member_is_an_integrity_error(keyed, project):
    store = keyed
    files = {f"f{i:03d}.bin": MARKER + os.urandom(3000) for i in range(60)}  # ~180 KiB: several pack segments
    v = mj.data.add(tree(project / "raw", files), name="raw")
    (pack,) = {f["pack"] for f in v.files}
    member = next(f for f in v.files if f["pack_offset"] < PACK_SEG < f["pack_offset"] + f["size"])
    # a member across a segment boundary reads back whole
    assert store.blobs.read_member(pack, member["pack_offset"], member["size"], member["digest"]) == files[member["path"]]
    tamper(store, pack, _flip(HEADER_SIZE + (PACK_SEG + TAG) + 10))  # inside the second segment
    with pytest.raises(IntegrityError):
        store.blobs.read_member(pack, member["pack_offset"], member["size"], member["digest"])
    first = min(v.files, key=lambda f: f["pack_offset"])
    assert store.blobs.read_member(pack, first["pack_offset"], first["size"], first["digest"]) == files[first["path"]]
    with pytest.raises(IntegrityError):
        mj.data.checkout("raw@v1", project / "out")
    tamper(store, pack, lambda b: b[:HEADER_SIZE + (PACK_SEG + TAG)])  # the pack cut after its first segment
    with pytest.raises(IntegrityError):
        store.blobs.read_member(pack, first["pack_offset"], first["size"], first["digest"])


# -- mixed stores, fsck and gc -----------------------------------------------------------------------------------
def test_store_mixing_clear_and_encrypted_blobs(project, monkeypatch):
    from mlops_jupyter.store.maintenance import fsck, gc

    old = use_key(monkeypatch, None)
    old_files = small_files(tag=b"old")
    mj.data.add(tree(project / "old", old_files), name="old")
    mj.data.add(frame(), name="table")
    d_old, _ = old.blobs.put_bytes(b"stored before the key " + MARKER)
    with mj.start_run("before") as r_old:
        r_old.log_text("before " + MARKER.decode(), "b.txt")
    clear = set(raw_objects(old))
    assert all(old.blobs.key_id_of(d) is None for d in clear)

    store = use_key(monkeypatch, KEY)
    new_files = small_files(tag=b"new")
    mj.data.add(tree(project / "new", new_files), name="new")
    with mj.start_run("after") as r_new:
        r_new.log_text("after " + MARKER.decode(), "a.txt")
    assert store.blobs.put_bytes(b"stored before the key " + MARKER)[0] == d_old
    assert store.blobs.key_id_of(d_old) is None  # content stored in the clear stays as it is (one copy)
    objects = raw_objects(store)
    new = set(objects) - clear
    assert new and all(store.blobs.key_id_of(d) == key_id(KEY) and MARKER not in objects[d] for d in new)
    # both kinds read with the key
    mj.data.checkout("old@v1", project / "old_back")
    mj.data.checkout("new@v1", project / "new_back")
    assert read_tree(project / "old_back") == old_files and read_tree(project / "new_back") == new_files
    pd.testing.assert_frame_equal(mj.data.load("table@v1"), frame())
    assert mj.get_run(r_old.run_id).artifact_bytes("b.txt").endswith(MARKER)
    assert mj.get_run(r_new.run_id).artifact_bytes("a.txt").endswith(MARKER)
    orphan, _ = store.blobs.put_bytes(b"nobody uses me " + MARKER)
    assert fsck(store).ok
    assert gc(store).removed == 2 and not store.blobs.exists(orphan)  # the orphan and d_old
    assert fsck(store).ok
    # without the key the old ones still read; the new ones are refused
    use_key(monkeypatch, None)
    pd.testing.assert_frame_equal(mj.data.load("table@v1"), frame())
    with pytest.raises(BadInput, match="MLOPS_ENCRYPTION_KEY"):
        mj.data.checkout("new@v1", project / "new_again")


# -- the blob format, without a project ---------------------------------------------------------------------------
def test_blob_format_sizes_streaming_and_packs(tmp_path):
    key = parse_key(KEY)
    blobs = BlobStore(str(tmp_path / "objects"), key=key)
    for n in (0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG):
        data = os.urandom(n)
        d, size = blobs.put_bytes(data)
        assert (d, size) == (hash_bytes(data), n) and blobs.get_bytes(d) == data
        assert blobs.size(d) == HEADER_SIZE + n + max(1, -(-n // SEG)) * TAG
    f = tmp_path / "big.bin"
    data = os.urandom(9 * SEG + 3)  # more than one 8 MiB read of the large-file path
    f.write_bytes(data)
    d, _ = blobs.put_file(f)
    chunks = list(blobs.iter_chunks(d))
    assert b"".join(chunks) == data and max(map(len, chunks)) <= SEG  # streamed a segment at a time
    assert blobs.size(d) == HEADER_SIZE + len(data) + 10 * TAG
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []
    # a pack: members at their plaintext offsets, across segment boundaries
    w = blobs.pack_writer()
    members, rng = [], np.random.default_rng(3)
    for _ in range(120):
        m = rng.bytes(int(rng.integers(0, 5000)))
        members.append((w.add(m), m))
    big_member = rng.bytes(200 << 10)
    members.append((w.add(big_member), big_member))
    pack = w.finish()
    plain = b"".join(m for _, m in members)
    assert pack == hash_bytes(plain) and blobs.get_bytes(pack) == plain and blobs.verify(pack)
    for off, m in members:
        assert blobs.read_member(pack, off, len(m), hash_bytes(m)) == m


def test_large_file_changed_while_sealed_is_refused(tmp_path, monkeypatch):
    from mlops_jupyter.store.crypto import Sealer

    blobs = BlobStore(str(tmp_path / "objects"), key=parse_key(KEY))
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(9 * SEG))
    done = []
    d, n = blobs.put_file(f, progress=done.append)
    assert n == sum(done) == 9 * SEG and blobs.get_bytes(d) == f.read_bytes()
    real = Sealer.seal_into

    def and_append(self, *a, **k):
        with open(f, "ab") as fh:
            fh.write(b"more")
        return real(self, *a, **k)

    monkeypatch.setattr(Sealer, "seal_into", and_append)
    f.write_bytes(os.urandom(9 * SEG))
    with pytest.raises(BadInput, match="changed while it was being stored"):
        blobs.put_file(f)
    assert list(blobs.digests()) == [d] and list((tmp_path / "objects" / "tmp").iterdir()) == []


def test_content_that_looks_like_an_envelope_is_stored_safely_without_a_key(tmp_path):
    blobs = BlobStore(str(tmp_path / "objects"))
    tricky = MAGIC + b"\x01\x01\x14\x00" + os.urandom(100)
    d, _ = blobs.put_bytes(tricky)
    assert blobs.get_bytes(d) == tricky and blobs.key_id_of(d) is None
    f = tmp_path / "big.bin"
    f.write_bytes(MAGIC + os.urandom(2 * SEG))
    d2, _ = blobs.put_file(f)
    assert blobs.get_bytes(d2) == f.read_bytes() and b"".join(blobs.iter_chunks(d2)) == f.read_bytes()
    w = blobs.pack_writer()
    w.add(MAGIC[:3])
    b = w.add(MAGIC[3:] + b" and more")
    pack = w.finish()
    assert blobs.read_member(pack, b, len(MAGIC) - 3 + 9, hash_bytes(MAGIC[3:] + b" and more")) == MAGIC[3:] + b" and more"
    assert blobs.get_bytes(pack) == MAGIC + b" and more"
    # an encrypted blob copied out of a store and stored again in the clear is its own content
    enc = BlobStore(str(tmp_path / "enc"), key=parse_key(KEY))
    e, _ = enc.put_bytes(b"inner")
    sealed = (tmp_path / "enc").joinpath(e[:2], e[2:]).read_bytes()
    d3, _ = blobs.put_bytes(sealed)
    assert blobs.get_bytes(d3) == sealed
    assert BlobStore(str(tmp_path / "objects"), key=parse_key(KEY)).get_bytes(d3) == sealed


# -- keys ----------------------------------------------------------------------------------------------------------
def test_key_formats():
    raw_key = os.urandom(32)
    import base64

    ids = {parse_key(t).id_hex for t in (raw_key.hex(), raw_key.hex().upper(), base64.b64encode(raw_key).decode(),
                                         base64.urlsafe_b64encode(raw_key).decode().rstrip("="), f"  {raw_key.hex()}\n")}
    assert len(ids) == 1 and len(ids.pop()) == 16
    assert parse_key(KEY).id != parse_key(OTHER).id
    for bad, says in (("not a key!", "neither hex nor base64"), ("hunter2", "as base64 is 5 bytes"),
                      (base64.b64encode(os.urandom(16)).decode(), "16 bytes"), ("ab" * 31, "as hex is 31 bytes"),
                      ("", "neither")):
        with pytest.raises(BadInput) as e:
            parse_key(bad)
        msg = one_line(e)
        assert says in msg and "MLOPS_ENCRYPTION_KEY" in msg and "hex" in msg and "base64" in msg
    assert "Key(id=" in repr(parse_key(KEY)) and KEY not in repr(parse_key(KEY))


def test_key_files_and_settings(tmp_path, monkeypatch):
    from mlops_jupyter.config import init_project, settings

    for var in ("MLOPS_ENCRYPTION_KEY", "MLOPS_ENCRYPTION_KEY_FILE", "MLOPS_HOME", "MLOPS_STORE_URL",
                "MLOPS_ARTIFACTS_URL"):
        monkeypatch.delenv(var, raising=False)
    root = init_project(tmp_path / "proj")
    assert load_key(settings(root)) is None
    kf = root / "secrets" / "blob.key"
    kf.parent.mkdir()
    kf.write_text(KEY + "\n")
    os.chmod(kf, 0o644)
    with pytest.raises(BadInput, match=r"open to group or others \(mode 644\).*chmod 600"):
        read_key_file(kf)
    os.chmod(kf, 0o600)
    assert read_key_file(kf).id_hex == key_id(KEY)
    raw_file = tmp_path / "raw.key"
    raw_file.write_bytes(b"\n" * 32)
    os.chmod(raw_file, 0o400)
    assert len(read_key_file(raw_file).id_hex) == 16  # 32 bytes: the key itself
    with pytest.raises(BadInput, match="does not exist"):
        read_key_file(tmp_path / "nope.key")
    # [encryption] key_file, relative to the project folder
    cfg = root / ".mlops" / "config.toml"
    cfg.write_text(cfg.read_text() + '\n[encryption]\nkey_file = "secrets/blob.key"\n')
    s = settings(root)
    assert s.encryption_key_file == str(kf) and load_key(s).id_hex == key_id(KEY)
    monkeypatch.setenv("MLOPS_ENCRYPTION_KEY_FILE", str(raw_file))  # the environment wins over the config file
    assert load_key(settings(root)).id_hex == read_key_file(raw_file).id_hex
    monkeypatch.setenv("MLOPS_ENCRYPTION_KEY", OTHER)
    with pytest.raises(BadInput, match="both MLOPS_ENCRYPTION_KEY and MLOPS_ENCRYPTION_KEY_FILE"):
        load_key(settings(root))
    monkeypatch.delenv("MLOPS_ENCRYPTION_KEY_FILE")
    assert load_key(settings(root)).id_hex == key_id(OTHER)
    monkeypatch.setenv("MLOPS_ENCRYPTION_KEY", "not a key")
    from mlops_jupyter.store import close_store, open_store

    monkeypatch.chdir(root)
    with pytest.raises(BadInput, match="MLOPS_ENCRYPTION_KEY: not a key"):
        open_store()
    close_store()


def test_key_generate_and_id_in_a_terminal_and_a_cell(project, monkeypatch, capsys):
    """`mlops key generate` makes a key a new user can use at once; `key id` shows which key is in use
    (the id, never the key); a key file is never overwritten; a cell never prints a key."""
    monkeypatch.delenv("MLOPS_ENCRYPTION_KEY", raising=False)
    monkeypatch.delenv("MLOPS_ENCRYPTION_KEY_FILE", raising=False)

    def cli(*args, **env):
        return run_cli(*args, cwd=project, env=python_env(**env))

    printed = cli("key", "generate")
    assert printed.returncode == 0 and len(printed.stdout.strip().splitlines()) == 1
    assert parse_key(printed.stdout.strip()).id_hex  # exactly a key, nothing else on stdout
    r = cli("key", "generate", "--out", "team.key")
    assert r.returncode == 0, r.stderr
    key = read_key_file(project / "team.key")  # refuses a file others may read: so it is mode 600
    assert (os.stat(project / "team.key").st_mode & 0o777) == 0o600 and key.id_hex in r.stdout
    before = (project / "team.key").read_bytes()
    r = cli("key", "generate", "--out", "team.key")
    assert r.returncode == 2 and "never overwritten" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (project / "team.key").read_bytes() == before
    assert "no encryption key is set" in cli("key", "id").stdout
    r = cli("key", "id", MLOPS_ENCRYPTION_KEY_FILE=str(project / "team.key"))
    assert r.returncode == 0 and f"key {key.id_hex}" in r.stdout
    assert before.decode().strip() not in r.stdout + r.stderr
    # the key written is the key used: a blob sealed with it reads back, under the same id
    store = use_key(monkeypatch, before.decode().strip())
    digest, _ = store.blobs.put_bytes(MARKER)
    assert store.blobs.get_bytes(digest) == MARKER and store.blobs.key.id_hex == key.id_hex
    # in a notebook cell: no key on the screen (it would be saved with the notebook)
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    from mlops_jupyter import magics

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlops_jupyter")
    try:
        with pytest.raises(UsageError, match="saved with the notebook"):
            shell.run_line_magic("mlops", "key generate")
        capsys.readouterr()
        shell.run_line_magic("mlops", "key generate --out cell.key")
        assert "written to cell.key" in capsys.readouterr().out and read_key_file(project / "cell.key")
    finally:
        shell.run_line_magic("unload_ext", "mlops_jupyter")
        magics._state.update(recorder=None, magics=None)
