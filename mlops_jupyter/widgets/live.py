"""The live chart of a running run.

Two outputs: a one-line header (status, duration, last values) and the run's metric curves as a
Vega-Lite chart. A daemon thread reads the new points from the store every *interval* seconds and
replaces both outputs in place (``update_display``), so the kernel never waits on drawing: the
kernel sends a spec, JupyterLab draws it. When the run ends the chart is replaced a last time,
now with an SVG copy, so the saved notebook keeps the final picture.
"""

from __future__ import annotations

import threading
import time

from .html import CSS, badge, fmt_duration, fmt_value, shown

MAX_POINTS = 4000  # per metric kept in memory; older points are halved, the chart thins further
_LIVE: dict[str, LiveRun] = {}


class LiveRun:
    """A run's header and metric chart, refreshed from the store by a background thread."""

    def __init__(self, store, run_id: str, interval: float = 1.0, max_charts: int = 6, display: bool = True):
        self.store = store
        self.run_id = run_id
        self.interval = interval
        self.max_charts = max_charts
        self.series: dict[str, list[tuple[int, float, float]]] = {}
        self.after: dict[str, int] = {}
        self.header = ""
        self.chart = None
        self.ended = False
        self._head = self._plot = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._display = display
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name=f"mlops-live-{run_id[:8]}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.refresh():
                    self.finish()
                    return
            except Exception:  # noqa: BLE001 - a broken refresh must never disturb the kernel
                return

    def stop(self) -> None:
        self._stop.set()

    def refresh(self) -> bool:
        """Read new points and redraw; False once the run has ended."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> bool:
        meta = self.store.meta
        row = meta.run_row(self.run_id)
        latest = meta.latest_metrics([self.run_id])[self.run_id]
        grew = False
        for key in sorted(latest)[: self.max_charts]:
            for _k, step, value, ts in meta.metric_history(self.run_id, key, self.after.get(key)):
                self.series.setdefault(key, []).append((step, value, ts))
                self.after[key] = step
                grew = True
            pts = self.series.get(key, [])
            if len(pts) > MAX_POINTS:  # keep memory bounded on million-point runs
                self.series[key] = pts[::2]
        now = row["end_time"] or time.time()
        shown_keys = sorted(latest)[:8]
        self.header = (CSS + f'<div class="mlops-h">{shown(row["name"])} {badge(row["status"])} '
                       f'<code>{self.run_id[:8]}</code> <small>{fmt_duration(now - row["start_time"])}'
                       + "".join(f" · {shown(k)}={fmt_value(latest[k][0])} (step {latest[k][1]})" for k in shown_keys)
                       + (f" · {len(latest) - len(shown_keys)} more metrics" if len(latest) > len(shown_keys) else "")
                       + "</small></div>")
        text = f"{row['name']} ({self.run_id[:8]}) {row['status']}"
        if grew or self.chart is None:
            self.chart = self._build(row)
        self._show(text, static=False, redraw_chart=grew)
        return row["status"] == "running"

    def _build(self, row):
        from ..charts.metrics import metric_chart

        if not self.series:
            return None
        return metric_chart({row["name"]: self.series}, list(self.series), x="step",
                            starts={row["name"]: row["start_time"]})

    def _show(self, text: str, static: bool, redraw_chart: bool) -> None:
        if not self._display:
            return
        from IPython.display import DisplayHandle

        head = {"text/html": self.header, "text/plain": text}
        if self._head is None:
            self._head = DisplayHandle()
            self._head.display(head, raw=True)
        else:
            self._head.update(head, raw=True)
        if self.chart is None:  # hold the chart's place under the header until the first point
            if self._plot is None:
                self._plot = DisplayHandle()
                self._plot.display({"text/html": "<small>the chart appears with the first logged metric</small>",
                                    "text/plain": "the chart appears with the first logged metric"}, raw=True)
            return
        if not redraw_chart:
            return
        from .saved import display_chart, update_chart

        if self._plot is None:
            self._plot = display_chart(self.chart, static=static)
        else:
            update_chart(self._plot, self.chart, static=static)

    def finish(self) -> None:
        """The last drawing, once the run has ended: the final chart with its SVG copy, so the
        saved notebook keeps it. Called by the thread, and by the magic that ended the run."""
        with self._lock:
            if self.ended:
                return
            self._refresh()
            self.ended = True
            self._stop.set()
            row = self.store.meta.run_row(self.run_id)
            self._show(f"{row['name']} ({self.run_id[:8]}) {row['status']}", static=True, redraw_chart=True)
            if self.chart is None and self._plot is not None:
                self._plot.update({"text/html": "<small>no metric was logged in this run</small>",
                                   "text/plain": "no metric was logged in this run"}, raw=True)
        _LIVE.pop(self.run_id, None)


def display_live(store, run_id: str) -> LiveRun:
    """Show *run_id* live; its last picture is drawn when the run ends, in the code that ended it
    (the ``run.ended`` event), so the cell that ends a run also saves its final chart."""
    from .. import events

    if _on_run_ended not in events.bus.subscribers("run.ended"):
        events.subscribe("run.ended", _on_run_ended)
    live = LiveRun(store, run_id)
    _LIVE[run_id] = live
    return live


def _on_run_ended(store=None, run_id: str = "", status: str = "", **_):
    live = _LIVE.get(run_id)
    if live is not None:
        live.finish()
