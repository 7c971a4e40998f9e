"""The live chart of a running run."""

from __future__ import annotations

import threading
import time

from .charts import line_chart
from .html import CSS, badge, fmt_duration, fmt_value, shown


class LiveRun:
    """A chart of a run's metrics, refreshed from the store by a background thread."""

    def __init__(self, store, run_id: str, interval: float = 1.0, max_charts: int = 6):
        import ipywidgets as W

        self.store = store
        self.run_id = run_id
        self.interval = interval
        self.max_charts = max_charts
        self.series: dict[str, list[tuple[int, float]]] = {}
        self.after: dict[str, int] = {}
        self.html = W.HTML()
        self.widget = self.html
        self._stop = threading.Event()
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name=f"mlops-live-{run_id[:8]}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.refresh():
                    return
            except Exception:  # a broken refresh must never disturb the kernel
                return

    def stop(self) -> None:
        self._stop.set()

    def refresh(self) -> bool:
        """Read new points and redraw; False once the run has ended."""
        meta = self.store.meta
        row = meta.run_row(self.run_id)
        latest = meta.latest_metrics([self.run_id])[self.run_id]
        for key in sorted(latest)[: self.max_charts]:
            for _k, step, value, _ts in meta.metric_history(self.run_id, key, self.after.get(key)):
                self.series.setdefault(key, []).append((step, value))
                self.after[key] = step
            pts = self.series.get(key, [])
            if len(pts) > 4000:  # keep memory bounded on million-point runs
                self.series[key] = pts[::2]
        now = row["end_time"] or time.time()
        head = (f'<div class="mlops-h">{shown(row["name"])} {badge(row["status"])} '
                f'<code>{self.run_id[:8]}</code> <small>{fmt_duration(now - row["start_time"])} · '
                + " · ".join(f"{shown(k)}={fmt_value(v[0])} (step {v[1]})" for k, v in sorted(latest.items())[:8])
                + "</small></div>")
        charts = "".join(line_chart({k: v}, title=k, width=300, height=160) for k, v in self.series.items()
                         if len(v) > 1)
        self.html.value = CSS + head + f'<div class="mlops-charts">{charts}</div>'
        return row["status"] == "running"


def display_live(store, run_id: str) -> LiveRun:
    from IPython.display import display

    live = LiveRun(store, run_id)
    display(live.widget)
    return live
