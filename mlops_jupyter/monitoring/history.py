"""Drift reports and monitor checks in the store (the project's, unless a store is given)."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from ..store import open_store
from ..store import schema as S
from ..store.metadata import json_safe
from ..tracking.run import active_run_id


def _rows(df) -> list[dict]:
    return [json_safe(r) for r in df.to_dict("records")]


def save_report(report, store=None) -> int:
    from ..identity import current_user

    s = report.summary
    window = s.get("window") or [None, None]
    row = dict(created=time.time(), username=current_user(), run_id=active_run_id(), model=s.get("model"),
               version=s.get("version"), reference=s["reference"], current=s["current"],
               datasets=json.dumps(s.get("datasets") or []), window_start=window[0], window_end=window[1],
               n_ref=s["n_ref"], n_cur=s["n_cur"], n_compared=s["n_compared"], n_drifted=s["n_drifted"],
               drift_share=s["drift_share"], dataset_drift=s["dataset_drift"],
               summary=json.dumps(json_safe(s)),
               features=json.dumps(_rows(report.features)), histograms=json.dumps(report.histograms))
    meta = (store or open_store()).meta

    def work(conn):
        return conn.execute(S.drift_reports.insert().values(**row)).inserted_primary_key[0]

    return int(meta.run_transaction(work))


def load_report(report_id: int, store=None):
    import pandas as pd

    from ..exceptions import NotFound
    from .drift import COLUMNS, DriftReport

    with (store or open_store()).meta.read() as conn:
        r = conn.execute(sa.select(S.drift_reports).where(S.drift_reports.c.id == int(report_id))).first()
    if r is None:
        raise NotFound(f"no drift report {report_id}")
    return DriftReport(pd.DataFrame(json.loads(r.features), columns=COLUMNS), json.loads(r.summary),
                       json.loads(r.histograms or "{}"), id=r.id)


def reports(model: str | None = None, since: float | None = None, until: float | None = None, store=None):
    """Saved drift reports (newest last) as a DataFrame: when, model version, sides, share, drift."""
    import pandas as pd

    t = S.drift_reports
    q = sa.select(t.c.id, t.c.created, t.c.model, t.c.version, t.c.reference, t.c.current, t.c.n_compared,
                  t.c.n_drifted, t.c.drift_share, t.c.dataset_drift, t.c.window_start, t.c.window_end)
    from ..serving.predlog import within

    if model is not None:
        q = q.where(t.c.model == model)
    q = within(q, t.c.created, since, until)
    with (store or open_store()).meta.read() as conn:
        rows = conn.execute(q.order_by(t.c.created, t.c.id)).all()
    return pd.DataFrame(rows, columns=["id", "created", "model", "version", "reference", "current", "n_compared",
                                       "n_drifted", "drift_share", "dataset_drift", "window_start", "window_end"])


def save_check(job: str, rule: str, figures: dict, fired: bool, drift_report: int | None, outcome: str,
               store=None) -> int:
    from ..identity import current_user

    row = dict(job=job, at=time.time(), username=current_user(), rule=rule,
               figures=json.dumps(json_safe(figures)), fired=fired,
               drift_report=drift_report, outcome=outcome)
    meta = (store or open_store()).meta

    def work(conn):
        return conn.execute(S.monitor_checks.insert().values(**row)).inserted_primary_key[0]

    return int(meta.run_transaction(work))


def set_outcome(check_id: int, outcome: str, store=None) -> None:
    meta = (store or open_store()).meta

    def work(conn):
        conn.execute(S.monitor_checks.update().where(S.monitor_checks.c.id == check_id).values(outcome=outcome))

    meta.run_transaction(work)


def checks(job: str | None = None, last: int | None = None, store=None):
    import pandas as pd

    t = S.monitor_checks
    q = sa.select(t.c.id, t.c.job, t.c.at, t.c.rule, t.c.fired, t.c.figures, t.c.drift_report, t.c.outcome)
    if job is not None:
        q = q.where(t.c.job == job)
    q = q.order_by(t.c.at.desc(), t.c.id.desc())
    if last:
        q = q.limit(last)
    with (store or open_store()).meta.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    for r in rows:
        r["figures"] = json.loads(r["figures"])
    return pd.DataFrame(rows[::-1], columns=["id", "job", "at", "rule", "fired", "figures", "drift_report", "outcome"])
