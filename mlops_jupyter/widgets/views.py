"""ipywidgets views: the interactive runs table and the live chart of a running run."""

from __future__ import annotations

from .html import more_columns, run_rows, runs_frame_html, runs_table_html, shown


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
    """Runs as a table with filter, sort, paging and a choice of columns; a filter or a sort
    re-queries the store when it is complete (Enter, or leaving the box).

    A filter that does not parse is said calmly under the box and the table keeps the last good
    one. Params and metrics are shown under a two-level header: by default the first
    :data:`DEFAULT_KEYS` of each, the rest counted ("12 more columns") and chosen in ``columns``.
    :meth:`show` displays it with a static copy of the current page, which a saved notebook keeps
    (:mod:`.saved`); each change replaces that copy.
    """

    PAGE = 50
    DEFAULT_KEYS = 8

    def __init__(self, store, where: str | None = None, order_by: str | None = None,
                 limit: int | None = None):
        import ipywidgets as W

        self.store = store
        self.limit = limit
        self.page = 0
        self.handle = None  # the display, once shown
        self.rows: list[dict] = []
        self.total = 0
        self.applied = where or ""  # the filter the table shows
        self.chosen: list[str] | None = None  # columns the user picked; None: the defaults
        self.seen: dict[str, None] = {}  # every params./metrics. column met so far, in order met
        self.where = W.Text(value=where or "", placeholder="filter, e.g. metrics.acc > 0.8 (Enter applies)",
                            continuous_update=False, layout=W.Layout(width="320px"))
        self.sort = W.Combobox(value=(order_by or "").lstrip("-"), placeholder="sort by, e.g. metrics.acc",
                               options=["start_time", "name", "status"], ensure_option=False,
                               continuous_update=False, layout=W.Layout(width="200px"))
        self.desc = W.ToggleButton(value=not order_by or order_by.startswith("-") or order_by.endswith(" desc"),
                                   description="descending", icon="sort-amount-desc", layout=W.Layout(width="120px"))
        self.prev = W.Button(description="◀", tooltip="previous page", layout=W.Layout(width="36px"))
        self.next = W.Button(description="▶", tooltip="next page", layout=W.Layout(width="36px"))
        self.pick = W.ToggleButton(description="columns", icon="columns", tooltip="choose the params and metrics shown",
                                   layout=W.Layout(width="150px"))
        self.columns = W.SelectMultiple(options=[], rows=10, tooltip="Ctrl- or ⌘-click to choose several",
                                        layout=W.Layout(width="320px", display="none"))
        self.status = W.HTML()
        self.error = W.HTML()
        self.body = W.HTML(layout=W.Layout(max_width="100%", overflow="auto"))  # a wide table scrolls
        self.where.observe(self._changed, names="value")
        self.sort.observe(self._changed, names="value")
        self.desc.observe(self._changed, names="value")
        self.pick.observe(self._toggle_columns, names="value")
        self.columns.observe(self._columns_chosen, names="value")
        self.prev.on_click(lambda _: self._page(-1))
        self.next.on_click(lambda _: self._page(1))
        self._updating = False
        bar = W.HBox([self.where, self.sort, self.desc, self.prev, self.next, self.pick, self.status],
                     layout=W.Layout(flex_flow="row wrap", align_items="center"))
        self.widget = W.VBox([bar, self.error, self.columns, self.body])
        self.refresh()

    def _changed(self, _change) -> None:
        self.page = 0
        self.refresh()

    def _page(self, delta: int) -> None:
        self.page = max(0, self.page + delta)
        self.refresh()

    def _toggle_columns(self, change) -> None:
        self.columns.layout.display = "" if change["new"] else "none"

    def _columns_chosen(self, change) -> None:
        if self._updating:
            return
        self.chosen = list(change["new"])
        self.draw()

    def order(self) -> str | None:
        key = self.sort.value.strip()
        if not key:
            return None if self.desc.value else "start_time"
        return ("-" if self.desc.value else "") + key

    def refresh(self) -> None:
        """Query the store for the current filter, sort and page, and draw."""
        from ..exceptions import MlopsError
        from ..tracking.query import compile_where, search_runs

        where = self.where.value.strip()
        try:
            total = self.store.meta.count_runs(compile_where(where))
            n = self.PAGE if self.limit is None else min(self.PAGE, max(self.limit - self.page * self.PAGE, 0))
            rows = search_runs(self.store, where, self.order(), n, self.page * self.PAGE)
        except MlopsError as e:
            kept = f"; showing {shown(self.applied)}" if self.applied else ""
            self.error.value = (f'<div class="mlops-note" style="color:var(--jp-error-color1,#d93025)">'
                                f"{shown(e)}{kept}</div>")
            return
        self.error.value = ""
        self.applied = where
        self.rows = rows
        self.total = total if self.limit is None else min(total, self.limit)
        for key in ([f"params.{k}" for k in sorted({k for r in rows for k in r["params"]})]
                    + [f"metrics.{k}" for k in sorted({k for r in rows for k in r["metrics"]})]):
            self.seen.setdefault(key, None)
        self.sort.options = ["start_time", "name", "status"] + [k for k in self.seen if k.startswith("metrics.")] + \
                            [k for k in self.seen if k.startswith("params.")]
        first = self.page * self.PAGE
        self.status.value = (f'<small style="white-space:nowrap">{first + 1 if rows else 0}–{first + len(rows)} '
                             f"of {self.total} runs</small>")
        self.prev.disabled = self.page == 0
        self.next.disabled = first + len(rows) >= self.total
        self.draw()

    def shown_columns(self) -> tuple[list[str], list[str], int, int]:
        """The params and metrics shown, and how many of each are not."""
        present_p = sorted({k for r in self.rows for k in r["params"]})
        present_m = sorted({k for r in self.rows for k in r["metrics"]})
        if self.chosen is None:
            params, metrics = present_p[:self.DEFAULT_KEYS], present_m[:self.DEFAULT_KEYS]
        else:
            params = [k[7:] for k in self.chosen if k.startswith("params.")]
            metrics = [k[8:] for k in self.chosen if k.startswith("metrics.")]
        return (params, metrics, len(set(present_p) - set(params)), len(set(present_m) - set(metrics)))

    def draw(self) -> None:
        """The table of the rows in hand, with the columns chosen; the saved copy follows."""
        params, metrics, hidden_p, hidden_m = self.shown_columns()
        self._updating = True
        try:
            self.columns.options = list(self.seen)
            self.columns.value = tuple([f"params.{k}" for k in params] + [f"metrics.{k}" for k in metrics])
        finally:
            self._updating = False
        self.pick.description = f"columns ({len(params) + len(metrics)}/{len(params) + len(metrics) + hidden_p + hidden_m})"
        more = more_columns(hidden_p, hidden_m)
        table = runs_table_html(self.rows, params, metrics,
                                note=f"{more} not shown: choose them with “columns”" if more else "")
        self.body.value = f'<div class="mlops-scroll">{table}</div>'  # wide: scrolls inside the output
        if self.handle is not None:
            from . import saved

            saved.update(self.handle, self.widget, self.static_html(), self.text())

    def text(self) -> str:
        """One line for ``text/plain``: what the table shows."""
        first = self.page * self.PAGE
        where = f" where {self.applied}" if self.applied else ""
        return f"runs table: {first + 1 if self.rows else 0}–{first + len(self.rows)} of {self.total} runs{where}"

    def static_html(self) -> str:
        """The current page as HTML, for a saved notebook (no widget state needed)."""
        params, metrics, hidden_p, hidden_m = self.shown_columns()
        more = more_columns(hidden_p, hidden_m)
        first = self.page * self.PAGE
        facts = [f"{first + 1 if self.rows else 0}–{first + len(self.rows)} of {self.total}"]
        if self.applied:
            facts.append(f"filter {shown(self.applied)}")
        order = self.order()
        if order:
            facts.append(f"sorted by {shown(order)}")
        head = f'<div class="mlops-h">Runs <small>{" · ".join(facts)}</small></div>'
        return head + runs_table_html(self.rows, params, metrics, note=f"{more} not shown" if more else "")

    def show(self):
        """Display the table (and its static copy); returns the display handle."""
        from . import saved

        self.handle = saved.display_view(self.widget, self.static_html(), self.text())
        return self.handle


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
    """A runs query result: the interactive runs table in a kernel, else the table as HTML and text.

    Derived frames (``df[df.status == "failed"]``) are plain DataFrames and never come here.
    """
    if in_kernel() and "mlops_query" in frame.attrs:
        display_runs(frame)
    else:
        show_runs_static(frame)


def show_runs_static(frame) -> None:
    """The runs of *frame* as a table for people (HTML and plain text), without widgets."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display

    from .terminal import render_run_rows

    text = render_run_rows(run_rows(frame), plain=True, width=0)
    if not InteractiveShell.initialized():
        print(text)
        return
    display({"text/plain": text, "text/html": runs_frame_html(frame, RunsTable.DEFAULT_KEYS)}, raw=True)


def display_runs(frame) -> None:
    from ..store import open_store

    q = frame.attrs.get("mlops_query", {})
    where = q.get("where")
    if q.get("user") is not None:  # the table's filter box shows it, in the same language
        if "'" in q["user"]:
            show_runs_static(frame)
            return
        where = f"user = '{q['user']}'" + (f" and ({where})" if where else "")
    RunsTable(open_store(), where, q.get("order_by"), q.get("limit")).show()


def show_dataset_version(v) -> None:
    """A data version in a notebook: its card, unless ``data add`` has just said it in one line."""
    if getattr(v, "said_in_one_line", False):
        v.said_in_one_line = False
        return
    show_formats(v)
