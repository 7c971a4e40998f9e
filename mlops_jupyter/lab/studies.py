"""What the JupyterLab panel shows of tuning studies, as JSON-ready dicts: the list (trials by
state, best value, whether a search is running now) and one study in detail (its headline, the
best trial, the pictures as Vega-Lite specs, the trials with their runs). The study comes from
Optuna's storage in the project's database, so a search in progress shows each trial as the
writer stores it."""

from __future__ import annotations

from ..exceptions import BadInput
from ..store.metadata import json_safe as clean
from .api import store

MAX_TRIALS = 500  # the newest trials listed in a study's table (the pictures use all of them)


def _storage():
    from ..tuning.study import storage_for

    return storage_for(store())


def _searching(st) -> dict[str, dict]:
    """The studies a search is running for now: study name -> its study run (run_id, name, start_time)."""
    from ..tracking.query import search_runs

    out: dict[str, dict] = {}
    for r in search_runs(st, where="status = 'running' and tags.`mlops.study` is not null"):
        tags = r["tags"]
        if tags.get("mlops.kind") in ("study", "tune"):
            out.setdefault(tags["mlops.study"], {k: r.get(k) for k in ("run_id", "name", "start_time")})
    return out


def studies() -> dict:
    """Every study in the project's store, the newest first."""
    import optuna

    storage = _storage()
    running = _searching(store())
    out = []
    for s in storage.get_all_studies():
        study_id = storage.get_study_id_from_name(s.study_name)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            state = t.state.name.lower()
            counts[state] = counts.get(state, 0) + 1
        maximize = s.direction == optuna.study.StudyDirection.MAXIMIZE
        values = [t.value for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
        started = min((t.datetime_start.timestamp() for t in trials if t.datetime_start), default=None)
        out.append({"name": s.study_name, "metric": s.user_attrs.get("mlops.metric", "value"),
                    "direction": "max" if maximize else "min", "job": s.user_attrs.get("mlops.job"),
                    "trials": len(trials), "counts": counts,
                    "best": (max if maximize else min)(values) if values else None,
                    "started": started, "running": running.get(s.study_name)})
    out.sort(key=lambda d: -(d["started"] or 0))
    return clean({"studies": out})


def study(name: str) -> dict:
    """One study: headline, best trial, pictures (history, parallel coordinates, slices, parameter
    importances; None when there is not enough to draw), trials (the newest MAX_TRIALS) with the
    run each one tracked, and the study's own runs (one per search: a resumed study has several)."""
    from ..store import schema as S
    from ..tracking.query import search_runs
    from ..tuning.report import study as load_report

    if not isinstance(name, str) or not name or len(name) > 200:
        raise BadInput("name a study (1 to 200 characters)")
    rep = load_report(name)
    st = store()
    run_ids = [t["run_id"] for t in rep.trials if t["run_id"]]
    names = {r["run_id"]: r for r in st.meta.select_runs(S.runs.c.run_id.in_(run_ids))} if run_ids else {}
    from ..data.catalog import NAME

    # our studies' names are checked names; a study made by Optuna alone may be named otherwise
    # (and has no search run of ours to find)
    searches = search_runs(st, where=f"tags.`mlops.study` = '{name}' and tags.`mlops.trial` is null",
                           order_by="-start_time", limit=20) if NAME.match(name) and ".." not in name else []
    searches = [r for r in searches if r["tags"].get("mlops.kind") in ("study", "tune")]
    charts = {k: None if c is None else c.spec for k, c in rep.pictures().items()}
    job = next((r["tags"].get("mlops.job") for r in searches if r["tags"].get("mlops.job")), None)
    trials = []
    for t in sorted(rep.trials, key=lambda t: t["number"])[-MAX_TRIALS:]:
        run = names.get(t["run_id"]) if t["run_id"] else None
        trials.append({**t, "run": {"run_id": run["run_id"], "name": run["name"], "status": run["status"]}
                       if run else None})
    best = rep.best
    return clean({
        "name": rep.name, "metric": rep.metric, "direction": "max" if rep.maximize else "min", "job": job,
        "counts": rep.counts(), "total": len(rep.trials), "params": rep.param_names(),
        "best": {"number": best["number"], "value": best["value"], "params": best["params"],
                 "run_id": best["run_id"]} if best else None,
        "importance_method": rep.importance_method or None, "notes": rep.notes, "charts": charts,
        "trials": trials,
        "searches": [{"run_id": r["run_id"], "name": r["name"], "status": r["status"], "start_time": r["start_time"],
                      "end_time": r.get("end_time"), "params": r["params"]} for r in searches],
        "running": any(r["status"] == "running" for r in searches)})
