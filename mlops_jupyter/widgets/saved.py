"""Views that survive saving: every output carries a static picture of what it shows.

JupyterLab saves no widget state, so a saved notebook's widget output keeps only what else its
bundle carries; nbconvert, nbviewer and GitHub show that. Each interactive view therefore goes out
as one bundle: the widget (for the live notebook), ``text/html`` drawing its current state (tables
as HTML, charts as inline SVG), and one line of ``text/plain`` -- never a widget's repr. When the
view changes (a live chart grows, a filter is applied), :func:`update` replaces the static part.
"""

from __future__ import annotations

from typing import Any

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def bundle(widget: Any, static_html: str, text: str) -> dict[str, Any]:
    """The output bundle of *widget* with its static HTML and text."""
    data = dict(widget._repr_mimebundle_())
    data["text/html"] = static_html
    data["text/plain"] = text
    return data


def display_view(widget: Any, static_html: str, text: str):
    """Display *widget* with its static stand-ins; returns the display handle for :func:`update`."""
    from IPython.display import DisplayHandle

    handle = DisplayHandle()
    handle.display(bundle(widget, static_html, text), raw=True)
    return handle


def update(handle, widget: Any, static_html: str, text: str) -> None:
    handle.update(bundle(widget, static_html, text), raw=True)


def display_card(static_html: str, text: str) -> None:
    """Display an HTML card with its one line of text (what a terminal shell prints)."""
    from IPython.display import display

    display({"text/html": static_html, "text/plain": text}, raw=True)


def display_chart(chart, static: bool = True):
    """Display a :class:`~mlops_jupyter.charts.Chart` (Vega-Lite, plus its SVG when *static*);
    returns the handle to update it in place."""
    from IPython.display import DisplayHandle

    handle = DisplayHandle()
    handle.display(chart.mimebundle(static=static), raw=True)
    return handle


def update_chart(handle, chart, static: bool = True) -> None:
    handle.update(chart.mimebundle(static=static), raw=True)
