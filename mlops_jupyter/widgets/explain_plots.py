"""Static pictures of explanations (PNG through matplotlib's Agg canvas, no pyplot state):
mean |SHAP| bars, a beeswarm, a waterfall for one row, LIME weights. Static images render
everywhere (JupyterLab, exported HTML, the lab panel), unlike SHAP's JavaScript plots."""

from __future__ import annotations

import io

import numpy as np

RED, BLUE = "#ff0051", "#008bfb"
TOP = 15


def _figure(height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, height), dpi=80)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def bar(values: np.ndarray, features: list[str], classes: list[str] | None, title: str) -> bytes:
    """Mean |SHAP| per feature; stacked by class for (rows, features, classes) values."""
    v = np.abs(values)
    per_class = v.mean(axis=0)  # (f,) or (f, k)
    total = per_class if per_class.ndim == 1 else per_class.sum(axis=1)
    order = np.argsort(total)[::-1][:TOP][::-1]
    fig = _figure(0.32 * len(order) + 1.0)
    ax = fig.add_subplot()
    y = np.arange(len(order))
    if per_class.ndim == 1:
        ax.barh(y, per_class[order], color=BLUE)
    else:
        import matplotlib

        cmap = matplotlib.colormaps["tab10"]
        left = np.zeros(len(order))
        for k in range(per_class.shape[1]):
            ax.barh(y, per_class[order, k], left=left, color=cmap(k % 10),
                    label=str(classes[k]) if classes else f"class {k}")
            left += per_class[order, k]
        ax.legend(loc="lower right", fontsize=8, title="class", title_fontsize=8)
    ax.set_yticks(y, [features[i] for i in order], fontsize=9)
    ax.set_xlabel("mean |SHAP value|", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def beeswarm(values: np.ndarray, data: np.ndarray, features: list[str], title: str) -> bytes:
    """One row of dots per feature (top by mean |SHAP|), x = SHAP value, colour = feature value."""
    order = np.argsort(np.abs(values).mean(axis=0))[::-1][:TOP][::-1]
    fig = _figure(0.32 * len(order) + 1.2)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    n = values.shape[0]
    sc = None
    for row, j in enumerate(order):
        x = values[:, j]
        col = data[:, j] if data is not None else None
        try:
            c = col.astype(float)
            lo, hi = np.nanpercentile(c, [5, 95])
            c = np.clip((c - lo) / (hi - lo), 0, 1) if hi > lo else np.full(n, 0.5)
        except (TypeError, ValueError, AttributeError):
            c = None
        # jitter dots where they pile up: offset by rank within bins of the x axis
        bins = np.digitize(x, np.linspace(x.min(), x.max() + 1e-12, 60))
        jitter = np.zeros(n)
        for b in np.unique(bins):
            idx = np.flatnonzero(bins == b)
            if len(idx) > 1:
                jitter[idx] = (rng.permutation(len(idx)) / len(idx) - 0.5) * min(0.8, 0.04 * len(idx))
        if c is None:
            ax.scatter(x, row + jitter, s=6, color="#777777", linewidths=0)
        else:
            sc = ax.scatter(x, row + jitter, s=6, c=c, cmap="coolwarm", vmin=0, vmax=1, linewidths=0)
    ax.axvline(0, color="#999999", linewidth=0.8)
    ax.set_yticks(np.arange(len(order)), [features[i] for i in order], fontsize=9)
    ax.set_xlabel("SHAP value (impact on model output)", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right", "left"]].set_visible(False)
    if sc is not None:
        cb = fig.colorbar(sc, ax=ax, ticks=[0, 1], aspect=40, pad=0.02)
        cb.ax.set_yticklabels(["low", "high"], fontsize=8)
        cb.set_label("feature value", fontsize=8)
    return _png(fig)


def waterfall(values: np.ndarray, base: float, row_data: np.ndarray | None, features: list[str], title: str,
              top: int = 12) -> bytes:
    """From the expected value to this row's output, one feature at a time (largest first)."""
    order = list(np.argsort(np.abs(values))[::-1])
    shown, rest = order[:top], order[top:]
    items = [(f"{features[i]} = {_short(row_data[i])}" if row_data is not None else features[i], values[i])
             for i in shown]
    if rest:
        items.append((f"{len(rest)} other features", float(np.sum(values[rest]))))
    items = items[::-1]
    fig = _figure(0.34 * len(items) + 1.2)
    ax = fig.add_subplot()
    start = base + sum(v for _, v in items)  # output f(x)
    pos = base
    lefts = []
    for _, v in items[::-1]:  # accumulate from the base upwards in display order bottom->top
        lefts.append(pos)
        pos += v
    lefts = lefts[::-1]
    for y, ((label, v), left) in enumerate(zip(items, lefts)):
        ax.barh(y, v, left=left, color=RED if v > 0 else BLUE, height=0.7)
        ax.text(left + v + (0.01 if v >= 0 else -0.01) * (abs(start - base) + 1e-9), y, f"{v:+.3g}",
                va="center", ha="left" if v >= 0 else "right", fontsize=8)
    ax.axvline(base, color="#999999", linewidth=0.8, linestyle="--")
    ax.axvline(start, color="#333333", linewidth=0.8)
    ax.set_yticks(np.arange(len(items)), [lab for lab, _ in items], fontsize=9)
    ax.set_xlabel(f"E[f(x)] = {base:.3g}    f(x) = {start:.3g}", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def lime_weights(weights: list[tuple[str, float]], title: str) -> bytes:
    items = weights[::-1]
    fig = _figure(0.34 * len(items) + 1.0)
    ax = fig.add_subplot()
    y = np.arange(len(items))
    ax.barh(y, [w for _, w in items], color=[RED if w > 0 else BLUE for _, w in items])
    ax.set_yticks(y, [lab for lab, _ in items], fontsize=9)
    ax.axvline(0, color="#999999", linewidth=0.8)
    ax.set_xlabel("LIME weight (local linear model)", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def draw(picture) -> bytes:
    """The PNG of an ``ExplanationPicture`` (its ``kind`` names one of the functions above)."""
    return DRAWINGS[picture.kind](**picture.args)


DRAWINGS = {"bar": bar, "beeswarm": beeswarm, "waterfall": waterfall, "lime": lime_weights}


def _short(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    s = str(v)
    return s if len(s) <= 16 else s[:15] + "…"
