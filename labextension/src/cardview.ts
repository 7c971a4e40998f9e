/**
 * A model version's card in a main-area tab: the page the server draws (the same card as
 * `mlops model card` and the model server's `GET /card`), shown in a sandboxed frame (no script
 * runs in it) with the theme's colours, so its tables and charts follow light and dark (drawn again
 * when the theme changes).
 */
import { DetailView, IContext } from './views';
import { api, el } from './util';

/** The theme's colours the card's styles read (the charts' text and grid lines among them). */
const THEME_VARS = [
  '--jp-layout-color0',
  '--jp-layout-color1',
  '--jp-layout-color2',
  '--jp-ui-font-color0',
  '--jp-ui-font-color1',
  '--jp-ui-font-color2',
  '--jp-border-color1',
  '--jp-border-color2',
  '--jp-warn-color3',
  '--jp-ui-font-family',
  '--jp-code-font-family'
];

export function themeStyle(): string {
  const css = getComputedStyle(document.body);
  const vars = THEME_VARS.map(v => `${v}:${css.getPropertyValue(v).trim()}`)
    .filter(v => !v.endsWith(':'))
    .join(';');
  return `<style>:root{${vars}}body{background:var(--jp-layout-color0);color:var(--jp-ui-font-color1)}</style>`;
}

export class CardView extends DetailView {
  readonly frame: HTMLIFrameElement;
  /** The card is drawn again when the theme changes (its colours are written into the page). */
  private readonly themeWatch = new MutationObserver(() => window.setTimeout(() => void this.reload(), 300));

  constructor(
    ctx: IContext,
    readonly name: string,
    public version: number
  ) {
    super(ctx);
    this.addClass('mlops-card-view');
    this.frame = el('iframe', { class: 'mlops-card-frame', sandbox: '', title: `Model card ${name}@v${version}` });
    this.themeWatch.observe(document.body, { attributes: true, attributeFilter: ['data-jp-theme-name', 'data-jp-theme-light'] });
  }

  dispose(): void {
    this.themeWatch.disconnect();
    super.dispose();
  }

  protected async load(): Promise<void> {
    const d = await api(`models/${encodeURIComponent(this.name)}/card?version=${this.version}`);
    this.frame.srcdoc = (d.html as string).replace('</head>', `${themeStyle()}</head>`);
    this.frame.dataset.version = d.version;
    if (this.frame.parentNode !== this.node) {
      this.node.replaceChildren(this.frame);
    }
  }
}
