/**
 * A model in detail (versions, aliases and their moves, a version's lineage, inputs and stored
 * explanation) and a dataset in detail (versions, and a version's schema with per-column
 * statistics and small histograms drawn from the server's Vega-Lite specs).
 */
import { DetailView, IContext, header, setAlias } from './views';
import { Json, api, badge, el, fmtNum, fmtSize, fmtTime, link, note, query, section, table } from './util';

function versionLink(text: string, select: () => void, selected: boolean): HTMLElement {
  const a = link(text, select, { class: `mlops-link mlops-version-link${selected ? ' mlops-selected' : ''}` });
  return a;
}

export class ModelView extends DetailView {
  constructor(
    ctx: IContext,
    readonly name: string,
    public version?: number
  ) {
    super(ctx);
    this.addClass('mlops-model-detail');
  }

  protected async load(): Promise<void> {
    const d = await api(`models/${encodeURIComponent(this.name)}${query({ version: this.version })}`);
    const aliases = Object.entries(d.aliases as Record<string, number>).sort();
    const latest = d.versions[0];
    const head = header(
      this.name,
      aliases.map(([a, v]) => badge(`${a} → v${v}`, 'alias')),
      `${d.versions.length} version${d.versions.length === 1 ? '' : 's'} · latest v${latest.version} ${fmtTime(latest.created, true)} · ${latest.class} (${latest.flavor})`
    );
    const rows = d.versions.map((v: Json) => {
      const move = el('button', { class: 'mlops-button mlops-set-alias' }, 'alias…');
      move.onclick = async () => {
        if (await setAlias(this.ctx, this.name, v.version, d.aliases)) {
          await this.reload();
        }
      };
      const metrics = Object.entries(v.metrics || {})
        .slice(0, 4)
        .map(([k, x]) => `${k} ${fmtNum(x)}`)
        .join(' · ');
      return [
        versionLink(`v${v.version}`, () => this.select(v.version), v.version === d.selected),
        el('span', { class: 'mlops-badges' }, ...v.aliases.map((a: string) => badge(a, 'alias'))),
        fmtTime(v.created),
        v.class,
        fmtSize(v.size),
        metrics,
        v.run_id ? link(v.run_name || v.run_id.slice(0, 8), () => this.ctx.nav.openRun(v.run_id, v.run_name)) : '',
        el('span', {}, ...v.datasets.map((ref: string, i: number) => el('span', {}, i ? ', ' : '', this.dataLink(ref)))),
        move
      ];
    });
    const versions = table(['version', 'aliases', 'registered', 'class', 'size', 'metrics', 'run', 'data', ''], rows, { num: [4] });
    versions.querySelectorAll('tbody tr').forEach((tr, i) => {
      tr.classList.toggle('mlops-selected-row', d.versions[i].version === d.selected);
      tr.setAttribute('data-version', String(d.versions[i].version));
    });
    const chosen = d.versions.find((v: Json) => v.version === d.selected);
    const parts: (HTMLElement | null)[] = [head, section('Versions', versions)];
    const card = el('button', { class: 'mlops-button mlops-open-card', title: 'what it is, its intended use, data, evaluation, explanations, monitoring, aliases and audit' }, 'Model card');
    card.onclick = () => this.ctx.nav.openCard(this.name, d.selected);
    parts.push(
      section(
        `${this.name}@v${d.selected}`,
        card,
        chosen.message ? note(chosen.message) : null,
        el(
          'div',
          { class: 'mlops-row-sub' },
          `${chosen.class} · ${chosen.flavor}${chosen.library ? ` · ${chosen.library} ${chosen.library_version || ''}` : ''} · ${fmtSize(chosen.size)}` +
            `${chosen.username ? ' · by ' + chosen.username : ''}`
        ),
        el('h4', {}, 'Lineage'),
        this.lineage(d.lineage),
        chosen.inputs.length ? el('h4', {}, `Inputs (${chosen.inputs.length})`) : null,
        chosen.inputs.length
          ? el('div', { class: 'mlops-chips' }, ...chosen.inputs.map((i: Json) => el('span', { class: 'mlops-chip' }, i.name, el('span', { class: 'mlops-row-sub' }, ` ${i.type}`))))
          : null,
        el('h4', {}, 'Evaluations'),
        this.evaluations(d.evaluations || []),
        el('h4', {}, 'Explanation'),
        this.explanation(d.explanation)
      )
    );
    if (d.history.length) {
      parts.push(
        section(
          'Alias moves',
          table(
            ['when', 'alias', 'from', 'to', 'by'],
            d.history.map((h: Json) => [fmtTime(h.at, true), h.alias, h.from ? `v${h.from}` : '', h.to ? `v${h.to}` : '(removed)', h.user || '']),
            { cls: 'mlops-compact' }
          )
        )
      );
    }
    this.node.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
  }

  private select(version: number): void {
    this.version = version;
    void this.reload();
  }

  private dataLink(ref: string): HTMLElement {
    const [name, v] = ref.split('@v');
    return link(ref, () => this.ctx.nav.openDataset(name, v ? Number(v) : undefined));
  }

  /** Data in -> run -> data out and models, each a link. */
  private lineage(g: Json): HTMLElement {
    if (!g || !g.edges.length) {
      return note('no recorded lineage: register the model inside a run that added or loaded its data');
    }
    const nodes: Record<string, Json> = {};
    for (const n of g.nodes) {
      nodes[n.id] = n;
    }
    const runs = g.nodes.filter((n: Json) => n.kind === 'run');
    const column = (title: string, ids: string[]) =>
      el('div', { class: 'mlops-lineage-col' }, el('div', { class: 'mlops-row-sub' }, title), ...ids.map(id => this.node_(nodes[id], id === g.focus)));
    const inputs = [...new Set<string>(g.edges.filter((e: string[]) => nodes[e[1]]?.kind === 'run' && nodes[e[0]]?.kind === 'data').map((e: string[]) => e[0]))];
    const outputs = [...new Set<string>(g.edges.filter((e: string[]) => nodes[e[0]]?.kind === 'run').map((e: string[]) => e[1]))];
    return el(
      'div',
      { class: 'mlops-lineage' },
      column('data in', inputs),
      el('div', { class: 'mlops-arrow' }, '→'),
      column('run', runs.map((n: Json) => n.id)),
      el('div', { class: 'mlops-arrow' }, '→'),
      column('made', outputs)
    );
  }

  private node_(n: Json, focus: boolean): HTMLElement {
    const [kind, key] = [n.kind, n.id.slice(n.id.indexOf(':') + 1)];
    let open: () => void = () => undefined;
    if (kind === 'run') {
      open = () => this.ctx.nav.openRun(key);
    } else if (kind === 'data') {
      const [name, v] = n.label.split('@v');
      open = () => this.ctx.nav.openDataset(name, Number(v));
    } else if (kind === 'model') {
      const [name, v] = n.label.split('@v');
      open = () => (name === this.name ? this.select(Number(v)) : this.ctx.nav.openModel(name, Number(v)));
    }
    return el(
      'div',
      { class: `mlops-lineage-node mlops-lineage-${kind}${focus ? ' mlops-focus' : ''}` },
      link(n.label, open),
      kind === 'run' && n.status ? badge(n.status, n.status) : null
    );
  }

  private evaluations(list: Json[]): HTMLElement {
    if (!list.length) {
      return note(`No evaluation stored: %mlops evaluate ${this.name}@vN DATA@vN --target COLUMN`);
    }
    const names = Array.from(new Set(list.flatMap((e: Json) => Object.keys(e.figures)))).slice(0, 8);
    const rows = list.map((e: Json) => [
      e.data,
      fmtNum(e.rows),
      (e.by || []).join(', ') || '—',
      ...names.map(k => (e.figures[k] === null || e.figures[k] === undefined ? '—' : fmtNum(e.figures[k]))),
      fmtTime(e.created, true)
    ]);
    const t = table(['data', 'rows', 'slices', ...names, 'when'], rows, { num: [1, ...names.map((_, i) => i + 3)], cls: 'mlops-compact mlops-evaluations' });
    return el('div', { class: 'mlops-scroll-x' }, t);
  }

  private explanation(x: Json): HTMLElement {
    if (!x) {
      return note('none stored for this version: mj.explain(model, X) in a notebook stores one');
    }
    const what = [
      `${x.method.toUpperCase()}${x.explainer ? ` (${x.explainer})` : ''}${x.output ? ` of ${x.output}` : ''}`,
      x.rows ? `${x.rows.toLocaleString('en-US')} rows` : '',
      fmtTime(x.created)
    ].filter(Boolean);
    const host = el('div', { class: 'mlops-chart-host mlops-explanation' });
    if (x.chart) {
      void this.ctx.charts.show(host, x.chart);
    }
    return el('div', {}, el('div', { class: 'mlops-row-sub' }, what.join(' · ')), host, ...(x.notes || []).map((n: string) => note(n)));
  }
}

export class DatasetView extends DetailView {
  constructor(
    ctx: IContext,
    readonly name: string,
    public version?: number
  ) {
    super(ctx);
    this.addClass('mlops-dataset-detail');
  }

  protected async load(): Promise<void> {
    const d = await api(`datasets/${encodeURIComponent(this.name)}${query({ version: this.version })}`);
    const v = d.detail;
    const latest = d.versions[0];
    const head = header(
      this.name,
      [badge(latest.kind, 'version')],
      `${d.versions.length} version${d.versions.length === 1 ? '' : 's'} · latest v${latest.version} ${fmtTime(latest.created, true)}`
    );
    const rows = d.versions.map((x: Json) => [
      link(`v${x.version}`, () => this.select(x.version), { class: `mlops-link mlops-version-link${x.version === v.version ? ' mlops-selected' : ''}` }),
      fmtTime(x.created),
      x.rows !== null ? x.rows.toLocaleString('en-US') : '',
      fmtSize(x.size),
      String(x.files),
      x.message || '',
      el(
        'span',
        {},
        ...x.runs.map((r: Json, i: number) =>
          el('span', {}, i ? ', ' : '', link(r.name, () => this.ctx.nav.openRun(r.run_id, r.name)), el('span', { class: 'mlops-row-sub' }, r.direction === 'input' ? ' (in)' : ' (out)'))
        )
      )
    ]);
    const versions = table(['version', 'added', 'rows', 'size', 'files', 'message', 'runs'], rows, { num: [2, 3, 4] });
    versions.querySelectorAll('tbody tr').forEach((tr, i) => {
      tr.classList.toggle('mlops-selected-row', d.versions[i].version === v.version);
      tr.setAttribute('data-version', String(d.versions[i].version));
    });
    const parts: (HTMLElement | null)[] = [head, section('Versions', versions)];
    const about = [
      v.kind,
      v.rows !== null ? `${v.rows.toLocaleString('en-US')} rows` : '',
      fmtSize(v.size),
      `added ${fmtTime(v.created, true)}`,
      v.username ? `by ${v.username}` : '',
      v.source ? `from ${v.source}` : ''
    ].filter(Boolean);
    const hosts: [HTMLElement, Json][] = [];
    let body: HTMLElement;
    if (v.columns.length) {
      const crow = v.columns.map((c: Json) => {
        const host = el('div', { class: 'mlops-hist' });
        if (c.histogram) {
          hosts.push([host, c.histogram]);
        }
        const nulls = c.nulls ? `${c.nulls.toLocaleString('en-US')} (${(100 * c.null_fraction).toFixed(1)}%)` : '0';
        const range = c.kind === 'numeric' || c.kind === 'time' ? `${fmtNum(c.min)} – ${fmtNum(c.max)}` : '';
        const spread =
          c.kind === 'numeric' && c.mean !== null
            ? `mean ${fmtNum(c.mean)} ± ${fmtNum(c.std)}`
            : (c.top || [])
                .slice(0, 3)
                .map((t: Json) => `${t[0]} (${t[1]})`)
                .join(', ');
        return [el('b', {}, c.name), el('code', {}, c.dtype || c.type || ''), nulls, c.distinct !== null ? String(c.distinct) : '', range, spread, host];
      });
      body = table(['column', 'type', 'missing', 'distinct', 'range', 'mean ± sd / most frequent', 'distribution'], crow, {
        num: [2, 3],
        cls: 'mlops-schema'
      });
    } else if (v.files.length) {
      body = table(['file', 'size'], v.files.map((f: Json) => [f.path, fmtSize(f.size)]), { num: [1], cls: 'mlops-compact' });
    } else {
      body = note('no schema recorded for this version');
    }
    parts.push(
      section(
        `${this.name}@v${v.version}`,
        el('div', { class: 'mlops-row-sub' }, about.join(' · '), ' · ', el('code', { title: 'content digest' }, v.digest.slice(0, 12))),
        v.message ? note(v.message) : null,
        ...(v.notes || []).map((n: string) => note(n)),
        body,
        v.files_total > v.files.length && !v.columns.length ? note(`the first ${v.files.length} of ${v.files_total} files`) : null
      )
    );
    this.node.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
    await Promise.all(hosts.map(([host, spec]) => this.ctx.charts.show(host, spec, false)));
  }

  private select(version: number): void {
    this.version = version;
    void this.reload();
  }
}
