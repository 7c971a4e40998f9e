"""Image rows in explanations: pixel features named by position, and attribution heat maps.

Rows of more than one dimension (rows x [channels x] height x width) are flattened into features
named ``pixel (c=0, y=3, x=5)``, so every stored explanation keeps the image's shape; the pictures
of such an explanation are heat maps over the image (:func:`image_chart`) instead of bars.
"""

from __future__ import annotations

import re

import numpy as np

from ..exceptions import BadInput
from .explain import Explanation

PIXEL = re.compile(r"^pixel \((.*)\)$")


def image_dims(shape: tuple) -> tuple[str, ...] | None:
    """The axes of an image row: (y, x), (c, y, x) or channels last (y, x, c); None for a table."""
    if len(shape) == 2:
        return ("y", "x")
    if len(shape) == 3:
        last = shape[2] in (1, 3, 4) and shape[0] not in (1, 3, 4)
        return ("y", "x", "c") if last else ("c", "y", "x")
    return None


def feature_names(shape: tuple) -> list[str]:
    if len(shape) == 1:
        return [f"x{i}" for i in range(shape[0])]
    dims = image_dims(shape)
    if dims is None:
        return ["x[" + ",".join(map(str, ix)) + "]" for ix in np.ndindex(*shape)]
    return ["pixel (" + ", ".join(f"{d}={i}" for d, i in zip(dims, ix)) + ")" for ix in np.ndindex(*shape)]


def image_layout(features: list[str]) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    """(axes, shape) of an image explanation, read from its pixel names; None for a table."""
    if not features:
        return None
    first, last = PIXEL.match(features[0]), PIXEL.match(features[-1])
    if not (first and last):
        return None
    try:
        pairs = [p.split("=") for p in last.group(1).split(", ")]
        dims = tuple(d for d, _ in pairs)
        shape = tuple(int(i) + 1 for _, i in pairs)
    except ValueError:
        return None
    if dims not in (("y", "x"), ("c", "y", "x"), ("y", "x", "c")) or int(np.prod(shape)) != len(features):
        return None
    return dims, shape


def to_image(flat: np.ndarray, layout, channels: str = "keep") -> np.ndarray:
    """A flattened row as height x width [x channels]; *channels* ``sum`` adds them up (SHAP values:
    a pixel's attribution is the sum of its channels')."""
    dims, shape = layout
    a = np.asarray(flat, dtype=float).reshape(shape).transpose([dims.index(d) for d in ("y", "x", "c") if d in dims])
    return a.sum(axis=2) if a.ndim == 3 and channels == "sum" else a


def image_chart(ex: Explanation, name: str, row: int | None = None, k: int | None = None):
    """For an image explanation, picture *name* as a heat map over the image: ``global`` the mean
    |SHAP| (each class's panel for a multiclass model with k=None), ``waterfall`` (or ``heatmap``)
    the row's SHAP values; None for a table or another picture (the bars and waterfalls then)."""
    layout = image_layout(ex.features) if ex.values is not None and name in ("global", "waterfall", "heatmap") \
        else None
    if layout is None:
        return None
    from ..charts.explain import attribution_heatmap

    data = ex.data.to_numpy(dtype=float)
    if name == "global":
        if k is None and ex.multiclass:
            v = np.abs(ex.values).mean(axis=0)
            panels = {f"class {ex.class_label(i)}": to_image(v[:, i], layout, "sum") for i in range(v.shape[1])}
            legend, title = f"mean |SHAP value| ({ex.output})", "Mean |SHAP value| per class"
        else:
            k = ex.default_class() if k is None else k
            v, _ = ex.class_values(k)
            panels = {"mean |SHAP value|": to_image(np.abs(v).mean(axis=0), layout, "sum")}
            legend = f"mean |SHAP value| ({ex.measure(k)})"
            title = "Mean |SHAP value|" + (f" for class {ex.class_label(k)}" if ex.classes else "")
        return attribution_heatmap(to_image(data.mean(axis=0), layout), panels, title=title, legend=legend,
                                   input_title="mean input", absolute=True, note=f"{ex.n_rows:,} rows")
    r = ex.row if row is None else row
    if not 0 <= r < ex.n_rows:
        raise BadInput(f"row {r} is outside the {ex.n_rows:,} explained rows (0..{ex.n_rows - 1})")
    k = ex.row_class(r) if k is None else k
    v, base = ex.class_values(k)
    toward = f"class {ex.class_label(k)}" if ex.classes else "a higher prediction"
    note = (f"E[f(x)] = {float(base[r]):.4g} → f(x) = {float(base[r] + v[r].sum()):.4g} ({ex.measure(k)}); "
            "red raises it, blue lowers it")
    return attribution_heatmap(to_image(data[r], layout), {f"SHAP values toward {toward}": to_image(v[r], layout, "sum")},
                               title=ex.row_label(r), legend=f"SHAP value (toward {toward})", note=note)


