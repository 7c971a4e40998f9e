"""Every picture mlops-jupyter shows, as a Vega-Lite specification built once here.

The notebook shows a :class:`Chart` through JupyterLab's own Vega-Lite renderer (and carries an SVG
of it, so a saved notebook keeps the picture in nbconvert, on GitHub and in nbviewer); the panel
draws the same specification through JupyterLab's renderer; the terminal and ``Chart.save`` write
SVG or PNG drawn offline by vl-convert. Builders take plain data (lists of points, dicts) and
return a :class:`Chart`; they import neither the domain nor any face, and nothing heavy.

Vega-Lite 5 is the language because JupyterLab 4 renders ``application/vnd.vegalite.v5+json``
natively (not v6), vega-embed renders it anywhere, and vl-convert draws it without a browser.
"""

from __future__ import annotations

import copy
import json
from typing import Any

VEGALITE_MIME = "application/vnd.vegalite.v5+json"
SVG_MIME = "image/svg+xml"
# A marker our JupyterLab extension renders (ranked ahead of Vega-Lite): the same spec, drawn again
# when the theme changes. Other front ends ignore it.
CHART_MIME = "application/vnd.mlops.chart+json"
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"


class Chart:
    """A Vega-Lite chart: ``spec`` is the JSON-ready specification.

    In a notebook it displays as the interactive chart plus a static SVG of the same picture;
    ``svg()``, ``png()`` and ``save(path)`` draw it offline.
    """

    def __init__(self, spec: dict[str, Any], title: str = ""):
        self.spec = spec
        self.title = title or _title_of(spec)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.spec)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.spec, indent=indent, allow_nan=False)

    def svg(self) -> str:
        """The picture as SVG text (drawn by vl-convert, without the interactive layers)."""
        from .static import to_svg

        return to_svg(self.spec)

    def png(self, scale: float = 2.0) -> bytes:
        from .static import to_png

        return to_png(self.spec, scale=scale)

    def save(self, path) -> str:
        """Write the chart to *path* (``.svg``, ``.png``, ``.json`` (the spec) or ``.html``),
        atomically; returns the path."""
        from .static import save

        return save(self.spec, path)

    def mimebundle(self, static: bool = True) -> dict[str, Any]:
        """What a notebook output carries: the spec for JupyterLab, an SVG for everything that
        does not render Vega-Lite (nbconvert, GitHub, nbviewer), and a line of text."""
        data: dict[str, Any] = {VEGALITE_MIME: self.spec, CHART_MIME: {"spec": VEGALITE_MIME},
                                "text/plain": f"<Chart: {self.title or 'untitled'}>"}
        if static:
            data[SVG_MIME] = self.svg()
        return data

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.mimebundle()

    def __repr__(self) -> str:
        return f"<Chart: {self.title or 'untitled'}>"


def _title_of(spec: dict) -> str:
    t = spec.get("title")
    if isinstance(t, dict):
        t = t.get("text")
    if isinstance(t, list):
        t = " ".join(map(str, t))
    return str(t or "")
