"""The explanation widget: tabs Global / Row / LIME, with class and row selectors."""

from __future__ import annotations

import base64
import html as _html


def _img(png: bytes) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" style="max-width:100%"/>'


def _header(ex) -> str:
    bits = [f"<b>{ex.method.upper()}</b> · {_html.escape(ex.explainer)} · {ex.n_rows:,} rows"]
    if ex.model_version:
        bits.append(f"model {_html.escape(ex.model_version)}")
    if ex.data_version:
        bits.append(f"data {_html.escape(ex.data_version)}")
    if ex.cached:
        bits.append("<i>from the store</i>")
    notes = "".join(f"<div style='color:#666'>{_html.escape(n)}</div>" for n in ex.notes)
    return f"<div style='font:13px sans-serif'>{' · '.join(bits)}{notes}</div>"


def static_html(ex) -> str:
    """The stored pictures as plain HTML (for front ends without widgets)."""
    parts = [_header(ex)]
    for png in ex.standard_pictures().values():
        parts.append(_img(png))
    return "".join(parts)


def show(ex) -> None:
    import ipywidgets as W
    from IPython.display import display

    tabs, titles = [], []
    class_opts = [(ex.class_label(k), k) for k in range(len(ex.classes))] if ex.classes and (
        ex.multiclass or ex.method == "lime") else []
    n = ex.n_rows

    def image(png: bytes) -> W.Image:
        return W.Image(value=png, format="png", layout=W.Layout(max_width="640px"))

    def holder(png: bytes) -> W.Box:
        return W.Box([image(png)])

    def swap(box: W.Box, make) -> None:
        try:
            box.children = [image(make())]
        except Exception as e:  # shown in place, not as a traceback from a callback
            box.children = [W.HTML(f"<span style='color:#b00'>{_html.escape(str(e))}</span>")]

    if ex.values is not None:
        # -- Global
        k0 = ex.default_class()
        bar_box = holder(ex.picture("bar", None, None if ex.multiclass else k0))
        bee_box = holder(ex.picture("beeswarm", None, k0))
        g_children = []
        if ex.multiclass:
            gsel = W.Dropdown(options=[("all classes", -1)] + class_opts, value=-1, description="class")

            def on_global(change):
                k = None if change["new"] == -1 else change["new"]
                swap(bar_box, lambda: ex.picture("bar", None, k))
                swap(bee_box, lambda: ex.picture("beeswarm", None, k if k is not None else k0))

            gsel.observe(on_global, names="value")
            g_children.append(gsel)
        tabs.append(W.VBox([*g_children, bar_box, bee_box]))
        titles.append("Global")
        # -- Row
        start_k = ex.start_class if ex.start_class is not None else ex.default_class(ex.row)
        wf_box = holder(ex.picture("waterfall", ex.row, start_k))
        rsel = W.BoundedIntText(value=ex.row, min=0, max=n - 1, description=f"row (0–{n - 1})",
                                style={"description_width": "initial"})
        r_children = [rsel]
        csel = None
        if ex.multiclass:
            csel = W.Dropdown(options=class_opts, value=start_k, description="class")
            r_children.append(csel)

        def on_row(change):
            r = rsel.value
            k = None
            if csel is not None:
                if change["owner"] is rsel:
                    k = ex.default_class(r)
                    csel.unobserve(on_row, names="value")
                    csel.value = k
                    csel.observe(on_row, names="value")
                else:
                    k = csel.value
            swap(wf_box, lambda: ex.picture("waterfall", r, k))

        rsel.observe(on_row, names="value")
        if csel is not None:
            csel.observe(on_row, names="value")
        tabs.append(W.VBox([W.HBox(r_children), wf_box]))
        titles.append("Row")
    # -- LIME (computed when asked for: a few seconds a row)
    lime_rows = sorted(ex.lime)
    lrow = W.BoundedIntText(value=lime_rows[0] if lime_rows else ex.row, min=0, max=n - 1,
                            description=f"row (0–{n - 1})", style={"description_width": "initial"})
    lbox = W.Box([image(ex.picture("lime", lime_rows[0]))] if lime_rows else
                 [W.HTML("<i>open this tab or pick a row to explain it with LIME</i>")])
    status = W.HTML()

    def run_lime(*_):
        status.value = f"<i>LIME on row {lrow.value}…</i>"
        swap(lbox, lambda: ex.picture("lime", lrow.value))
        status.value = ""

    lrow.observe(run_lime, names="value")
    tabs.append(W.VBox([W.HBox([lrow, status]), lbox]))
    titles.append("LIME")
    tab = W.Tab(children=tabs)
    for i, t in enumerate(titles):
        tab.set_title(i, t)
    if ex.method == "lime":
        tab.selected_index = len(tabs) - 1
    lime_index = len(tabs) - 1

    def on_tab(change):
        if change["new"] == lime_index and not ex.lime and ex._model is not None:
            run_lime()

    tab.observe(on_tab, names="selected_index")
    display(W.VBox([W.HTML(_header(ex)), tab]))
