"""Background writer: metric points are handed over in O(1) and written in batches.

``push`` appends to a deque (thread-safe, no lock) and returns; a daemon thread wakes
every ``interval`` seconds, or as soon as a batch is full, and inserts everything
queued in one transaction. The queue is bounded: when the disk falls behind,
``push`` waits for the writer instead of letting memory grow. Other small writes
(cells, heartbeats, environment capture) go through ``submit`` so they never hold
up the notebook either.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import deque
from typing import Callable

from ..exceptions import MlopsError

BATCH = 20_000  # points per transaction
HIGH_WATER = 100_000  # points queued before push() waits
INTERVAL = 0.2  # seconds between flushes: a SIGKILL loses at most this much
HEARTBEAT_EVERY = 15.0


class Writer:
    def __init__(self, meta, interval: float = INTERVAL, high_water: int = HIGH_WATER):
        self.meta = meta
        self.interval = interval
        self.high_water = high_water
        self.points: deque = deque()
        self.push = self.points.append  # the hot path: a bound deque.append
        self.tasks: deque = deque()
        self.active: set[str] = set()  # runs whose heartbeat we keep
        self._wake = threading.Event()
        self._drained = threading.Condition()
        self._lock = threading.Lock()  # one drain at a time (thread or flush())
        self._closed = False
        self.errors = 0
        self.dropped = 0
        self._last_beat = 0.0
        self._thread = threading.Thread(target=self._loop, name="mlops-writer", daemon=True)
        self._thread.start()

    # -- producers --------------------------------------------------------------
    def backpressure(self) -> None:
        """Called by loggers when the queue is past its high-water mark: wait for the writer."""
        self._wake.set()
        deadline = time.monotonic() + 30.0
        with self._drained:
            while len(self.points) > self.high_water // 2:
                if self._closed or time.monotonic() > deadline or not self._thread.is_alive():
                    # The writer cannot keep up at all (store failing): never hang the notebook.
                    n = 0
                    while len(self.points) > self.high_water // 2:
                        self.points.popleft()
                        n += 1
                    self.dropped += n
                    warnings.warn(f"mlops: the store is not keeping up; dropped {n} metric points",
                                  RuntimeWarning, stacklevel=3)
                    return
                self._drained.wait(0.5)

    def submit(self, task: Callable[[], None]) -> None:
        """Run *task* on the writer thread, in order with other tasks."""
        self.tasks.append(task)
        self._wake.set()

    # -- the writer thread --------------------------------------------------------
    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception as e:  # keep the thread alive; the points stay queued
                self.errors += 1
                if self.errors in (1, 10, 100):
                    warnings.warn(f"mlops: background write failed ({e}); will retry", RuntimeWarning)
                time.sleep(min(0.1 * self.errors, 2.0))

    def _drain(self, also: Callable | None = None) -> bool:
        """Write the queued tasks and points. *also(conn)*, when given, runs in the transaction of
        the last batch of points; True when it did (committed), False when there were no points."""
        done = False
        with self._lock:
            while self.tasks:
                task = self.tasks[0]
                task()
                self.tasks.popleft()
            pts = self.points
            while pts:
                pop = pts.popleft
                batch = [pop() for _ in range(min(len(pts), BATCH))]
                last = also if also is not None and not pts else None
                try:
                    self.meta.insert_metrics(batch, also=last)
                except BaseException:
                    pts.extendleft(reversed(batch))  # back at the front, in order: nothing lost
                    raise
                done = done or last is not None
                with self._drained:
                    self._drained.notify_all()
            now = time.time()
            if self.active and now - self._last_beat > HEARTBEAT_EVERY:
                self._last_beat = now
                self.meta.heartbeat(self.active, now)
        with self._drained:
            self._drained.notify_all()
        return done

    def flush(self, timeout: float = 60.0, also: Callable | None = None) -> bool:
        """Write everything queued so far before returning; *also* as in :meth:`_drain`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._drain(also)
            except MlopsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        try:
            self.flush(timeout=10.0)
        finally:
            self._closed = True
            self._wake.set()
            self._thread.join(timeout=5.0)
