/**
 * The Promote dialog: a notebook becomes a parameterized job (`mlops promote`), its parameters
 * detected from the notebook and editable before the job folder is written.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { Json, api, el } from './util';

/** The dialog's form: job name, model, metric and the detected parameters. */
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

export async function promote(tracker: INotebookTracker | null, done: () => void): Promise<void> {
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
      params[k] =
        p && (p.type === 'int' || p.type === 'float') && raw !== '' && !isNaN(Number(raw))
          ? Number(raw)
          : p && p.type === 'bool'
            ? raw === 'true' || raw === 'True'
            : raw;
    }
    const made = await api('promote', {
      method: 'POST',
      body: JSON.stringify({ path, name: v.name, model: v.model, metric: v.metric, retrain_when: v.retrain_when, params })
    });
    done();
    await showDialog({
      title: `Promoted: jobs/${made.job}`,
      body: new Widget({ node: el('pre', { class: 'mlops-promoted' }, made.text) }),
      buttons: [Dialog.okButton()]
    });
  } catch (e) {
    void showErrorMessage('Promote', (e as Error).message);
  }
}
