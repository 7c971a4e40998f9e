"""Notebook views of core objects: HTML and SVG renderers, and ipywidgets views.

ipywidgets is imported only by the functions that build widgets.
"""
