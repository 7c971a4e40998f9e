"""How result objects are shown: renderers, registered by the faces, looked up by (result type, format).

The domain builds result objects (a run, a drift report, a dataset version) and never draws them;
a face registers, for each result type and format, the function that does::

    rendering.register("mlops_jupyter.data.api.FilesDiff", rendering.HTML,
                       "mlops_jupyter.widgets.html:files_diff_html")

and a result class shows itself in IPython by delegating in one line::

    def _repr_html_(self):
        return rendering.render(self, rendering.HTML)

A result type is named ``"module.QualName"`` (or given as the class), and a renderer may be a
``"module:attr"`` string, so registering imports neither the domain module nor the face. Lookup
follows the class's MRO, so a renderer registered for a base class serves its subclasses.

Formats are MIME types, plus ``INTERACTIVE``: a view that displays the object itself (ipywidgets)
and returns nothing, used by ``_ipython_display_``. With no renderer registered, ``render`` falls
back to the object's text (``str``) and never raises. This module imports neither IPython nor any
face: what a notebook does with the renderings is the faces' business.
"""

from __future__ import annotations

from typing import Any, Callable

from .registry import Registry

HTML = "text/html"
TEXT = "text/plain"
PNG = "image/png"
INTERACTIVE = "interactive"  # the renderer displays the object itself (a widget); it returns nothing
TERMINAL = "terminal"  # what `mlops` prints for a result in a terminal (text)
LIVE = "live"  # a view shown once and updated in place while the work goes on (a study in progress)

Renderer = Callable[[Any], Any]

_BY_FORMAT: dict[str, Registry[Renderer]] = {}


def type_name(result_type: type | str) -> str:
    """The name a result type is registered under: ``"package.module.QualName"``."""
    if isinstance(result_type, str):
        return result_type
    return f"{result_type.__module__}.{result_type.__qualname__}"


def renderers(fmt: str) -> Registry[Renderer]:
    """The registry of *fmt*: result type name -> renderer."""
    if fmt not in _BY_FORMAT:
        _BY_FORMAT[fmt] = Registry(f"{fmt} renderer")
    return _BY_FORMAT[fmt]


def register(result_type: type | str, fmt: str, renderer: Renderer | str, *, replace: bool = False) -> None:
    """Render instances of *result_type* in *fmt* with *renderer* (a function of the object, or a
    ``"module:attr"`` string imported on first use).

    Raises:
        BadInput: a renderer is already registered for that type and format (unless *replace*).
    """
    renderers(fmt).register(type_name(result_type), renderer, replace=replace)


def unregister(result_type: type | str, fmt: str) -> None:
    renderers(fmt).unregister(type_name(result_type))


def registered(fmt: str) -> list[str]:
    """The type names with a renderer for *fmt*, in registration order."""
    return renderers(fmt).names() if fmt in _BY_FORMAT else []


def renderer_for(result_type: type, fmt: str) -> Renderer | None:
    """The renderer of *result_type* (or of its nearest base class) for *fmt*; None if there is none."""
    renderers = _BY_FORMAT.get(fmt)
    if renderers is None:
        return None
    for cls in result_type.__mro__:
        name = type_name(cls)
        if name in renderers:
            return renderers.get(name)
    return None


def render(obj: Any, fmt: str) -> Any:
    """*obj* in *fmt*, drawn by its registered renderer; else its text (as ``<pre>`` for HTML), or
    None for formats that have no plain form (IPython's sign for "not in this format")."""
    renderer = renderer_for(type(obj), fmt)
    if renderer is not None:
        return renderer(obj)
    return fallback(obj, fmt)


def fallback(obj: Any, fmt: str) -> Any:
    """What *obj* shows in *fmt* when no face registered a renderer for it."""
    if fmt in (TEXT, TERMINAL):
        return str(obj)
    if fmt == HTML:
        import html

        return f"<pre>{html.escape(str(obj))}</pre>"
    return None


def show(obj: Any) -> None:
    """Display *obj* (for ``_ipython_display_``) with the interactive view a face registered for
    its type, or for ``object``; with no face at all, print its text."""
    view = renderer_for(type(obj), INTERACTIVE)
    if view is None:
        print(obj)
        return
    view(obj)
