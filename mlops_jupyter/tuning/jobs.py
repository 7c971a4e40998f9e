"""``mlops tune JOB``: an Optuna study over a promoted job, each trial one execution of its notebook
with the suggested parameters injected by papermill.

The study asks Optuna for a trial, starts an execution (a tracked run under the study's run, in a
kernel of its own: local workers side by side, or a Dask cluster), and while it runs reads the
execution's points of the metric from the store and reports them to the pruner. When the pruner
says stop, the execution's run is tagged ``mlops.stop``; whoever runs the kernel interrupts it (the
run ends ``pruned``). After the study, the best execution's staged model is the challenger, decided
as ``retrain`` decides.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from typing import Any, Callable

from ..exceptions import BadInput

POLL = 0.25  # seconds between reads of the running executions' metric points (kernels write them every 0.2 s)


@dataclasses.dataclass
class TuneResult:
    job: str
    study: Any
    run_id: str
    executions: list = dataclasses.field(default_factory=list)
    decision: Any = None
    seconds: float = 0.0


def tune_job(job, space: list[str] | dict, n_trials: int | None = None, *, metric: str | None = None,
             direction: str | None = None, timeout: float | None = None, workers: int = 1,
             dask_scheduler: str | None = None, sampler: Any = "tpe", prune: Any = None, seed: int | None = None,
             name: str | None = None, resume: bool = False, out: Callable[[str], None] = print,
             progress: bool = True, trial_timeout: float | None = None,
             params: dict[str, Any] | None = None) -> TuneResult:
    """Tune *job* over *space* (see :func:`.space.parse_space`), with *params* fixed for every
    trial; everything is checked before a kernel starts. Returns the study, its run, the executions
    and the champion/challenger decision."""
    import optuna

    from ..jobs.spec import find_job
    from ..store import open_store
    from .space import parse_space
    from .study import check_options, pruner_of, sampler_of, search_options, storage_for

    spec = find_job(job) if not hasattr(job, "parameters") else job
    metric = metric or spec.metric
    if not metric:
        raise BadInput(f"job {spec.name} has no metric in its [model] section: name one with --metric NAME "
                       "--direction max|min")
    if direction is None:
        direction = spec.direction if spec.metric == metric else None
        if direction is None:
            raise BadInput(f"--metric {metric} is not the job's own metric: say --direction max or min")
    d = check_options(n_trials, direction, metric, workers, timeout)
    dims = parse_space(spec, space)
    fixed = spec.check_params(dict(params or {}))
    both = sorted(set(fixed) & set(dims))
    if both:
        raise BadInput(f"{', '.join(both)}: given a value (-p) and searched (--space); one or the other")
    if dask_scheduler is not None and not dask_scheduler.strip():
        raise BadInput("--dask-scheduler needs an address, e.g. tcp://127.0.0.1:8786")
    if not spec.notebook.is_file():
        raise BadInput(f"job {spec.name} has no {spec.notebook.name} in {spec.folder}")
    name = name or spec.name
    from ..data.catalog import check_name

    check_name(name, "study")
    smp = sampler_of(sampler, seed, {k: list(v.choices) for k, v in dims.items() if v.kind == "cat"} if
                     sampler == "grid" else None)
    prn = pruner_of(prune)
    store = open_store()
    storage = storage_for(store)
    exists = name in {s.study_name for s in storage.get_all_studies()}
    if exists and not resume:
        raise BadInput(f"study {name!r} exists: --resume continues it, or --name NEW starts another")
    if resume and not exists:
        raise BadInput(f"no study {name!r} to resume")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name=name, storage=storage, sampler=smp, pruner=prn, direction=d,
                                load_if_exists=resume)
    study.set_user_attr("mlops.metric", metric)
    study.set_user_attr("mlops.job", spec.name)
    judged = dataclasses.replace(spec, metric=metric, direction="max" if d == "maximize" else "min")
    return _Tuner(judged, study, {k: v.distribution() for k, v in dims.items()}, fixed, n_trials, timeout, workers,
                  dask_scheduler, out, progress, trial_timeout, store,
                  {**search_options(sampler, prune, seed),
                   "space": " ".join(v.describe() for v in dims.values())}).run()


class _Trial:
    def __init__(self, trial, execution, kw):
        self.trial = trial
        self.execution = execution
        self.kw = kw
        self.reported: set[int] = set()
        self.stopped = False


def _tell(study, trial, *args, **kwargs) -> bool:
    """``study.tell``; False when the sampler says the search is over (a grid with every point
    tried calls ``study.stop()``, which Optuna allows only inside ``optimize``)."""
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise
        return False
    return True


class _Tuner:
    def __init__(self, spec, study, distributions, fixed, n_trials, timeout, workers, dask_scheduler, out, progress,
                 trial_timeout, store, options):
        self.spec, self.study, self.distributions, self.fixed = spec, study, distributions, fixed
        self.n_trials, self.timeout, self.workers = n_trials, timeout, workers
        self.dask_scheduler, self.out, self.progress, self.trial_timeout = dask_scheduler, out, progress, trial_timeout
        self.store, self.options = store, options
        self.running: dict[Any, _Trial] = {}
        self.done: list = []
        self.exhausted = False  # the sampler has nothing left to try (a grid)
        self.pruned_at: dict[str, str] = {}

    # -- one trial ----------------------------------------------------------------------------------
    def start(self, submit, tmp: str, root) -> None:
        from ..jobs import runner

        trial = self.study.ask(self.distributions)
        values = {**self.fixed, **{k: self.spec.parameter(k).check(v) for k, v in trial.params.items()}}
        rid = runner.create_run(self.store, f"{self.spec.name} trial {trial.number}",
                                 {f"papermill.{k}": v for k, v in values.items()},
                                 {"mlops.job": self.spec.name, "mlops.kind": "execution", "mlops.trigger": "tune",
                                  "mlops.study": self.study.study_name, "mlops.trial": str(trial.number)},
                                 self.run_id, self.notebook)
        trial.set_user_attr("mlops.run_id", rid)
        execution = runner.Execution(rid, values)
        kw = dict(notebook=self.notebook, output=os.path.join(tmp, f"{rid}.ipynb"), parameters=values,
                  env=runner.env_for(self.spec, rid, root), cwd=runner.workdir(self.spec),
                  timeout=self.trial_timeout, stoppable=True)
        self.running[submit(kw)] = _Trial(trial, execution, kw)

    def report(self, t: _Trial, prune: bool = True) -> None:
        """The execution's new points of the metric, to the pruner; with *prune*, a stop when it says
        so (without: the points a pruned execution logged before its interrupt, kept in the study)."""
        import math

        if prune and t.stopped:
            return
        after = max(t.reported) if t.reported else None
        for _k, step, value, _ts in self.store.meta.metric_history(t.execution.run_id, self.spec.metric,
                                                                    after_step=after):
            t.reported.add(step)
            if not math.isfinite(value):
                continue
            t.trial.report(value, step)
            if prune and t.trial.should_prune():
                from ..jobs import kernels
                from ..jobs.runner import STOP_TAG

                t.stopped = True
                why = f"pruned at step {step} ({self.spec.metric} {value:.6g})"
                self.pruned_at[t.execution.run_id] = why
                _tag(self.store, t.execution.run_id, {STOP_TAG: why})
                kernels.interrupt(t.execution.run_id)  # a kernel of this process: at once (the tag reaches others)
                return

    def finish(self, t: _Trial, ok: bool, error: str | None, seconds: float) -> None:
        import optuna

        from ..jobs import runner

        e = t.execution
        runner.finish_execution(self.store, e, ok, error, seconds, t.kw["output"])
        S = optuna.trial.TrialState
        if t.stopped or (error or "").startswith("stopped: "):
            try:
                self.report(t, prune=False)
            except Exception:  # the trial is pruned all the same
                pass
            e.status = "pruned"
            if ok:  # the notebook ended before the interrupt reached its kernel: pruned all the same
                e.error = (f"{self.pruned_at.get(e.run_id, 'pruned')} (the execution ended before its kernel "
                           "could be interrupted)")
            self.store.meta.end_run(e.run_id, "pruned", time.time(), e.error)
            self._told(_tell(self.study, t.trial, state=S.PRUNED))
        elif ok:
            value = self.store.meta.latest_metrics([e.run_id])[e.run_id].get(self.spec.metric)
            if value is None:
                e.status, e.error = "failed", f"the notebook logged no {self.spec.metric}"
                self.store.meta.end_run(e.run_id, "failed", time.time(), e.error)
                self._told(_tell(self.study, t.trial, state=S.FAIL))
            else:
                self._told(_tell(self.study, t.trial, float(value[0])))
        else:
            self._told(_tell(self.study, t.trial, state=S.FAIL))
        self.done.append(t)

    def _told(self, going_on: bool) -> None:
        if not going_on:
            self.exhausted = True

    # -- the study --------------------------------------------------------------------------------------
    def run(self) -> TuneResult:
        from ..jobs import runner

        t0 = time.perf_counter()
        root = runner.store_root()
        self.notebook = str(self.spec.notebook.resolve())
        self.run_id = runner.create_run(
            self.store, f"tune {self.spec.name}",
            {"n_trials": self.n_trials, "timeout": self.timeout, "workers": self.workers, "metric": self.spec.metric,
             "direction": self.study.direction.name.lower(), **{k: v for k, v in self.options.items() if v is not None}},
            {"mlops.job": self.spec.name, "mlops.kind": "tune", "mlops.study": self.study.study_name,
             "mlops.trigger": "tune"}, None, str(self.spec.notebook.resolve()))
        where = f"Dask scheduler {self.dask_scheduler}" if self.dask_scheduler else \
            f"{self.workers} local worker{'s' if self.workers != 1 else ''}"
        self.out(f"{self.spec.name}: study {self.study.study_name}, "
                 f"{f'{self.n_trials} trial(s)' if self.n_trials else 'trials'}"
                 f"{f' within {self.timeout:g} s' if self.timeout else ''} on {where}")
        interrupted = None
        with tempfile.TemporaryDirectory(prefix="mlops-tune-") as tmp:
            try:
                if self.dask_scheduler:
                    self._loop_dask(tmp, root, t0)
                else:
                    self._loop_local(tmp, root, t0)
            except BaseException as e:  # Ctrl-C: stop the running kernels, keep every finished trial
                interrupted = e
                self._stop_all(f"{type(e).__name__}")
        result = TuneResult(self.spec.name, self.study, self.run_id, [t.execution for t in self.done])
        ok = [t.execution for t in self.done if t.execution.ok]
        if self.spec.model and ok:
            result.decision = runner.decide(self.spec, self.store, ok, self.run_id)
        result.seconds = time.perf_counter() - t0
        self._summarize(result, interrupted)
        if interrupted is not None and not isinstance(interrupted, KeyboardInterrupt):
            raise interrupted
        return result

    def _more(self, t0: float) -> bool:
        if self.exhausted or getattr(self.study.sampler, "is_exhausted", lambda s: False)(self.study):
            return False
        started = len(self.done) + len(self.running)
        if self.n_trials is not None and started >= self.n_trials:
            return False
        return self.timeout is None or time.perf_counter() - t0 < self.timeout

    def _loop_local(self, tmp: str, root, t0: float) -> None:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        from ..jobs.runner import execute_one

        def first_done(futures) -> None:
            wait(futures, timeout=POLL, return_when=FIRST_COMPLETED)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            self._loop(lambda kw: pool.submit(execute_one, **kw), first_done, self.workers, tmp, root, t0)

    def _loop_dask(self, tmp: str, root, t0: float) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise BadInput("--dask-scheduler needs dask's distributed package: pip install 'distributed'") from None
        from ..jobs.runner import execute_one

        try:
            client = Client(self.dask_scheduler, timeout="10s")
        except Exception as e:
            raise BadInput(f"cannot reach the Dask scheduler at {self.dask_scheduler}: {e}") from None
        slots = self.workers if self.workers > 1 else max(1, sum(
            w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values()))
        try:
            self._loop(lambda kw: client.submit(execute_one, pure=False, key=f"mlops-{kw['env']['MLOPS_RUN_ID']}",
                                                **kw), _sleep_unless_done, slots, tmp, root, t0)
        finally:
            client.close()

    def _loop(self, submit, wait_a_little, slots: int, tmp: str, root, t0: float) -> None:
        """Keep *slots* executions going (each started by *submit*, a future), report their points
        every :data:`POLL` seconds (*wait_a_little* returns sooner when one ends), and record each
        as it ends."""
        from .trials import advance, progress_bar

        bar = progress_bar(self.n_trials, self.progress, self.spec.name)
        try:
            while True:
                while len(self.running) < slots and self._more(t0):
                    self.start(submit, tmp, root)
                if not self.running:
                    break
                wait_a_little(list(self.running))
                finished = [f for f in self.running if f.done()]
                for t in self.running.values():
                    self.report(t)
                for fut in finished:
                    t = self.running.pop(fut)
                    try:
                        ok, error, seconds = fut.result()
                    except Exception as exc:  # a Dask worker died (execute_one itself never raises)
                        ok, error, seconds = False, f"Dask worker: {type(exc).__name__}: {exc}"[:300], 0.0
                    self.finish(t, ok, error, seconds)
                    advance(bar, self.study, self.spec.metric)
        finally:
            if bar is not None:
                bar.close()

    def _stop_all(self, why: str) -> None:
        """Interrupt every running execution's kernel and record it killed; its trial failed."""
        import optuna

        from ..jobs.runner import STOP_TAG

        for t in self.running.values():
            try:
                _tag(self.store, t.execution.run_id, {STOP_TAG: why})
            except Exception:
                pass
        deadline = time.monotonic() + 60
        for fut, t in list(self.running.items()):
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except BaseException:
                pass
            t.execution.status, t.execution.error = "killed", why
            self.store.writer.flush()
            self.store.meta.end_run(t.execution.run_id, "killed", time.time(), why)
            try:
                self.study.tell(t.trial, state=optuna.trial.TrialState.FAIL)
            except Exception:
                pass
            self.done.append(t)
        self.running.clear()

    def _summarize(self, result: TuneResult, interrupted) -> None:
        from .trials import outcome, record_outcome

        counts, best, line = outcome(self.study, {t.trial.number for t in self.done}, self.spec.metric,
                                     self.spec.name, result.seconds)
        record_outcome(_handle(self.store, self.run_id), counts, best, self.spec.metric)
        for t in self.done:
            e = t.execution
            if e.status == "failed":
                self.out(f"  trial {t.trial.number} FAILED: {e.error}")
        if isinstance(interrupted, KeyboardInterrupt):
            line += "; stopped by Ctrl-C, every finished trial kept"
        elif interrupted is not None:
            line += f"; stopped by {type(interrupted).__name__}, every finished trial kept"
        self.out(line)
        if result.decision is not None:
            self.out(str(result.decision))
        self.store.writer.flush()
        status = "killed" if interrupted is not None else ("failed" if self.done and counts["complete"] == 0 and
                                                           counts["pruned"] == 0 else "finished")
        self.store.meta.end_run(self.run_id, status, time.time(),
                                None if status == "finished" else (f"{type(interrupted).__name__}" if interrupted
                                                                   else "every trial failed"))


def _sleep_unless_done(futures) -> None:
    """Dask's futures: a pause of :data:`POLL` seconds unless one has ended already."""
    if not any(f.done() for f in futures):
        time.sleep(POLL)


def _handle(store, run_id: str):
    from ..jobs.runner import run_handle

    return run_handle(store, run_id, "", "")


def _tag(store, run_id: str, tags: dict) -> None:
    from ..tracking.values import encode_tags

    store.meta.set_tags(run_id, encode_tags(tags))
