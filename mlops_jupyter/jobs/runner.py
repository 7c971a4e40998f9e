"""Running promoted jobs: one execution (``mlops job run``) or a batch (``mlops retrain``).

Each execution runs the job's notebook through papermill in a kernel of its own and is a tracked
run: its papermill parameters, the executed notebook as an artifact, its status (a failing cell
fails the run and names the cell). The kernel is told its run (``MLOPS_RUN_ID``: what the
notebook logs without a run of its own lands there; runs it starts become children) and, for a
job with a model, to stage what it registers under that name (``MLOPS_JOB_MODEL``). After the
batch, the best staged model by the job's metric becomes the next version (the challenger) and
takes the job's alias only if it beats the version holding it (the champion).

Executions of a batch run side by side: a thread per execution slot drives a kernel process each
(the kernels do the work; the threads wait on them), or a Dask cluster's workers when a scheduler
address is given.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..exceptions import BadInput, JobFailed
from .kernels import kernel_manager_class
from .spec import JobSpec, find_job

__all__ = ["run_job", "retrain", "decide", "parse_grid", "execute_one", "JobFailed", "BatchResult", "Decision"]

@dataclass
class Execution:
    run_id: str
    params: dict[str, Any]
    status: str = "running"
    error: str | None = None
    seconds: float = 0.0
    artifact: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "finished"


@dataclass
class Decision:
    model: str
    alias: str
    metric: str | None
    direction: str
    challenger: str | None = None  # e.g. churn@v4
    challenger_value: float | None = None
    champion: str | None = None
    champion_value: float | None = None
    promoted: bool = False
    reason: str = ""
    gate: dict | None = None  # the gate's verdict: rule, holds, failed clauses, figures, evaluation key

    def __str__(self) -> str:
        return self.reason

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class BatchResult:
    job: str
    run_id: str  # the batch's run (the execution's own run for a single execution)
    executions: list[Execution] = field(default_factory=list)
    decision: Decision | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> list[Execution]:
        return [e for e in self.executions if not e.ok]


# -- one execution ------------------------------------------------------------------------------------
def execute_one(notebook: str, output: str, parameters: dict, env: dict[str, str], cwd: str | None,
                timeout: float | None = None, progress: bool = False,
                stoppable: bool = False) -> tuple[bool, str | None, float]:
    """Run *notebook* into *output* with papermill; (ok, error line, seconds). Runs anywhere the
    package imports: a thread here, or a Dask worker. *stoppable*: the execution's run is watched for
    a ``mlops.stop`` tag (a tuner's pruner), and its kernel interrupted when one appears; the error
    line is then ``stopped: <the tag's reason>``."""
    import papermill as pm

    t0 = time.perf_counter()
    watch = StopWatch(env) if stoppable else None
    try:
        pm.execute_notebook(notebook, output, parameters=parameters, progress_bar=progress, log_output=False,
                            execution_timeout=timeout, kernel_manager_class=kernel_manager_class(env, cwd))
    except Exception as e:  # a failing cell; the kernel died, a timeout, a notebook papermill cannot read
        if watch is not None and watch.reason is not None:  # the interrupt we sent, not the notebook's fault
            return False, f"stopped: {watch.reason}", time.perf_counter() - t0
        if isinstance(e, pm.PapermillExecutionError):
            first = (e.source or "").strip().splitlines()
            where = f"cell {_job_cell_number(output, e.cell_index)}" + (f" [{e.exec_count}]" if e.exec_count else "")
            code = f" ({first[0][:60]})" if first else ""
            # IPython reports a magic's UsageError on stderr only: papermill then has no name or value for it.
            what = f"{e.ename}: {str(e.evalue)[:300]}" if str(e.evalue).strip() else \
                (_stderr_line(output) or e.ename)
            return False, f"{where}{code} raised {what}", time.perf_counter() - t0
        return False, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}", \
            time.perf_counter() - t0
    finally:
        if watch is not None:
            watch.close()
    return True, None, time.perf_counter() - t0


STOP_TAG = "mlops.stop"  # set on an execution's run to have its kernel interrupted (the reason)


class StopWatch:
    """Watches an execution's run for :data:`STOP_TAG` (twice a second, on a thread of its own) and
    interrupts the kernel executing it when the tag appears, wherever the execution runs: the tuner
    decides in its process and says so through the store."""

    POLL = 0.25
    RESEND = 15.0

    def __init__(self, env: dict[str, str]):
        import threading

        self.run_id = env["MLOPS_RUN_ID"]
        self.env = env
        self.reason: str | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name=f"mlops-stop-{self.run_id[:8]}", daemon=True)
        self.thread.start()

    def _meta(self):
        from ..store import open_store

        url = self.env.get("MLOPS_STORE_URL")
        if url and url != os.environ.get("MLOPS_STORE_URL"):  # a Dask worker with another environment
            from ..store.metadata import MetadataStore

            return MetadataStore(url)
        if not url and self.env.get("MLOPS_HOME") and not os.environ.get("MLOPS_HOME"):
            from ..config import settings

            return open_store(settings(Path(self.env["MLOPS_HOME"]), create=False)).meta
        return open_store().meta

    def _watch(self) -> None:
        from . import kernels

        try:
            meta = self._meta()
        except Exception:
            return
        sent = 0.0
        while not self.done.wait(self.POLL):
            if self.reason is None:
                try:
                    reason = meta.tags_of([self.run_id])[self.run_id].get(STOP_TAG)
                except Exception:
                    continue
                if reason is None:
                    continue
                self.reason = str(reason)
            # once, then again only if a cell swallowed it (a second SIGINT at once would land in
            # the kernel's exit handlers while papermill shuts it down)
            if time.monotonic() - sent > self.RESEND:
                if kernels.interrupt(self.run_id):
                    sent = time.monotonic()

    def close(self) -> None:
        self.done.set()


def _stderr_line(output: str) -> str | None:
    """The last line the failing cell wrote to stderr (e.g. ``UsageError: ...``), if any."""
    try:
        import nbformat

        cells = nbformat.read(output, as_version=4).cells
    except Exception:
        return None
    failed = [c for c in cells if c.get("metadata", {}).get("papermill", {}).get("exception")]
    lines = [line for o in (failed[0].get("outputs", []) if failed else []) if o.get("name") == "stderr"
             for line in o.get("text", "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _job_cell_number(output: str, index: int) -> int:
    """The failing cell's number in the job's notebook: papermill counts its injected cell too."""
    try:
        import nbformat

        cells = nbformat.read(output, as_version=4).cells
        injected = sum(1 for c in cells[:index] if "injected-parameters" in c.get("metadata", {}).get("tags", []))
    except Exception:
        injected = 0
    return index + 1 - injected


# -- runs without the active-run stack ------------------------------------------------------------------
def create_run(store, name: str, params: dict, tags: dict, parent_id: str | None, notebook: str) -> str:
    from ..store.processes import process_start_time
    from .. import identity
    from ..tracking.values import encode_params, encode_tags

    run_id = uuid.uuid4().hex
    now = time.time()
    pid = os.getpid()
    row = dict(run_id=run_id, name=name, status="running", start_time=now, parent_id=parent_id, notebook=notebook,
               username=identity.current_user(), host=socket.gethostname(), pid=pid,
               pid_start=process_start_time(pid), heartbeat=now, source="job")
    store.meta.create_run(row, encode_params(params), encode_tags(tags))
    from .. import events

    events.publish("run.started", store=store, run_id=run_id)
    return run_id


def run_handle(store, run_id: str, name: str, notebook: str):
    from ..tracking.run import Run

    return Run(store, run_id, name, None, time.time(), notebook, own=False)


def store_root() -> Path:
    from ..config import find_root, init_project

    root = find_root()
    return root if root is not None else init_project(Path.cwd())


def workdir(spec: JobSpec) -> str:
    override = os.environ.get("MLOPS_JOB_WORKDIR")
    if override:
        return override
    assert spec.folder is not None
    wd = (spec.folder / spec.workdir).resolve()
    return str(wd if wd.is_dir() else spec.folder.resolve())


def env_for(spec: JobSpec, run_id: str, root: Path) -> dict[str, str]:
    env = {"MLOPS_RUN_ID": run_id, "MLOPS_PARENT_RUN_ID": run_id, "MLOPS_JOB": spec.name,
           "MLOPS_NOTEBOOK_PATH": str(spec.notebook.resolve()), "MLOPS_HOME": str(root)}
    if spec.model:
        env["MLOPS_JOB_MODEL"] = spec.model
    for var in ("MLOPS_STORE_URL", "MLOPS_ARTIFACTS_URL"):
        if os.environ.get(var):
            env[var] = os.environ[var]
    return env


# -- parameters ---------------------------------------------------------------------------------------
def parse_grid(spec: JobSpec, items: list[str] | dict[str, list] | None) -> list[dict[str, Any]]:
    """Every combination of the grid's values, converted to the parameters' types.

    Args:
        spec: the job.
        items: ``["n=100,300", "depth=3,5"]`` as typed after ``--grid`` (each value read as
            ``-p`` reads it), or ``{"n": [100, 300]}`` as job.toml's ``[retrain] grid`` holds it.

    Returns:
        One dict of values per combination (``[{}]`` for no grid).
    """
    axes: dict[str, list[Any]] = {}
    if isinstance(items, dict):
        for name, values in items.items():
            axes[name] = [spec.parameter(name, "grid: ").check(v, "grid: ") for v in values]
    for item in items if not isinstance(items, dict) and items else []:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise BadInput(f"--grid takes NAME=V1,V2,...; got {item!r}")
        p = spec.parameter(name, "--grid: ")
        if name in axes:
            raise BadInput(f"--grid names {name} twice")
        axes[name] = [p.parse(v.strip(), "--grid: ") for v in values.split(",")]
    if not axes:
        return [{}]
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]


# -- the batch -------------------------------------------------------------------------------------------
def run_job(job: str | os.PathLike | JobSpec, params: dict[str, Any] | None = None, smoke: bool = False,
            out: Callable[[str], None] = print, progress: bool = True, timeout: float | None = None) -> BatchResult:
    """One tracked execution of *job* (with its champion/challenger step when the job has a model).

    *params* are Python values, checked against the job's parameters before any kernel starts
    (text from a command line is read by :func:`.params.command_line_values` first). Raises
    :class:`JobFailed` (after recording it) when a cell fails."""
    spec = job if isinstance(job, JobSpec) else find_job(job)
    values = {**(spec.smoke if smoke else {}), **spec.check_params(dict(params or {}))}
    return _batch(spec, [values], workers=1, out=out, progress=progress, timeout=timeout, single=True)


def retrain(job: str | os.PathLike | JobSpec, grid: list[str] | dict[str, list] | None = None,
            params: dict[str, Any] | None = None, workers: int | None = None, dask_scheduler: str | None = None,
            out: Callable[[str], None] = print, progress: bool = True, timeout: float | None = None,
            smoke: bool = False, trigger: str | None = None) -> BatchResult:
    """Executions of *job* over *grid* side by side, grouped under one run; the best by the job's
    metric is the challenger (see the module docstring). *trigger* tags the runs (``monitor``,
    ``schedule``...; default ``$MLOPS_JOB_TRIGGER`` or ``manual``)."""
    spec = job if isinstance(job, JobSpec) else find_job(job)
    if not spec.model:
        raise BadInput(f"job {spec.name} registers no model (promoted without --model): run it with "
                       f"mlops job run {spec.name}")
    base = {**(spec.smoke if smoke else {}), **spec.check_params(dict(params or {}))}
    combos = [{**base, **c} for c in parse_grid(spec, grid)]
    if dask_scheduler is not None and not dask_scheduler.strip():
        raise BadInput("--dask-scheduler needs an address, e.g. tcp://127.0.0.1:8786")
    return _batch(spec, combos, workers=workers or min(len(combos), os.cpu_count() or 1), out=out,
                  progress=progress, timeout=timeout, dask_scheduler=dask_scheduler, trigger=trigger)


def _batch(spec: JobSpec, combos: list[dict], workers: int, out, progress: bool, timeout: float | None,
           single: bool = False, dask_scheduler: str | None = None, trigger: str | None = None) -> BatchResult:
    from ..store import open_store

    t0 = time.perf_counter()
    root = store_root()
    store = open_store()
    notebook = str(spec.notebook.resolve())
    if not spec.notebook.is_file():
        raise BadInput(f"job {spec.name} has no {spec.notebook.name} in {spec.folder}")
    trigger = trigger or os.environ.get("MLOPS_JOB_TRIGGER", "manual")
    parent_id = None
    if not single:
        parent_id = create_run(store, f"retrain {spec.name}", {"executions": len(combos)},
                                {"mlops.job": spec.name, "mlops.kind": "retrain", "mlops.trigger": trigger},
                                None, notebook)
    executions = []
    for i, values in enumerate(combos):
        name = spec.name if single else f"{spec.name} #{i + 1}"
        rid = create_run(store, name, {f"papermill.{k}": v for k, v in values.items()},
                          {"mlops.job": spec.name, "mlops.kind": "execution", "mlops.trigger": trigger},
                          parent_id, notebook)
        executions.append(Execution(rid, values))
    result = BatchResult(spec.name, parent_id or executions[0].run_id, executions)
    cwd = workdir(spec)
    where = f"Dask scheduler {dask_scheduler}" if dask_scheduler else \
        (f"{workers} local worker{'s' if workers != 1 else ''}" if not single else "")
    if not single:
        out(f"{spec.name}: {len(combos)} execution(s) on {where}")
    with tempfile.TemporaryDirectory(prefix="mlops-job-") as tmp:
        jobs = [(e, dict(notebook=notebook, output=os.path.join(tmp, f"{e.run_id}.ipynb"), parameters=e.params,
                         env=env_for(spec, e.run_id, root), cwd=cwd, timeout=timeout)) for e in executions]
        try:
            if dask_scheduler:
                _run_dask(jobs, dask_scheduler, store, progress and not single)
            else:
                _run_local(jobs, workers, store, progress, single)
        except BaseException as e:  # Ctrl-C or a lost cluster: no run stays "running"
            for ex in executions:
                if ex.status == "running":
                    ex.status, ex.error = "killed", f"{type(e).__name__}: {e}"[:300]
                    store.meta.end_run(ex.run_id, "killed", time.time(), ex.error)
            if parent_id:
                store.meta.end_run(parent_id, "killed", time.time(), f"{type(e).__name__}: {e}"[:300])
            raise
    failed = result.failed
    if spec.model and len(failed) < len(executions):
        result.decision = decide(spec, store, [e for e in executions if e.ok], result.run_id)
    result.seconds = time.perf_counter() - t0
    if parent_id:
        status = "failed" if len(failed) == len(executions) else "finished"
        store.meta.end_run(parent_id, status, time.time(),
                           f"{len(failed)} of {len(executions)} executions failed" if failed else None)
    for i, e in enumerate(executions, 1):
        label = "" if single else f"#{i} {_fmt_params(e.params)}: "
        if e.ok:
            if not single:
                out(f"  {label}finished in {e.seconds:.1f} s")
        else:
            out(f"  {label}FAILED: {e.error}")
    if single and executions[0].ok:
        out(f"{spec.name}: finished in {executions[0].seconds:.1f} s (run {executions[0].run_id[:8]}"
            f"{', parameters ' + _fmt_params(executions[0].params) if executions[0].params else ''})")
    if result.decision is not None:
        out(str(result.decision))
    if failed and (single or len(failed) == len(executions)):
        first = failed[0]
        raise JobFailed(f"job {spec.name} failed: {first.error} (run {first.run_id[:8]}; the executed notebook "
                        "is stored with the run)")
    return result


def _fmt_params(values: dict) -> str:
    return " ".join(f"{k}={v!r}" for k, v in values.items()) or "(defaults)"


def finish_execution(store, e: Execution, ok: bool, error: str | None, seconds: float, output: str) -> None:
    """Record one execution's outcome: the executed notebook as an artifact, the status."""
    e.seconds = seconds
    e.status, e.error = ("finished", None) if ok else ("failed", error)
    if os.path.isfile(output):
        try:
            e.artifact = run_handle(store, e.run_id, "", output).log_artifact(output, "executed.ipynb")
        except Exception as exc:  # keep the outcome even if the artifact cannot be stored
            e.error = (e.error or "") + f" (executed notebook not stored: {exc})"
    store.writer.flush()
    store.meta.end_run(e.run_id, e.status, time.time(), e.error)


def _bar(total: int, show: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="execution", disable=not show)


def _run_local(jobs: list, workers: int, store, progress: bool, single: bool) -> None:
    if single:
        e, kw = jobs[0]
        ok, error, seconds = execute_one(**kw, progress=progress)
        finish_execution(store, e, ok, error, seconds, kw["output"])
        return
    from concurrent.futures import ThreadPoolExecutor, as_completed

    with _bar(len(jobs), progress, "executions") as bar, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(execute_one, **kw): (e, kw) for e, kw in jobs}
        try:
            for fut in as_completed(futures):
                e, kw = futures[fut]
                ok, error, seconds = fut.result()
                finish_execution(store, e, ok, error, seconds, kw["output"])
                bar.update(1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _run_dask(jobs: list, address: str, store, progress: bool) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise BadInput("--dask-scheduler needs dask's distributed package: pip install 'distributed'") from None
    try:
        client = Client(address, timeout="10s")
    except Exception as e:
        raise BadInput(f"cannot reach the Dask scheduler at {address}: {e}") from None
    try:
        futures = {client.submit(execute_one, pure=False, key=f"mlops-{e.run_id}", **kw): (e, kw)
                   for e, kw in jobs}
        with _bar(len(jobs), progress, "executions (dask)") as bar:
            for fut in as_completed(list(futures)):
                e, kw = futures[fut]
                try:
                    ok, error, seconds = fut.result()
                except Exception as exc:  # the worker died
                    ok, error, seconds = False, f"Dask worker: {type(exc).__name__}: {exc}"[:300], 0.0
                finish_execution(store, e, ok, error, seconds, kw["output"])
                bar.update(1)
    finally:
        client.close()


# -- champion and challenger -------------------------------------------------------------------------------
def decide(spec: JobSpec, store, executions: list[Execution], record_run: str) -> Decision:
    """Register the best staged model of *executions* and move the alias if it beats the champion."""
    from ..exceptions import NotFound
    from ..models.registry import Registry

    reg = Registry(store)
    d = Decision(spec.model or "", spec.alias, spec.metric, spec.direction)
    cands = reg.candidates([e.run_id for e in executions], spec.model)
    try:
        champ = reg.get(f"{spec.model}@{spec.alias}")
        d.champion = champ.ref
        d.champion_value = champ.metrics.get(spec.metric) if spec.metric else None
    except NotFound:
        champ = None
    if not cands:
        d.reason = (f"no successful execution registered a model named {spec.model}: nothing to compare; "
                    f"{spec.model}@{spec.alias} stays {d.champion or 'unset'}")
        _record(store, record_run, d)
        return d
    if spec.metric:
        scored = [c for c in cands if isinstance(c["metrics"].get(spec.metric), (int, float))]
        if not scored:
            d.reason = (f"no execution logged {spec.metric}, so no challenger can be judged; nothing registered, "
                        f"{spec.model}@{spec.alias} stays {d.champion or 'unset'}")
            _record(store, record_run, d)
            return d
        sign = 1 if spec.direction == "max" else -1
        best = max(scored, key=lambda c: sign * c["metrics"][spec.metric])
        d.challenger_value = float(best["metrics"][spec.metric])
    else:
        best = cands[-1]
    if champ is None:
        d.promoted, why = True, f"there was no {spec.model}@{spec.alias}"
    elif not spec.metric:
        d.promoted, why = True, "the job compares no metric"
    elif d.champion_value is None:
        d.promoted, why = True, f"the champion {champ.ref} has no {spec.metric} recorded"
    else:
        d.promoted = spec.better(d.challenger_value, d.champion_value)
        word = "higher" if spec.direction == "max" else "lower"
        why = (f"{spec.metric} {d.challenger_value:.6g} vs the champion {champ.ref}'s {d.champion_value:.6g}: "
               + (f"{word}, so it takes @{spec.alias}" if d.promoted else
                  f"not {word}, so {champ.ref} keeps @{spec.alias}"))
    gated = d.promoted and bool(spec.gate)
    v = reg.register_candidate(best, spec.alias if d.promoted and not gated else None,
                               [c["id"] for c in cands if c["id"] != best["id"]])
    d.challenger = v.ref
    if gated:
        why = _gate(spec, reg, v, champ, d, why)
    figure = f" ({spec.metric} {d.challenger_value:.6g})" if spec.metric else ""
    if d.promoted:
        d.reason = f"challenger {v.ref}{figure} is now {spec.model}@{spec.alias}: {why}"
    else:
        d.reason = f"challenger {v.ref}{figure} registered; {why}"
    _record(store, record_run, d)
    return d


def _gate(spec: JobSpec, reg, v, champ, d: Decision, why: str) -> str:
    """The gate between a challenger that would take the alias and the alias: the move happens only
    when it holds (the evaluation is stored with the version; the move is audited as any)."""
    from .gate import evaluate_gate

    try:
        result = evaluate_gate(spec.gate, v, champ)
    except BadInput as e:  # the evaluation data or target no longer fit: refuse, saying why
        d.promoted = False
        d.gate = {"rule": spec.gate.get("rule"), "holds": False, "error": str(e)}
        return f"{why}; but the gate could not be evaluated ({e}), so {d.champion or 'nothing'} keeps @{spec.alias}"
    d.gate = result.to_dict()
    if not result.holds:
        d.promoted = False
        why = why.replace(", so it takes @", ", so it would take @")
        keeps = f"{d.champion} keeps @{spec.alias}" if d.champion else f"@{spec.alias} stays unset"
        return f"{why}; but {result.reason}, so {keeps}"
    reg.set_alias(v.ref, spec.alias)
    return f"{why}; {result.reason}"


def _record(store, run_id: str, d: Decision) -> None:
    run = run_handle(store, run_id, "", "")
    run.set_tags({"mlops.decision": "promoted" if d.promoted else "kept",
                  **({"mlops.challenger": d.challenger} if d.challenger else {})})
    run.log_text(json.dumps(d.to_dict(), indent=1), "decision.json")
