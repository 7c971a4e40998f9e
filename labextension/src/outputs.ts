/**
 * mlops-jupyter's charts in notebook outputs, in the current theme.
 *
 * A chart output carries its Vega-Lite spec (`application/vnd.vegalite.v5+json`), an SVG copy for
 * places that draw no Vega-Lite, and a small `application/vnd.mlops.chart+json` marker. With this
 * extension installed the marker's renderer, ranked ahead of Vega-Lite's, draws the same spec
 * through JupyterLab's Vega-Lite renderer and draws it again when the theme changes: JupyterLab
 * leaves outputs drawn in the theme they were first drawn in. Without the extension (classic
 * notebook, other front ends) the marker is ignored and the spec or the SVG shows as usual.
 */
import { IRenderMime } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { Charts, VEGALITE_MIME } from './charts';
import { Json } from './util';

export const CHART_MIME = 'application/vnd.mlops.chart+json';

class ThemedChart extends Widget implements IRenderMime.IRenderer {
  constructor(private charts: Charts) {
    super();
    this.addClass('mlops-output-chart');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const spec = model.data[VEGALITE_MIME] as Json | undefined;
    if (!spec) {
      this.node.textContent = 'a chart without its Vega-Lite specification';
      return;
    }
    await this.charts.show(this.node, spec);
  }
}

/** The renderer factory of chart outputs (rank 40: ahead of Vega-Lite's own). */
export function chartOutputs(charts: Charts): IRenderMime.IRendererFactory {
  return {
    safe: true,
    mimeTypes: [CHART_MIME],
    defaultRank: 40,
    createRenderer: () => new ThemedChart(charts)
  };
}
