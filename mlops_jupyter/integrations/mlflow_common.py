"""What MLflow export and import share: the tags that tie an MLflow run to one of ours, MLflow's
limits on names and values, and opening an MLflow tracking store.

An exported run carries ``mlops.run_id`` (and the export's bookkeeping), a model version
``mlops.model_version`` and ``mlops.digest``: the next export finds what it wrote before, and an
import recognises runs that came from this project. Names MLflow refuses are renamed by
:class:`KeyMap`, the renames kept in the run's ``mlops.renamed`` tag for both directions to read.

MLflow is an optional extra, imported only inside the functions that need it.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import warnings
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any, Callable, Iterable, Iterator

from ..exceptions import BadInput

# Tags an exported MLflow run carries so that the next export knows what it already holds.
T_RUN_ID = "mlops.run_id"  # our run id
T_EXPORT = "mlops.export"  # incomplete until every part of the run is written, then complete
T_CURSOR = "mlops.metrics_cursor"  # the last metrics.id sent
T_ARTIFACTS = "mlops.artifacts"  # hash of the artifact manifest sent
T_RENAMED = "mlops.renamed"  # JSON {kind: {mlflow key: our key}} for keys MLflow does not accept
T_TRUNCATED = "mlops.truncated"  # JSON {kind.key: original length} of values cut to MLflow's limits
T_STATUS = "mlops.status"  # our status when MLflow has no word for it (crashed)
T_MODEL = "mlops.model_version"  # name@vN on an MLflow model version (and the run holding its files)
T_DIGEST = "mlops.digest"  # the model file's BLAKE3 digest, beside T_MODEL
T_ALIASES = "mlops.aliases"  # on a registered model: the aliases this project set
# Bookkeeping of the export, dropped on import (the run's own tags are kept).
EXPORT_ONLY = {T_EXPORT, T_CURSOR, T_ARTIFACTS, T_RENAMED, T_STATUS}

TO_MLFLOW = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "killed": "KILLED",
             "crashed": "FAILED", "pruned": "KILLED"}
FROM_MLFLOW = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished", "FAILED": "failed",
               "KILLED": "killed"}

# MLflow's limits (mlflow.utils.validation), fixed across 2.x and 3.x.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
PARAMS_TAGS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
_KEY_OK = re.compile(r"^[/\w.\- :]+$")
_KEY_BAD_CHAR = re.compile(r"[^/\w.\- :]")


# -- MLflow itself ------------------------------------------------------------------------------
def require_mlflow():
    """The ``mlflow`` module; BadInput saying how to install it when it is missing."""
    try:
        import mlflow
    except ImportError:
        raise BadInput("MLflow is not installed: pip install 'mlops-jupyter[mlflow]'") from None
    return mlflow


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow (and alembic under it) log every table they create and warn about much; hush them."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    bar = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"  # its download bars; ours is *progress*
    bar_was = os.environ.get(bar)
    if bar_was is None:
        os.environ[bar] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if bar_was is None:
            os.environ.pop(bar, None)


def first_line(e: BaseException) -> str:
    """An MLflow error as one short line (its messages can run to pages)."""
    msg = str(getattr(e, "message", None) or e).strip()
    return (msg.splitlines()[0] if msg else type(e).__name__)[:300]


def _local_path(uri: str) -> str | None:
    """The folder of a ``file:`` URI (or a bare path), None for other schemes."""
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path) or "."
    if "://" not in uri and not re.match(r"^[A-Za-z][\w+.-]*:", uri):
        return uri
    return None


def sqlite_path(uri: str) -> str | None:
    """The database file of a ``sqlite:`` URI, None for other schemes; BadInput for an in-memory one."""
    if not uri.startswith("sqlite:"):
        return None
    path = uri.split("///", 1)[1] if "///" in uri else ""
    if not path or path.startswith(":memory:") or path.startswith("file::memory:"):
        raise BadInput(f"{uri}: an in-memory MLflow store keeps nothing; give a file, e.g. sqlite:///mlflow.db")
    return path.split("?", 1)[0]


def open_client(uri: Any, create: bool):
    """An MlflowClient on *uri* (tracking and registry), checked by a first request.

    Args:
        uri: the MLflow tracking URI.
        create: True when writing (a new sqlite file and its folder may be made); reading needs
            the store to exist already, as MLflow would otherwise create an empty one.
    """
    mlflow = require_mlflow()
    if not isinstance(uri, str) or not uri.strip():
        raise BadInput("give an MLflow tracking URI, e.g. sqlite:///mlflow.db")
    uri = uri.strip()
    db = sqlite_path(uri)
    folder = _local_path(uri)
    if db is not None:
        if create:
            parent = os.path.dirname(os.path.abspath(db))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as e:
                raise BadInput(f"cannot create {parent} for {uri}: {e.strerror}") from None
        elif not os.path.isfile(db):
            raise BadInput(f"no MLflow database at {db} ({uri})")
    elif folder is not None and not create and not os.path.isdir(folder):
        raise BadInput(f"no MLflow file store at {folder} ({uri})")
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as e:
        if "MLFLOW_ALLOW_FILE_STORE" in str(e):
            raise BadInput(f"MLflow {mlflow.__version__} refuses file stores ({uri}) unless "
                           "MLFLOW_ALLOW_FILE_STORE=true is set (its file store is in maintenance mode); set it, "
                           "or use sqlite:///mlflow.db") from None
        raise BadInput(f"cannot use the MLflow tracking store {uri}: {first_line(e)}") from None
    return client


def is_not_found(e: Exception) -> bool:
    """Whether an MLflow error says that what was asked for does not exist."""
    return getattr(e, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def pages(call: Callable, **kw) -> Iterator:
    """Every item of a paged MLflow search."""
    token = None
    while True:
        page = call(page_token=token, **kw)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def millis(t: float | None) -> int | None:
    """Our time (seconds since the epoch) as MLflow's (milliseconds)."""
    return None if t is None else int(round(t * 1000))


def with_progress(progress: Callable | None, items: list) -> Iterable:
    """*items* wrapped by *progress* (``tqdm``-like), or as they are when there is none."""
    return progress(items) if progress is not None else items


# -- keys and values MLflow accepts ----------------------------------------------------------------
def valid_key(key: str) -> bool:
    """Whether MLflow accepts *key* as a param, metric or tag name."""
    if not key or len(key) > MAX_KEY or not _KEY_OK.match(key):
        return False
    norm = posixpath.normpath(key)
    return norm == key and norm != "." and not norm.startswith("..") and not norm.startswith("/")


def _sanitize(key: str) -> str:
    parts = [p for p in _KEY_BAD_CHAR.sub("_", key).split("/") if p not in ("", ".")]
    out = "/".join("__" if p == ".." else p for p in parts)[:MAX_KEY].rstrip("/")
    return out if valid_key(out) else "_"


class KeyMap:
    """Our param, metric and tag names as MLflow accepts them, the same from one export to the next.

    A name MLflow refuses (``acc@5``, ``loss (val)``) becomes a similar one (``acc_5``), made unique
    against every name the run uses; the renames are kept in the run's ``mlops.renamed`` tag, read
    back by the next export and by an import."""

    KINDS = ("params", "metrics", "tags")

    def __init__(self, renamed: dict | None = None, taken: dict[str, Iterable[str]] | None = None):
        renamed = renamed if isinstance(renamed, dict) else {}
        self.renamed = {k: dict(renamed.get(k) or {}) for k in self.KINDS}
        self.rev = {k: {orig: m for m, orig in self.renamed[k].items()} for k in self.KINDS}
        self.taken = {k: {x for x in (taken or {}).get(k, ()) if valid_key(x)} | set(self.renamed[k])
                      for k in self.KINDS}
        self.changed = False

    def __call__(self, kind: str, key: str) -> str:
        if key in self.rev[kind]:
            return self.rev[kind][key]
        if valid_key(key):
            return key
        base = cand = _sanitize(key)
        i = 2
        while cand in self.taken[kind]:
            suffix = f"_{i}"
            cand = base[:MAX_KEY - len(suffix)] + suffix
            i += 1
        self.taken[kind].add(cand)
        self.renamed[kind][cand] = key
        self.rev[kind][key] = cand
        self.changed = True
        return cand

    def tag_value(self) -> str | None:
        data = {k: v for k, v in self.renamed.items() if v}
        return json.dumps(data, sort_keys=True)[:MAX_TAG_VALUE] if data else None


def safe_relpath(path: str) -> str | None:
    """A recorded artifact path as a relative path inside a folder, None if it would leave it."""
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    return p.as_posix()


def parents_first(rows: list[dict], id_of: Callable, parent_of: Callable, start_of: Callable) -> list[dict]:
    """Rows ordered so that a parent comes before its children (then by start time)."""
    by_id = {id_of(r): r for r in rows}
    depth: dict[str, int] = {}

    def depth_of(rid: str) -> int:
        seen = []
        cur = rid
        while cur in by_id and cur not in depth and cur not in seen:
            seen.append(cur)
            cur = parent_of(by_id[cur])
        d = depth.get(cur, -1) if cur in by_id else -1
        for rid_ in reversed(seen):
            d += 1
            depth[rid_] = d
        return depth[rid]

    return sorted(rows, key=lambda r: (depth_of(id_of(r)), start_of(r) or 0))

