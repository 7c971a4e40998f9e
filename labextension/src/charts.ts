/**
 * Charts in the panel: the Vega-Lite specs the server builds (the same specs a notebook shows),
 * drawn by JupyterLab's own renderer for `application/vnd.vegalite.v5+json` through the rendermime
 * registry, so they follow the theme as notebook outputs do. A theme change draws them again.
 */
import { IThemeManager } from '@jupyterlab/apputils';
import { IRenderMime, IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';

import { Json, el } from './util';

export const VEGALITE_MIME = 'application/vnd.vegalite.v5+json';

interface IShown {
  host: HTMLElement;
  spec: Json;
  actions: boolean;
  renderer: IRenderMime.IRenderer | null;
}

/** Draws specs into elements and keeps them drawn in the current theme. */
export class Charts {
  private shown = new Set<IShown>();

  constructor(
    private rendermime: IRenderMimeRegistry | null,
    themes: IThemeManager | null
  ) {
    themes?.themeChanged.connect(() => {
      // after JupyterLab has marked the body light or dark, which the renderer reads
      window.setTimeout(() => void this.redraw(), 0);
    });
  }

  /** Draw *spec* in *host* (replacing what it showed). *actions*: vega-embed's menu (export as
   * SVG or PNG, view the source); off for the small inline pictures. */
  async show(host: HTMLElement, spec: Json, actions = true): Promise<void> {
    for (const s of this.shown) {
      if (s.host === host) {
        this.drop(s);
      }
    }
    const item: IShown = { host, spec, actions, renderer: null };
    this.shown.add(item);
    await this.draw(item);
  }

  /** Forget the charts whose element left the page. */
  prune(): void {
    for (const s of this.shown) {
      if (!s.host.isConnected) {
        this.drop(s);
      }
    }
  }

  private drop(s: IShown): void {
    s.renderer?.dispose();
    this.shown.delete(s);
  }

  private async redraw(): Promise<void> {
    this.prune();
    await Promise.all(Array.from(this.shown).map(s => this.draw(s)));
  }

  private async draw(s: IShown): Promise<void> {
    if (!this.rendermime || !this.rendermime.mimeTypes.includes(VEGALITE_MIME)) {
      s.host.replaceChildren(el('div', { class: 'mlops-note' }, 'charts need JupyterLab’s Vega-Lite renderer'));
      return;
    }
    const renderer = this.rendermime.createRenderer(VEGALITE_MIME);
    const model = new MimeModel({
      data: { [VEGALITE_MIME]: s.spec },
      metadata: { [VEGALITE_MIME]: { embed_options: { actions: s.actions } } },
      trusted: true
    });
    renderer.addClass('mlops-chart');
    try {
      await renderer.renderModel(model);
    } catch (e) {
      renderer.dispose();
      s.host.replaceChildren(el('div', { class: 'mlops-note mlops-error' }, `could not draw the chart: ${(e as Error).message}`));
      return;
    }
    if (!this.shown.has(s)) {
      renderer.dispose(); // replaced while drawing
      return;
    }
    s.renderer?.dispose();
    s.renderer = renderer;
    s.host.replaceChildren(renderer.node);
    s.host.dataset.themeLight = document.body.dataset.jpThemeLight ?? 'true'; // the theme it was drawn in
  }
}
