"""A model card as HTML (notebook, panel, ``GET /card``, ``mlops model card -o card.html``) and as
Markdown (``-o card.md``, the terminal), and a model audit as HTML and text. Sections, in order:
the model, intended use and limitations, training data and code, evaluation, explanations,
monitoring, aliases, audit."""

from __future__ import annotations

import os
from typing import Any

from .evaluation_view import PICTURE_ORDER, figure_rows, figures_table, headline, num, slice_notes, slice_rows, slice_table
from .html import CSS, figure, fmt_size, fmt_when, shown, table, text_card

SECTIONS = ["The model", "Intended use and limitations", "Training data and code", "Evaluation", "Explanations",
            "Monitoring", "Aliases", "Audit"]
NOT_SET = "not written yet: `mlops model describe {ref} --intended-use TEXT --limitations TEXT`"


def _model_rows(card) -> list[tuple[str, str]]:
    from ..models.signature import describe

    v = card.version
    rows = [("version", f"{v.ref} ({v.uri})"), ("class", v.model_class or "—"),
            ("library", f"{v.library} {v.library_version}" if v.library else "—"),
            ("format", v.flavor), ("size", fmt_size(v.size)), ("signature", describe(v.signature))]
    if v.signature and v.signature.get("classes") is not None:
        rows.append(("classes", ", ".join(map(str, v.signature["classes"]))))
    rows += [("registered", f"{fmt_when(v.created)} by {v.username or '—'}")]
    if v.message:
        rows.append(("message", v.message))
    return rows


def _notes(card) -> tuple[str, str, str | None]:
    n = card.notes or {}
    ref = card.version.ref
    unset = NOT_SET.format(ref=ref)
    source = None
    if n and n.get("from") != card.version.version:
        source = f"written for {card.version.name}@v{n['from']}; this version has none of its own"
    return n.get("intended_use") or unset, n.get("limitations") or unset, source


def _lineage_rows(card) -> list[tuple[str, str]]:
    v, r = card.version, card.run
    rows = [("data", ", ".join(f"{d['ref']} ({d['direction']})" for d in v.datasets) or "no data version recorded")]
    if r is None:
        rows.append(("run", "registered outside a run"))
        return rows
    rows.append(("run", f"{r['name']} ({r['run_id'][:8]}, {r['status']})"))
    if r.get("source"):
        rows.append(("code", f"{r['source']}" + (f" ({r['cells']} cells captured)" if r.get("cells") else "")))
    if r.get("notebook"):
        rows.append(("notebook", f"stored with the run as {r['notebook']}"))
    if r.get("git"):
        g = r["git"]
        rows.append(("git", f"{g.get('commit', '')[:10]}{' (uncommitted changes)' if g.get('dirty') else ''}"
                     if isinstance(g, dict) else str(g)))
    if r["params"]:
        rows.append(("parameters", ", ".join(f"{k}={v}" for k, v in list(r["params"].items())[:12])))
    if r["metrics"]:
        rows.append(("metrics", ", ".join(f"{k}={num(v)}" for k, v in list(r["metrics"].items())[:12])))
    return rows


def _monitoring_rows(card) -> list[tuple[str, str]]:
    m = card.monitoring
    if not m:
        return [("serving", "no logged predictions and no drift report for this version")]
    rows = [("requests", f"{m['requests']:,} logged" + (f", the last {fmt_when(m['last_request'])}"
                                                         if m.get("last_request") else ""))]
    figs = m.get("figures") or {}
    live = [k for k in ("accuracy", "f1", "roc_auc", "rmse", "mae", "labeled_rows", "latency_p95_ms") if k in figs]
    if live:
        rows.append(("live, 7 days", ", ".join(f"{k}={num(figs[k])}" for k in live)))
    d = m.get("drift")
    if d:
        share = "n/a" if d["drift_share"] is None else f"{d['drift_share']:.0%}"
        rows.append(("latest drift", f"{d['n_drifted']} of {d['n_compared']} features drifted ({share}), "
                                     f"{'dataset drift' if d['dataset_drift'] else 'no dataset drift'}; "
                                     f"{d['reference']} vs {d['current']}, {fmt_when(d['created'])}"))
    if m.get("note"):
        rows.append(("note", m["note"]))
    return rows


def _alias_rows(card) -> list[list[str]]:
    return [[fmt_when(h["at"]), h["alias"], f"v{h['from']}" if h["from"] is not None else "—",
             f"v{h['to']}" if h["to"] is not None else "(removed)", h["user"] or "—"] for h in card.history]


def _audit_rows(card) -> list[tuple[str, str]]:
    a = card.audit
    if a is None:
        return [("audit", "not run")]
    rows = [("verdict", a.verdict), ("file", f"{a.digest[:16]}… ({fmt_size(a.size)}): {a.digest_note}")]
    if a.scan and a.scan["findings"]:
        rows.append(("findings", ", ".join(f"{f['module']}.{f['name']} ({f['safety']})"
                                           for f in a.scan["findings"][:8])))
    return rows


def card_html(card) -> str:
    v = card.version
    al = "".join(f' <span class="mlops-badge" style="background:#fef7e0;color:#7a5b00">{shown(a)}</span>'
                 for a in v.aliases)
    parts = [CSS, f'<div class="mlops-card" data-version="{shown(v.ref)}">',
             f'<div class="mlops-h" style="font-size:16px">{shown(card.title)}{al}</div>']

    def section(name: str) -> None:
        parts.append(f'<div class="mlops-h" data-section="{shown(name)}" style="margin-top:14px;border-bottom:1px '
                     f'solid var(--jp-border-color2,#e0e0e0)">{shown(name)}</div>')

    def card_table(rows) -> None:  # label | text, the text wrapped (notes and verdicts are sentences)
        parts.append(text_card(rows))

    section("The model")
    card_table(_model_rows(card))
    section("Intended use and limitations")
    use, limits, source = _notes(card)
    card_table([("intended use", use), ("limitations", limits)] + ([("note", source)] if source else []))
    section("Training data and code")
    card_table(_lineage_rows(card))
    section("Evaluation")
    if not card.evaluations:
        parts.append(f'<div class="mlops-note">no evaluation stored: mlops evaluate {shown(v.ref)} DATA@vN '
                     "--target COLUMN</div>")
    for ev in card.evaluations:
        parts.append(f'<div class="mlops-h"><small>on {shown(ev.data)}, {ev.rows:,} rows, target '
                     f'{shown(ev.target)}, {fmt_when(ev.created)}</small></div>')
        parts.append(figures_table(ev))
        pics = ev.charts()
        shown_pics = [pics[k] for k in [*PICTURE_ORDER, "baseline"] if k in pics]
        if shown_pics:
            parts.append('<div class="mlops-charts">' + "".join(figure(c.svg()) for c in shown_pics) + "</div>")
        for s in ev.slices:
            parts.append(f'<div class="mlops-note">by {shown(s["column"])}</div>')
            parts.append(slice_table(ev, s))
    section("Explanations")
    ex = card.explanation
    if not ex:
        parts.append(f'<div class="mlops-note">no explanation stored: mlops explain {shown(v.ref)} DATA@vN '
                     "(in a notebook)</div>")
    else:
        parts.append(f'<div class="mlops-note">{shown(ex["method"].upper())} ({shown(ex["explainer"] or "")}) over '
                     f'{ex["rows"] or "?"} rows, {fmt_when(ex["created"])}; mean |value| of '
                     f'{shown(ex["output"] or "the output")}</div>')
        if ex.get("svg"):
            parts.append(figure(ex["svg"]))
        elif ex["top"]:
            parts.append(table(["feature", "mean |value|"], [[shown(f), num(x)] for f, x in ex["top"]]))
    section("Monitoring")
    card_table(_monitoring_rows(card))
    section("Aliases")
    parts.append(f'<div class="mlops-note">now: {shown(", ".join(v.aliases) or "none")}</div>')
    if card.history:
        parts.append(table(["when", "alias", "from", "to", "by"], [[shown(x) for x in r] for r in _alias_rows(card)]))
    section("Audit")
    card_table(_audit_rows(card))
    parts.append(f'<div class="mlops-note">card read from the store in {card.seconds * 1000:.0f} ms</div></div>')
    return "".join(parts)


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(x: Any) -> str:
        return str(x if isinstance(x, str) else num(x) if x is not None else "").replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def card_markdown(card) -> str:
    v = card.version
    folder = card.pictures_dir
    lines = [f"# {card.title}", ""]
    if v.aliases:
        lines += [f"Aliases: {', '.join(v.aliases)}", ""]

    def kv(rows) -> None:
        lines.extend([_md_table(["", ""], [[f"**{k}**", val] for k, val in rows]), ""])

    def picture(chart, name: str) -> None:
        if folder is None:
            return
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{name}.svg")
        chart.save(path)
        lines.append(f"![{name}]({os.path.basename(folder)}/{name}.svg)")

    lines.append("## The model")
    kv(_model_rows(card))
    lines.append("## Intended use and limitations")
    use, limits, source = _notes(card)
    kv([("intended use", use), ("limitations", limits)] + ([("note", source)] if source else []))
    lines.append("## Training data and code")
    kv(_lineage_rows(card))
    lines.append("## Evaluation")
    if not card.evaluations:
        lines += [f"No evaluation stored: `mlops evaluate {v.ref} DATA@vN --target COLUMN`.", ""]
    for i, ev in enumerate(card.evaluations):
        lines += [f"### On {ev.data}", ""] + [f"- {k}: {t}" for k, t in headline(ev) if k != "computed"] + [""]
        heads, rows = figure_rows(ev)
        lines += [_md_table(heads, rows), ""]
        pics = ev.charts()
        for name in [k for k in [*PICTURE_ORDER, "baseline"] if k in pics]:
            picture(pics[name], f"evaluation{i + 1}-{name}")
        for s in ev.slices:
            heads, rows = slice_rows(ev, s)
            lines += ["", f"By {s['column']}:", "", _md_table(heads, rows), ""]
            lines += [f"- {n}" for n in slice_notes(s)]
        lines.append("")
    lines.append("## Explanations")
    ex = card.explanation
    if not ex:
        lines += [f"No explanation stored: `%mlops explain {v.ref} DATA@vN` in a notebook.", ""]
    else:
        lines += [f"{ex['method'].upper()} ({ex['explainer']}) over {ex['rows']} rows; mean |value| of "
                  f"{ex['output'] or 'the output'}:", "", _md_table(["feature", "mean |value|"], ex["top"]), ""]
    lines.append("## Monitoring")
    kv(_monitoring_rows(card))
    lines.append("## Aliases")
    lines += [f"Now: {', '.join(v.aliases) or 'none'}", ""]
    if card.history:
        lines += [_md_table(["when", "alias", "from", "to", "by"], _alias_rows(card)), ""]
    lines.append("## Audit")
    kv(_audit_rows(card))
    return "\n".join(lines)


def audit_rows(a) -> list[tuple[str, str]]:
    rows = [("version", f"{a.ref} ({a.flavor}, {fmt_size(a.size)})"), ("verdict", a.verdict),
            ("digest", f"{a.digest}: " + ("matches" if a.digest_ok else "DOES NOT MATCH" if a.digest_ok is False
                                          else "not checked") + f" ({a.digest_note})")]
    if a.scan is not None:
        rows.append(("scanner", f"{a.scan['scanner']}: {a.scan['status']}, {a.scan['globals']} global(s) named"))
    rows += [("note", n) for n in a.notes]
    return rows


def audit_text(a) -> str:
    from .terminal import text_table

    lines = [f"audit of {a.ref}"] + [f"  {k:<9}{v}" for k, v in audit_rows(a)]
    if a.scan and a.scan["findings"]:
        lines.append(text_table(["module", "name", "safety"], [[f["module"], f["name"], f["safety"]]
                                                               for f in a.scan["findings"]],
                                ["token", "token", "status"]))
    if a.dependencies:
        lines.append(f"dependencies pinned for {'job ' + a.job + chr(39) + 's image' if a.job else 'the model'}:")
        lines.append(text_table(["package", "pinned", "installed", "licence"],
                                [[d["name"], d["version"] or "—", d["installed"] or "—", d["licence"]]
                                 for d in a.dependencies], ["token", "token", "token", "text"]))
    return "\n".join(lines)


def audit_html(a) -> str:
    parts = [CSS, f'<div class="mlops-h">Audit of {shown(a.ref)}</div>', text_card(audit_rows(a))]
    if a.scan and a.scan["findings"]:
        parts.append(table(["module", "name", "safety"], [[shown(f["module"]), shown(f["name"]), shown(f["safety"])]
                                                          for f in a.scan["findings"]]))
    if a.dependencies:
        parts.append(table(["package", "pinned", "installed", "licence"],
                           [[shown(d["name"]), shown(d["version"] or "—"), shown(d["installed"] or "—"),
                             shown(d["licence"])] for d in a.dependencies]))
    return "".join(parts)


def card_page(ref: str) -> str:
    """The card of *ref* as a self-contained page (the model server's ``GET /card``)."""
    from ..governance.card import build

    return page_html(build(ref))


def page_html(card) -> str:
    """A card as a self-contained HTML page (``mlops model card -o card.html``, ``GET /card``)."""
    import html

    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(card.title)}</title>"
            "<style>body{font-family:Arial,'Liberation Sans',Helvetica,sans-serif;max-width:1100px;margin:24px auto;"
            "padding:0 16px}</style></head><body>" + card_html(card) + "</body></html>")
