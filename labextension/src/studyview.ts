/**
 * A tuning study in detail: its metric and trials by state, the best trial, the pictures the
 * notebook shows (optimization history with the running best, parallel coordinates coloured by
 * the metric, the metric against each parameter, the parameters' importances) and the trials, each
 * linked to its run. While a search runs, the view reads the study again every few seconds.
 */
import { DetailView, IContext, header } from './views';
import { Json, api, badge, el, fmtDuration, fmtNum, fmtTime, link, note, section, table } from './util';

const POLL_MS = 3000;
const STATE_BADGE: Record<string, string> = { complete: 'finished', pruned: 'pruned', fail: 'failed', running: 'running', waiting: 'running' };
const CHARTS: [string, string][] = [
  ['history', 'Optimization history'],
  ['parallel', 'Parallel coordinates'],
  ['slices', 'Metric against each parameter'],
  ['importances', 'Parameter importances']
];

/** "12 complete, 3 pruned": a study's trials by state. */
export function countsText(counts: Record<string, number>): string {
  const words: Record<string, string> = { complete: 'complete', pruned: 'pruned', fail: 'failed', running: 'running', waiting: 'waiting' };
  return (
    Object.entries(counts)
      .sort(([a], [b]) => Object.keys(words).indexOf(a) - Object.keys(words).indexOf(b))
      .map(([s, n]) => `${n} ${words[s] || s}`)
      .join(', ') || 'no trial yet'
  );
}

export class StudyView extends DetailView {
  private timer: number | undefined;
  private hosts: Record<string, HTMLElement> = {};

  constructor(
    ctx: IContext,
    readonly name: string
  ) {
    super(ctx);
    this.addClass('mlops-study-detail');
    for (const [key] of CHARTS) {
      this.hosts[key] = el('div', { class: 'mlops-chart-host', 'data-chart': key });
    }
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  protected onAfterShow(): void {
    void this.reload(); // a search may have gone on while the tab was hidden
  }

  protected async load(): Promise<void> {
    window.clearTimeout(this.timer);
    const d = await api(`studies/${encodeURIComponent(this.name)}`);
    const better = d.direction === 'min' ? 'lower' : 'higher';
    const search = d.searches[0];
    const head = header(
      `Study ${d.name}`,
      [d.running ? badge('running', 'running') : null],
      `${d.metric} (${better} is better) · ${d.total} trial${d.total === 1 ? '' : 's'}: ${countsText(d.counts)}`,
      d.job ? el('span', {}, 'trials are executions of job ', link(d.job, () => this.ctx.nav.openJob(d.job))) : 'trials of a notebook function (mj.tune)',
      search
        ? el(
            'span',
            {},
            `${d.searches.length > 1 ? `${d.searches.length} searches, the last ` : ''}started ${fmtTime(search.start_time, true)}`,
            search.params?.sampler ? ` · sampler ${search.params.sampler}, pruning ${search.params.prune || 'none'}` : '',
            ' · ',
            link(search.name, () => this.ctx.nav.openRun(search.run_id, search.name))
          )
        : null
    );
    const parts: (HTMLElement | null)[] = [head];
    if (d.best) {
      const rows: (string | Node)[][] = [
        [d.metric, el('span', { class: 'mlops-best' }, fmtNum(d.best.value))],
        ['trial', d.best.run_id ? link(String(d.best.number), () => this.ctx.nav.openRun(d.best.run_id)) : String(d.best.number)],
        ...Object.entries(d.best.params).map(([k, v]) => [k, fmtNum(v as Json)])
      ];
      parts.push(section('Best trial', table(['', ''], rows, { cls: 'mlops-compact mlops-kv mlops-best-trial' })));
    } else {
      parts.push(section('Best trial', note(d.running ? 'no trial has finished yet' : 'no trial finished')));
    }
    const pictures = section(
      'Pictures',
      ...(d.notes || []).map((n: string) => note(n)),
      ...CHARTS.filter(([key]) => d.charts[key]).map(([key]) => this.hosts[key]),
      d.charts.parallel ? null : note('parallel coordinates, slices and importances need two finished trials')
    );
    parts.push(pictures);
    const rows = d.trials
      .slice()
      .reverse()
      .map((t: Json) => [
        String(t.number),
        badge(t.state === 'complete' ? 'complete' : t.state === 'fail' ? 'failed' : t.state, STATE_BADGE[t.state] || 'version'),
        t.value !== null ? fmtNum(t.value) : '',
        ...d.params.map((p: string) => (p in t.params ? fmtNum(t.params[p]) : '')),
        t.seconds !== null ? fmtDuration(t.seconds) : '',
        t.run ? link(t.run.name, () => this.ctx.nav.openRun(t.run.run_id, t.run.name)) : ''
      ]);
    const n = d.params.length;
    parts.push(
      section(
        `Trials (${d.total})`,
        rows.length
          ? table(['trial', 'state', d.metric, ...d.params, 'took', 'run'], rows, {
              num: [0, 2, ...d.params.map((_: string, i: number) => i + 3), n + 3],
              cls: 'mlops-trials'
            })
          : note('no trial yet'),
        d.total > d.trials.length ? note(`the newest ${d.trials.length}`) : null
      )
    );
    this.node.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
    await Promise.all(CHARTS.filter(([key]) => d.charts[key]).map(([key]) => this.ctx.charts.show(this.hosts[key], d.charts[key])));
    if (d.running) {
      this.timer = window.setTimeout(() => {
        if (this.isAttached && this.isVisible) {
          void this.reload();
        }
      }, POLL_MS);
    }
  }
}
