"""Prediction logs: what the server was asked and answered, kept in the store for monitoring.

A table's rows are kept as JSON (``{"columns", "data"}``); a network's tensors as their raw bytes
(``{"columns", "tensors": {name: [dtype, shape, base64]}}``): an image row of 784 floats is 4 KiB
instead of 15 KiB of decimal text, and encoding it costs a copy instead of 784 float formattings.
:func:`read` gives both back as rows.

The server hands each answered request to :class:`PredictionLog` in O(1) (a deque append) before
it sends the response; a daemon thread writes what is queued in batches, one transaction each,
every ``interval`` seconds. A store error (disk full, table locked, database gone) never reaches a
prediction: the batch is retried a few times, then counted as failed and warned about on stderr
(at most once a minute); when the queue is full, new records are counted as dropped. ``close``
writes everything still queued, so a server stopped normally loses nothing it answered; a SIGKILL
loses at most the last ``interval``.

Labels (``POST /feedback``, ``mj.log_labels``) are written at once: the caller learns whether they
were stored.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import deque
from typing import Any, Iterable

from ..exceptions import BadInput

BATCH = 2_000  # records per transaction
CAPACITY = 100_000  # records queued before new ones are dropped
INTERVAL = 0.2
RETRIES = (0.2, 0.5, 1.0)
WARN_EVERY = 60.0


class PredictionLog:
    def __init__(self, meta, metrics, sample: float = 1.0, interval: float = INTERVAL,
                 capacity: int = CAPACITY, stderr=None):
        self.meta = meta
        self.metrics = metrics
        self.sample = sample
        self.interval = interval
        self.capacity = capacity
        self.stderr = stderr or sys.stderr
        self.queue: deque = deque()
        self._statements: dict[int, str] = {}
        self._wake = threading.Event()
        self._closed = False
        self._last_warning = 0.0
        self._unwarned = 0
        self._thread = threading.Thread(target=self._loop, name="mlops-prediction-log", daemon=True)
        self._thread.start()

    # -- the request path ---------------------------------------------------------------------------
    def record(self, request_id: str, name: str, version: int, route: str, columns: list, rows: list,
               result: dict, latency: float, arrays: dict | None = None) -> bool:
        """Queue one answered request; False when sampled out or dropped (never raises).

        The record is encoded here, on the request's thread (orjson: microseconds), so the writer
        thread only hands ready tuples to the database driver and holds the GIL as little as
        possible: a busy writer thread would otherwise add its GIL turns to request latency."""
        if self.sample < 1.0 and random.random() >= self.sample:
            return False
        if len(self.queue) >= self.capacity:
            self.metrics.log_dropped += 1
            self._warn(f"prediction log queue is full ({self.capacity:,} records): dropping records; "
                       "predictions are still served")
            return False
        try:
            if arrays is not None:
                inputs = _dumps({"columns": columns, "tensors": {k: tensor_text(a) for k, a in arrays.items()}})
                n = len(next(iter(arrays.values())))
            else:
                inputs, n = _dumps({"columns": columns, "data": rows}), len(rows)
            outputs = _dumps(result)
        except Exception as e:
            self.metrics.log_errors += 1
            self._warn(f"a prediction log record could not be encoded ({e}); skipped")
            return False
        self.queue.append((request_id, name, version, time.time(), route, n, latency, inputs, outputs))
        if len(self.queue) >= BATCH:
            self._wake.set()
        return True

    # -- the writer thread --------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._drain()
            if self._closed:
                return

    def _drain(self) -> None:
        while self.queue:
            batch = []
            while self.queue and len(batch) < BATCH:
                batch.append(self.queue.popleft())
            self._write(batch)

    def _write(self, batch: list) -> None:
        error = None
        for delay in (*RETRIES, None):
            try:
                with self.meta.write() as conn:
                    # Many rows per statement, not executemany: the driver lets go of the GIL
                    # around every statement it steps, and under load the event loop then keeps
                    # it for up to a switch interval each time, so row-at-a-time inserts crawled
                    # at about a thousand rows a second and the queue (and memory) grew.
                    # A few fixed statement sizes, so the driver's statement cache holds a
                    # handful of prepared statements instead of one per batch length.
                    i = 0
                    for size in self._sizes:
                        while len(batch) - i >= size:
                            chunk = batch[i:i + size]
                            conn.exec_driver_sql(self._sql(size), tuple(v for rec in chunk for v in rec))
                            i += size
                self.metrics.logged += len(batch)
                return
            except Exception as e:  # disk full, store gone, table missing...
                error = e
                if delay is None or self._closed:
                    break
                time.sleep(delay)
        self.metrics.log_errors += len(batch)
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        self._warn(f"{len(batch)} prediction log record(s) could not be written ({first}); predictions are "
                   "still served")

    @property
    def _sizes(self) -> tuple[int, ...]:
        """Rows per statement, largest first; ends with 1 so every batch is covered. (9 values a
        row: SQLite takes 999 bound values per statement before 3.32, 32,766 since.)"""
        import sqlite3

        if self.meta.dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 32):
            return (100, 20, 5, 1)
        return (500, 100, 20, 5, 1)

    def _sql(self, rows: int) -> str:
        sql = self._statements.get(rows)
        if sql is None:
            mark = "?" if self.meta.dialect == "sqlite" else "%s"
            cols = "request_id, model, version, at, route, n_rows, latency, inputs, outputs"
            one = f"({', '.join([mark] * 9)})"
            sql = self._statements[rows] = f"INSERT INTO predictions ({cols}) VALUES {', '.join([one] * rows)}"
        return sql

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        self._unwarned += 1
        if now - self._last_warning >= WARN_EVERY or self._last_warning == 0.0:
            more = f" (and {self._unwarned - 1} similar since the last warning)" if self._unwarned > 1 else ""
            try:
                print(f"mlops serve: {message}{more}", file=self.stderr, flush=True)
            except Exception:
                pass
            self._last_warning, self._unwarned = now, 0

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is written (or failed)."""
        deadline = time.monotonic() + timeout
        while self.queue and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)

    def close(self, timeout: float = 60.0) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        if self.queue:  # the thread died or timed out: write what is left from here
            self._drain()


class RequestIds:
    """Request ids for one server's event loop: 32 hex digits (what :func:`check_request_id` takes),
    the time in milliseconds (12) then 80 random bits (20).

    Time first, as in UUIDv7, because the request id is the prediction log's primary key: random
    ids made every logged batch touch index pages all over the table (several times the cost of
    writing the rows, and growing with the table), ordered ones add at the index's end. The
    random part is read from the system in bulk: one ``getrandom`` call per 256 ids, not one per
    request. Not shared between threads (each server makes its own).
    """

    CHUNK = 256

    def __init__(self):
        self._random = ""
        self._at = 0

    def new(self) -> str:
        if self._at >= len(self._random):
            import os

            self._random, self._at = os.urandom(10 * self.CHUNK).hex(), 0
        at = self._at
        self._at = at + 20
        return f"{time.time_ns() // 1_000_000:012x}{self._random[at:at + 20]}"


def tensor_text(a) -> list:
    """An array as ``[dtype, shape, base64 of its C-order bytes]`` (little-endian as numpy stores it here)."""
    import base64

    import numpy as np

    a = np.ascontiguousarray(a)
    return [a.dtype.str, list(a.shape), base64.b64encode(a.data).decode("ascii")]


def tensor_of(text: list):
    """:func:`tensor_text` read back: the array (a copy that owns its memory)."""
    import base64

    import numpy as np

    dtype, shape, data = text
    if np.dtype(dtype).hasobject:
        raise ValueError("a logged tensor of Python objects")
    return np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype)).reshape(shape).copy()


def _rows(inputs: dict) -> list:
    """A logged request's rows: as sent (tables), or per row one nested list per input (networks)."""
    if "tensors" not in inputs:
        return inputs["data"]
    arrays = [tensor_of(inputs["tensors"][c]).tolist() for c in inputs["columns"]]
    return [list(r) for r in zip(*arrays)]


def _dumps(obj) -> str:
    import orjson

    try:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:  # a value orjson does not know (a Decimal, a date...): as text
        return json.dumps(obj, default=str)


# -- labels and reading back ---------------------------------------------------------------------
def check_request_id(rid: Any) -> str:
    if not isinstance(rid, str) or len(rid) != 32 or any(c not in "0123456789abcdef" for c in rid):
        raise BadInput(f"request id {rid!r} is not one this server gave (32 hex digits)")
    return rid


def parse_feedback(body: Any) -> list[tuple[str, int, Any]]:
    """``{"request_id", "label"}``, ``{"request_id", "labels": [...]}`` or a list of them ->
    (request id, row, label) triples."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise BadInput("no labels: send {\"request_id\": ..., \"label\": ...} or a list of them")
    out = []
    for i, item in enumerate(items):
        where = f"item {i}: " if isinstance(body, list) else ""
        if not isinstance(item, dict):
            raise BadInput(f"{where}each label is an object with request_id and label (or labels)")
        rid = item.get("request_id")
        if rid is None:
            raise BadInput(f"{where}no 'request_id': each label names the request_id its prediction returned")
        try:
            check_request_id(rid)
        except BadInput as e:
            raise BadInput(f"{where}{e}") from None
        if "labels" in item:
            labels = item["labels"]
            if not isinstance(labels, list) or not labels:
                raise BadInput(f"{where}'labels' should be a non-empty list, one label per row of the request")
        elif "label" in item:
            labels = [item["label"]]
        else:
            raise BadInput(f"{where}no 'label' (or 'labels') for request {rid}")
        for row, label in enumerate(labels):
            if isinstance(label, (dict, list)):
                raise BadInput(f"{where}label for row {row} of {rid} should be a number, string or boolean")
            out.append((rid, row, label))
    return out


def write_labels(meta, triples: Iterable[tuple[str, int, Any]]) -> int:
    """Store labels (a later label for the same request row replaces the earlier one)."""
    from ..store import schema as S

    rows = [{"request_id": rid, "row": row, "label": json.dumps(label), "at": time.time()}
            for rid, row, label in triples]
    if not rows:
        return 0
    t = S.prediction_labels

    def work(conn):
        ins = meta.insert_statement(t)
        conn.execute(ins.on_conflict_do_update(index_elements=[t.c.request_id, t.c.row],
                                               set_={"label": ins.excluded.label, "at": ins.excluded.at}), rows)

    meta.run_transaction(work)
    return len(rows)


def known_ids(meta, ids: list[str]) -> set[str]:
    import sqlalchemy as sa

    from ..store import schema as S

    found: set[str] = set()
    with meta.read() as conn:
        for i in range(0, len(ids), 500):
            found.update(r[0] for r in conn.execute(sa.select(S.predictions.c.request_id)
                                                    .where(S.predictions.c.request_id.in_(ids[i:i + 500]))))
    return found


def within(q, at, since: float | None, until: float | None):
    """*q* limited to ``since <= at < until`` (either end open when None)."""
    if since is not None:
        q = q.where(at >= since)
    if until is not None:
        q = q.where(at < until)
    return q


def _of(q, model: str, version: int | None, since: float | None, until: float | None):
    from ..store import schema as S

    p = S.predictions
    q = q.where(p.c.model == model)
    if version is not None:
        q = q.where(p.c.version == version)
    return within(q, p.c.at, since, until)


def read(meta, model: str, version: int | None = None, since: float | None = None, until: float | None = None,
         with_labels: bool = True, probabilities: bool = False):
    """Logged requests of *model* as one DataFrame: a row per predicted row, the input columns,
    ``prediction`` (and ``label`` where one was posted, ``probabilities`` when asked and logged),
    ``request_id``, ``row``, ``version``, ``at``.

    Rows are gathered in plain lists and framed once per distinct column list (a request-wide
    frame per request would cost ~100 µs each)."""
    import pandas as pd
    import sqlalchemy as sa

    from ..store import schema as S

    p = S.predictions
    q = _of(sa.select(p.c.request_id, p.c.version, p.c.at, p.c.inputs, p.c.outputs), model, version, since, until)
    with meta.read() as conn:
        recs = conn.execute(q.order_by(p.c.at)).all()
        labels: dict[tuple[str, int], Any] = {}
        if with_labels and recs:
            t = S.prediction_labels
            labelled = _of(sa.select(t.c.request_id, t.c.row, t.c.label).join(p, p.c.request_id == t.c.request_id),
                           model, version, since, until)
            for r in conn.execute(labelled):
                labels[(r.request_id, r.row)] = json.loads(r.label)
    groups: dict[tuple, dict[str, list]] = {}
    for r in recs:
        inputs, outputs = json.loads(r.inputs), json.loads(r.outputs)
        g = groups.get(tuple(inputs["columns"]))
        if g is None:
            g = groups[tuple(inputs["columns"])] = {k: [] for k in ("data", "prediction", "probabilities",
                                                                   "request_id", "row", "version", "at")}
        data = _rows(inputs)
        n = len(data)
        g["data"].extend(data)
        preds = outputs.get("predictions")
        g["prediction"].extend(preds if isinstance(preds, list) and len(preds) == n else [preds] * n)
        if probabilities:
            probs = outputs.get("probabilities")
            g["probabilities"].extend(probs if isinstance(probs, list) and len(probs) == n else [None] * n)
        g["request_id"].extend([r.request_id] * n)
        g["row"].extend(range(n))
        g["version"].extend([r.version] * n)
        g["at"].extend([r.at] * n)
    meta_cols = ["prediction"] + (["probabilities"] if probabilities else []) + ["request_id", "row", "version", "at"]
    frames = []
    for columns, g in groups.items():
        df = pd.DataFrame(g.pop("data"), columns=list(columns))
        for k in meta_cols:
            df[k] = g[k]
        if with_labels:
            df["label"] = [labels.get(key) for key in zip(g["request_id"], g["row"])]
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=meta_cols + (["label"] if with_labels else []))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def requests(meta, model: str, since: float | None = None, until: float | None = None):
    """One row per logged request of *model* (all versions): ``at``, ``version``, ``n_rows``,
    ``latency`` (seconds), without decoding inputs: volume and latency figures come from here."""
    import pandas as pd
    import sqlalchemy as sa

    from ..store import schema as S

    p = S.predictions
    q = _of(sa.select(p.c.at, p.c.version, p.c.n_rows, p.c.latency), model, None, since, until)
    with meta.read() as conn:
        rows = conn.execute(q.order_by(p.c.at)).all()
    return pd.DataFrame(rows, columns=["at", "version", "n_rows", "latency"])
