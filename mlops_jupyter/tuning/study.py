"""``mj.tune``: an Optuna study over a notebook function, in the project's store, trials as runs."""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable

from ..exceptions import BadInput
from ..registry import Registry

DIRECTIONS = {"maximize": "maximize", "max": "maximize", "minimize": "minimize", "min": "minimize"}


def _tpe(seed, space):
    import optuna

    with warnings.catch_warnings():  # multivariate TPE is "experimental" in Optuna's words
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def _random(seed, space):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _cmaes(seed, space):
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed)


def _grid(seed, space):
    import optuna

    if not space:
        raise BadInput("sampler 'grid' needs the values to try: space={'n_estimators': [50, 100], ...}")
    return optuna.samplers.GridSampler({k: list(v) for k, v in space.items()}, seed=seed)


def _hyperband():
    import optuna

    return optuna.pruners.HyperbandPruner()


def _median():
    import optuna

    return optuna.pruners.MedianPruner()


def _no_pruning():
    import optuna

    return optuna.pruners.NopPruner()


# What varies plugs into a registry: the samplers and pruners a study names by word.
SAMPLERS: Registry = Registry("samplers")
for _name, _factory in (("tpe", _tpe), ("random", _random), ("cmaes", _cmaes), ("grid", _grid)):
    SAMPLERS.register(_name, _factory)
PRUNERS: Registry = Registry("pruners")
for _name, _factory in (("hyperband", _hyperband), ("median", _median), ("none", _no_pruning)):
    PRUNERS.register(_name, _factory)


def sampler_of(sampler: Any, seed: int | None, space: dict | None = None):
    """An Optuna sampler from its name (``tpe``: multivariate TPE) or a sampler given as is."""
    if not isinstance(sampler, str):
        return sampler
    if sampler not in SAMPLERS:
        raise BadInput(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS.names())}")
    return SAMPLERS.get(sampler)(seed, space)


def pruner_of(prune: Any):
    if prune is None:
        prune = "none"
    if not isinstance(prune, str):
        return prune
    if prune not in PRUNERS:
        raise BadInput(f"unknown pruner {prune!r}: use one of {', '.join(PRUNERS.names())}")
    return PRUNERS.get(prune)()


def search_options(sampler: Any, prune: Any, seed: int | None) -> dict:
    """How the study searches, as its run's parameters: the sampler and pruner by name (an Optuna
    object by its class), the seed."""
    return {"sampler": sampler if isinstance(sampler, str) else type(sampler).__name__,
            "prune": prune if isinstance(prune, str) or prune is None else type(prune).__name__, "seed": seed}


_storages: dict[str, Any] = {}


def storage_for(store):
    """Optuna's storage on the project's own database (its tables sit beside ours)."""
    url = store.settings.store_url
    if url not in _storages:
        _storages[url] = rdb_storage(url)
    return _storages[url]


def rdb_storage(url: str):
    """Optuna's RDB storage on *url*; on SQLite with the pragmas our own engine uses."""
    import optuna

    kwargs: dict = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    if url.startswith("sqlite"):
        import sqlalchemy as sa

        from ..store.metadata import SQLITE_PRAGMAS

        @sa.event.listens_for(storage.engine, "connect")
        def _on_connect(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cur.execute(pragma)
            cur.close()

        storage.engine.dispose()
    return storage


def check_options(n_trials, direction, metric, workers, timeout) -> str:
    from ..tracking.run import checked_metrics

    if n_trials is None and timeout is None:
        raise BadInput("say how long to search: n_trials=N, timeout=SECONDS, or both")
    if n_trials is not None and (not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1):
        raise BadInput(f"n_trials must be a whole number >= 1, got {n_trials!r}")
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0):
        raise BadInput(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise BadInput(f"workers must be a whole number >= 1, got {workers!r}")
    d = DIRECTIONS.get(str(direction).lower())
    if d is None:
        raise BadInput(f"direction must be maximize or minimize (max, min), got {direction!r}")
    checked_metrics({metric: 0.0}, None)  # a metric name the store takes
    return d


def tune(objective: Callable, n_trials: int | None = None, *, direction: str = "maximize", metric: str = "value",
         name: str | None = None, seed: int | None = None, sampler: Any = "tpe", prune: Any = None,
         workers: int = 1, timeout: float | None = None, resume: bool = False, space: dict | None = None,
         progress: bool = True, live: bool | None = None):
    """Search *objective*'s parameters with Optuna; each trial is a tracked run. Returns the study.

    Args:
        objective: ``objective(trial) -> float``, as for ``study.optimize`` (``trial.suggest_*``).
        n_trials: how many trials (this call's; a resumed study adds them to its own).
        direction: ``maximize`` or ``minimize``.
        metric: the name the objective's value is logged under on each trial's run; what the
            objective logs under this name with a step is reported to the pruner.
        name: the study's name (default: the objective's name and the time).
        seed: the sampler's seed (the same seed finds the same trials as Optuna alone).
        sampler: ``tpe`` (multivariate TPE), ``random``, ``cmaes``, ``grid`` (with *space*), or an
            Optuna sampler.
        prune: ``hyperband``, ``median``, ``none`` (default), or an Optuna pruner.
        workers: trials run side by side in this process (Optuna's threads).
        timeout: stop starting trials after this many seconds (finished ones are kept).
        resume: continue the study named *name* (its trials guide the sampler).
        space: for ``grid``: the values of each parameter.
        progress: show a progress bar.
        live: a view of the study that updates as trials finish (default: in a notebook).

    Raises:
        BadInput: a bad option, or a study of that name exists and *resume* is not set; nothing
            is started.
    """
    d = check_options(n_trials, direction, metric, workers, timeout)
    if name is not None:
        from ..data.catalog import check_name

        check_name(name, "study")
    import optuna

    smp, prn = sampler_of(sampler, seed, space), pruner_of(prune)
    from ..store import open_store

    store = open_store()
    storage = storage_for(store)
    name = name or f"{getattr(objective, '__name__', 'objective')}-{time.strftime('%Y%m%d-%H%M%S')}"
    exists = name in {s.study_name for s in storage.get_all_studies()}
    if exists and not resume:
        raise BadInput(f"study {name!r} exists: resume=True continues it, or choose another name")
    if resume and not exists:
        raise BadInput(f"no study {name!r} to resume")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is our one line, not Optuna's warning
    stored = optuna.create_study(study_name=name, storage=storage, sampler=smp, pruner=prn, direction=d,
                                 load_if_exists=resume)
    if exists and stored.direction.name.lower() != d:
        raise BadInput(f"study {name!r} {stored.direction.name.lower()}s; direction={direction!r} does not match")
    stored.set_user_attr("mlops.metric", metric)
    from . import trials

    options = search_options(sampler, prune, seed)
    if not local_store(store):
        # a team's store: other machines may work on the study at once, so every step goes through it
        return trials.optimize(stored, objective, metric=metric, n_trials=n_trials, timeout=timeout,
                               workers=workers, progress=progress, options=options, live=live)
    # On a laptop's SQLite store the search runs on an in-memory twin of the study (Optuna's storage
    # over SQLite costs about 40 ms a trial, three times a fast objective), and each finished trial
    # is written to the stored study from a background thread as it finishes.
    twin = optuna.create_study(sampler=smp, pruner=prn, direction=d, study_name=name)
    twin.set_user_attr("mlops.metric", metric)
    if resume:
        twin.add_trials([t for t in stored.trials if t.state.is_finished()])
    before = len(twin.trials)
    writer = TrialWriter(store.settings.store_url, name, first=before)
    try:
        trials.optimize(twin, objective, metric=metric, n_trials=n_trials, timeout=timeout, workers=workers,
                        progress=progress, options=options, on_trial=writer.put, live=live)
    finally:
        # trials that ended without Optuna's callbacks (the one Ctrl-C hit) are written too
        for t in twin.trials[before:]:
            if t.number not in writer.seen and t.state.is_finished():
                writer.put(t)
        writer.close()
    return optuna.load_study(study_name=name, storage=storage, sampler=smp, pruner=prn)


def local_store(store) -> bool:
    """Whether the store is a local SQLite file (a laptop's), not a team's shared database."""
    return store.settings.store_url.startswith("sqlite")


class TrialWriter:
    """Writes finished trials into the stored study, in the order of their numbers (trials side by
    side finish out of order; the stored study numbers them as written), from a process of its
    own (``python -m mlops_jupyter.tuning.writer``): Optuna's ORM spends about 20 ms of CPU on a
    trial, which a thread would take from the search itself (one interpreter lock). The process is
    in a session of its own, so the Ctrl-C that stops the search (sent to the whole process group
    by a terminal or Jupyter) does not stop it: the trial it hit is written too. Trials go to it
    pickled over its standard input, from a thread, so a slow write never holds the search up."""

    def __init__(self, url: str, study_name: str, first: int):
        import queue
        import subprocess
        import sys
        import threading

        self.seen: set[int] = set()
        self.proc = subprocess.Popen([sys.executable, "-m", "mlops_jupyter.tuning.writer", url, study_name, str(first)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.queue: queue.Queue = queue.Queue()
        self.feeder = threading.Thread(target=self._feed, name="mlops-tune-writer", daemon=True)
        self.feeder.start()

    def put(self, frozen) -> None:
        self.seen.add(frozen.number)
        self.queue.put(frozen)

    def _feed(self) -> None:
        import pickle

        try:
            while True:
                frozen = self.queue.get()
                if frozen is None:
                    break
                pickle.dump(frozen, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.flush()
        except OSError:  # the writer is gone: close() says so
            pass
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def close(self) -> None:
        """Wait until every trial put is written; one warning if some could not be."""
        import json

        self.queue.put(None)
        self.feeder.join()
        self.proc.stdin = None  # closed by the feeder; communicate() would flush it
        out, err = self.proc.communicate()
        try:
            failed = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            failed = [f"the writer process stopped (exit code {self.proc.returncode}): "
                      f"{err.decode(errors='replace').strip()[-300:]}"]
        if failed:
            warnings.warn(f"mlops tune: {len(failed)} trial(s) could not be written to the stored study "
                          f"({failed[0]})", RuntimeWarning, stacklevel=3)
