"""The explanation view: global importance, one row's waterfall, LIME.

In a live notebook it is a widget: a tab per part (no tab bar when there is one part), the charts
drawn by JupyterLab's Vega-Lite renderer (theme-aware), a class picker for multiclass models and a
row picker that names each row by its index, label and predicted probability and filters rows by
label or prediction. Every output also carries the current state as static HTML with the charts as
inline SVG (:mod:`.saved`), which is what a saved notebook shows in nbconvert, nbviewer and on
GitHub, and what ``_repr_html_`` and the panel show.
"""

from __future__ import annotations

import html as _html
from dataclasses import dataclass, field

from . import saved

PICKER_WIDTH = "420px"


@dataclass
class ViewState:
    """What the view shows: the class of the global pictures (None: every class side by side),
    the row and class of the per-row pictures, and the LIME rows shown."""

    global_class: int | None
    beeswarm_class: int | None
    row: int
    row_class: int | None
    lime_rows: list[int] = field(default_factory=list)


def initial_state(ex) -> ViewState:
    return ViewState(global_class=None if ex.multiclass else ex.default_class(), beeswarm_class=ex.default_class(),
                     row=ex.row, row_class=ex.row_class(ex.row), lime_rows=sorted(ex.lime))


def _header(ex) -> str:
    bits = [f"<b>{ex.method.upper()}</b> · {_html.escape(ex.explainer)} · {ex.n_rows:,} rows"]
    if ex.model_version:
        bits.append(f"model {_html.escape(ex.model_version)}")
    if ex.data_version:
        bits.append(f"data {_html.escape(ex.data_version)}")
    if ex.cached:
        bits.append("<i>from the store</i>")
    notes = "".join(f"<div style='opacity:.75'>{_html.escape(n)}</div>" for n in ex.notes)
    return f"<div style='font:13px system-ui,sans-serif;margin-bottom:6px'>{' · '.join(bits)}{notes}</div>"


def _figure(svg: str) -> str:
    """An SVG drawn offline, following the notebook's theme (see :func:`html.figure`)."""
    from .html import figure

    return figure(svg)


def _parts(ex, state: ViewState) -> list[tuple[str, list[tuple[str, int | None, int | None]]]]:
    """The view's parts as (title, pictures): global, one row, LIME (each only when it has a
    picture to show)."""
    parts = []
    if ex.values is not None:
        parts.append(("Global importance", [("global", None, state.global_class),
                                            ("beeswarm", None, state.beeswarm_class)]))
        parts.append(("One row", [("waterfall", state.row, state.row_class)]))
    if state.lime_rows:
        parts.append(("LIME", [("lime", r, None) for r in state.lime_rows]))
    return parts


def static_html(ex, state: ViewState | None = None) -> str:
    """The view as plain HTML, the charts as inline SVG: one heading a part (none when there is
    only one part)."""
    state = state or initial_state(ex)
    parts = _parts(ex, state)
    out = [_header(ex)]
    for title, pictures in parts:
        if len(parts) > 1:
            out.append(f"<div style='font:bold 13px system-ui,sans-serif;margin-top:8px'>{title}</div>")
        for name, row, k in pictures:
            try:
                out.append(_figure(ex.svg(name, row, k)))
            except Exception as e:  # one picture that cannot be drawn leaves the others
                out.append(f"<div>{_html.escape(f'{name}: {e}')}</div>")
    return "".join(out)


def _row_groups(ex) -> list[tuple[str, list[int]]]:
    """The row picker's filters: every row, by label, by prediction, the misclassified ones."""
    n = ex.n_rows
    groups = [("all rows", list(range(n)))]
    by: dict[str, list[int]] = {}
    if ex.labels is not None:
        for r in range(n):
            by.setdefault(f"label {ex.labels[r]}", []).append(r)
    if ex.predicted is not None and ex.classes is not None:
        for r in range(n):
            by.setdefault(f"predicted {ex.class_label(int(ex.predicted[r]))}", []).append(r)
        if ex.labels is not None:
            wrong = [r for r in range(n) if str(ex.labels[r]) != ex.class_label(int(ex.predicted[r]))]
            if wrong:
                by["misclassified"] = wrong
    groups.extend(sorted(by.items()))
    return groups


class ExplanationView:
    """The live widget of an explanation; ``widget`` is what is displayed, ``state`` what it shows."""

    def __init__(self, ex):
        import ipywidgets as W

        from ..models.explain_model import numeric

        self.ex = ex
        self.state = initial_state(ex)
        self.handle = None
        self.lime_drawn: int | None = None
        self.charts: dict[str, W.Output] = {}
        self.global_class = self.row_class = None
        parts: list[tuple[str, W.Widget]] = []
        class_opts = [(ex.class_label(k), k) for k in range(len(ex.classes))] if ex.multiclass else []
        self.picker = self._row_picker(W)
        if ex.values is not None:
            g_children: list[W.Widget] = []
            if ex.multiclass:
                self.global_class = W.Dropdown(options=[("every class, side by side", -1), *class_opts], value=-1,
                                               description="class")
                self.global_class.observe(self._on_global_class, names="value")
                g_children.append(self.global_class)
            g_children += [self._output("global"), self._output("beeswarm")]
            parts.append(("Global importance", W.VBox(g_children)))
            r_children: list[W.Widget] = [self.picker]
            if ex.multiclass:
                self.row_class = W.Dropdown(options=class_opts, value=self.state.row_class, description="class")
                self.row_class.observe(self._on_row_class, names="value")
                r_children.append(self.row_class)
            r_children.append(self._output("waterfall"))
            parts.append(("One row", W.VBox(r_children)))
        self.lime_status = W.HTML()
        lime_possible = ex.method == "lime" or (ex.model is not None and all(numeric(t) for t in ex.data.dtypes))
        self.lime_index = None
        if lime_possible:
            self.lime_index = len(parts)
            parts.append(("LIME", W.VBox([W.HBox([self.picker, self.lime_status]), self._output("lime")])))
        self.tabs = None
        if len(parts) == 1:
            body = parts[0][1]
        else:
            self.tabs = W.Tab(children=[w for _, w in parts], titles=[t for t, _ in parts])
            self.tabs.observe(self._on_tab, names="selected_index")
            body = self.tabs
        self.widget = W.VBox([W.HTML(_header(ex)), body])
        if ex.values is not None:
            self._draw("global", None, self.state.global_class)
            self._draw("beeswarm", None, self.state.beeswarm_class)
            self._draw("waterfall", self.state.row, self.state.row_class)
        if self.lime_index is not None:
            if self.state.row in ex.lime or ex.method == "lime":
                self._draw_lime()
            else:
                self._say("lime", "Open this tab, or pick a row here, to explain the row with LIME.")

    # -- parts --------------------------------------------------------------------------------
    def _output(self, name: str):
        import ipywidgets as W

        out = W.Output(layout=W.Layout(max_width="100%", overflow="auto"))
        self.charts[name] = out
        return out

    def _row_picker(self, W):
        ex = self.ex
        self.groups = _row_groups(ex)
        self.rows = W.Dropdown(options=[(ex.row_label(r), r) for r in range(ex.n_rows)], value=self.state.row,
                               description="row", layout=W.Layout(width=PICKER_WIDTH),
                               style={"description_width": "initial"})
        self.rows.observe(self._on_row, names="value")
        if len(self.groups) == 1:
            self.row_filter = None
            return W.HBox([self.rows])
        self.row_filter = W.Dropdown(options=[(f"{g} ({len(rs):,})", i) for i, (g, rs) in enumerate(self.groups)],
                                     value=0, description="show", layout=W.Layout(width="260px"),
                                     style={"description_width": "initial"})
        self.row_filter.observe(self._on_filter, names="value")
        return W.HBox([self.row_filter, self.rows])

    def _show(self, name: str, bundle: dict) -> None:
        self.charts[name].outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)

    def _say(self, name: str, text: str, error: bool = False) -> None:
        style = "color:var(--jp-error-color1,#c62828)" if error else "opacity:.75"
        self._show(name, {"text/html": f"<div style='{style}'>{_html.escape(text)}</div>", "text/plain": text})

    def _draw(self, name: str, row, k) -> None:
        try:
            self._show(name, self.ex.chart(name, row, k).mimebundle(static=False))
        except Exception as e:  # shown in place, not as a traceback from a callback
            self._say(name, str(e), error=True)

    def _draw_lime(self) -> None:
        r = self.state.row
        if r not in self.ex.lime:
            self.lime_status.value = f"<i>LIME on {_html.escape(self.ex.row_label(r))}…</i>"
        self._draw("lime", r, None)
        self.lime_status.value = ""
        self.lime_drawn = r
        if r in self.ex.lime:
            self.state.lime_rows = [r]

    def _lime_visible(self) -> bool:
        if self.lime_index is None:
            return False
        return self.tabs is None or self.tabs.selected_index == self.lime_index

    def _changed(self) -> None:
        if self.handle is not None:
            saved.update(self.handle, self.widget, static_html(self.ex, self.state), self.text())

    # -- events -------------------------------------------------------------------------------
    def _on_global_class(self, change) -> None:
        k = None if change["new"] == -1 else change["new"]
        self.state.global_class = k
        self.state.beeswarm_class = self.ex.default_class() if k is None else k
        self._draw("global", None, k)
        self._draw("beeswarm", None, self.state.beeswarm_class)
        self._changed()

    def _on_filter(self, change) -> None:
        rows = self.groups[change["new"]][1]
        keep = self.state.row if self.state.row in rows else rows[0]
        self.rows.unobserve(self._on_row, names="value")
        self.rows.options = [(self.ex.row_label(r), r) for r in rows]
        self.rows.value = keep
        self.rows.observe(self._on_row, names="value")
        if keep != self.state.row:
            self._on_row({"new": keep})

    def _on_row(self, change) -> None:
        r = change["new"]
        if r is None:
            return
        self.state.row = r
        k = self.ex.default_class(r) if self.ex.multiclass else self.state.row_class
        self.state.row_class = k
        if self.row_class is not None:
            self.row_class.unobserve(self._on_row_class, names="value")
            self.row_class.value = k
            self.row_class.observe(self._on_row_class, names="value")
        if self.ex.values is not None:
            self._draw("waterfall", r, k)
        if self._lime_visible():
            self._draw_lime()
        else:
            self.state.lime_rows = [r] if r in self.ex.lime else []
        self._changed()

    def _on_row_class(self, change) -> None:
        self.state.row_class = change["new"]
        self._draw("waterfall", self.state.row, self.state.row_class)
        self._changed()

    def _on_tab(self, change) -> None:
        if change["new"] == self.lime_index and self.lime_drawn != self.state.row:
            self._draw_lime()
            self._changed()

    def text(self) -> str:
        return self.ex.summary()


def show(ex) -> ExplanationView:
    """Display the live view of *ex* with its static stand-ins; returns the view."""
    view = ExplanationView(ex)
    view.handle = saved.display_view(view.widget, static_html(ex, view.state), view.text())
    return view
