"""``mlops monitor check JOB``: evaluate the job's retraining rule over the last window of its
served traffic, store the decision, and retrain when the rule fires.

Exit codes (so cron, a CronJob or CI can act on them): 0 the rule did not fire; 3 it fired
(and the retraining ran, or ``--dry-run``); 1 it fired and the retraining failed; 2 bad input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..exceptions import BadInput

FIRED, NOT_FIRED, FAILED = 3, 0, 1
DRIFT_FIGURES = {"drift_share", "drifted_features", "dataset_drift"}


@dataclass
class CheckResult:
    job: str
    rule: str
    figures: dict
    fired: bool
    why: list[str] = field(default_factory=list)
    outcome: str = ""
    drift: object = None  # the DriftReport, when the rule needed one
    monitor: object = None  # the MonitorReport
    check_id: int | None = None
    exit_code: int = NOT_FIRED

    def __str__(self) -> str:
        names = list(dict.fromkeys([*_SHOWN, *self._named()]))
        shown = ", ".join(f"{k} {_fmt(self.figures.get(k))}" for k in names)
        lines = [f"job {self.job}: rule {self.rule!r}", f"  figures: {shown}"]
        lines += [f"  {'' if 'unknown' in w else 'fired: '}{w}" for w in self.why if self.fired or "unknown" in w]
        lines.append(f"  decision: {'RETRAIN' if self.fired else 'no retraining'} ({self.outcome})")
        return "\n".join(lines)

    def _named(self) -> set[str]:
        from ..jobs.rule import parse

        return set(parse(self.rule).names)


_SHOWN = ("requests", "labeled_rows", "drift_share")


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.4g}"
    return f"{int(v):,}" if isinstance(v, (int, float)) else str(v)


def _reference(spec, reg) -> str:
    ref = spec.retrain.get("reference")
    if ref:
        return ref
    v = reg.get(f"{spec.model}@{spec.alias}")
    inputs = [d["ref"] for d in v.datasets if d.get("direction") == "input"]
    if not inputs:
        raise BadInput(f"{v.ref} records no training data version, so drift has no reference: set "
                       f"[retrain] reference = \"NAME@vN\" in jobs/{spec.name}/job.toml (or version the "
                       "training data in the notebook: %mlops data add)")
    return inputs[0]


def check(job: str, dry_run: bool = False, window: str | None = None, out: Callable[[str], None] = print,
          progress: bool = False, workers: int | None = None, timeout: float | None = None) -> CheckResult:
    from ..jobs.spec import find_job
    from ..models.registry import Registry
    from ..store import open_store
    from .drift import drift
    from .history import save_check, set_outcome
    from .perf import monitor
    from ..jobs.rule import parse

    spec = find_job(job)
    if not spec.model:
        raise BadInput(f"job {spec.name} registers no model (promoted without --model): nothing to monitor")
    text = spec.retrain.get("retrain_when")
    if not text:
        raise BadInput(f"job {spec.name} has no rule: add retrain_when = \"drift_share > 0.3\" under [retrain] in "
                       f"jobs/{spec.name}/job.toml")
    rule = parse(text, "[retrain] retrain_when")
    span = window or spec.retrain.get("window", "24h")
    ref = f"{spec.model}@{spec.alias}"
    store = open_store()
    reg = Registry(store)
    perf = monitor(ref, since=span)
    figures: dict = dict(perf.figures())
    report = None
    if DRIFT_FIGURES & set(rule.names):
        report = drift(_reference(spec, reg), f"serving:{ref}", since=span,
                       threshold=spec.retrain.get("threshold", 0.5), progress=progress)
        figures.update(drift_share=report.drift_share,
                       drifted_features=float(report.summary["n_drifted"]) if report.summary["n_compared"] else None,
                       dataset_drift=float(report.dataset_drift) if report.summary["n_compared"] else None)
    fired, why = rule.evaluate(figures)
    outcome = ("dry run: would retrain" if dry_run else "retraining") if fired else "not fired"
    result = CheckResult(spec.name, rule.text, figures, fired, why, outcome, report, perf)
    result.check_id = save_check(spec.name, rule.text, figures, fired, report.id if report else None, outcome,
                                 store=store)
    result.exit_code = FIRED if fired else NOT_FIRED
    out(str(result))
    if not fired or dry_run:
        return result
    from ..exceptions import JobFailed
    from ..jobs.runner import retrain

    # job.toml's grid goes over as it is, typed (as text, a list value or text with a comma in it
    # would not come back the same)
    grid = spec.retrain.get("grid") or None
    shown = " ".join(f"{k}={','.join(map(str, v))}" for k, v in (grid or {}).items())
    out(f"retraining {spec.name}: mlops retrain {spec.name}" + (f" --grid {shown}" if grid else ""))
    try:
        batch = retrain(spec, grid=grid, workers=workers, out=out, progress=progress, timeout=timeout,
                        trigger="monitor")
    except JobFailed as e:
        result.outcome = f"retraining failed: {e}"
        result.exit_code = FAILED
        set_outcome(result.check_id, result.outcome, store=store)
        raise
    d = batch.decision
    result.outcome = f"retrained (run {batch.run_id[:8]}): {d}" if d else f"retrained (run {batch.run_id[:8]})"
    set_outcome(result.check_id, result.outcome, store=store)
    out(f"check {result.check_id}: {result.outcome}")
    return result
