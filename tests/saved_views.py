"""What a notebook keeps when saved the way JupyterLab saves it (no widget state): every view must
still show as a picture or a table in nbconvert, nbviewer and on GitHub, never as a widget repr."""

from __future__ import annotations

import copy
import re

WIDGET = "application/vnd.jupyter.widget-view+json"
VEGALITE = "application/vnd.vegalite.v5+json"
PICTURES = ("text/html", "image/svg+xml", "image/png")
WIDGET_REPR = re.compile(r"^(HTML|VBox|HBox|Box|Tab|Output|Image|Label|Button|Dropdown|ToggleButtons?|Text|"
                         r"Accordion|Combobox|IntSlider|SelectMultiple|GridBox)\(")


def saved_as_jupyterlab_does(nb):
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    return nb


def assert_views_survive_saving(nb) -> str:
    """Check every output of the executed *nb*; return its HTML as nbconvert writes it."""
    from nbconvert import HTMLExporter

    nb = saved_as_jupyterlab_does(nb)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            where = (cell.source.splitlines() or [""])[0][:70]
            text = str(data.get("text/plain", ""))
            if WIDGET in data:  # a picture, or a line of text for people (a progress bar's "12/12 cells")
                assert any(k in data for k in PICTURES) or (text.strip() and not WIDGET_REPR.match(text)), \
                    f"{where!r}: a widget saved without a static picture: {text[:60]!r}"
            if VEGALITE in data:
                assert "image/svg+xml" in data, f"{where!r}: a chart saved without its SVG"
            if WIDGET_REPR.match(text):
                assert any(k in data for k in PICTURES), f"{where!r}: saved as a widget repr {text[:60]!r}"
    page, _ = HTMLExporter().from_notebook_node(nb)
    for repr_start in ("VBox(children", "HBox(children", "HTML(value=", "Tab(children", "Output()"):
        assert repr_start not in page, f"the saved page shows a widget repr {repr_start!r}"
    return page


def pictures_in(cell) -> list[str]:
    """The static pictures a cell's outputs carry (``svg``, ``png``, ``table``)."""
    found = []
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if "image/svg+xml" in data:
            found.append("svg")
        if "image/png" in data:
            found.append("png")
        html = str(data.get("text/html", ""))
        if "<svg" in html:
            found.append("svg")
        if "<table" in html:
            found.append("table")
    return found
