/**
 * A run in detail (its metric curves with a choice of x axis and a log scale, params, data and
 * models, artifacts as links with images shown, the captured cells highlighted) and runs side
 * by side (curves with the best value marked, parallel coordinates, a metric against each param).
 */
import { ServerConnection } from '@jupyterlab/services';

import { codeBlock } from './code';
import { DetailView, IContext, header } from './views';
import {
  Json,
  api,
  apiUrl,
  badge,
  el,
  fmtDuration,
  fmtNum,
  fmtSize,
  fmtTime,
  link,
  note,
  query,
  section,
  table
} from './util';

const X_MODES: [string, string][] = [
  ['step', 'step'],
  ['time', 'time'],
  ['relative', 'relative time']
];

/** The x-axis select and the log-y box that re-ask the server for a chart. */
function chartControls(state: { x: string; logY: boolean }, redraw: () => void, extra: HTMLElement[] = []): HTMLElement {
  const x = el('select', { class: 'mlops-x', 'aria-label': 'x axis' }) as HTMLSelectElement;
  for (const [value, label] of X_MODES) {
    const o = el('option', { value }, label) as HTMLOptionElement;
    o.selected = value === state.x;
    x.append(o);
  }
  x.onchange = () => {
    state.x = x.value;
    redraw();
  };
  const log = el('input', { type: 'checkbox', class: 'mlops-log-y' }) as HTMLInputElement;
  log.checked = state.logY;
  log.onchange = () => {
    state.logY = log.checked;
    redraw();
  };
  return el(
    'div',
    { class: 'mlops-controls' },
    el('label', {}, 'x axis ', x),
    el('label', {}, log, ' log y'),
    ...extra
  );
}

function artifactPath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** Fetch with Jupyter's credentials (token or cookie), as an object URL. */
async function blobUrl(url: string): Promise<string> {
  const settings = ServerConnection.makeSettings();
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch {
      // not JSON: the status says enough
    }
    throw new Error(message);
  }
  return URL.createObjectURL(await response.blob());
}

const LIVE_MS = 5000;

export class RunView extends DetailView {
  private state = { x: 'step', logY: false };
  private chartHost = el('div', { class: 'mlops-chart-host' });
  private timer: number | undefined;

  constructor(
    ctx: IContext,
    readonly runId: string
  ) {
    super(ctx);
    this.addClass('mlops-run-detail');
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  protected async load(): Promise<void> {
    window.clearTimeout(this.timer);
    const d = await api(`runs/${encodeURIComponent(this.runId)}`);
    if (d.status === 'running') {
      // a live run: drawn again every few seconds while it is on screen
      this.timer = window.setTimeout(() => {
        if (this.isAttached && this.isVisible) {
          void this.reload();
        }
      }, LIVE_MS);
    }
    const ended = d.end_time ? fmtDuration(d.end_time - d.start_time) : 'running';
    const who = [d.username && `by ${d.username}`, d.host && `on ${d.host}`].filter(Boolean).join(' ');
    const family: (Node | string)[] = [];
    if (d.parent) {
      family.push('part of ', link(d.parent.name, () => this.ctx.nav.openRun(d.parent.run_id, d.parent.name)));
    }
    const head = header(
      d.name,
      [badge(d.status, d.status), el('code', { class: 'mlops-id', title: 'run id' }, d.run_id)],
      `started ${fmtTime(d.start_time, true)} · ${ended}${who ? ' · ' + who : ''}`,
      d.notebook ? el('span', {}, 'notebook ', el('code', {}, d.notebook)) : null,
      family.length ? el('span', {}, ...family) : null,
      d.error ? el('span', { class: 'mlops-error' }, d.error) : null
    );
    const parts: (HTMLElement | null)[] = [head];
    const keys = Object.keys(d.metrics || {}).sort();
    if (keys.length) {
      const values = table(
        ['metric', 'last', 'points'],
        keys.map(k => [k, fmtNum(d.metrics[k]), String(d.metric_points?.[k] ?? '')]),
        { num: [1, 2], cls: 'mlops-compact' }
      );
      parts.push(
        section('Metrics', chartControls(this.state, () => void this.loadChart()), this.chartHost, values)
      );
    }
    const params = Object.entries(d.params || {});
    if (params.length) {
      parts.push(section('Params', table(['param', 'value'], params.map(([k, v]) => [k, fmtNum(v)]), { cls: 'mlops-compact' })));
    }
    parts.push(this.made(d));
    parts.push(this.artifacts(d));
    if (d.children?.length) {
      parts.push(
        section(
          `Child runs (${d.children.length})`,
          el(
            'div',
            { class: 'mlops-chips' },
            ...d.children.map((c: Json) =>
              el('span', { class: 'mlops-chip' }, badge(c.status, c.status), link(c.name, () => this.ctx.nav.openRun(c.run_id, c.name)))
            )
          )
        )
      );
    }
    parts.push(this.cells(d));
    const tags = Object.entries(d.tags || {});
    if (tags.length) {
      parts.push(section('Tags', table(['tag', 'value'], tags.map(([k, v]) => [k, String(v)]), { cls: 'mlops-compact' })));
    }
    if (d.env && Object.keys(d.env).length) {
      const env = el('details', { class: 'mlops-env' }, el('summary', {}, 'Environment'), el('pre', {}, JSON.stringify(d.env, null, 1)));
      parts.push(env);
    }
    this.node.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
    if (keys.length) {
      await this.loadChart();
    }
  }

  private async loadChart(): Promise<void> {
    try {
      const c = await api(`runs/${encodeURIComponent(this.runId)}/chart${query({ x: this.state.x, log_y: this.state.logY })}`);
      if (c.spec) {
        await this.ctx.charts.show(this.chartHost, c.spec);
      }
    } catch (e) {
      this.chartHost.replaceChildren(note(`could not load the chart: ${(e as Error).message}`));
    }
  }

  private made(d: Json): HTMLElement | null {
    const rows: (Node | string)[][] = [];
    for (const v of d.datasets || []) {
      rows.push([v.direction === 'input' ? 'data in' : 'data out', link(v.ref, () => this.ctx.nav.openDataset(v.name, v.version)),
        [v.kind, v.rows !== null ? `${v.rows} rows` : '', fmtSize(v.size)].filter(Boolean).join(' · ')]);
    }
    for (const m of d.models || []) {
      rows.push(['model', link(m.ref, () => this.ctx.nav.openModel(m.name, m.version)), m.flavor]);
    }
    return rows.length ? section('Data and models', table(['', 'version', 'what'], rows, { cls: 'mlops-compact' })) : null;
  }

  private artifacts(d: Json): HTMLElement | null {
    const items: Json[] = d.artifacts || [];
    if (!items.length) {
      return null;
    }
    const list = el('div', { class: 'mlops-artifacts' });
    for (const a of items) {
      const url = apiUrl(`runs/${encodeURIComponent(d.run_id)}/artifacts/${artifactPath(a.path)}`);
      const name = a.path.split('/').pop() || a.path;
      const anchor = el('a', { class: 'mlops-link mlops-artifact', href: `${url}?download=1`, download: name, title: `download ${a.path}` }, a.path);
      anchor.onclick = async e => {
        e.preventDefault();
        try {
          const href = await blobUrl(`${url}?download=1`);
          const tmp = el('a', { href, download: name });
          document.body.append(tmp);
          tmp.click();
          tmp.remove();
          window.setTimeout(() => URL.revokeObjectURL(href), 60_000);
        } catch (err) {
          anchor.after(el('span', { class: 'mlops-error' }, ` ${(err as Error).message}`));
        }
      };
      const row = el(
        'div',
        { class: 'mlops-artifact-row', 'data-path': a.path },
        el(
          'div',
          { class: 'mlops-artifact-head' },
          anchor,
          el('span', { class: 'mlops-row-sub' }, ` ${fmtSize(a.size)}${a.kind !== 'artifact' ? ' · ' + a.kind : ''}`)
        )
      );
      if (a.image) {
        const img = el('img', { class: 'mlops-preview', alt: a.path });
        blobUrl(url)
          .then(src => {
            img.src = src;
          })
          .catch(err => img.replaceWith(note(`no preview: ${(err as Error).message}`)));
        row.append(img);
      }
      list.append(row);
    }
    return section(`Artifacts (${items.length})`, list);
  }

  private cells(d: Json): HTMLElement | null {
    const cells: Json[] = d.cells || [];
    if (!cells.length) {
      return null;
    }
    const shown = cells.map(c =>
      el(
        'div',
        { class: `mlops-cell${c.status === 'error' ? ' mlops-cell-error' : ''}` },
        el(
          'div',
          { class: 'mlops-cell-head' },
          `[${c.execution_count ?? ' '}] ${fmtTime(c.started, true)}${c.duration !== null ? ' · ' + fmtDuration(c.duration) : ''}`,
          c.status === 'error' ? badge('error', 'failed') : null
        ),
        codeBlock(this.ctx.languages, c.source),
        c.error ? el('pre', { class: 'mlops-cell-err' }, c.error) : null
      )
    );
    const more = d.cells_total > cells.length ? note(`the last ${cells.length} of ${d.cells_total} cells`) : null;
    return section(`Cells (${d.cells_total})`, more, ...shown);
  }
}

export class CompareView extends DetailView {
  private state = { x: 'step', logY: false, metric: '' };
  private hosts = {
    curves: el('div', { class: 'mlops-chart-host' }),
    parallel: el('div', { class: 'mlops-chart-host' }),
    scatter: el('div', { class: 'mlops-chart-host' })
  };
  private allParams = false;

  constructor(
    ctx: IContext,
    public runIds: string[]
  ) {
    super(ctx);
    this.addClass('mlops-compare-detail');
  }

  private url(): string {
    return `compare${query({ runs: this.runIds.join(','), x: this.state.x, log_y: this.state.logY, metric: this.state.metric })}`;
  }

  protected async load(): Promise<void> {
    const d = await api(this.url());
    const labels: string[] = d.runs.map((r: Json) => r.label);
    const head = header(
      `Compare ${d.runs.length} runs`,
      [],
      el(
        'span',
        { class: 'mlops-chips' },
        ...d.runs.map((r: Json) => el('span', { class: 'mlops-chip' }, badge(r.status, r.status), link(r.label, () => this.ctx.nav.openRun(r.run_id, r.name))))
      )
    );
    const metricRows = d.metrics.map((m: Json) => [
      el('span', {}, m.key, el('span', { class: 'mlops-row-sub' }, m.lower_is_better ? ' ↓' : ' ↑')),
      ...m.values.map((v: Json) => {
        const best = m.best !== null && v === m.best;
        return best ? el('span', { class: 'mlops-best', title: 'best' }, `${fmtNum(v)} ★`) : fmtNum(v);
      })
    ]);
    const metrics = section(
      'Metrics (last values)',
      table(['metric', ...labels], metricRows, { num: labels.map((_, i) => i + 1), cls: 'mlops-compact' })
    );
    const paramsHost = el('div');
    const drawParams = () => {
      const rows = d.params
        .filter((p: Json) => this.allParams || p.differs)
        .map((p: Json) => [p.key, ...p.values.map((v: Json) => fmtNum(v))]);
      const t = table(['param', ...labels], rows, { cls: 'mlops-compact' });
      t.querySelectorAll('tbody tr').forEach((tr, i) => {
        const p = d.params.filter((q: Json) => this.allParams || q.differs)[i];
        tr.classList.toggle('mlops-differs', !!p?.differs);
      });
      paramsHost.replaceChildren(rows.length ? t : note('no param differs'));
    };
    const all = el('input', { type: 'checkbox' }) as HTMLInputElement;
    all.checked = this.allParams;
    all.onchange = () => {
      this.allParams = all.checked;
      drawParams();
    };
    drawParams();
    const params = section('Params', el('label', { class: 'mlops-controls' }, all, ' every param (not only those that differ)'), paramsHost);
    const metric = el('select', { class: 'mlops-metric-pick', 'aria-label': 'metric' }) as HTMLSelectElement;
    metric.append(el('option', { value: '' }, 'main metric'));
    for (const m of d.metrics) {
      const o = el('option', { value: m.key }, m.key) as HTMLOptionElement;
      o.selected = m.key === this.state.metric;
      metric.append(o);
    }
    metric.onchange = () => {
      this.state.metric = metric.value;
      void this.loadCharts();
    };
    const notes = (d.notes || []).map((n: string) => note(n));
    this.node.replaceChildren(
      head,
      metrics,
      section('Metric curves', chartControls(this.state, () => void this.loadCharts()), this.hosts.curves),
      section('Params and metric', el('div', { class: 'mlops-controls' }, el('label', {}, 'metric ', metric)), ...notes, this.hosts.parallel, this.hosts.scatter),
      params
    );
    await this.draw(d);
  }

  private async loadCharts(): Promise<void> {
    try {
      await this.draw(await api(this.url()));
    } catch (e) {
      this.hosts.curves.replaceChildren(note(`could not load the charts: ${(e as Error).message}`));
    }
  }

  private async draw(d: Json): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const [name, host] of Object.entries(this.hosts)) {
      const spec = d.charts[name];
      if (spec) {
        jobs.push(this.ctx.charts.show(host, spec));
      } else {
        host.replaceChildren();
      }
    }
    await Promise.all(jobs);
  }
}
