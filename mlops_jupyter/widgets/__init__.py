"""Notebook views of core objects: HTML and SVG renderers, and ipywidgets views.

``renderers`` registers them with :mod:`mlops_jupyter.rendering` as the way each result type
displays; ipywidgets is imported only by the functions that build widgets.
"""
