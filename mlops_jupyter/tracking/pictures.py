"""Runs as charts: what the notebook, the panel and saved files draw for a run and for runs side
by side, all from :mod:`mlops_jupyter.charts`."""

from __future__ import annotations

from collections.abc import Sequence

from ..charts import Chart
from ..charts.compare import main_metric, param_scatter, parallel_coordinates
from ..charts.metrics import metric_chart


def labels(records: Sequence) -> list[str]:
    """A legend label per run: its name, with the id's first 8 characters when names repeat."""
    names = [r.name for r in records]
    return [n if names.count(n) == 1 else f"{n} ({r.run_id[:8]})" for n, r in zip(names, records)]


def series_of(record, keys: Sequence[str] | None = None) -> dict[str, list[tuple[int, float, float]]]:
    """key -> [(step, value, timestamp)] of one run."""
    out: dict[str, list[tuple[int, float, float]]] = {}
    wanted = None if keys is None else set(keys)
    for k, step, value, ts in record.store.meta.metric_history(record.run_id):
        if wanted is None or k in wanted:
            out.setdefault(k, []).append((step, value, ts))
    return out


def runs_chart(records: Sequence, keys: Sequence[str] | None = None, x: str = "step", log_y: bool = False,
               best: bool | None = None, title: str | None = None) -> Chart:
    """The metric curves of *records*, one colour per run in every chart; with several runs the
    best last value of each metric is marked."""
    names = labels(records)
    series = {name: series_of(r, keys) for name, r in zip(names, records)}
    starts = {name: r.row["start_time"] for name, r in zip(names, records)}
    if keys is not None:
        keys = [k for k in keys if any(k in s for s in series.values())]
    return metric_chart(series, keys, x=x, log_y=log_y, best=len(records) > 1 if best is None else best,
                        title=title, starts=starts)


def points(records: Sequence) -> list[tuple[str, dict, dict]]:
    return [(name, r.params, r.metrics) for name, r in zip(labels(records), records)]


def parallel(records: Sequence, metric: str | None = None) -> Chart:
    pts = points(records)
    return parallel_coordinates(pts, _metric(pts, metric))


def scatter(records: Sequence, metric: str | None = None) -> Chart:
    pts = points(records)
    return param_scatter(pts, _metric(pts, metric))


def _metric(pts, metric: str | None) -> str:
    from ..exceptions import BadInput

    known = sorted({k for _, _, m in pts for k in m})
    if metric is None:
        metric = main_metric(pts)
        if metric is None:
            raise BadInput("these runs have no metric to compare")
    elif metric not in known:
        raise BadInput(f"no run has a metric {metric!r}; they have: {', '.join(known) or 'none'}")
    return metric
