"""An evaluation as a card (notebook, panel, model card) and as text (terminal): what was evaluated
on what, every figure (beside the baseline's, with the difference and its interval), the per-class
table, the best threshold, the pictures, and each slice's groups with their gaps and fairness."""

from __future__ import annotations

from typing import Any

from .html import CSS, figure, shown, table, text_card

NAMES = {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "F1", "roc_auc": "ROC AUC",
         "pr_auc": "PR AUC", "log_loss": "log loss", "brier": "Brier score", "mae": "MAE", "rmse": "RMSE",
         "r2": "R²", "mape": "MAPE", "selection_rate": "selection rate", "true_positive_rate": "TPR",
         "false_positive_rate": "FPR", "count": "rows"}
PICTURE_ORDER = ["confusion", "roc", "pr", "calibration", "residuals", "residual_histogram"]


def num(v: Any, sign: bool = False) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:+,.1f}" if sign else f"{v:,.1f}"
        return f"{v:+.4f}" if sign else f"{v:.4f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _averaged(ev) -> str:
    if ev.task != "classification":
        return ""
    if len(ev.classes or []) == 2:
        return f"precision, recall and F1 of the positive class {ev.positive!r}"
    return f"precision, recall and F1 macro-averaged over {len(ev.classes or [])} classes"


def headline(ev) -> list[tuple[str, str]]:
    """(label, text) rows saying what was evaluated on what."""
    rows = [("model", ev.model), ("data", f"{ev.data}, {ev.rows:,} rows, target {ev.target!r}"),
            ("task", ev.task + (f" ({_averaged(ev)})" if ev.task == "classification" else ""))]
    if ev.slices:
        rows.append(("slices", ", ".join(s["column"] for s in ev.slices)
                     + f" (groups under {ev.options.get('min_group')} rows are marked small)"))
    if ev.baseline:
        b = ev.baseline
        rows.append(("baseline", f"{b['model']} on the same rows; {b['level']:.0%} intervals from "
                                 f"{b['resamples']} bootstrap resamples (seed {b['seed']})"))
    bt = ev.best_threshold
    if bt:
        rows.append(("best threshold", f"{bt['threshold']:.4g} gives F1 {bt['f1']:.4f} (precision "
                                       f"{bt['precision']:.4f}, recall {bt['recall']:.4f}); 0.5 gives "
                                       f"{ev.figures.get('f1') or 0:.4f}"))
    rows.append(("computed", "answered from the store" if ev.cached else f"in {ev.seconds:.2f} s"))
    return rows


def figure_rows(ev) -> tuple[list[str], list[list[Any]]]:
    names = list(ev.headline)  # the task's headline figures, in their order
    if not ev.baseline:
        return ["figure", "value"], [[NAMES[f], ev.figures[f]] for f in names]
    comp = ev.baseline["comparison"]
    rows = []
    for f in names:
        c = comp.get(f, {})
        interval = f"{num(c['low'], True)} .. {num(c['high'], True)}" if c.get("low") is not None else "n/a"
        rows.append([NAMES[f], ev.figures[f], c.get("baseline"), num(c.get("difference"), True), interval,
                     c.get("verdict", "")])
    return ["figure", ev.model, ev.baseline["model"], "difference", f"{ev.baseline['level']:.0%} interval",
            "verdict"], rows


def slice_rows(ev, s: dict) -> tuple[list[str], list[list[Any]]]:
    figs = [f for f in s["headline"] if f in s["figures"]]
    extra = [f for f in ("selection_rate", "true_positive_rate", "false_positive_rate") if f in s["figures"]]
    heads = [s["column"], "rows", *[NAMES[f] for f in figs + extra]]
    rows = [[str(g["group"]) + (" (small)" if g["small"] else ""), g["count"], *[g.get(f) for f in figs + extra]]
            for g in s["groups"]]
    rows.append(["largest gap", None, *[s["gap"].get(f) for f in figs + extra]])
    rows.append(["lowest / highest", None, *[s["ratio"].get(f) for f in figs + extra]])
    return heads, rows


def slice_notes(s: dict) -> list[str]:
    notes = []
    fair = s.get("fairness") or {}
    if fair:
        notes.append("demographic parity difference " + num(fair.get("demographic_parity_difference"))
                     + ", equalized odds difference " + num(fair.get("equalized_odds_difference")))
    small = [str(g["group"]) for g in s["groups"] if g["small"]]
    if small:
        notes.append(f"{len(small)} group(s) under {s['min_group']} rows ({', '.join(small[:6])}) are left out of "
                     "the gaps")
    if s.get("note"):
        notes.append(s["note"])
    return notes


def _cell(v: Any) -> str:
    return shown(v) if isinstance(v, str) else shown(num(v))


def figures_table(ev) -> str:
    """Every headline figure (beside the baseline's, with the difference and its interval)."""
    heads, rows = figure_rows(ev)
    return table([shown(h) for h in heads], [[_cell(v) for v in r] for r in rows])


def slice_table(ev, s: dict) -> str:
    """One slice's groups, gap and ratio rows, and what to know about them."""
    heads, rows = slice_rows(ev, s)
    return (table([shown(h) for h in heads], [["" if v is None else _cell(v) for v in r] for r in rows])
            + "".join(f'<div class="mlops-note">{shown(n)}</div>' for n in slice_notes(s)))


def evaluation_html(ev, charts: bool = True) -> str:
    parts = [CSS, f'<div class="mlops-h">Evaluation of {shown(ev.model)} on {shown(ev.data)}</div>',
             text_card(headline(ev))]
    parts.append(figures_table(ev))
    if ev.per_class:
        parts.append('<div class="mlops-h">Per class</div>')
        parts.append(table(["class", "precision", "recall", "F1", "rows"],
                           [[shown(str(c["class"])), num(c["precision"]), num(c["recall"]), num(c["f1"]),
                             f"{c['support']:,}"] for c in ev.per_class]))
    pictures = ev.charts() if charts else {}
    shown_pics = [pictures[k] for k in PICTURE_ORDER if k in pictures]
    if shown_pics:
        parts.append('<div style="display:flex;flex-wrap:wrap;gap:12px">'
                     + "".join(figure(c.svg()) for c in shown_pics) + "</div>")
    if "baseline" in pictures:
        parts.append(figure(pictures["baseline"].svg()))
    for s in ev.slices:
        parts.append(f'<div class="mlops-h">By {shown(s["column"])}</div>')
        parts.append(slice_table(ev, s))
        if f"slices:{s['column']}" in pictures:
            parts.append(figure(pictures[f"slices:{s['column']}"].svg()))
    parts += [f'<div class="mlops-note">{shown(n)}</div>' for n in ev.notes]
    return "".join(parts)


def evaluation_text(ev) -> str:
    from .terminal import text_table

    lines = [f"evaluation of {ev.model} on {ev.data}"] + [f"  {k:<15}{v}" for k, v in headline(ev)]
    heads, rows = figure_rows(ev)
    hows = ["token"] + ["num"] * (len(heads) - 1)
    if ev.baseline:
        hows[-2:] = ["token", "status"]
    lines.append(text_table(heads, [[r[0], *[num(v) if not isinstance(v, str) else v for v in r[1:]]] for r in rows],
                            hows))
    if ev.per_class:
        lines.append(text_table(["class", "precision", "recall", "F1", "rows"],
                                [[str(c["class"]), num(c["precision"]), num(c["recall"]), num(c["f1"]), c["support"]]
                                 for c in ev.per_class], ["token", "num", "num", "num", "count"]))
    for s in ev.slices:
        lines.append(f"by {s['column']}")
        heads, rows = slice_rows(ev, s)
        lines.append(text_table(heads, [[r[0], r[1], *[num(v) if v is not None else "" for v in r[2:]]]
                                        for r in rows], ["token", "count"] + ["num"] * (len(heads) - 2)))
        lines += [f"  {n}" for n in slice_notes(s)]
    lines += [f"note: {n}" for n in ev.notes]
    return "\n".join(lines)
