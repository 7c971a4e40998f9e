"""What a study shows: its trials, best trial, parameter importances and pictures (``mj.study``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import rendering
from ..exceptions import NotFound

IMPORTANCE_METHOD = "PED-ANOVA, Optuna's default"


@dataclass
class StudyReport:
    """A study's trials (dicts: number, state, value, params, run_id, seconds), its direction and
    metric, the parameters' importances (None when fewer than two trials finished) and pictures."""

    name: str
    metric: str
    maximize: bool
    trials: list[dict[str, Any]]
    importances: dict[str, float] | None = None
    importance_method: str = ""
    notes: list[str] = field(default_factory=list)
    live: dict | None = None  # set while a live view draws it: {"key", "final"}

    @property
    def finished(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t["state"] == "complete" and t["value"] is not None]

    @property
    def best(self) -> dict[str, Any] | None:
        done = self.finished
        if not done:
            return None
        return (max if self.maximize else min)(done, key=lambda t: t["value"])

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t["state"]] = out.get(t["state"], 0) + 1
        return out

    # -- pictures ---------------------------------------------------------------------------------------
    def history_chart(self):
        from ..charts.tuning import history

        return history(self.trials, self.metric, self.maximize, title=f"{self.name}: optimization history")

    def parallel_chart(self):
        from ..charts.tuning import parallel

        return parallel(self.trials, self.metric, self.maximize, params=self.param_names())

    def slices_chart(self):
        from ..charts.tuning import slices

        return slices(self.trials, self.metric, params=self.param_names())

    def importance_chart(self):
        from ..charts.tuning import importances

        if not self.importances:
            return None
        return importances(self.importances, self.metric, self.importance_method)

    def pictures(self) -> dict[str, Any]:
        """The pictures by name (``history``, ``parallel``, ``slices``, ``importances``); None for
        one with nothing to show yet."""
        enough = len(self.finished) >= 2 and bool(self.param_names())
        return {"history": self.history_chart(), "parallel": self.parallel_chart() if enough else None,
                "slices": self.slices_chart() if enough else None, "importances": self.importance_chart()}

    def charts(self) -> list:
        """Every picture that has something to show."""
        return [c for c in self.pictures().values() if c is not None]

    def param_names(self) -> list[str]:
        names: dict[str, None] = {}
        for t in self.trials:
            for k in t["params"]:
                names.setdefault(k, None)
        return list(names)

    def frame(self):
        """The trials as a DataFrame: number, state, value, one column per parameter, seconds, run."""
        import pandas as pd

        rows = [{"trial": t["number"], "state": t["state"], self.metric: t["value"],
                 **{f"params.{k}": v for k, v in t["params"].items()}, "seconds": t["seconds"],
                 "run_id": t["run_id"]} for t in self.trials]
        return pd.DataFrame(rows)

    def save(self, path) -> str:
        """The report as a self-contained HTML page (``.html``), atomically; returns the path."""
        import html

        from ..store.blobs import save_file

        text = rendering.render(self, rendering.HTML)
        page = f"<!doctype html><meta charset='utf-8'><title>{html.escape(self.name)}</title><body>{text}</body>"
        return save_file(path, page.encode())

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)

    def __str__(self) -> str:
        return rendering.render(self, rendering.TERMINAL)


def _state(trial) -> str:
    return trial.state.name.lower()


def report_of(study, importances: bool = True) -> StudyReport:
    """The report of an Optuna study (the object ``mj.tune`` returned, or one loaded); without
    *importances* (a live view's quick redraw) the parameters' importances are not computed."""
    import optuna

    metric = study.user_attrs.get("mlops.metric", "value")
    trials = []
    for t in study.trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else None
        trials.append({"number": t.number, "state": _state(t), "value": t.value, "params": dict(t.params),
                       "seconds": seconds, "run_id": t.user_attrs.get("mlops.run_id")})
    rep = StudyReport(study.study_name, metric, study.direction == optuna.study.StudyDirection.MAXIMIZE, trials)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if importances and len(complete) >= 2 and rep.param_names():
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # named outright (Optuna 5's default), so the label holds whichever default Optuna has
                values = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
            rep.importances = {k: float(v) for k, v in values.items()}
            rep.importance_method = IMPORTANCE_METHOD
        except Exception as e:  # too few distinct values, a single-valued parameter...
            rep.notes.append(f"parameter importances not computed: {type(e).__name__}: {str(e)[:200]}")
    return rep


def study(name: str) -> StudyReport:
    """``mj.study("gbm-search")``: the report of a study in the project's store."""
    import optuna

    from ..store import open_store
    from .study import storage_for

    storage = storage_for(open_store())
    names = [s.study_name for s in storage.get_all_studies()]
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else \
            (f" (studies: {', '.join(names[:10])})" if names else " (no study yet: mj.tune starts one)")
        raise NotFound(f"no study {name!r}{hint}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return report_of(optuna.load_study(study_name=name, storage=storage))


def studies():
    """Every study in the project's store: name, direction, metric, trials, best value."""
    import pandas as pd

    from ..store import open_store
    from .study import storage_for

    storage = storage_for(open_store())
    rows = []
    for s in storage.get_all_studies():
        study_id = storage.get_study_id_from_name(s.study_name)
        try:
            best = storage.get_best_trial(study_id).value
        except (ValueError, RuntimeError):
            best = None
        rows.append({"study": s.study_name, "direction": s.direction.name.lower(),
                     "metric": s.user_attrs.get("mlops.metric", "value"),
                     "trials": storage.get_n_trials(study_id), "best": best})
    return pd.DataFrame(rows, columns=["study", "direction", "metric", "trials", "best"])
