/**
 * mlops-jupyter's JupyterLab panel: the project's runs, data versions, models and jobs in the
 * left sidebar, a "Promote…" button on notebooks, and every action in the command palette.
 * Everything it shows comes from the server extension's routes under /mlops/api/.
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  ToolbarButton,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const ICON = new LabIcon({
  name: 'mlops-jupyter:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
    '<path d="M3 19h18v2H3zM5 10h3v7H5zM10.5 6h3v11h-3zM16 3h3v14h-3z"/></g></svg>'
});

const POLL_MS = 3000;
const PAGE = 50;

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A request to our routes, with Jupyter's own token and XSRF handling. */
async function api(path: string, init: RequestInit = {}): Promise<Json> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'mlops', 'api', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let data: Json = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text };
  }
  if (!response.ok) {
    throw new Error(data.error || `${response.status} ${response.statusText}`);
  }
  return data;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') {
      node.className = v;
    } else {
      node.setAttribute(k, v);
    }
  }
  for (const c of children) {
    if (c !== null) {
      node.append(c);
    }
  }
  return node;
}

function fmtTime(ts: number | null): string {
  if (!ts) {
    return '';
  }
  return new Date(ts * 1000).toLocaleString();
}

function fmtNum(v: Json): string {
  if (typeof v !== 'number') {
    return String(v);
  }
  return Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : String(+v.toPrecision(4));
}

function fmtSize(n: number | null): string {
  if (n === null || n === undefined) {
    return '';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i ? x.toFixed(1) : x} ${units[i]}`;
}

function sparkline(values: number[]): SVGSVGElement | null {
  const vals = values.filter(v => typeof v === 'number' && isFinite(v));
  if (vals.length < 2) {
    return null;
  }
  const w = 64;
  const h = 16;
  const lo = Math.min(...vals);
  const span = Math.max(...vals) - lo || 1;
  const pts = vals
    .map((v, i) => `${((i / (vals.length - 1)) * (w - 2) + 1).toFixed(1)},${(h - 1 - ((v - lo) / span) * (h - 2)).toFixed(1)}`)
    .join(' ');
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', String(w));
  svg.setAttribute('height', String(h));
  svg.setAttribute('class', 'mlops-spark');
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', pts);
  svg.append(line);
  return svg;
}

function badge(text: string, kind: string): HTMLElement {
  return el('span', { class: `mlops-badge mlops-badge-${kind}` }, text);
}

/** A main-area tab showing HTML our server rendered (run details, comparisons). */
function openHtml(app: JupyterFrontEnd, id: string, label: string, html: string): void {
  const existing = Array.from(app.shell.widgets('main')).find(w => w.id === id);
  if (existing) {
    existing.dispose();
  }
  const content = new Widget();
  content.addClass('mlops-html');
  content.node.innerHTML = html; // rendered and escaped by mlops_jupyter.widgets.html
  const widget = new MainAreaWidget({ content });
  widget.id = id;
  widget.title.label = label;
  widget.title.closable = true;
  widget.title.icon = ICON;
  app.shell.add(widget, 'main');
  app.shell.activateById(widget.id);
}

type Section = 'runs' | 'data' | 'models' | 'jobs';

class MlopsPanel extends Widget {
  section: Section = 'runs';
  offset = 0;
  where = '';
  sort = '-start_time';
  total = 0;
  selected = new Set<string>();
  private body: HTMLElement;
  private status: HTMLElement;
  private timer: number | undefined;
  private busy = false;

  constructor(private app: JupyterFrontEnd) {
    super();
    this.id = 'mlops-panel';
    this.addClass('mlops-panel');
    this.title.icon = ICON;
    this.title.caption = 'MLOps: runs, data, models, jobs';
    const tabs = el('div', { class: 'mlops-tabs', role: 'tablist' });
    for (const s of ['runs', 'data', 'models', 'jobs'] as Section[]) {
      const b = el('button', { class: 'mlops-tab', 'data-section': s, role: 'tab' }, s[0].toUpperCase() + s.slice(1));
      b.onclick = () => this.showSection(s);
      tabs.append(b);
    }
    this.status = el('div', { class: 'mlops-status' });
    this.body = el('div', { class: 'mlops-body' });
    this.node.append(tabs, this.body, this.status);
    this.showSection('runs');
  }

  showSection(section: Section): void {
    this.section = section;
    this.node.querySelectorAll('.mlops-tab').forEach(b => {
      b.classList.toggle('mlops-active', (b as HTMLElement).dataset.section === section);
    });
    void this.refresh();
  }

  protected onAfterShow(): void {
    this.startPolling();
  }

  protected onAfterAttach(): void {
    this.startPolling();
  }

  protected onBeforeHide(): void {
    this.stopPolling();
  }

  dispose(): void {
    this.stopPolling();
    super.dispose();
  }

  private startPolling(): void {
    if (this.timer === undefined) {
      this.timer = window.setInterval(() => {
        if (this.isVisible && (this.section === 'runs' || this.section === 'jobs')) {
          void this.refresh(true);
        }
      }, POLL_MS);
    }
  }

  private stopPolling(): void {
    if (this.timer !== undefined) {
      window.clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  async refresh(quiet = false): Promise<void> {
    if (this.busy) {
      return;
    }
    this.busy = true;
    try {
      const node =
        this.section === 'runs'
          ? await this.runsView()
          : this.section === 'data'
            ? await this.dataView()
            : this.section === 'models'
              ? await this.modelsView()
              : await this.jobsView();
      this.body.replaceChildren(node);
      this.status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      this.status.classList.remove('mlops-error');
    } catch (e) {
      this.status.textContent = (e as Error).message;
      this.status.classList.add('mlops-error');
      if (!quiet) {
        this.body.replaceChildren(el('div', { class: 'mlops-empty' }, 'could not load: ' + (e as Error).message));
      }
    } finally {
      this.busy = false;
    }
  }

  // -- runs -------------------------------------------------------------------------------------
  private async runsView(): Promise<HTMLElement> {
    const q = new URLSearchParams({ offset: String(this.offset), limit: String(PAGE), sort: this.sort });
    if (this.where) {
      q.set('where', this.where);
    }
    const data = await api(`runs?${q}`);
    this.total = data.total;
    const filter = el('input', {
      class: 'mlops-filter',
      placeholder: "filter: metrics.acc > 0.8 and status = 'finished'",
      value: this.where
    }) as HTMLInputElement;
    filter.onkeydown = e => {
      if (e.key === 'Enter') {
        this.where = filter.value.trim();
        this.offset = 0;
        void this.refresh();
      }
    };
    const sort = el('select', { class: 'mlops-sort' }) as HTMLSelectElement;
    for (const [value, label] of [
      ['-start_time', 'newest'],
      ['start_time', 'oldest'],
      ['name', 'name'],
      ['status', 'status']
    ]) {
      const o = el('option', { value }, label) as HTMLOptionElement;
      o.selected = value === this.sort;
      sort.append(o);
    }
    sort.onchange = () => {
      this.sort = sort.value;
      void this.refresh();
    };
    const compare = el('button', { class: 'mlops-button mlops-compare' }, `Compare (${this.selected.size})`);
    (compare as HTMLButtonElement).disabled = this.selected.size < 2;
    compare.onclick = () => void this.compare();
    const list = el('div', { class: 'mlops-list' });
    for (const r of data.runs) {
      list.append(this.runRow(r));
    }
    if (!data.runs.length) {
      list.append(el('div', { class: 'mlops-empty' }, this.where ? 'no run matches' : 'no runs yet: %mlops track in a notebook'));
    }
    const first = this.total ? this.offset + 1 : 0;
    const last = Math.min(this.offset + PAGE, this.total);
    const prev = el('button', { class: 'mlops-button' }, '‹') as HTMLButtonElement;
    prev.disabled = this.offset === 0;
    prev.onclick = () => {
      this.offset = Math.max(0, this.offset - PAGE);
      void this.refresh();
    };
    const next = el('button', { class: 'mlops-button' }, '›') as HTMLButtonElement;
    next.disabled = last >= this.total;
    next.onclick = () => {
      this.offset += PAGE;
      void this.refresh();
    };
    const pager = el('div', { class: 'mlops-pager' }, prev, el('span', {}, `${first}–${last} of ${this.total}`), next);
    return el('div', {}, el('div', { class: 'mlops-toolbar' }, filter, sort, compare), list, pager);
  }

  private runRow(r: Json): HTMLElement {
    const box = el('input', { type: 'checkbox', class: 'mlops-select' }) as HTMLInputElement;
    box.checked = this.selected.has(r.run_id);
    box.onchange = () => {
      if (box.checked) {
        this.selected.add(r.run_id);
      } else {
        this.selected.delete(r.run_id);
      }
      const c = this.node.querySelector('.mlops-compare') as HTMLButtonElement | null;
      if (c) {
        c.textContent = `Compare (${this.selected.size})`;
        c.disabled = this.selected.size < 2;
      }
    };
    const name = el('a', { class: 'mlops-run-name', href: '#', title: r.run_id }, r.name);
    name.onclick = e => {
      e.preventDefault();
      void this.openRun(r.run_id, r.name);
    };
    const params = Object.entries(r.params || {})
      .slice(0, 3)
      .map(([k, v]) => `${k}=${fmtNum(v)}`)
      .join(' ');
    const metrics = el('span', { class: 'mlops-metrics' });
    for (const [k, v] of Object.entries(r.metrics || {}).slice(0, 3)) {
      metrics.append(el('span', { class: 'mlops-metric', 'data-key': k }, `${k} ${fmtNum(v)}`));
    }
    const spark = r.spark ? sparkline(r.spark.values) : null;
    return el(
      'div',
      { class: 'mlops-row mlops-run-row', 'data-run': r.run_id, 'data-name': r.name, 'data-status': r.status },
      el('div', { class: 'mlops-row-head' }, box, badge(r.status, r.status), name, spark),
      el('div', { class: 'mlops-row-sub' }, fmtTime(r.start_time), params ? ` · ${params}` : ''),
      metrics
    );
  }

  async openRun(runId: string, name: string): Promise<void> {
    try {
      const d = await api(`runs/${encodeURIComponent(runId)}`);
      openHtml(this.app, `mlops-run-${runId}`, `Run ${name}`, d.html);
    } catch (e) {
      void showErrorMessage('Run', (e as Error).message);
    }
  }

  async compare(): Promise<void> {
    if (this.selected.size < 2) {
      void showErrorMessage('Compare', 'select two runs or more in the MLOps panel');
      return;
    }
    try {
      const ids = Array.from(this.selected);
      const d = await api(`compare?runs=${encodeURIComponent(ids.join(','))}`);
      openHtml(this.app, 'mlops-compare', `Compare ${ids.length} runs`, d.html);
    } catch (e) {
      void showErrorMessage('Compare', (e as Error).message);
    }
  }

  // -- data -------------------------------------------------------------------------------------------
  private async dataView(): Promise<HTMLElement> {
    const data = await api('datasets');
    const list = el('div', { class: 'mlops-list' });
    for (const d of data.datasets) {
      const row = el(
        'div',
        { class: 'mlops-row mlops-dataset-row', 'data-name': d.name },
        el('div', { class: 'mlops-row-head' }, el('b', {}, d.name), badge(`v${d.latest}`, 'version'), d.kind),
        el('div', { class: 'mlops-row-sub' }, `${fmtSize(d.size)}${d.rows !== null ? ` · ${d.rows} rows` : ''} · ${fmtTime(d.created)}`)
      );
      const more = el('div', { class: 'mlops-more' });
      row.onclick = async () => {
        if (more.childElementCount) {
          more.replaceChildren();
          return;
        }
        const v = await api(`datasets/${encodeURIComponent(d.name)}`);
        for (const x of v.versions) {
          const runs = x.runs.map((r: Json) => `${r.name} (${r.direction})`).join(', ');
          more.append(el('div', { class: 'mlops-row-sub' }, `${x.ref} · ${fmtSize(x.size)} · ${x.message || ''}${runs ? ' · used by ' + runs : ''}`));
        }
      };
      list.append(row, more);
    }
    if (!data.datasets.length) {
      list.append(el('div', { class: 'mlops-empty' }, 'no data versions yet: %mlops data add'));
    }
    return list;
  }

  // -- models ------------------------------------------------------------------------------------------
  private async modelsView(): Promise<HTMLElement> {
    const data = await api('models');
    const list = el('div', { class: 'mlops-list' });
    for (const m of data.models) {
      list.append(el('div', { class: 'mlops-row-head mlops-model-name' }, el('b', {}, m.name)));
      for (const v of m.versions) {
        const move = el('button', { class: 'mlops-button mlops-set-alias' }, 'alias…');
        move.onclick = () => void this.setAlias(m.name, v.version, m.aliases);
        const metrics = Object.entries(v.metrics || {})
          .slice(0, 3)
          .map(([k, x]) => `${k} ${fmtNum(x)}`)
          .join(' · ');
        list.append(
          el(
            'div',
            { class: 'mlops-row mlops-model-row', 'data-ref': v.ref },
            el('div', { class: 'mlops-row-head' }, `v${v.version}`, ...v.aliases.map((a: string) => badge(a, 'alias')), move),
            el('div', { class: 'mlops-row-sub' }, `${v.class} · ${fmtTime(v.created)}${metrics ? ' · ' + metrics : ''}`)
          )
        );
      }
    }
    if (!data.models.length) {
      list.append(el('div', { class: 'mlops-empty' }, 'no models yet: %mlops model register'));
    }
    return list;
  }

  async setAlias(name: string, version: number, aliases: Record<string, number>): Promise<void> {
    const got = await InputDialog.getText({ title: `Alias for ${name}@v${version}`, text: 'production' });
    if (!got.button.accept || !got.value) {
      return;
    }
    const alias = got.value.trim();
    const from = aliases[alias];
    const ok = await showDialog({
      title: 'Move alias?',
      body: from ? `${name}@${alias}: v${from} → v${version}` : `${name}@${alias} → v${version}`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Move' })]
    });
    if (!ok.button.accept) {
      return;
    }
    try {
      await api(`models/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias)}`, {
        method: 'PUT',
        body: JSON.stringify({ version })
      });
      await this.refresh();
    } catch (e) {
      void showErrorMessage('Alias', (e as Error).message);
    }
  }

  // -- jobs ---------------------------------------------------------------------------------------------
  private async jobsView(): Promise<HTMLElement> {
    const data = await api('jobs');
    const list = el('div', { class: 'mlops-list' });
    for (const j of data.jobs) {
      const run = el('button', { class: 'mlops-button mlops-run-now' }, 'Run now');
      run.onclick = async () => {
        try {
          await api(`jobs/${encodeURIComponent(j.name)}/run`, { method: 'POST' });
          await this.refresh();
        } catch (e) {
          void showErrorMessage('Run job', (e as Error).message);
        }
      };
      const last = j.last ? badge(j.last.status, j.last.status) : el('span', { class: 'mlops-row-sub' }, 'never run');
      const running = j.running && j.running.status === 'running' ? badge('starting', 'running') : null;
      list.append(
        el(
          'div',
          { class: 'mlops-row mlops-job-row', 'data-name': j.name },
          el('div', { class: 'mlops-row-head' }, el('b', {}, j.name), last, running, run),
          el('div', { class: 'mlops-row-sub' }, j.problem || [j.model, j.rule ? `retrain when ${j.rule}` : ''].filter(Boolean).join(' · '))
        )
      );
    }
    if (!data.jobs.length) {
      list.append(el('div', { class: 'mlops-empty' }, 'no jobs yet: Promote… a notebook'));
    }
    return list;
  }
}

/** The Promote dialog's form: job name, model, metric and the detected parameters. */
class PromoteForm extends Widget {
  constructor(preview: Json) {
    super();
    this.addClass('mlops-promote-form');
    const field = (label: string, input: HTMLElement) => el('label', { class: 'mlops-field' }, el('span', {}, label), input);
    const models = el('select', { name: 'model' }) as HTMLSelectElement;
    models.append(el('option', { value: '' }, '(none: a plain batch job)'));
    for (const m of preview.models) {
      models.append(el('option', { value: m.name }, m.name));
    }
    this.node.append(
      field('Job name', el('input', { name: 'name', value: preview.name })),
      field('Model', models),
      field('Metric', el('input', { name: 'metric', placeholder: 'e.g. auc' })),
      field('Retrain when', el('input', { name: 'retrain_when', placeholder: 'drift_share > 0.3' }))
    );
    const params = Object.entries(preview.parameters || {});
    this.node.append(el('div', { class: 'mlops-h' }, params.length ? 'Parameters (papermill)' : 'No parameters detected'));
    for (const [k, p] of params) {
      this.node.append(field(`${k} (${(p as Json).type})`, el('input', { name: `param:${k}`, value: String((p as Json).default) })));
    }
    for (const n of preview.notes || []) {
      this.node.append(el('div', { class: 'mlops-row-sub' }, n));
    }
  }

  getValue(): Json {
    const value = (n: string) => (this.node.querySelector(`[name="${n}"]`) as HTMLInputElement | null)?.value.trim() || '';
    const params: Record<string, string> = {};
    this.node.querySelectorAll('input[name^="param:"]').forEach(i => {
      const input = i as HTMLInputElement;
      params[input.name.slice(6)] = input.value;
    });
    return { name: value('name'), model: value('model'), metric: value('metric'), retrain_when: value('retrain_when'), params };
  }
}

function preWidget(text: string): Widget {
  const w = new Widget({ node: el('pre', { class: 'mlops-promoted' }, text) });
  return w;
}

async function promote(app: JupyterFrontEnd, tracker: INotebookTracker | null): Promise<void> {
  const panel = tracker?.currentWidget;
  if (!panel) {
    void showErrorMessage('Promote', 'open the notebook to promote first');
    return;
  }
  const path = panel.context.path;
  try {
    if (panel.context.model.dirty) {
      await panel.context.save();
    }
    const preview = await api(`promote?path=${encodeURIComponent(path)}`);
    const form = new PromoteForm(preview);
    const result = await showDialog({
      title: `Promote ${path}`,
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Promote' })]
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    const v = result.value;
    const params: Record<string, Json> = {};
    for (const [k, raw] of Object.entries(v.params as Record<string, string>)) {
      const p = preview.parameters[k];
      params[k] = p && (p.type === 'int' || p.type === 'float') && raw !== '' && !isNaN(Number(raw)) ? Number(raw) : p && p.type === 'bool' ? raw === 'true' || raw === 'True' : raw;
    }
    const done = await api('promote', {
      method: 'POST',
      body: JSON.stringify({ path, name: v.name, model: v.model, metric: v.metric, retrain_when: v.retrain_when, params })
    });
    await showDialog({
      title: `Promoted: jobs/${done.job}`,
      body: preWidget(done.text),
      buttons: [Dialog.okButton()]
    });
  } catch (e) {
    void showErrorMessage('Promote', (e as Error).message);
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlops-jupyter:plugin',
  description: 'Runs, data versions, models and jobs of the project in a sidebar; promote a notebook.',
  autoStart: true,
  optional: [ILabShell, ICommandPalette, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    palette: ICommandPalette | null,
    tracker: INotebookTracker | null
  ) => {
    const panel = new MlopsPanel(app);
    app.shell.add(panel, 'left', { rank: 600 });
    const category = 'MLOps';
    const commands: [string, string, () => unknown][] = [
      ['mlops:open-panel', 'MLOps: Show runs, data, models and jobs', () => app.shell.activateById(panel.id)],
      ['mlops:refresh', 'MLOps: Refresh the panel', () => panel.refresh()],
      ['mlops:promote', 'MLOps: Promote this notebook…', () => promote(app, tracker)],
      ['mlops:compare', 'MLOps: Compare selected runs', () => panel.compare()],
      ['mlops:show-runs', 'MLOps: Runs', () => (app.shell.activateById(panel.id), panel.showSection('runs'))],
      ['mlops:show-data', 'MLOps: Data versions', () => (app.shell.activateById(panel.id), panel.showSection('data'))],
      ['mlops:show-models', 'MLOps: Models', () => (app.shell.activateById(panel.id), panel.showSection('models'))],
      ['mlops:show-jobs', 'MLOps: Jobs', () => (app.shell.activateById(panel.id), panel.showSection('jobs'))]
    ];
    for (const [id, label, execute] of commands) {
      app.commands.addCommand(id, { label, execute: () => execute() as Json });
      palette?.addItem({ command: id, category });
    }
    tracker?.widgetAdded.connect((_, nb: NotebookPanel) => {
      const button = new ToolbarButton({
        label: 'Promote…',
        className: 'mlops-promote-button',
        tooltip: 'Turn this notebook into a parameterized job (mlops promote)',
        onClick: () => void app.commands.execute('mlops:promote')
      });
      nb.toolbar.insertItem(10, 'mlopsPromote', button);
    });
    void labShell;
  }
};

export default plugin;
