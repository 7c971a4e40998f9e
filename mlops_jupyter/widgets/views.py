"""ipywidgets views: the interactive runs table and the live chart of a running run."""

from __future__ import annotations

from .html import runs_table_html, shown


def in_kernel() -> bool:
    """True inside a Jupyter kernel, where widgets can render."""
    from ..tracking.notebook import in_kernel_process

    return in_kernel_process() and _has_widgets()


def _has_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class RunsTable:
    """Runs as a table with filter, sort and paging; each change re-queries the store."""

    PAGE = 50

    def __init__(self, store, where: str | None = None, order_by: str | None = None,
                 limit: int | None = None):
        import ipywidgets as W

        self.store = store
        self.limit = limit
        self.page = 0
        self.where = W.Text(value=where or "", placeholder="filter, e.g. metrics.acc > 0.8",
                            layout=W.Layout(width="340px"))
        self.sort = W.Combobox(value=(order_by or "").lstrip("-"), placeholder="sort by, e.g. metrics.acc",
                               options=["start_time", "name", "status"], ensure_option=False,
                               layout=W.Layout(width="200px"))
        self.desc = W.ToggleButton(value=not order_by or order_by.startswith("-") or order_by.endswith(" desc"),
                                   description="descending", icon="sort-amount-desc", layout=W.Layout(width="120px"))
        self.prev = W.Button(description="◀", layout=W.Layout(width="36px"))
        self.next = W.Button(description="▶", layout=W.Layout(width="36px"))
        self.status = W.HTML()
        self.body = W.HTML()
        for w in (self.where, self.sort):
            w.observe(self._changed, names="value")
        self.desc.observe(self._changed, names="value")
        self.prev.on_click(lambda _: self._page(-1))
        self.next.on_click(lambda _: self._page(1))
        self.widget = W.VBox([W.HBox([self.where, self.sort, self.desc, self.prev, self.next, self.status]),
                              self.body])
        self.refresh()

    def _changed(self, _change) -> None:
        self.page = 0
        self.refresh()

    def _page(self, delta: int) -> None:
        self.page = max(0, self.page + delta)
        self.refresh()

    def order(self) -> str | None:
        key = self.sort.value.strip()
        if not key:
            return None if self.desc.value else "start_time"
        return ("-" if self.desc.value else "") + key

    def refresh(self) -> None:
        from ..exceptions import MlopsError
        from ..tracking.query import compile_where, search_runs

        try:
            total = self.store.meta.count_runs(compile_where(self.where.value))
            n = self.PAGE if self.limit is None else min(self.PAGE, max(self.limit - self.page * self.PAGE, 0))
            rows = search_runs(self.store, self.where.value, self.order(), n, self.page * self.PAGE)
        except MlopsError as e:
            self.status.value = f'<span style="color:#d93025">{shown(e)}</span>'
            return
        if self.limit is not None:
            total = min(total, self.limit)
        pkeys = sorted({k for r in rows for k in r["params"]})[:8]
        mkeys = sorted({k for r in rows for k in r["metrics"]})[:8]
        self.sort.options = ["start_time", "name", "status"] + [f"metrics.{k}" for k in mkeys] + \
                            [f"params.{k}" for k in pkeys]
        first = self.page * self.PAGE
        self.status.value = f"<small>{first + 1 if rows else 0}–{first + len(rows)} of {total} runs</small>"
        self.prev.disabled = self.page == 0
        self.next.disabled = first + len(rows) >= total
        self.body.value = runs_table_html(rows, pkeys, mkeys)


def show_formats(obj) -> None:
    """The interactive view of a result that has none of its own: its text and its HTML (registered
    for ``object``, so that every result class with ``_ipython_display_`` has a view)."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display

    from .. import rendering

    if not InteractiveShell.initialized():  # as IPython's display does outside a shell
        print(obj)
        return
    data = {rendering.TEXT: repr(obj)}
    page = obj._repr_html_() if hasattr(obj, "_repr_html_") else rendering.render(obj, rendering.HTML)
    if page is not None:
        data[rendering.HTML] = page
    display(data, raw=True)  # raw: display(obj) would call _ipython_display_ again


def show_runs_frame(frame) -> None:
    """A runs query result: the interactive runs table in a kernel, else the plain DataFrame.

    Derived frames (``df[df.status == "failed"]``) are plain DataFrames and never come here.
    """
    if in_kernel() and "mlops_query" in frame.attrs:
        display_runs(frame)
    else:
        import pandas as pd
        from IPython.display import display

        display(pd.DataFrame(frame))


def display_runs(frame) -> None:
    from IPython.display import display

    from ..store import open_store

    q = frame.attrs.get("mlops_query", {})
    where = q.get("where")
    if q.get("user") is not None:  # the table's filter box shows it, in the same language
        if "'" in q["user"]:
            display(frame.copy())  # a plain DataFrame
            return
        where = f"user = '{q['user']}'" + (f" and ({where})" if where else "")
    display(RunsTable(open_store(), where, q.get("order_by"), q.get("limit")).widget)
