/**
 * The detail views' common parts: what they are given (the app, the chart drawer, the editor's
 * language registry, and a way to open each other), the main-area tab they live in, and the two
 * confirmations that guard an alias: moving one by hand, and running a job that may move one.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  InputDialog,
  MainAreaWidget,
  ToolbarButton,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { Charts } from './charts';
import { ICON, Json, api, el, fmtNum } from './util';

/** Opening one view from another. */
export interface INav {
  openRun(runId: string, name?: string): void;
  openModel(name: string, version?: number): void;
  openDataset(name: string, version?: number): void;
  openJob(name: string): void;
  openStudy(name: string): void;
  openCard(name: string, version: number): void;
  compare(runIds: string[]): void;
}

export interface IContext {
  app: JupyterFrontEnd;
  charts: Charts;
  languages: IEditorLanguageRegistry | null;
  nav: INav;
  /** Called after something changed the project (an alias moved, a job started). */
  changed(): void;
}

/** A view in a main-area tab: `load()` fetches and draws it; errors show as one line. */
export abstract class DetailView extends Widget {
  private loading = false;

  constructor(protected ctx: IContext) {
    super();
    this.addClass('mlops-detail');
  }

  protected abstract load(): Promise<void>;

  async reload(): Promise<void> {
    if (this.loading) {
      return;
    }
    this.loading = true;
    const scroll = this.node.scrollTop;
    try {
      await this.load();
      this.node.scrollTop = scroll; // a refresh keeps the reader's place
    } catch (e) {
      this.node.replaceChildren(el('div', { class: 'mlops-empty mlops-error' }, `could not load: ${(e as Error).message}`));
    } finally {
      this.loading = false;
      this.ctx.charts.prune();
    }
  }
}

/** Show the view with *id* (made by *make* the first time) in the main area, and load it. */
export function openDetail<T extends DetailView>(ctx: IContext, id: string, label: string, make: () => T, update?: (view: T) => void): void {
  const existing = Array.from(ctx.app.shell.widgets('main')).find(w => w.id === id) as MainAreaWidget<T> | undefined;
  if (existing) {
    update?.(existing.content);
    ctx.app.shell.activateById(id);
    void existing.content.reload();
    return;
  }
  const content = make();
  const widget = new MainAreaWidget({ content });
  widget.id = id;
  widget.title.label = label;
  widget.title.caption = label;
  widget.title.closable = true;
  widget.title.icon = ICON;
  widget.toolbar.addItem(
    'refresh',
    new ToolbarButton({ icon: refreshIcon, tooltip: 'Refresh', onClick: () => void content.reload() })
  );
  ctx.app.shell.add(widget, 'main');
  ctx.app.shell.activateById(widget.id);
  void content.reload();
}

/** A heading with badges and a line under it. */
export function header(title: string, badges: (Node | null)[], ...lines: (Node | string | null)[]): HTMLElement {
  return el(
    'header',
    { class: 'mlops-detail-head' },
    el('div', { class: 'mlops-detail-title' }, el('h2', {}, title), ...badges),
    ...lines.map(l => (l === null ? null : el('div', { class: 'mlops-row-sub' }, l)))
  );
}

/** What running a job may do to its model's alias, in words (null: nothing). */
export function moveText(moves: Json): string | null {
  if (!moves) {
    return null;
  }
  const target = `${moves.model}@${moves.alias}`;
  const now = moves.version ? `now v${moves.version}` : 'not set yet';
  if (!moves.version) {
    return `The run registers a new version of ${moves.model}; ${target} is not set yet, so the new version takes it.`;
  }
  if (!moves.metric) {
    return `The run registers a new version of ${moves.model} and compares no metric: ${target} (${now}) moves to the new version.`;
  }
  const word = moves.direction === 'min' ? 'lower' : 'higher';
  const champion = moves.value !== null && moves.value !== undefined ? `, ${moves.metric} ${fmtNum(moves.value)}` : '';
  return (
    `The run registers a new version of ${moves.model} and compares its ${moves.metric} (${word} is better) ` +
    `with ${target} (${now}${champion}). If the new version is better, ${target} moves to it.`
  );
}

/** Start a job after a confirmation when it may move an alias; true when it started. */
export async function runJobNow(ctx: IContext, job: Json): Promise<boolean> {
  const text = moveText(job.moves);
  if (text) {
    const ok = await showDialog({
      title: `Run ${job.name} now? It may move ${job.moves.model}@${job.moves.alias}`,
      body: new Widget({ node: el('div', { class: 'mlops-confirm' }, text) }),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Run now' })]
    });
    if (!ok.button.accept) {
      return false;
    }
  }
  try {
    await api(`jobs/${encodeURIComponent(job.name)}/run`, { method: 'POST' });
    ctx.changed();
    return true;
  } catch (e) {
    void showErrorMessage('Run job', (e as Error).message);
    return false;
  }
}

/** Point an alias of *name* at *version*, after asking which alias and confirming the move. */
export async function setAlias(ctx: IContext, name: string, version: number, aliases: Record<string, number>): Promise<boolean> {
  const got = await InputDialog.getText({ title: `Alias for ${name}@v${version}`, text: 'production' });
  if (!got.button.accept || !got.value) {
    return false;
  }
  const alias = got.value.trim();
  const from = aliases[alias];
  const ok = await showDialog({
    title: 'Move alias?',
    body: from ? `${name}@${alias}: v${from} → v${version}` : `${name}@${alias} → v${version}`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Move' })]
  });
  if (!ok.button.accept) {
    return false;
  }
  try {
    await api(`models/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias)}`, {
      method: 'PUT',
      body: JSON.stringify({ version })
    });
    ctx.changed();
    return true;
  } catch (e) {
    void showErrorMessage('Alias', (e as Error).message);
    return false;
  }
}
