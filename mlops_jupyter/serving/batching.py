"""Adaptive request batching (``mlops serve --batch``): requests for one model that arrive together
are answered by one model call.

Each request is read, parsed, checked and converted on its own first (a bad one gets its 4xx
without joining), then waits in its model's :class:`Batcher`. The first request of a batch starts
a timer; the batch goes when it holds ``max_size`` rows, when ``max_wait_ms`` have passed, or as
soon as the event loop has taken in everything that had arrived (one loop iteration passes with no
request joining). That last rule is what makes it adaptive: a lone request does not wait for
company that is not coming, while under load the requests that pile up as the loop works on
others go together, and the batches grow with the load. A request of ``max_size`` rows or more
goes alone.

A merged call that raises is not the end of the batch: each request is then predicted alone, so
only the request the model refuses gets the error. Requests whose inputs cannot be stacked
(other columns or dtypes, other shapes) go in separate calls of the same batch.

Everything here runs on the server's event loop (no locks); a merged batch of more than
``inline_rows`` rows is predicted in a thread, as the routes do for a big request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .metrics import Metrics
from .options import BatchOptions


# -- stacking inputs and splitting outputs (DataFrames, arrays, dicts of arrays) ------------------------
def rows_of(X: Any) -> int:
    """How many rows *X* holds: its length along axis 0 (a dict of arrays: that of its first array)."""
    if isinstance(X, dict):
        return len(next(iter(X.values()))) if X else 0
    return len(X)


def stack_key(X: Any) -> tuple:
    """What must match for inputs to be stacked: a frame's columns and dtypes, an array's shape past
    axis 0 and dtype, for a dict the same per key."""
    if isinstance(X, dict):
        return ("dict", *((k, stack_key(v)) for k, v in X.items()))
    columns = getattr(X, "columns", None)
    if columns is not None:  # a DataFrame
        return ("frame", tuple(columns), tuple(X.dtypes.tolist()))
    shape = getattr(X, "shape", None)
    if shape is not None:
        return ("array", tuple(shape[1:]), X.dtype)
    return ("other", type(X))


def merge_inputs(parts: list) -> Any:
    """*parts* stacked along axis 0: DataFrames concatenated (a fresh index), numpy arrays
    concatenated, dicts of arrays concatenated key by key."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, dict):
        return {k: merge_inputs([p[k] for p in parts]) for k in first}
    if hasattr(first, "iloc"):
        import pandas as pd

        return pd.concat(parts, ignore_index=True)
    import numpy as np

    return np.concatenate(parts, axis=0)


def split_rows(value: Any, sizes: list[int]) -> list:
    """*value* (an array, DataFrame, list or dict of them) cut along axis 0 into pieces of *sizes* rows."""
    if isinstance(value, dict):
        cut = {k: split_rows(v, sizes) for k, v in value.items()}
        return [{k: pieces[i] for k, pieces in cut.items()} for i in range(len(sizes))]
    take = value.iloc if hasattr(value, "iloc") else value
    out, at = [], 0
    for n in sizes:
        out.append(take[at:at + n])
        at += n
    return out


# -- the batcher --------------------------------------------------------------------------------------
@dataclass
class Waiting:
    """One request in a batch: its converted input, its size, whether it asked for probabilities."""

    X: Any
    rows: int
    proba: bool
    future: asyncio.Future


class Batcher:
    """Merges the requests for one served model (:class:`~.served.Served`) into model calls.

    Args:
        served: the model that answers.
        options: max_size (rows) and max_wait_ms.
        metrics: where batch sizes are counted.
        inline_rows: merged batches up to this many rows are predicted on the event loop.
    """

    def __init__(self, served: Any, options: BatchOptions, metrics: Metrics, inline_rows: int):
        self.served = served
        self.max_size = options.max_size
        self.max_wait = options.max_wait_ms / 1000
        self.metrics = metrics
        self.inline_rows = inline_rows
        self.pending: list[Waiting] = []
        self.rows = 0
        self._timer: asyncio.TimerHandle | None = None
        self._generation = 0  # which batch a settle check or timer belongs to
        self._seen = 0  # requests in the batch at the last settle check
        self._threads: set[asyncio.Task] = set()  # batches predicted in a thread, kept from the collector

    async def predict(self, X: Any, proba: bool) -> tuple[dict, int]:
        """*X*'s answer (as :meth:`ModelService.predict` gives it) and how many requests shared its
        model call. Raises what predicting *X* alone raises."""
        rows = rows_of(X)
        if rows >= self.max_size:
            return await self._alone(X, proba), 1
        loop = asyncio.get_running_loop()
        if self.rows + rows > self.max_size:
            self._go()  # no room: the waiting batch goes now, this request starts the next
        future = loop.create_future()
        self.pending.append(Waiting(X, rows, proba, future))
        self.rows += rows
        if self.rows >= self.max_size:
            self._go()
        elif len(self.pending) == 1:
            self._generation += 1
            self._seen = 1
            if self.max_wait > 0:
                self._timer = loop.call_later(self.max_wait, self._on_timer, self._generation)
            loop.call_soon(self._settle, self._generation)
        return await future

    # -- when a batch goes ------------------------------------------------------------------------------
    def _settle(self, generation: int) -> None:
        # Runs once per loop iteration while the batch fills: every request whose bytes had arrived
        # has been read and has joined by the time a whole iteration brings no newcomer.
        if generation != self._generation or not self.pending:
            return
        if len(self.pending) != self._seen and self.max_wait > 0:  # max_wait_ms=0: what had arrived, no more
            self._seen = len(self.pending)
            asyncio.get_running_loop().call_soon(self._settle, generation)
            return
        self._go()

    def _on_timer(self, generation: int) -> None:
        if generation == self._generation:
            self._go()

    def _go(self) -> None:
        """Send the waiting batch: predicted here when small, else in a thread."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self.pending, self.rows = self.pending, [], 0
        self._generation += 1
        if not batch:
            return
        if sum(w.rows for w in batch) > self.inline_rows:
            task = asyncio.ensure_future(self._in_thread(batch))
            self._threads.add(task)
            task.add_done_callback(self._threads.discard)
        else:
            self._settle_futures(batch, self.answer(batch))

    async def _in_thread(self, batch: list[Waiting]) -> None:
        try:
            done = await asyncio.get_running_loop().run_in_executor(None, self.answer, batch)
        except BaseException as e:  # the thread pool is gone (shutdown): every request hears of it
            done = Answered([e] * len(batch), [], 0)
        self._settle_futures(batch, done)

    async def _alone(self, X: Any, proba: bool) -> dict:
        from .service import ModelService

        self.metrics.observe_batch(self.served.ref, 1, rows_of(X))
        if rows_of(X) > self.inline_rows:
            return await asyncio.get_running_loop().run_in_executor(None, ModelService.predict, self.served, X, proba)
        return ModelService.predict(self.served, X, proba)

    def _settle_futures(self, batch: list[Waiting], done: Answered) -> None:
        # Counted here, on the event loop, also for a batch predicted in a thread: one writer.
        for requests, rows in done.calls:
            self.metrics.observe_batch(self.served.ref, requests, rows)
        self.metrics.batch_fallbacks += done.fallbacks
        for w, outcome in zip(batch, done.outcomes):
            if w.future.done():  # its request was cancelled (the server is stopping)
                continue
            if isinstance(outcome, BaseException):
                w.future.set_exception(outcome)
            else:
                w.future.set_result(outcome)

    # -- the model calls --------------------------------------------------------------------------------
    def answer(self, batch: list[Waiting]) -> Answered:
        """Predict *batch*: one model call per group of stackable inputs; a call that raises becomes
        one call per request of its group."""
        groups: dict[tuple, list[int]] = {}
        for i, w in enumerate(batch):
            groups.setdefault(stack_key(w.X), []).append(i)
        done = Answered([None] * len(batch), [], 0)
        for members in groups.values():
            for i, outcome in zip(members, self._call([batch[i] for i in members], done)):
                done.outcomes[i] = outcome
        return done

    def _call(self, group: list[Waiting], done: Answered) -> list:
        from .service import ModelService

        s = self.served
        sizes = [w.rows for w in group]
        if len(group) > 1:
            try:
                y, p = ModelService.infer(s, merge_inputs([w.X for w in group]), any(w.proba for w in group))
                if rows_of(y) != sum(sizes) or (p is not None and rows_of(p) != sum(sizes)):
                    raise ValueError(f"the model answered {rows_of(y)} rows for {sum(sizes)}")
            except Exception:  # a request the model refuses must not fail its neighbours: each alone
                done.fallbacks += 1
            else:
                done.calls.append((len(group), sum(sizes)))
                ps = split_rows(p, sizes) if p is not None else [None] * len(group)
                return [(ModelService.reply(s, yi, pi if w.proba else None), len(group))
                        for w, yi, pi in zip(group, split_rows(y, sizes), ps)]
        outcomes: list = []
        for w in group:
            done.calls.append((1, w.rows))
            try:
                outcomes.append((ModelService.predict(s, w.X, w.proba), 1))
            except Exception as e:
                outcomes.append(e)
        return outcomes


@dataclass
class Answered:
    """What predicting a batch gave: per request (answer, requests in its model call) or the
    exception; the model calls made, as (requests, rows); how many merged calls fell back."""

    outcomes: list
    calls: list[tuple[int, int]]
    fallbacks: int
