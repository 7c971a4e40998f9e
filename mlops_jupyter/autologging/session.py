"""What every framework's autologging shares: the settings, patches that never break the user's
call, the run a fit logs into, and the background worker that does the logging.

A patched ``fit`` does little on the user's time: it finds (or starts) the run, notes the
parameters, keeps a copy of the training data, and hands the rest (training metrics, the model
artifact, the dataset version, importances) to one worker thread. So autologging adds about a
millisecond to any ``fit`` however large the model. The run is left on time:

- a fit outside any run gets its own run, named after the estimator, which the worker ends when its
  logging is done; it leaves the active-run stack as soon as the fit returns, so what the user logs
  next is not written into it;
- a fit inside ``%mlops track`` / ``mj.start_run`` (or a job's run) logs into that run, and ending
  that run waits for its pending autologging;
- the next fit of the same estimator object waits for the logging of its previous fit (it would
  change the model under it); so does reading runs (``settle``) and the process's exit.

A fit that raises marks its own run failed and re-raises the user's exception untouched. A failure
inside autologging is reported once (a warning naming the framework and what failed) and never
reaches the user's ``fit``.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

MARK = "__mlops_autolog_original__"


@dataclass
class Settings:
    frameworks: frozenset[str]
    log_models: bool = True
    log_datasets: bool = True
    register: str | None = None  # registered_model_name: every logged model becomes a version of it
    max_tuning_runs: int = 5
    silent: bool = False


@dataclass
class FitRun:
    """The run one outermost fit logs into: the user's or the job's (*run* given), or its own,
    written by the worker (:meth:`open`) so that the fit does not wait for the store."""

    run: Any
    own: bool
    framework: str
    name: str = ""
    parent: str | None = None
    wall: float = field(default_factory=time.time)  # when the fit started
    started: float = field(default_factory=time.perf_counter)
    points: list = field(default_factory=list)  # (metrics, step) logged before the own run was made
    recording: bool = False  # a round/epoch recorder already logs into it
    steps: dict = field(default_factory=dict)  # post-training metric -> last step (own runs)

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Per-iteration / per-epoch figures, as they come: into the user's run at once (a live
        chart, a tuner's pruner see them), kept for an own run until the worker makes it."""
        from .record import finite_metrics

        clean = finite_metrics(metrics)
        if not clean:
            return
        if self.own:
            self.points.append((clean, step))
        else:
            self.run.log_metrics(clean, step=step)

    def record(self, metrics: dict[str, float], step: int, framework: str, what: str) -> None:
        """:meth:`log` from *framework*'s callback: a failure is reported once and the fit goes on,
        except a tuner's pruner stopping the trial (:func:`stops`), which reaches the fit."""
        try:
            self.log(metrics, step)
        except Exception as e:
            if stops(e):
                raise
            report(framework, what, e)

    def flush_points(self) -> None:
        run = self.open()
        points, self.points = self.points, []
        for metrics, step in points:
            run.log_metrics(metrics, step=step)

    def open(self):
        """The run (on the worker: an own run is made here, with the fit's start time)."""
        if self.run is None:
            from ..tracking.run import start_run

            self.run = start_run(name=self.name, tags={"mlops.autolog": self.framework}, parent=self.parent,
                                 activate=False, start_time=self.wall)
        return self.run


_settings: list[Settings] = []  # [] when autologging is off
_patches: list[tuple[Any, str, Any]] = []  # (owner, attribute, what was there)
_local = threading.local()
_reported: set[tuple[str, str]] = set()


# -- the switch ---------------------------------------------------------------------------------------
def settings() -> Settings | None:
    return _settings[0] if _settings else None


def enabled(framework: str) -> Settings | None:
    s = settings()
    return s if s is not None and framework in s.frameworks else None


def set_settings(s: Settings | None) -> None:
    _settings[:] = [s] if s is not None else []


# -- patching ------------------------------------------------------------------------------------------
def patch(owner: Any, name: str, make: Callable[[Callable], Callable], inherited: bool = False) -> bool:
    """Replace ``owner.name`` by ``make(original)``: a function in a class's own namespace (or, with
    *inherited*, the one it inherits, set on the class itself), or a module's or an object's
    attribute. False when there is nothing to patch or it is patched already."""
    if isinstance(owner, type) and not inherited:
        current = owner.__dict__.get(name)
    else:
        current = getattr(owner, name, None)
    if current is None or not callable(current) or hasattr(current, MARK):
        return False
    own = not isinstance(owner, type) or name in owner.__dict__
    wrapper = make(current)
    functools.update_wrapper(wrapper, current)
    setattr(wrapper, MARK, current)
    setattr(owner, name, wrapper)
    _patches.append((owner, name, current if own else None))
    return True


def unpatch_all() -> int:
    n = len(_patches)
    while _patches:
        owner, name, original = _patches.pop()
        try:
            if original is None:  # it was inherited: the class gets its inheritance back
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        except Exception:
            pass
    return n


def patched() -> int:
    """How many methods are patched now."""
    return len(_patches)


def depth() -> int:
    """How deep this thread is inside autologged fits; a fit running on another thread counts too
    (joblib's threads fit a forest's trees, a search's candidates): its fits are part of that one."""
    d = getattr(_local, "depth", 0)
    return d if d or not WORKER.fits else 1


class nested:
    """Marks the calls inside an outermost fit: fits they make log nothing of their own."""

    def __enter__(self):
        _local.depth = depth() + 1

    def __exit__(self, *exc):
        _local.depth = depth() - 1


def current_fit() -> FitRun | None:
    """The outermost fit running on this thread (a nested ``train`` adds its rounds to it)."""
    return getattr(_local, "fit", None)


class fitting:
    """Marks *fr* as the outermost fit of this thread while the user's fit runs."""

    def __init__(self, fr: FitRun):
        self.fr = fr

    def __enter__(self):
        self.was = current_fit()
        _local.fit = self.fr
        if self.was is None:
            WORKER.fit_started()

    def __exit__(self, *exc):
        _local.fit = self.was
        if self.was is None:
            WORKER.fit_ended()


def stops(e: BaseException) -> bool:
    """Whether *e* is meant to stop the user's fit (a tuner's pruner: ``optuna.TrialPruned``), so
    autologging passes it on instead of reporting it."""
    return type(e).__name__ == "TrialPruned" and type(e).__module__.startswith("optuna")


def report(framework: str, what: str, e: BaseException) -> None:
    """A failure inside autologging: warned about once per framework and kind, never raised."""
    key = (framework, f"{what}:{type(e).__name__}")
    if key in _reported:
        return
    _reported.add(key)
    from ..exceptions import first_line

    try:
        warnings.warn(f"mlops autolog ({framework}): {what} failed ({first_line(e, 200)}); the fit itself is "
                      "unaffected", RuntimeWarning, stacklevel=3)
    except Exception:  # warnings turned into errors (-W error): still never the user's problem
        pass


# -- runs ----------------------------------------------------------------------------------------------
def begin(framework: str, name: str, key: Any = None, parent: str | None = None) -> FitRun:
    """The run an outermost fit logs into: the active one, the job's, or its own named *name*
    (made later, by the worker). Waits first for the pending logging of *key*'s previous fit."""
    from ..tracking import run as tracking

    if key is not None:
        WORKER.wait(key=id(key))
    if parent is None:
        active = tracking.active_run()
        if active is not None:
            return FitRun(active, False, framework)
        job_run = os.environ.get("MLOPS_RUN_ID")
        if job_run:
            return FitRun(tracking.attach_run(job_run), False, framework)
    return FitRun(None, True, framework, name=name, parent=parent)


def failed(fr: FitRun, e: BaseException, key: Any = None, params: dict | None = None) -> None:
    """The fit raised: its own run is written as failed (killed for an interrupt), with the epochs
    or rounds it logged and *params*; the user's run is the user's to end."""
    if not fr.own:
        return
    message = f"{type(e).__name__}: {e}"[:2000]
    status = "killed" if isinstance(e, KeyboardInterrupt) else "failed"

    def task():
        from .record import log_params

        run = fr.open()
        try:
            fr.flush_points()
            if params:
                log_params(run, params)
        finally:
            run.end(status, message)

    WORKER.submit(key, task, fr.framework, "recording the failed fit")


# -- the worker ----------------------------------------------------------------------------------------
class Worker:
    """One daemon thread that runs logging tasks in order; each task names its run and estimator.

    It steps aside while a fit runs (the logging would take the fit's turns at the interpreter
    lock and at the cores): it starts a task, or a task's next step (:func:`pause`), only when no
    autologged fit is running, or when someone waits for it (reading runs, ending a run, exiting),
    or when more than :data:`BACKLOG` tasks are queued (then the next fit waits for it to catch up:
    the training data copies it holds are bounded)."""

    BACKLOG = 64
    QUIET = 0.05  # seconds after the last fit ended before logging resumes (the next fit of a loop comes sooner)

    def __init__(self):
        self.queue: deque = deque()
        self.pending: dict[tuple[str, int], int] = {}  # (run_id, estimator id) -> tasks queued or running
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        self.done = 0  # tasks finished since the last :meth:`wrote`
        self.fits = 0  # autologged fits running now (any thread)
        self.last_fit = 0.0  # when the last one ended (monotonic)
        self.waiters = 0

    def fit_started(self) -> None:
        with self.cond:
            self.fits += 1

    def fit_ended(self) -> None:
        with self.cond:
            self.fits -= 1
            self.last_fit = time.monotonic()
            self.cond.notify_all()

    def step_aside(self) -> None:
        """On the worker: wait while a fit runs (or one ended less than :data:`QUIET` ago) and
        nobody waits for the logging."""
        if threading.current_thread() is not self.thread:
            return
        with self.cond:
            while not self.waiters and len(self.queue) <= self.BACKLOG:
                if self.fits > 0:
                    self.cond.wait(0.5)
                    continue
                left = self.last_fit + self.QUIET - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def submit(self, key: Any, task: Callable[[], None], framework: str, what: str, run_id: str | None = None) -> None:
        k = (run_id, id(key))
        if len(self.queue) > self.BACKLOG and threading.current_thread() is not self.thread:
            self.wait(timeout=300.0, below=self.BACKLOG // 2)
        with self.cond:
            self.pending[k] = self.pending.get(k, 0) + 1
            self.queue.append((k, task, framework, what))
            if self.thread is None or not self.thread.is_alive():
                self._start()
            self.cond.notify_all()

    def _start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="mlops-autolog", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        _local.depth = 1  # fits the logging makes (metrics encode labels with fitted encoders) log nothing
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                k, task, framework, what = self.queue[0]
            try:
                self.step_aside()
                task()
            except BaseException as e:  # the thread outlives any task
                report(framework, what, e)
            finally:
                with self.cond:
                    self.queue.popleft()
                    self.done += 1
                    self.pending[k] -= 1
                    if not self.pending[k]:
                        del self.pending[k]
                    self.cond.notify_all()

    def wrote(self) -> bool:
        """Whether tasks finished since the last call (their metric points may still be queued)."""
        with self.cond:
            done, self.done = self.done, 0
        return bool(done)

    def busy(self, run_id: str | None = None, key: int | None = None) -> int:
        with self.cond:
            return sum(n for (r, e), n in self.pending.items()
                       if (run_id is None or r == run_id) and (key is None or e == key))

    def wait(self, run_id: str | None = None, key: int | None = None, timeout: float = 300.0,
             below: int = 1) -> bool:
        """Until fewer than *below* tasks of *run_id* / estimator *key* (all, when neither) are left;
        False on timeout. Never from the worker itself (a task waiting on its own queue would wait
        forever)."""
        if threading.current_thread() is self.thread:
            return True
        deadline = time.monotonic() + timeout
        said = False
        with self.cond:
            if self.queue and (self.thread is None or not self.thread.is_alive()):
                self._start()
            self.waiters += 1
            self.cond.notify_all()
            try:
                while True:
                    left = sum(n for (r, e), n in self.pending.items()
                               if (run_id is None or r == run_id) and (key is None or e == key))
                    if left < below:
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    if not said and remaining < timeout - 1.0:
                        said = True
                        s = settings()
                        if s is None or not s.silent:
                            print(f"mlops autolog: waiting for the logging of {left} fit(s)...", file=sys.stderr)
                    self.cond.wait(min(remaining, 0.5))
            finally:
                self.waiters -= 1


WORKER = Worker()


def run_steps(framework: str, steps: list[tuple[str, Callable[[], Any]]]) -> None:
    """A logging task's *steps* (what, function), each on its own: a fit that started meanwhile runs
    first, and a step that fails is reported once without stopping the others."""
    for what, step in steps:
        pause()
        try:
            step()
        except Exception as e:
            report(framework, what, e)


def pause() -> None:
    """Between the steps of a logging task: let a fit that started meanwhile run first."""
    WORKER.step_aside()


def settle(run_id: str | None = None) -> None:
    """Wait for pending autologging (of one run, or all): before runs are read or ended."""
    WORKER.wait(run_id=run_id)
