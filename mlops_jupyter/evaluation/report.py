"""An evaluation's result: what was evaluated on what, every figure, the curves, the slices and the
baseline comparison; stored as one JSON document and shown by every face."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .. import rendering
from ..exceptions import BadInput
from .metrics import HIGHER, LOWER, figure_names

FORMAT = 1  # of the stored document; a change makes old evaluations computed again


@dataclass
class Evaluation:
    key: str
    model: str  # churn@v3
    model_version_id: int | None
    data: str  # test@v2, or "a DataFrame (digest 1a2b3c4d5e6f)"
    data_version_id: int | None
    data_digest: str
    target: str
    task: str
    rows: int
    figures: dict[str, float | None]
    classes: list | None = None
    positive: Any = None
    per_class: list[dict] = field(default_factory=list)
    confusion: list[list[int]] | None = None
    curves: dict[str, Any] = field(default_factory=dict)
    best_threshold: dict | None = None
    residuals: dict | None = None
    residual_histogram: dict | None = None
    slices: list[dict] = field(default_factory=list)
    baseline: dict | None = None  # {"model": ref, "version_id", "figures": {...}, "comparison": {...}, ...}
    options: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created: float = 0.0
    run_id: str | None = None
    seconds: float = 0.0
    cached: bool = False

    # -- reading figures -----------------------------------------------------------------------------------
    @property
    def headline(self) -> dict[str, float | None]:
        return {f: self.figures.get(f) for f in figure_names(self.task) if f in self.figures}

    def figure(self, name: str) -> float | None:
        """A figure by name (``auc`` is ``roc_auc``); None when it is undefined on these rows."""
        name = ALIASES.get(name, name)
        if name not in self.figures:
            raise BadInput(f"no figure {name!r} in this evaluation; it has {', '.join(self.figures)}")
        return self.figures[name]

    def slice(self, column: str) -> dict:
        for s in self.slices:
            if s["column"] == column:
                return s
        have = ", ".join(s["column"] for s in self.slices) or "none (evaluate with by=[...])"
        raise BadInput(f"this evaluation has no slices by {column!r}; it has {have}")

    def slice_gap(self, figure: str, column: str) -> float | None:
        """The largest difference of *figure* between the groups of *column* (large groups only)."""
        return self._between_groups("gap", figure, column)

    def slice_ratio(self, figure: str, column: str) -> float | None:
        """The lowest over the highest *figure* of the groups of *column* (large groups only)."""
        return self._between_groups("ratio", figure, column)

    def _between_groups(self, kind: str, figure: str, column: str) -> float | None:
        s = self.slice(column)
        figure = ALIASES.get(figure, figure)
        if figure not in s[kind]:
            raise BadInput(f"slices by {column} have no figure {figure!r}; they have {', '.join(s[kind])}")
        return s[kind][figure]

    # -- the document ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("cached")
        d["format"] = FORMAT
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], cached: bool = False) -> Evaluation:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**d, cached=cached)

    # -- showing ----------------------------------------------------------------------------------------------
    def charts(self) -> dict:
        """Its pictures by name (those with something to show): confusion, roc, pr, calibration,
        residuals, residual_histogram, and ``slices:COLUMN`` per grouping."""
        from .pictures import charts

        return charts(self)

    def save(self, path) -> str:
        """Write the evaluation as a self-contained HTML page (``.html``) or its document (``.json``),
        atomically; returns the path."""
        import html
        import os

        import orjson

        from ..store.blobs import save_file

        low = os.fspath(path).lower()
        if low.endswith(".json"):
            data = orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        elif low.endswith((".html", ".htm")):
            body = rendering.render(self, rendering.HTML)
            data = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(self.model)} on "
                    f"{html.escape(self.data)}</title><body>{body}</body>").encode()
        else:
            raise BadInput(f"--save writes an HTML page (.html) or the document (.json), not {os.fspath(path)!r}")
        return save_file(path, data)

    def __str__(self) -> str:
        return rendering.render(self, rendering.TEXT)

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)

    def __repr__(self) -> str:
        figs = ", ".join(f"{k}={fmt(v)}" for k, v in self.headline.items())
        return f"<Evaluation {self.model} on {self.data}: {figs}>"


ALIASES = {"auc": "roc_auc", "ap": "pr_auc", "average_precision": "pr_auc", "logloss": "log_loss",
           "brier_score": "brier", "acc": "accuracy", "tpr": "true_positive_rate", "fpr": "false_positive_rate"}


def fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.1f}"
    return str(v)


def better_word(figure: str) -> str:
    return "higher" if figure in HIGHER else "lower" if figure in LOWER else ""
