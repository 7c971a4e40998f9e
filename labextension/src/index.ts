/**
 * mlops-jupyter's JupyterLab panel: the project's runs, data versions, models, jobs and studies in the
 * left sidebar, a detail view of each in the main area, a "Promote…" button on notebooks, and
 * every action in the command palette. Everything it shows comes from the server extension's
 * routes under /mlops/api/; its charts are the server's Vega-Lite specs drawn by JupyterLab.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, IThemeManager, MainAreaWidget, ToolbarButton } from '@jupyterlab/apputils';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { DatasetView, ModelView } from './assetviews';
import { Charts } from './charts';
import { JobView } from './jobview';
import { chartOutputs } from './outputs';
import { MlopsPanel, Section } from './panel';
import { promote } from './promote';
import { CompareView, RunView } from './runviews';
import { StudyView } from './studyview';
import { CardView } from './cardview';
import { Json } from './util';
import { DetailView, IContext, INav, openDetail } from './views';

function safeId(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, c => `_${c.charCodeAt(0).toString(16)}`);
}

function makeNav(ctx: IContext): INav {
  return {
    openRun: (runId, name) =>
      openDetail(ctx, `mlops-run-${safeId(runId)}`, `Run ${name || runId.slice(0, 8)}`, () => new RunView(ctx, runId)),
    openModel: (name, version) =>
      openDetail(ctx, `mlops-model-${safeId(name)}`, `Model ${name}`, () => new ModelView(ctx, name, version), view => {
        view.version = version ?? view.version;
      }),
    openDataset: (name, version) =>
      openDetail(ctx, `mlops-dataset-${safeId(name)}`, `Data ${name}`, () => new DatasetView(ctx, name, version), view => {
        view.version = version ?? view.version;
      }),
    openJob: name => openDetail(ctx, `mlops-job-${safeId(name)}`, `Job ${name}`, () => new JobView(ctx, name)),
    openStudy: name => openDetail(ctx, `mlops-study-${safeId(name)}`, `Study ${name}`, () => new StudyView(ctx, name)),
    openCard: (name, version) =>
      openDetail(ctx, `mlops-card-${safeId(name)}-${version}`, `Card ${name}@v${version}`, () => new CardView(ctx, name, version)),
    compare: runIds =>
      openDetail(ctx, 'mlops-compare', `Compare ${runIds.length} runs`, () => new CompareView(ctx, runIds), view => {
        view.runIds = runIds;
        const tab = Array.from(ctx.app.shell.widgets('main')).find(w => w.id === 'mlops-compare');
        if (tab) {
          tab.title.label = `Compare ${runIds.length} runs`;
        }
      })
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlops-jupyter:plugin',
  description: 'Runs, data versions, models and jobs of the project in a sidebar with detail views; promote a notebook.',
  autoStart: true,
  optional: [ILabShell, ICommandPalette, INotebookTracker, IRenderMimeRegistry, IEditorLanguageRegistry, IThemeManager],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    palette: ICommandPalette | null,
    tracker: INotebookTracker | null,
    rendermime: IRenderMimeRegistry | null,
    languages: IEditorLanguageRegistry | null,
    themes: IThemeManager | null
  ) => {
    let panel: MlopsPanel | null = null;
    const ctx: IContext = {
      app,
      charts: new Charts(rendermime, themes),
      languages,
      nav: null as unknown as INav,
      changed: () => {
        void panel?.refresh(true);
        for (const w of app.shell.widgets('main')) {
          // the open detail views show the change too (an alias moved, a job started)
          if (w.id.startsWith('mlops-') && w instanceof MainAreaWidget && w.content instanceof DetailView) {
            void w.content.reload();
          }
        }
      }
    };
    ctx.nav = makeNav(ctx);
    // chart outputs of notebooks, drawn again when the theme changes (before any notebook opens,
    // so each notebook's copy of the registry has it)
    rendermime?.addFactory(chartOutputs(ctx.charts), 40);
    panel = new MlopsPanel(ctx);
    const sidebar = panel;
    app.shell.add(sidebar, 'left', { rank: 600 });
    const show = (s: Section) => {
      app.shell.activateById(sidebar.id);
      sidebar.showSection(s);
    };
    const category = 'MLOps';
    const commands: [string, string, () => unknown][] = [
      ['mlops:open-panel', 'MLOps: Show runs, data, models, jobs and studies', () => app.shell.activateById(sidebar.id)],
      ['mlops:refresh', 'MLOps: Refresh the panel', () => sidebar.refresh()],
      ['mlops:promote', 'MLOps: Promote this notebook…', () => promote(tracker, () => void sidebar.refresh(true))],
      ['mlops:compare', 'MLOps: Compare selected runs', () => sidebar.compare()],
      ['mlops:show-runs', 'MLOps: Runs', () => show('runs')],
      ['mlops:show-data', 'MLOps: Data versions', () => show('data')],
      ['mlops:show-models', 'MLOps: Models', () => show('models')],
      ['mlops:show-jobs', 'MLOps: Jobs', () => show('jobs')],
      ['mlops:show-studies', 'MLOps: Tuning studies', () => show('studies')]
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
