"""Runs and the fluent tracking API (``start_run``, ``log``, ``log_param``...).

A process has a stack of active runs: ``start_run`` while a run is active starts a
child of it (never an "already active" error). Metric points go to the store's
background writer; everything else is written at once. At interpreter exit any run
still active is ended (``failed`` if the last cell or the script failed).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable

from ..exceptions import BadInput, MlopsError, NotFound
from . import environment as runenv
from .. import events, identity
from . import notebook as nbsource
from . import redact
from .values import check_name, check_step, checked_metrics, encode_params, encode_tags, metric_value

# Kernel-side facts handed in by the magics (this module never imports IPython).
kernel_context: dict[str, Any] = {"user_ns": None, "last_cell_failed": False, "papermill": None}
_stack: list["Run"] = []
_stack_lock = threading.RLock()
# Called with (run, status) just before a run is written as ended (the magics record
# the cell that ended it there).
end_hooks: list[Callable[["Run", str], None]] = []
# What the user should hear about that they did not ask for (a run started for them, a
# notebook that was never saved). The magics subscribe to show it in the cell's output;
# with no subscriber it goes to stderr, where a script's user sees it.
notice_hooks: list[Callable[[str], None]] = []
# Work other parts do for runs in the background (autologging): ``settle(run_id)`` waits for it
# (all of it when run_id is None) before runs are read, ended, or the process exits.
settle_hooks: list[Callable[[str | None], None]] = []


def settle(run_id: str | None = None) -> None:
    """Wait until background work for *run_id* (or for every run) is written."""
    for hook in list(settle_hooks):
        try:
            hook(run_id)
        except Exception as e:
            warnings.warn(f"mlops: waiting for background logging failed ({e})", RuntimeWarning)


def notify(text: str) -> None:
    """Tell the user *text* (one line) through the faces subscribed to ``notice_hooks``."""
    if not notice_hooks:
        print(text, file=sys.stderr, flush=True)
    for hook in list(notice_hooks):
        try:
            hook(text)
        except Exception as e:  # a broken face must not break tracking
            warnings.warn(f"mlops: notice hook failed ({e}); the notice was: {text}", RuntimeWarning)


class Run:
    """An experiment run. Use it as a context manager, or end it with :meth:`end`."""

    def __init__(self, store, run_id: str, name: str, parent_id: str | None, start_time: float,
                 notebook: str | None, own: bool = True):
        self.store = store
        self.run_id = run_id
        self.name = name
        self.parent_id = parent_id
        self.start_time = start_time
        self.notebook = notebook
        self.status = "running"
        self.own = own  # False when attached to a run some other process started
        self._steps: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self._writer = store.writer
        self._push = self._writer.push
        self._points = self._writer.points
        self._high = self._writer.high_water
        self._cell_seq = 0
        self._capture_done = threading.Event()
        self.failed_cells = 0
        # called with (key, value, step) after each point is queued: a tuner reports a trial's
        # intermediate values to its pruner (and may raise TrialPruned from here)
        self.observers: list[Callable[[str, float, int], None]] = []

    # -- identity -------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.run_id

    def __repr__(self) -> str:
        return f"<Run {self.name!r} {self.run_id[:8]} {self.status}>"

    @property
    def active(self) -> bool:
        return self.status == "running"

    # -- logging ----------------------------------------------------------------------
    def log_metric(self, key: str, value: Any, step: int | None = None, timestamp: float | None = None) -> None:
        """Queue one point; costs about a microsecond and never waits on disk."""
        if self.status != "running":
            raise MlopsError(f"run {self.name!r} has ended ({self.status}); start a new run to log")
        if type(key) is not str or not 0 < len(key) <= 250:
            check_name("metric", key)
        v = value if type(value) is float else metric_value(key, value)
        if step is None:
            step = self._steps.get(key, -1) + 1
        elif type(step) is not int:
            step = check_step(step)
        self._steps[key] = step
        self.last[key] = v
        self._push((self.run_id, key, step, v, timestamp or time.time()))
        if len(self._points) > self._high:
            self._writer.backpressure()
        if self.observers:
            for observe in list(self.observers):
                observe(key, v, step)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Queue one point per metric, all at one time stamp; a bad one means none is queued."""
        values, step = checked_metrics(metrics, step)
        ts = time.time()
        for k, v in values.items():
            self.log_metric(k, v, step, ts)

    def log(self, step: int | None = None, **metrics: Any) -> None:
        """``run.log(loss=0.3, acc=0.9, step=3)``."""
        self.log_metrics(metrics, step)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        self._log_encoded_params(encode_params(params))

    def _log_encoded_params(self, encoded: dict) -> None:
        if encoded:
            self.store.meta.log_params(self.run_id, encoded)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        if tags:
            self.store.meta.set_tags(self.run_id, encode_tags(tags))

    def log_artifact(self, path: str | os.PathLike, name: str | None = None) -> str:
        """Store a file (or every file under a folder) with the run; returns the digest."""
        p = Path(path)
        if p.is_dir():
            rows, last = [], ""
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                digest, size = self.store.blobs.put_file(f)
                rel = f"{name or p.name}/{f.relative_to(p).as_posix()}"
                rows.append(dict(run_id=self.run_id, path=rel, digest=digest, size=size, kind="artifact"))
                last = digest
            self.store.meta.add_artifacts(rows)
            return last
        if not p.is_file():
            raise NotFound(f"no such file or folder: {path}")
        digest, size = self.store.blobs.put_file(p)
        self.store.meta.add_artifacts([dict(run_id=self.run_id, path=name or p.name, digest=digest,
                                            size=size, kind="artifact")])
        return digest

    def log_text(self, text: str, name: str, kind: str = "artifact") -> str:
        digest, size = self.store.blobs.put_bytes(text.encode("utf-8"))
        self.store.meta.add_artifacts([dict(run_id=self.run_id, path=name, digest=digest, size=size, kind=kind)])
        return digest

    def log_dict(self, data: dict, name: str) -> str:
        return self.log_text(json.dumps(data, indent=2, sort_keys=True, default=repr), name)

    # -- what ran ----------------------------------------------------------------------
    def add_cell(self, source: str, execution_count: int | None, started: float, duration: float | None,
                 error: str | None = None) -> None:
        """Record one executed cell (source redacted), written in the background."""
        self._cell_seq += 1
        row = dict(run_id=self.run_id, seq=self._cell_seq, execution_count=execution_count,
                   source=redact.redact_source(source), started=started, duration=duration,
                   status="error" if error else "ok", error=error)
        if error:
            self.failed_cells += 1
        meta = self.store.meta
        self._writer.submit(lambda: meta.add_cells([row]))

    def _capture(self) -> None:
        """Environment, packages, git; runs on the writer thread so start_run stays fast."""
        try:
            env = runenv.environment(self.notebook)
            env["packages"] = runenv.imported_packages()
            # The project's repository (where .mlops/ is), not that of a script's interpreter.
            nb_dir = os.path.dirname(self.notebook) if self.notebook else None
            root = str(self.store.settings.root)
            git, diff = runenv.git_state(nb_dir if nb_dir and nb_dir.startswith(root) else root)
            if git:
                env["git"] = git
            rows = []
            for path, text, kind in (
                ("_mlops/requirements-freeze.txt", runenv.freeze(), "freeze"),
                ("_mlops/environment.json", json.dumps(runenv.environment_variables(), indent=1), "environment"),
                ("_mlops/git.diff", diff, "gitdiff"),
            ):
                if text:
                    digest, size = self.store.blobs.put_bytes(text.encode("utf-8"))
                    rows.append(dict(run_id=self.run_id, path=path, digest=digest, size=size, kind=kind))
            self.store.meta.add_artifacts(rows, self.run_id, {"env": json.dumps(env, default=str)})
        except Exception as e:  # capture is best effort; tracking goes on
            warnings.warn(f"mlops: could not capture the environment ({e})", RuntimeWarning)
        finally:
            self._capture_done.set()

    def snapshot_notebook(self) -> str | None:
        """Store the notebook file as it is on disk now (code cells redacted).

        Returns:
            The snapshot's digest, or None when there is none. A notebook that was never
            saved is not stored as an empty one: the user is told, and pointed at the executed
            cells, which were recorded as they ran.
        """
        text, unsaved = nbsource.read_notebook(self.notebook)
        if unsaved:
            n = self._cell_seq
            instead = (f"its {n} executed cell{'s are' if n != 1 else ' is'} recorded instead "
                       f"(%mlops show {self.run_id[:8]})" if n else
                       "no executed cells were recorded either (%load_ext mlops_jupyter records them)")
            notify(f"mlops: {os.path.basename(self.notebook)} {unsaved}: run {self.name!r} keeps no notebook "
                   f"snapshot; {instead}")
        return None if text is None else self.log_text(text, "_mlops/notebook.ipynb", kind="notebook")

    # -- ending ---------------------------------------------------------------------------
    def end(self, status: str = "finished", error: str | None = None, *, params: dict[str, Any] | None = None,
            tags: dict[str, Any] | None = None) -> None:
        """End the run: flush its points, snapshot the notebook, record the status; *params* and
        *tags*, when given, are written in the same transaction (a tuning trial's, known at its end)."""
        if self.status != "running":
            return
        try:  # bad extras are the caller's error, raised once the run has ended all the same
            encoded_params, encoded_tags, bad = encode_params(params or {}), encode_tags(tags or {}), None
        except BadInput as e:
            encoded_params, encoded_tags, bad = {}, {}, e
        settle(self.run_id)  # what autologging still writes into it
        with _stack_lock:
            children = [r for r in _stack if r.parent_id == self.run_id]
        # Children still active end with their parent; outside the lock, since each waits for its
        # autologging, whose worker starts runs (and takes the lock) meanwhile.
        for child in children:
            child.end(status, error)
        with _stack_lock:
            if self in _stack:
                _stack.remove(self)
        for hook in list(end_hooks):
            try:
                hook(self, status)
            except Exception as e:
                warnings.warn(f"mlops: end hook failed ({e})", RuntimeWarning)
        self.status = status
        ended = False
        meta = self.store.meta
        ending = meta.ending(self.run_id, status, time.time(), error)

        def final(conn) -> None:
            if encoded_params:
                meta.write_params(conn, self.run_id, encoded_params)
            if encoded_tags:
                meta.write_tags(conn, self.run_id, encoded_tags)
            ending(conn)

        try:
            if self.own:
                self.snapshot_notebook()
            # The end is written with the last points when there are any: one commit, not two.
            ended = self._writer.flush(also=final)
        finally:
            self._writer.active.discard(self.run_id)
            if not ended:
                with meta.write() as conn:
                    final(conn)
        events.publish("run.ended", store=self.store, run_id=self.run_id, status=status)
        if bad is not None:
            raise bad

    def wait_captured(self, timeout: float = 30.0) -> bool:
        return self._capture_done.wait(timeout)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.end("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("killed", "KeyboardInterrupt")
        else:
            self.end("failed", f"{exc_type.__name__}: {exc}"[:2000])
        return False


# -- the fluent API ------------------------------------------------------------------------
def active_run() -> Run | None:
    """The innermost active run: this thread's (:func:`thread_run`), else the process's, or None."""
    run = getattr(_thread, "run", None)
    if run is not None:
        return run
    return _stack[-1] if _stack else None


_thread = threading.local()


class thread_run:
    """Make *run* the active run of this thread only, while the block runs (trials side by side on
    a tuner's threads each log into their own run)."""

    def __init__(self, run: Run):
        self.run = run

    def __enter__(self) -> Run:
        self.was = getattr(_thread, "run", None)
        _thread.run = self.run
        return self.run

    def __exit__(self, *exc) -> None:
        _thread.run = self.was


def active_run_id() -> str | None:
    """The innermost active run's id, or None (what stored records link to)."""
    run = active_run()
    return run.run_id if run is not None else None


def active_runs() -> list[Run]:
    return list(_stack)


def _store():
    from ..store import open_store

    return open_store()


def start_run(
    name: str | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    notebook: str | None = None,
    parent: Run | str | None = None,
    source: str | None = None,
    *,
    activate: bool = True,
    start_time: float | None = None,
) -> Run:
    """Start a run (a child of the active one, if any) and make it the active run.

    Args:
        name: run name; default: the notebook's (or script's) name.
        params: hyperparameters; secret-looking names are redacted.
        tags: free string labels.
        notebook: the notebook path when it cannot be found automatically.
        parent: parent run (default: the active run, if any).
        source: what started it (``notebook``, ``script``, ``job``); found when omitted.
        activate: make it the active run (default). ``False``: a run written from the background
            (autologging's worker) that the user's logging never goes to; its parent is only
            *parent*, never the active run.
        start_time: when it started (seconds since the epoch), when that was before this call.
    """
    # Every value is checked before the store is touched: bad input starts nothing.
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise BadInput(f"a run name must be a non-empty string, got {name!r:.60}")
    papermill = kernel_context.get("papermill") or {}
    params = {**{f"papermill.{k}": v for k, v in papermill.items()}, **(params or {})}
    enc_params = encode_params(params)
    enc_tags = encode_tags(tags or {})
    if notebook is None:
        notebook = nbsource.notebook_path(kernel_context.get("user_ns"))
    elif notebook:
        notebook = os.path.abspath(notebook)
    name = name if name is not None else nbsource.default_run_name(notebook)
    store = _store()
    with _stack_lock:
        parent_id = parent.run_id if isinstance(parent, Run) else parent
        if parent_id is None and _stack and activate:
            parent_id = _stack[-1].run_id
        if parent_id is None and os.environ.get("MLOPS_PARENT_RUN_ID") and activate:
            parent_id = os.environ["MLOPS_PARENT_RUN_ID"]
        run_id = uuid.uuid4().hex
        now = time.time() if start_time is None else float(start_time)
        pid = os.getpid()
        from ..store.processes import process_start_time

        row = dict(
            run_id=run_id, name=name, status="running", start_time=now, parent_id=parent_id,
            notebook=notebook, username=identity.current_user(), host=_hostname(), pid=pid,
            pid_start=process_start_time(pid), heartbeat=now,
            source=source or ("notebook" if nbsource.in_kernel_process() else
                              "ipython" if "IPython" in sys.modules and kernel_context.get("user_ns") is not None
                              else "script"),
        )
        store.meta.create_run(row, enc_params, enc_tags)
        events.publish("run.started", store=store, run_id=run_id)
        run = Run(store, run_id, name, parent_id, now, notebook)
        store.writer.active.add(run_id)
        if activate:
            _stack.append(run)
    _install_exit_handlers()
    store.writer.submit(run._capture)
    return run


def append_metrics(run_id: str, metrics: dict[str, Any], step: int, flush: bool = False) -> None:
    """Metric points for run *run_id*, ended or not: figures computed after a run ended (the test
    scores autologging records when a fitted model is evaluated later); written at once with *flush*."""
    values, step = checked_metrics(metrics, step)
    store = _store()
    now = time.time()
    for key, value in values.items():
        store.writer.push((run_id, key, step, value, now))
    if flush:
        store.writer.flush()


def attach_run(run_id: str) -> Run:
    """Log into an existing run (a job execution's run, started by the job runner)."""
    store = _store()
    row = store.meta.run_row(run_id)
    run = Run(store, run_id, row["name"], row["parent_id"], row["start_time"], row["notebook"], own=False)
    run._cell_seq = store.meta.next_cell_seq(run_id) - 1
    with _stack_lock:
        _stack.append(run)
    _install_exit_handlers()
    return run


_hostname_cache: list[str] = []


def _hostname() -> str:
    if not _hostname_cache:
        import socket

        _hostname_cache.append(socket.gethostname())
    return _hostname_cache[0]


def end_run(status: str = "finished") -> None:
    """End the active run."""
    run = active_run()
    if run is None:
        raise MlopsError("no active run to end")
    run.end(status)


def _implicit_run() -> Run:
    """The active run; else the job's run (MLOPS_RUN_ID); else a new one, named after the notebook.

    Callers check what they log first: bad input must not leave a run started for nothing.
    """
    run = active_run()
    if run is not None:
        return run
    job_run = os.environ.get("MLOPS_RUN_ID")
    if job_run:
        return attach_run(job_run)
    run = start_run(tags={"mlops.autostarted": "true"})
    # Said once, when the run starts: later calls log into it without a word.
    how = "%mlops track stop" if kernel_context.get("user_ns") is not None else "mj.end_run()"
    notify(f"mlops: no run was active, so run {run.name!r} ({run.run_id[:8]}) was started to hold what "
           f"you log; end it with {how}")
    return run


def log(step: int | None = None, **metrics: Any) -> None:
    """Log metrics to the active run (one named after the notebook is started if none is)."""
    values, step = checked_metrics(metrics, step)
    _implicit_run().log_metrics(values, step)


def log_metric(key: str, value: Any, step: int | None = None) -> None:
    """Log one metric to the active run (started if none is, as :func:`log`)."""
    values, step = checked_metrics({key: value}, step)
    _implicit_run().log_metric(key, values[key], step)


def log_metrics(metrics: dict[str, Any], step: int | None = None) -> None:
    """Log metrics to the active run (started if none is, as :func:`log`)."""
    values, step = checked_metrics(metrics, step)
    _implicit_run().log_metrics(values, step)


def log_param(key: str, value: Any) -> None:
    """Log one parameter to the active run (started if none is, as :func:`log`)."""
    log_params({key: value})


def log_params(params: dict[str, Any]) -> None:
    """Log parameters to the active run (started if none is, as :func:`log`)."""
    encoded = encode_params(params)  # bad names fail here, before a run is started for them
    _implicit_run()._log_encoded_params(encoded)


def set_tag(key: str, value: Any) -> None:
    """Set one tag on the active run (started if none is, as :func:`log`)."""
    set_tags({key: value})


def set_tags(tags: dict[str, Any]) -> None:
    """Set tags on the active run (started if none is, as :func:`log`)."""
    encode_tags(tags)  # bad names fail here, before a run is started for them
    _implicit_run().set_tags(tags)


def log_artifact(path: str | os.PathLike, name: str | None = None) -> str:
    """Store a file or folder with the active run (started if none is, as :func:`log`)."""
    if not os.path.exists(path):
        raise NotFound(f"no such file or folder: {path}")
    return _implicit_run().log_artifact(path, name)


# -- ending what is left at exit ---------------------------------------------------------------
_exit_installed = False
_script_failure: list[str] = []


def _install_exit_handlers() -> None:
    global _exit_installed
    if _exit_installed:
        return
    _exit_installed = True
    atexit.register(_end_all_at_exit)
    if kernel_context.get("user_ns") is None:
        previous = sys.excepthook

        def hook(exc_type, exc, tb):
            _script_failure.append("killed" if issubclass(exc_type, KeyboardInterrupt) else "failed")
            previous(exc_type, exc, tb)

        sys.excepthook = hook


def _end_all_at_exit() -> None:
    settle()  # background logging first: it may end runs of its own
    if _script_failure:
        status = _script_failure[-1]
    elif kernel_context.get("last_cell_failed"):
        status = "failed"
    else:
        status = "finished"
    for run in reversed(list(_stack)):
        try:
            if run.own:
                run.end(status, "ended at exit after a failure" if status != "finished" else None)
            else:
                with _stack_lock:
                    _stack.remove(run)
                run._writer.flush()
        except Exception:
            pass
    from ..store import close_store

    try:
        close_store()
    except Exception:
        pass


def _reset_for_tests() -> None:
    with _stack_lock:
        _stack.clear()
    kernel_context.update(user_ns=None, last_cell_failed=False, papermill=None)
    _script_failure.clear()
