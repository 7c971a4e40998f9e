"""A tuning study as a card (notebook, panel, saved page) and as text (terminal): the best trial,
the trials by state, the pictures (history, parallel coordinates, slices, importances), the trials."""

from __future__ import annotations

from .html import CSS, badge, figure, fmt_value, shown, table

STATE_BADGE = {"complete": "finished", "pruned": "pruned", "fail": "failed", "running": "running",
               "waiting": "running"}
MAX_ROWS = 200


def _headline(rep) -> list[tuple[str, str]]:
    """(label, plain text) rows: the metric and its direction, the trials by state, the best."""
    counts = rep.counts()
    info = [("metric", f"{rep.metric} ({'higher' if rep.maximize else 'lower'} is better)"),
            ("trials", ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none yet")]
    best = rep.best
    if best is not None:
        info.append(("best", f"{best['value']:.6g} (trial {best['number']})"))
        info.append(("best params", ", ".join(f"{k}={_short(v)}" for k, v in best["params"].items())))
    return info


def _headline_table(rep) -> str:
    return table(["", ""], [[label, shown(text)] for label, text in _headline(rep)])


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def study_html(rep, charts: bool = True) -> str:
    parts = [CSS, f'<div class="mlops-h">Study {shown(rep.name)}</div>', _headline_table(rep)]
    for note in rep.notes:
        parts.append(f"<small>{shown(note)}</small>")
    if charts:
        for chart in rep.charts():
            parts.append(figure(chart.svg()))
    names = rep.param_names()
    rows = []
    for t in sorted(rep.trials, key=lambda t: t["number"])[-MAX_ROWS:]:
        rows.append([str(t["number"]), badge(STATE_BADGE.get(t["state"], t["state"])),
                     fmt_value(t["value"]) if t["value"] is not None else "—",
                     *[shown(_short(t["params"][k])) if k in t["params"] else "—" for k in names],
                     f"{t['seconds']:.2f} s" if t["seconds"] is not None else "—",
                     f"<code>{t['run_id'][:8]}</code>" if t["run_id"] else ""])
    parts.append('<div class="mlops-h">Trials</div>')
    parts.append(table(["trial", "state", shown(rep.metric), *[shown(k) for k in names], "took", "run"], rows))
    if len(rep.trials) > MAX_ROWS:
        parts.append(f"<small>the last {MAX_ROWS} of {len(rep.trials)} trials; all of them: report.frame()</small>")
    return "".join(parts)


def study_text(rep) -> str:
    from .terminal import text_table

    lines = [f"study {rep.name}"] + [f"  {k:<12}{v}" for k, v in _headline(rep)]
    names = rep.param_names()
    rows = [[t["number"], t["state"], t["value"], *[t["params"].get(k) for k in names],
             None if t["seconds"] is None else round(t["seconds"], 2)] for t in sorted(rep.trials, key=lambda t: t["number"])]
    lines.append(text_table(["trial", "state", rep.metric, *names, "seconds"], rows,
                            ["count", "status", "num", *["token"] * len(names), "num"]))
    return "\n".join(lines)


_handles: dict[str, object] = {}


def study_live(rep) -> None:
    """Show *rep* in the cell's output, then update it in place (a study in progress): the headline
    and the optimization history while it runs; the whole report at the end."""
    from IPython.display import HTML, display

    live = rep.live or {}
    key = live.get("key", rep.name)
    final = bool(live.get("final"))
    if final:
        text = study_html(rep)
    else:
        parts = [CSS, f'<div class="mlops-h">Study {shown(rep.name)} <small>(running)</small></div>',
                 _headline_table(rep)]
        if rep.finished:
            parts.append(figure(rep.history_chart().svg()))
        text = "".join(parts)
    handle = _handles.get(key)
    if handle is None:
        _handles[key] = display(HTML(text), display_id=True)
    else:
        handle.update(HTML(text))
    if final:
        _handles.pop(key, None)
