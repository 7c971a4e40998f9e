"""The serving state: the models that answer, their traffic split, the metrics and the prediction log.

One :class:`ModelService` per app, built at start-up; the routes read it, the alias follower swaps
models in it. It lives on one event loop: plain attributes, no locks.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import asynccontextmanager
from typing import Any

from .inputs import InputError, Parsed, to_frame, to_matrix
from .metrics import Metrics
from .options import ModelRef, ServeOptions
from .served import Served, load_models, load_served


class ModelService:
    """The loaded model(s), the prediction log and the metrics of one server."""

    def __init__(self, options: ServeOptions, preload: list[Served] | None = None, store: Any = None,
                 dedicated: bool = False, versions: list | None = None):
        self.options = options
        self.metrics = Metrics()
        self.served: list[Served] = []
        self.cumulative: list[float] = []
        self.ready = False
        self.log: Any = None  # predlog.PredictionLog
        self.store = store
        self._preload = preload
        self._versions = versions  # resolved by the parent process (--workers)
        self._dedicated = dedicated
        self._follower: asyncio.Task | None = None
        self._batchers: dict[int, Any] = {}  # id(Served) -> batching.Batcher (with --batch)

    # -- the models ------------------------------------------------------------------------------
    def set_served(self, served: list[Served]) -> None:
        total = sum(s.weight for s in served)
        acc, cum = 0.0, []
        for s in served:
            acc += s.weight / total
            cum.append(acc)
        batchers = self._batchers
        if self.options.batch is not None:
            from .batching import Batcher

            # A batch per Served: a version swapped in gets its own; the one swapped out finishes
            # the batch it holds (its requests keep a reference to it).
            old, batchers = batchers, {}
            for s in served:
                b = old.get(id(s))
                batchers[id(s)] = b if b is not None and b.served is s else Batcher(
                    s, self.options.batch, self.metrics, self.options.inline_rows)
        # One assignment each: a request already past pick() keeps the Served it got.
        self.served, self.cumulative, self._batchers, self.ready = served, cum, batchers, True

    def batcher(self, s: Served):
        """The :class:`~.batching.Batcher` of *s*, or None when batching is off."""
        return self._batchers.get(id(s))

    def pick(self, key: str | None) -> Served:
        """The model that answers: by weight, at random or (with a key) always the same for one key."""
        served = self.served
        if len(served) == 1:
            return served[0]
        if key is None:
            import random

            x = random.random()
        else:
            import hashlib

            x = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2 ** 64
        for s, edge in zip(served, self.cumulative):
            if x < edge:
                return s
        return served[-1]

    # -- answering ---------------------------------------------------------------------------------
    @staticmethod
    def convert(s: Served, parsed: Parsed) -> Any:
        """The request's rows as *s*'s model takes them, checked against its signature (InputError
        naming the first problem): a float matrix or a DataFrame. Every kind of input is made here,
        and what this returns is what batching stacks (:func:`~.batching.merge_inputs`)."""
        return to_matrix(parsed, s.signature) if s.predictor.matrix else to_frame(parsed, s.signature)

    @staticmethod
    def check_proba(s: Served) -> None:
        if not s.classifier:
            raise InputError(f"{s.ref} is not a classifier: no probabilities", 422)

    @staticmethod
    def infer(s: Served, X, proba: bool) -> tuple:
        """The model's outputs on *X*: (predictions, probabilities or None), as arrays."""
        import numpy as np

        model = s.predictor.model
        y = np.asarray(model.predict(X))
        return y, (np.asarray(model.predict_proba(X)) if proba else None)

    @staticmethod
    def reply(s: Served, y, p) -> dict:
        """The answer's body: predictions, and with probabilities *p* the classes they are of."""
        out: dict = {"predictions": y.tolist()}
        if p is not None:
            out["probabilities"] = p.tolist()
            if s.classes is not None:
                out["classes"] = s.classes
        return out

    @staticmethod
    def predict(s: Served, X, proba: bool) -> dict:
        """The answer of *s* on *X*: predictions, and with *proba* probabilities and classes."""
        if proba:
            ModelService.check_proba(s)
        y, p = ModelService.infer(s, X, proba)
        return ModelService.reply(s, y, p)

    # -- start and stop --------------------------------------------------------------------------
    @asynccontextmanager
    async def lifespan(self, app=None):
        """The app's lifespan: load (unless preloaded), serve, and write the log out at the end."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        from ..store import open_store

        loop = asyncio.get_running_loop()
        if self.store is None:
            self.store = await loop.run_in_executor(None, open_store)
        if self._preload is not None:
            served, self._preload = self._preload, None
        else:
            served = await loop.run_in_executor(None, load_models, self.options, self.store, self._versions)
        self.set_served(served)
        self._tune_models()
        if self.options.log_sample > 0:
            from .predlog import PredictionLog

            self.log = PredictionLog(self.store.meta, self.metrics, sample=self.options.log_sample)
        if self._dedicated:
            import gc

            # Everything loaded so far (libraries, the model) lives as long as the server: keep it
            # out of the collector's full passes, which otherwise walk it every few thousand
            # requests (tens of milliseconds each: the p99). Not done on a notebook's kernel.
            gc.collect()
            gc.freeze()
        if self.options.reload_alias:
            self._follower = asyncio.create_task(self.follow_aliases(self.options.reload_alias))

    def _tune_models(self) -> None:
        if any(type(s.predictor.model).__module__.startswith("sklearn") for s in self.served):
            import sklearn

            # Thread-local in scikit-learn: applies to this event loop's thread only. Inputs were
            # already checked for NaN/infinity and types, so the model need not check them again.
            sklearn.set_config(assume_finite=True, skip_parameter_validation=True)

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
        if self.log is not None:  # write everything answered before the server stops
            await asyncio.get_running_loop().run_in_executor(None, self.log.close)

    # -- following aliases -----------------------------------------------------------------------
    async def follow_aliases(self, every: float) -> None:
        """Poll moving refs; load a new version off the event loop, then swap it in."""
        from ..models.registry import Registry

        registry = Registry(self.store)
        while True:
            await asyncio.sleep(every)
            for i, s in enumerate(list(self.served)):
                if s.moving:
                    await self._follow(registry, i, s)

    async def _follow(self, registry, i: int, s: Served) -> None:
        loop = asyncio.get_running_loop()
        try:
            v = await loop.run_in_executor(None, registry.get, s.source)
            if v.ref == s.ref:
                return
            ref = ModelRef(s.source, s.weight, s.moving)
            new = await loop.run_in_executor(None, load_served, registry, ref, self.options, v)
        except Exception as e:  # the store is busy or the new version cannot load: keep serving
            print(f"mlops serve: could not follow {s.source} ({type(e).__name__}: {e}); still serving "
                  f"{s.ref}", file=sys.stderr, flush=True)
            return
        served = list(self.served)
        served[i] = new
        self.set_served(served)
        print(f"mlops serve: {s.source} moved: now serving {new.ref} (was {s.ref})", file=sys.stderr, flush=True)
