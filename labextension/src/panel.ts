/**
 * The left sidebar: the project's runs (filter, sort, pages, a sparkline of each run's main
 * metric, tick two or more to compare), data versions, models (move an alias), jobs (run one
 * now) and tuning studies (trials by state, best value, whether a search runs now). Every name
 * opens its detail view in the main area.
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { countsText } from './studyview';
import { IContext, runJobNow, setAlias } from './views';
import { ICON, Json, api, badge, el, fmtClock, fmtNum, fmtSize, fmtTime, link, query, sparkline } from './util';

const POLL_MS = 3000;
const PAGE = 50;

export type Section = 'runs' | 'data' | 'models' | 'jobs' | 'studies';

export class MlopsPanel extends Widget {
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

  constructor(private ctx: IContext) {
    super();
    this.id = 'mlops-panel';
    this.addClass('mlops-panel');
    this.title.icon = ICON;
    this.title.caption = 'MLOps: runs, data, models, jobs, studies';
    const tabs = el('div', { class: 'mlops-tabs', role: 'tablist' });
    for (const s of ['runs', 'data', 'models', 'jobs', 'studies'] as Section[]) {
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
      const on = (b as HTMLElement).dataset.section === section;
      b.classList.toggle('mlops-active', on);
      b.setAttribute('aria-selected', String(on));
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
        const typing = this.node.contains(document.activeElement) && document.activeElement?.tagName === 'INPUT';
        if (this.isVisible && !typing && this.section !== 'data' && this.section !== 'models') {
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
              : this.section === 'jobs'
                ? await this.jobsView()
                : await this.studiesView();
      const scroll = this.body.scrollTop;
      this.body.replaceChildren(node);
      this.body.scrollTop = scroll;
      this.status.textContent = `updated ${fmtClock(new Date())}`;
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
    const data = await api(`runs${query({ offset: this.offset, limit: PAGE, sort: this.sort, where: this.where })}`);
    this.total = data.total;
    const filter = el('input', {
      class: 'mlops-filter',
      type: 'search',
      placeholder: 'filter: metrics.acc > 0.8',
      title:
        "Filter runs, then Enter: params.X, metrics.X, tags.X, name, status, user compared with = != < <= > >= and 'like', " +
        "joined by and / or; e.g. metrics.acc > 0.8 and status = 'finished'",
      'aria-label': 'filter runs',
      value: this.where
    }) as HTMLInputElement;
    filter.onkeydown = e => {
      if (e.key === 'Enter') {
        this.where = filter.value.trim();
        this.offset = 0;
        void this.refresh();
      }
    };
    const sort = el('select', { class: 'mlops-sort', 'aria-label': 'sort runs' }) as HTMLSelectElement;
    for (const [value, label] of [
      ['-start_time', 'newest first'],
      ['start_time', 'oldest first'],
      ['name', 'by name'],
      ['status', 'by status']
    ]) {
      const o = el('option', { value }, label) as HTMLOptionElement;
      o.selected = value === this.sort;
      sort.append(o);
    }
    sort.onchange = () => {
      this.sort = sort.value;
      void this.refresh();
    };
    const compare = el('button', { class: 'mlops-button mlops-compare', title: 'tick two runs or more' }, `Compare (${this.selected.size})`);
    (compare as HTMLButtonElement).disabled = this.selected.size < 2;
    compare.onclick = () => this.compare();
    const list = el('div', { class: 'mlops-list' });
    for (const r of data.runs) {
      list.append(this.runRow(r));
    }
    if (!data.runs.length) {
      list.append(el('div', { class: 'mlops-empty' }, this.where ? 'no run matches' : 'no runs yet: %mlops track in a notebook'));
    }
    const first = this.total ? this.offset + 1 : 0;
    const last = Math.min(this.offset + PAGE, this.total);
    const prev = el('button', { class: 'mlops-button', 'aria-label': 'previous page' }, '‹') as HTMLButtonElement;
    prev.disabled = this.offset === 0;
    prev.onclick = () => {
      this.offset = Math.max(0, this.offset - PAGE);
      void this.refresh();
    };
    const next = el('button', { class: 'mlops-button', 'aria-label': 'next page' }, '›') as HTMLButtonElement;
    next.disabled = last >= this.total;
    next.onclick = () => {
      this.offset += PAGE;
      void this.refresh();
    };
    const pager = el('div', { class: 'mlops-pager' }, prev, el('span', {}, `${first}–${last} of ${this.total}`), next);
    return el(
      'div',
      {},
      el('div', { class: 'mlops-toolbar' }, filter, el('div', { class: 'mlops-toolbar-row' }, sort, compare)),
      list,
      pager
    );
  }

  private runRow(r: Json): HTMLElement {
    const box = el('input', { type: 'checkbox', class: 'mlops-select', 'aria-label': `select ${r.name}` }) as HTMLInputElement;
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
    const name = link(r.name, () => this.ctx.nav.openRun(r.run_id, r.name), { class: 'mlops-link mlops-run-name', title: `${r.name} (${r.run_id})` });
    const params = Object.entries(r.params || {})
      .slice(0, 3)
      .map(([k, v]) => `${k}=${fmtNum(v)}`)
      .join(' ');
    const metrics = el('span', { class: 'mlops-metrics' });
    for (const [k, v] of Object.entries(r.metrics || {}).slice(0, 3)) {
      metrics.append(el('span', { class: 'mlops-metric', 'data-key': k }, `${k} ${fmtNum(v)}`));
    }
    const spark = r.spark ? sparkline(r.spark.values, `${r.spark.key}: last ${r.spark.values.length} points`) : null;
    return el(
      'div',
      { class: 'mlops-row mlops-run-row', 'data-run': r.run_id, 'data-name': r.name, 'data-status': r.status },
      el('div', { class: 'mlops-row-head' }, box, name, spark),
      el(
        'div',
        { class: 'mlops-row-sub mlops-ellipsis', title: params },
        badge(r.status, r.status),
        ` ${fmtTime(r.start_time)}`,
        params ? ` · ${params}` : ''
      ),
      metrics
    );
  }

  compare(): void {
    if (this.selected.size < 2) {
      void showErrorMessage('Compare', 'tick two runs or more in the MLOps panel');
      return;
    }
    this.ctx.nav.compare(Array.from(this.selected));
  }

  // -- data -------------------------------------------------------------------------------------------
  private async dataView(): Promise<HTMLElement> {
    const data = await api('datasets');
    const list = el('div', { class: 'mlops-list' });
    for (const d of data.datasets) {
      const what = [d.rows !== null ? `${d.rows.toLocaleString('en-US')} rows` : d.kind, fmtSize(d.size), fmtTime(d.created)].filter(Boolean);
      list.append(
        el(
          'div',
          { class: 'mlops-row mlops-dataset-row', 'data-name': d.name },
          el('div', { class: 'mlops-row-head' }, link(d.name, () => this.ctx.nav.openDataset(d.name), { class: 'mlops-link mlops-run-name' }), badge(`v${d.latest}`, 'version')),
          el('div', { class: 'mlops-row-sub mlops-ellipsis' }, what.join(' · '))
        )
      );
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
      list.append(
        el('div', { class: 'mlops-row-head mlops-model-name', 'data-name': m.name }, link(m.name, () => this.ctx.nav.openModel(m.name), { class: 'mlops-link mlops-run-name' }))
      );
      for (const v of m.versions) {
        const move = el('button', { class: 'mlops-button mlops-set-alias', title: `point an alias at ${v.ref}` }, 'alias…');
        move.onclick = async () => {
          if (await setAlias(this.ctx, m.name, v.version, m.aliases)) {
            await this.refresh();
          }
        };
        const metrics = el('span', { class: 'mlops-metrics' });
        for (const [k, x] of Object.entries(v.metrics || {}).slice(0, 3)) {
          metrics.append(el('span', { class: 'mlops-metric', 'data-key': k }, `${k} ${fmtNum(x)}`));
        }
        const sub = `${fmtTime(v.created)} · ${v.class}`;
        list.append(
          el(
            'div',
            { class: 'mlops-row mlops-model-row', 'data-ref': v.ref },
            el(
              'div',
              { class: 'mlops-row-head' },
              link(`v${v.version}`, () => this.ctx.nav.openModel(m.name, v.version), { class: 'mlops-link' }),
              ...v.aliases.map((a: string) => badge(a, 'alias')),
              move
            ),
            el('div', { class: 'mlops-row-sub mlops-ellipsis', title: sub }, sub),
            metrics.childElementCount ? metrics : null
          )
        );
      }
    }
    if (!data.models.length) {
      list.append(el('div', { class: 'mlops-empty' }, 'no models yet: %mlops model register'));
    }
    return list;
  }

  // -- jobs ---------------------------------------------------------------------------------------------
  private async jobsView(): Promise<HTMLElement> {
    const data = await api('jobs');
    const list = el('div', { class: 'mlops-list' });
    for (const j of data.jobs) {
      const run = el('button', { class: 'mlops-button mlops-run-now', title: j.moves ? `may move ${j.moves.model}@${j.moves.alias}` : 'run the job once' }, 'Run now');
      (run as HTMLButtonElement).disabled = !!j.problem || j.running?.status === 'running';
      run.onclick = async () => {
        if (await runJobNow(this.ctx, j)) {
          await this.refresh();
        }
      };
      const last = j.last ? badge(j.last.status, j.last.status, `last run ${fmtTime(j.last.start_time)}`) : el('span', { class: 'mlops-row-sub' }, 'never run');
      const running = j.running && j.running.status === 'running' ? badge('starting', 'running') : null;
      const sub = j.problem || [j.model, j.rule ? `retrain when ${j.rule}` : '', j.schedule ? `cron ${j.schedule}` : ''].filter(Boolean).join(' · ');
      list.append(
        el(
          'div',
          { class: 'mlops-row mlops-job-row', 'data-name': j.name },
          el('div', { class: 'mlops-row-head' }, link(j.name, () => this.ctx.nav.openJob(j.name), { class: 'mlops-link mlops-run-name' }), last, running, run),
          el('div', { class: `mlops-row-sub mlops-ellipsis${j.problem ? ' mlops-error' : ''}`, title: sub }, sub)
        )
      );
    }
    if (!data.jobs.length) {
      list.append(el('div', { class: 'mlops-empty' }, 'no jobs yet: Promote… a notebook'));
    }
    return list;
  }

  // -- studies ------------------------------------------------------------------------------------------
  private async studiesView(): Promise<HTMLElement> {
    const data = await api('studies');
    const list = el('div', { class: 'mlops-list' });
    for (const s of data.studies) {
      const best = s.best !== null ? `best ${s.metric} ${fmtNum(s.best)}` : 'no trial finished';
      const sub = [`${s.trials} trial${s.trials === 1 ? '' : 's'}: ${countsText(s.counts)}`, s.job ? `job ${s.job}` : ''].filter(Boolean).join(' · ');
      list.append(
        el(
          'div',
          { class: 'mlops-row mlops-study-row', 'data-name': s.name, 'data-trials': String(s.trials) },
          el(
            'div',
            { class: 'mlops-row-head' },
            link(s.name, () => this.ctx.nav.openStudy(s.name), { class: 'mlops-link mlops-run-name' }),
            s.running ? badge('running', 'running', `${s.running.name}, started ${fmtTime(s.running.start_time)}`) : null
          ),
          el('div', { class: 'mlops-row-sub mlops-ellipsis', title: sub }, sub),
          el('span', { class: 'mlops-metrics' }, el('span', { class: 'mlops-metric mlops-study-best', title: s.direction === 'min' ? 'lower is better' : 'higher is better' }, best))
        )
      );
    }
    if (!data.studies.length) {
      list.append(el('div', { class: 'mlops-empty' }, 'no studies yet: mj.tune or mlops tune'));
    }
    return list;
  }
}
