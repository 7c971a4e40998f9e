/**
 * A job in detail: what a run does (and which alias it may move), its parameters, its retraining
 * rule and schedule, and its executions with the decision each batch took.
 */
import { DetailView, IContext, header, moveText, runJobNow } from './views';
import { Json, api, badge, el, fmtDuration, fmtNum, fmtTime, link, note, section, table } from './util';

const POLL_MS = 3000;

export class JobView extends DetailView {
  private timer: number | undefined;

  constructor(
    ctx: IContext,
    readonly name: string
  ) {
    super(ctx);
    this.addClass('mlops-job-detail');
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  protected async load(): Promise<void> {
    window.clearTimeout(this.timer);
    const d = await api(`jobs/${encodeURIComponent(this.name)}`);
    const running = d.running?.status === 'running' || d.executions.some((x: Json) => x.status === 'running');
    const runNow = el('button', { class: 'mlops-button mlops-run-now' }, 'Run now') as HTMLButtonElement;
    runNow.disabled = d.running?.status === 'running';
    runNow.onclick = async () => {
      if (await runJobNow(this.ctx, d)) {
        await this.reload();
      }
    };
    const what = d.model
      ? `registers ${d.model}, champion ${d.model}@${d.alias}${d.metric ? ` judged on ${d.metric} (${d.direction === 'min' ? 'lower' : 'higher'} is better)` : ''}`
      : 'a batch job (registers no model)';
    const head = header(
      d.name,
      [running ? badge('running', 'running') : null, runNow],
      what,
      d.source ? el('span', {}, 'promoted from ', el('code', {}, d.source)) : null,
      d.running?.status === 'failed' ? el('span', { class: 'mlops-error' }, `last Run now failed: ${d.running.error}`) : null
    );
    const parts: (HTMLElement | null)[] = [head];
    const moves = moveText(d.moves);
    if (moves) {
      parts.push(el('div', { class: 'mlops-callout' }, moves));
    }
    parts.push(
      section(
        'Parameters',
        d.parameters.length
          ? table(
              ['name', 'type', 'default', 'help'],
              d.parameters.map((p: Json) => [el('code', {}, p.name), p.type, p.default === null ? '' : fmtNum(p.default), p.help || '']),
              { cls: 'mlops-compact' }
            )
          : note('no parameters: the notebook runs as it is')
      )
    );
    const rule: (string | Node)[][] = [];
    if (d.retrain.retrain_when) {
      rule.push(['retrain when', el('code', {}, d.retrain.retrain_when)]);
      rule.push(['over the last', d.retrain.window || '24h']);
    }
    for (const [k, v] of Object.entries(d.retrain)) {
      if (k !== 'retrain_when' && k !== 'window') {
        rule.push([k, typeof v === 'object' ? JSON.stringify(v) : String(v)]);
      }
    }
    if (d.schedule) {
      rule.push(['schedule (cron)', el('code', {}, d.schedule)]);
    }
    if (d.image) {
      rule.push(['image', el('code', {}, d.image)]);
    }
    parts.push(section('Retraining', rule.length ? table(['', ''], rule, { cls: 'mlops-compact mlops-kv' }) : note('no rule: the job runs when asked (Run now, mlops job run)')));
    const rows = d.executions.map((x: Json) => [
      badge(x.status, x.status),
      link(x.name, () => this.ctx.nav.openRun(x.run_id, x.name)),
      fmtTime(x.start_time, true),
      x.end_time ? fmtDuration(x.end_time - x.start_time) : '',
      [x.kind === 'retrain' ? 'batch' : '', x.trigger || ''].filter(Boolean).join(', '),
      Object.entries(x.params || {})
        .map(([k, v]) => `${k}=${fmtNum(v)}`)
        .join(' ') || el('span', { class: 'mlops-row-sub' }, 'defaults'),
      x.metric !== null ? fmtNum(x.metric) : '',
      x.decision
        ? el(
            'span',
            {},
            badge(x.decision, x.decision === 'promoted' ? 'alias' : 'version'),
            x.challenger ? ' ' : '',
            x.challenger ? this.modelLink(x.challenger) : ''
          )
        : x.error
          ? el('span', { class: 'mlops-error', title: x.error }, x.error)
          : ''
    ]);
    parts.push(
      section(
        `Executions (${d.executions_total})`,
        rows.length
          ? table(['status', 'run', 'started', 'took', 'trigger', 'params', d.metric || 'metric', 'decision'], rows, { num: [3, 6] })
          : note('never run'),
        d.executions_total > d.executions.length ? note(`the newest ${d.executions.length}`) : null
      )
    );
    this.node.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
    if (running) {
      this.timer = window.setTimeout(() => {
        if (this.isAttached && this.isVisible) {
          void this.reload();
        }
      }, POLL_MS);
    }
  }

  private modelLink(ref: string): HTMLElement {
    const [name, v] = ref.split('@v');
    return link(ref, () => this.ctx.nav.openModel(name, v ? Number(v) : undefined));
  }
}
