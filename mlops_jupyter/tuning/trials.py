"""A study's trials as runs: each ``trial N`` a child of the study's run, pruned from the figures
the objective logs, failed trials recorded while the study goes on."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable


def observer(trial: Any, metric: str) -> Callable[[str, float, int], None]:
    """Called by the trial's run for each point it logs: a point of *metric* is the trial's
    intermediate value at that step; when the pruner says so, the log call raises TrialPruned."""
    def observe(key: str, value: float, step: int) -> None:
        if key != metric or not math.isfinite(value):
            return
        import optuna

        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} ({metric} {value:.6g})")

    return observe


LIVE_EVERY = 2.0  # seconds between updates of a study's live view


def live_view(study, live: bool | None):
    """A function updating the study's live view (``view(final)``), or None: in a kernel (or when
    *live*) and with a face that draws one."""
    from .. import rendering
    from .report import StudyReport

    if live is None:
        from ..tracking.notebook import in_kernel_process

        live = in_kernel_process()
    draw = rendering.renderer_for(StudyReport, rendering.LIVE) if live else None
    if draw is None:
        return None
    from .report import report_of

    state = {"last": 0.0, "key": f"study-{id(study)}"}

    def view(final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - state["last"] < LIVE_EVERY:
            return
        state["last"] = now
        try:
            rep = report_of(study, importances=final)
            rep.live = {"key": state["key"], "final": final}
            draw(rep)
        except Exception as e:  # a view never stops the search
            import warnings

            warnings.warn(f"mlops tune: the live view failed ({type(e).__name__}: {e})", RuntimeWarning)

    return view


def optimize(study, objective: Callable, *, metric: str, n_trials: int | None, timeout: float | None, workers: int,
             progress: bool, options: dict, on_trial: Callable | None = None, live: bool | None = None):
    """Run *objective* in *study* (``study.optimize``), each trial a child run of the study's run;
    *on_trial* is given each finished trial (frozen); in a notebook a live view follows the study."""
    import optuna

    from ..tracking import run as tracking

    outer = tracking.active_run()
    study_run = tracking.start_run(
        name=f"tune {study.study_name}", params={"n_trials": n_trials, "timeout": timeout, "workers": workers,
                                                 "direction": study.direction.name.lower(), "metric": metric,
                                                 **{k: v for k, v in options.items() if v is not None}},
        tags={"mlops.study": study.study_name, "mlops.kind": "study"}, activate=False,
        parent=outer)
    mine: set[int] = set()  # this search's trials (on a team's store other machines add theirs)
    first_failure: list[str] = []

    def wrapped(trial):
        mine.add(trial.number)
        run = tracking.start_run(name=f"trial {trial.number}", parent=study_run, activate=workers == 1,
                                 tags={"mlops.study": study.study_name, "mlops.trial": str(trial.number)})
        trial.set_user_attr("mlops.run_id", run.run_id)
        run.observers.append(observer(trial, metric))
        status, error = "finished", None
        try:
            if workers == 1:
                value = objective(trial)
            else:
                with tracking.thread_run(run):
                    value = objective(trial)
            if value is None or not _finite(value):
                status, error = "failed", f"the objective returned {value!r}, not a number"
            else:
                run.observers.clear()
                run.log_metric(metric, float(value))
            return value
        except optuna.TrialPruned as e:
            status, error = "pruned", str(e) or "pruned"
            raise
        except KeyboardInterrupt:
            status, error = "killed", "KeyboardInterrupt"
            raise
        except BaseException as e:
            status, error = "failed", f"{type(e).__name__}: {e}"[:2000]
            if not first_failure:
                first_failure.append(error)
                print(f"mlops tune: trial {trial.number} failed ({error.splitlines()[0][:200]}); "
                      "the study goes on", file=sys.stderr)
            raise
        finally:
            run.observers.clear()
            # the trial's parameters and state in the transaction that ends its run
            run.end(status, error, params=trial.params, tags={"mlops.trial.state": status})

    bar = progress_bar(n_trials, progress, study.study_name)
    view = live_view(study, live)

    def tick(study, frozen) -> None:
        if on_trial is not None:
            on_trial(frozen)
        if view is not None:
            view()
        advance(bar, study, metric)

    interrupted = False
    t0 = time.perf_counter()
    try:
        study.optimize(wrapped, n_trials=n_trials, timeout=timeout, n_jobs=workers, catch=(Exception,),
                       callbacks=[tick], gc_after_trial=False, show_progress_bar=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
        _summarize(study, study_run, metric, mine, interrupted, time.perf_counter() - t0)
        if view is not None:
            view(final=True)
    return study


def _summarize(study, study_run, metric: str, mine: set[int], interrupted: bool, seconds: float) -> None:
    counts, best, line = outcome(study, mine, metric, f"study {study.study_name}", seconds)
    record_outcome(study_run, counts, best, metric)
    if best is not None:
        study_run.set_tags({"mlops.best_trial": str(best.number),
                            "mlops.best_run": str(best.user_attrs.get("mlops.run_id", ""))})
    if interrupted:
        line += "; stopped by Ctrl-C, every finished trial kept"
    print(line)
    study_run.end("killed" if interrupted else "finished", "KeyboardInterrupt" if interrupted else None)


# -- what a notebook study and a job's study share --------------------------------------------------------
def outcome(study, mine: set[int], metric: str, label: str, seconds: float) -> tuple[dict[str, int], Any, str]:
    """This search's trials (their numbers: *mine*; other machines may add theirs to the study at
    once) by state (``complete``, ``pruned``, ``fail``), the study's best trial (None before one
    finishes) and the line that says so."""
    import optuna

    S = optuna.trial.TrialState
    ours = [t for t in study.trials if t.number in mine]
    counts = {s.name.lower(): sum(t.state == s for t in ours) for s in (S.COMPLETE, S.PRUNED, S.FAIL)}
    line = (f"{label}: {len(ours)} trial(s) in {seconds:.1f} s ({counts['complete']} complete, "
            f"{counts['pruned']} pruned, {counts['fail']} failed)")
    others = len(study.trials) - len(ours)
    if others:
        line += f", {len(study.trials)} in the study"
    try:
        best = study.best_trial
    except ValueError:
        best = None
    if best is not None:
        line += f"; best {metric} {best.value:.6g} (trial {best.number}: " + \
            ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items()) + \
            ("" if best.number in mine else ", from another search of the study") + ")"
    return counts, best, line


def record_outcome(run, counts: dict[str, int], best, metric: str) -> None:
    """On the study's run: ``trials_<state>`` counts, ``best_<metric>`` and ``best_<param>``."""
    run.log_metrics({f"trials_{k}": v for k, v in counts.items()})
    if best is not None:
        run.log_metric(f"best_{metric}", float(best.value))
        run.log_params({f"best_{k}": v for k, v in best.params.items()})


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def progress_bar(total: int | None, show: bool, name: str):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"tuning {name}", unit="trial")


def advance(bar, study, metric: str) -> None:
    """One more trial on *bar*, with the best value so far."""
    if bar is None:
        return
    bar.update(1)
    try:
        bar.set_postfix_str(f"best {metric} {study.best_value:.6g}", refresh=False)
    except ValueError:  # no finished trial yet
        pass
