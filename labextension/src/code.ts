/**
 * Captured cells as JupyterLab shows code: parsed by the editor's own language registry
 * (CodeMirror 6) and coloured by its highlight style, whose colours are the theme's
 * `--jp-mirror-editor-*` variables, so light and dark themes both apply.
 */
import { IEditorLanguageRegistry, jupyterHighlightStyle } from '@jupyterlab/codemirror';

import { el } from './util';

let styled = false;

/** The highlight style's rules, on the page once (JupyterLab mounts them with its first
 * editor; the panel may show code before any editor exists). */
function ensureStyle(): void {
  if (styled) {
    return;
  }
  styled = true;
  const rules = jupyterHighlightStyle.module?.getRules();
  if (rules) {
    document.head.append(el('style', { 'data-mlops': 'code-highlight' }, rules));
  }
}

/** A `<pre>` of *code* in *language*, highlighted when the registry knows the language. */
export function codeBlock(languages: IEditorLanguageRegistry | null, code: string, language = 'python'): HTMLElement {
  const pre = el('pre', { class: 'mlops-code cm-s-jupyter', 'data-language': language });
  const lang = languages?.findBest(language) ?? null;
  if (!languages || !lang) {
    pre.textContent = code;
    return pre;
  }
  ensureStyle();
  languages.highlight(code, lang, pre).catch(() => {
    pre.textContent = code;
  });
  return pre;
}
