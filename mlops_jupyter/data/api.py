"""Data versioning verbs: add, load, diff, checkout, check, versions, datasets, lineage."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import BadInput, NotFound
from ..identity import ObjectMap
from .. import events, rendering
from . import listing
from .catalog import Catalog, DatasetVersion, check_name


def context(cache: bool = True):
    """(the project's store, its dataset catalog, the file-stat cache or None)."""
    from ..store import open_store
    from .statcache import StatCache

    store = open_store()
    cache_path = store.settings.mlops_dir / "statcache.db"
    stat_cache = StatCache(cache_path) if cache and store.settings.mlops_dir.is_dir() else None
    return store, Catalog(store.meta), stat_cache


def _manifest_digest(kind: str, files: list[dict]) -> str:
    from ..store.blobs import hash_bytes

    canon = json.dumps([kind, [[f["path"], f["digest"], f["size"], f["mode"]] for f in files]],
                       separators=(",", ":"))
    return hash_bytes(canon.encode())


def _settle() -> None:
    """Versions still being written for runs in the background (autologging) first (none can be
    when this process never loaded the run machinery)."""
    import sys

    run = sys.modules.get("mlops_jupyter.tracking.run")
    if run is not None:
        run.settle()


def _active_run_id() -> str | None:
    from ..tracking.run import active_run_id

    return active_run_id()


def add(obj: Any, name: str | None = None, message: str | None = None, output: bool = False,
        source: str | None = None, run_id: str | None = None) -> DatasetVersion:
    """Version a file, a folder or a DataFrame (pandas, or polars when installed).

    A new version is made only when the content changed; otherwise the latest version
    comes back with ``unchanged=True``. While a run is active the version is recorded
    as its input (or its output with ``output=True``).

    Args:
        obj: a path (str or Path) or a DataFrame.
        name: dataset name (default: the file or folder name).
        message: what this version is.
        output: record it as the active run's output rather than its input.
        source: where it came from, for the record (the magic passes the variable name).
        run_id: the run it is recorded with (default: the active run); autologging, which writes
            from another thread, names the run of the fit.
    """
    from ..identity import current_user
    from . import frames
    from .files import place, scan, store_files

    store, catalog, cache = context()
    summary = None
    rows = None
    if frames.is_frame(obj):
        if name is None:
            raise BadInput("name the dataset: add(df, name='train')")
        check_name(name)
        from concurrent.futures import ThreadPoolExecutor

        table = frames.to_arrow(obj)
        with ThreadPoolExecutor(1, thread_name_prefix="mlops-parquet") as pool:
            writing = pool.submit(frames.to_parquet, table)  # pyarrow writes without the GIL
            summary = frames.summarize(table, frames.pandas_dtypes(obj))
            data = writing.result()
        digest, size = store.blobs.put_bytes(data)
        files = [{"path": "data.parquet", "digest": digest, "size": size, "mode": 0o644}]
        kind, rows = "table", table.num_rows
        source = source or f"<{type(obj).__module__.split('.')[0]} DataFrame>"
    elif isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        name = check_name(name if name is not None else _name_from_path(path))
        kind, entries = scan(path)
        store_files(store.blobs, cache, str(path), entries, catalog.locate)
        files = [e.row() for e in entries]
        size = sum(e.size for e in entries)
        source = source or str(path.resolve())
    else:
        raise BadInput(f"cannot version a {type(obj).__name__}: give a file or folder path, or a DataFrame")
    digest = _manifest_digest(kind, files)
    if kind != "table":
        latest = catalog.latest(name)
        if latest is None or latest.digest != digest:
            place(store.blobs, entries, catalog.locate)
            files = [e.row() for e in entries]
            digest = _manifest_digest(kind, files)
    run_id = run_id or _active_run_id()
    version = catalog.create(name, kind, digest, files, size, rows, message, source, run_id, current_user(),
                             summary)
    version.files = files
    if kind == "table":
        _KNOWN.set(obj, version.ref)
    if run_id:
        catalog.record_lineage(run_id, version.id, "output" if output else "input")
    if not getattr(version, "unchanged", False):
        events.publish("data.version_added", store=store, version_id=version.id, run_id=run_id)
    return version


def _name_from_path(path: Path) -> str:
    base = path.resolve().name or "data"
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in base).strip("-.") or "data"
    return cleaned[:128]


def get(ref: str) -> DatasetVersion:
    """A dataset version by ref (``train@v2``, ``train@latest``, ``train``)."""
    _settle()
    _, catalog, _ = context()
    return catalog.get(ref)


def show(ref: str) -> DatasetVersion:
    return get(ref)


def load(ref: str):
    """A table version as a DataFrame (also a single CSV/Parquet/JSON file version)."""
    from . import frames

    store, catalog, _ = context()
    v = catalog.get(ref)
    run_id = _active_run_id()
    if v.kind == "table":
        df = frames.read_parquet(store.blobs.get_bytes(v.files[0]["digest"]))
    elif v.kind == "file" and v.files[0]["path"].lower().endswith((".csv", ".parquet", ".pq", ".json", ".tsv")):
        import io

        df = frames.read_table_file(io.BytesIO(store.blobs.get_bytes(v.files[0]["digest"])), v.files[0]["path"])
    else:
        raise BadInput(f"{v.ref} is a {v.kind} version; get its files back with "
                       f"`mlops data checkout {v.ref} --to DIR`")
    if run_id:
        catalog.record_lineage(run_id, v.id, "input")
    _KNOWN.set(df, v.ref)
    return df


# frames that came from (or went into) a version in this session, so that an explanation or a
# model trained on the object can name the data version
_KNOWN = ObjectMap()


def version_of(obj: Any) -> str | None:
    """The dataset version *obj* was loaded from or added as, if it was in this session."""
    return _KNOWN.get(obj)


def checkout(ref: str, to: str | os.PathLike, force: bool = False):
    """Write a version's files under *to*, byte-identical with their mode bits."""
    from .files import checkout_files

    store, catalog, cache = context()
    v = catalog.get(ref)
    if v.kind == "table":
        files = [dict(f, path=f"{v.name}.parquet") for f in v.files]
    else:
        files = v.files
    return checkout_files(store.blobs, cache, files, Path(to), single=v.kind != "dir", force=force)


def _frame(rows: list[dict], columns: list[str]):
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns)
    df["created"] = pd.to_datetime(df["created"], unit="s", utc=True)
    return df


def version_records(name: str) -> list[dict]:
    """The versions of one dataset as plain rows, oldest first (``created`` in seconds since the
    epoch), without pandas."""
    _settle()
    _, catalog, _ = context(cache=False)
    return [listing.version_record(d) for d in catalog.version_rows(name)]


def versions(name: str):
    """The versions of one dataset as a DataFrame, oldest first."""
    return _frame(version_records(name), listing.VERSION_COLUMNS)


def dataset_records() -> list[dict]:
    """Every dataset with its latest version as plain rows, without pandas."""
    _settle()
    _, catalog, _ = context(cache=False)
    return [listing.dataset_record(d) for d in catalog.datasets()]


def datasets():
    """Every dataset with its latest version, size, when and by which run."""
    return _frame(dataset_records(), listing.DATASET_COLUMNS)


# -- diff -----------------------------------------------------------------------------------------------------
@dataclass
class FilesDiff:
    a: str
    b: str
    added: list[tuple[str, int]] = field(default_factory=list)
    removed: list[tuple[str, int]] = field(default_factory=list)
    changed: list[tuple[str, int, int]] = field(default_factory=list)
    unchanged: int = 0

    def __str__(self) -> str:
        out = [f"{self.a} -> {self.b}: {len(self.added)} added, {len(self.removed)} removed, "
               f"{len(self.changed)} changed, {self.unchanged} unchanged"]
        out += [f"  + {p} ({s:,} bytes)" for p, s in self.added[:200]]
        out += [f"  - {p} ({s:,} bytes)" for p, s in self.removed[:200]]
        out += [f"  ~ {p} ({s0:,} -> {s1:,} bytes)" for p, s0, s1 in self.changed[:200]]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)


def diff(a: str, b: str, key: str | None = None):
    """What changed between two versions: files (added/removed/changed) or tables (schema, stats, rows)."""
    from . import frames

    store, catalog, _ = context()
    va, vb = catalog.get(a), catalog.get(b)
    if (va.kind == "table") != (vb.kind == "table"):
        raise BadInput(f"cannot diff a {va.kind} version with a {vb.kind} version")
    if va.kind == "table":
        d = frames.diff_summaries(va.ref, vb.ref, va.summary, vb.summary)
        if key:
            fa = frames.read_parquet(store.blobs.get_bytes(va.files[0]["digest"]))
            fb = frames.read_parquet(store.blobs.get_bytes(vb.files[0]["digest"]))
            d = frames.diff_by_key(d, fa, fb, key)
        return d
    if key:
        raise BadInput("--key applies to table versions (DataFrames)")
    fa = {f["path"]: f for f in va.files}
    fb = {f["path"]: f for f in vb.files}
    out = FilesDiff(va.ref, vb.ref)
    for p, f in fb.items():
        if p not in fa:
            out.added.append((p, f["size"]))
        elif fa[p]["digest"] != f["digest"] or fa[p]["mode"] != f["mode"]:
            out.changed.append((p, fa[p]["size"], f["size"]))
        else:
            out.unchanged += 1
    out.removed = [(p, f["size"]) for p, f in fa.items() if p not in fb]
    return out


def check(ref: str, obj: Any):
    """Does *obj* (a DataFrame, or a CSV/Parquet path) fit the version's schema and ranges?"""
    from . import frames

    _, catalog, _ = context()
    v = catalog.get(ref, with_files=False)
    if v.kind != "table" or not v.summary:
        raise BadInput(f"{v.ref} is a {v.kind} version; schema checks apply to table versions")
    if isinstance(obj, (str, os.PathLike)):
        import pandas as pd

        p = str(obj)
        if not os.path.isfile(p):
            raise NotFound(f"no such file: {p}")
        obj = pd.read_parquet(p) if p.endswith((".parquet", ".pq")) else pd.read_csv(p)
    if not frames.is_frame(obj):
        raise BadInput(f"cannot check a {type(obj).__name__}: give a DataFrame")
    return frames.check_frame(v.ref, v.summary, obj)
