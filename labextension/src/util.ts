/**
 * What every view of the panel shares: requests to the server extension's routes, building DOM,
 * and writing times, numbers and sizes one way everywhere.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';

export const ICON = new LabIcon({
  name: 'mlops-jupyter:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
    '<path d="M3 19h18v2H3zM5 10h3v7H5zM10.5 6h3v11h-3zM16 3h3v14h-3z"/></g></svg>'
});

export type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The address of one of our routes (path segments are encoded by the caller). */
export function apiUrl(path: string): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, 'mlops', 'api', path);
}

/** A request to our routes, with Jupyter's own token and XSRF handling; errors carry the
 * server's one-line message. */
export async function api(path: string, init: RequestInit = {}): Promise<Json> {
  const settings = ServerConnection.makeSettings();
  const response = await ServerConnection.makeRequest(apiUrl(path), init, settings);
  const text = await response.text();
  let data: Json = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text };
  }
  if (!response.ok) {
    throw new Error(data.error || `${response.status} ${response.statusText}`);
  }
  return data;
}

/** A query string from the entries whose value is set. */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') {
      q.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
    }
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') {
      node.className = v;
    } else {
      node.setAttribute(k, v);
    }
  }
  for (const c of children) {
    if (c !== null && c !== undefined && c !== false) {
      node.append(c);
    }
  }
  return node;
}

/** A link that runs *action* instead of navigating. */
export function link(text: string, action: () => void, attrs: Record<string, string> = {}): HTMLAnchorElement {
  const a = el('a', { href: '#', class: 'mlops-link', ...attrs }, text);
  a.onclick = e => {
    e.preventDefault();
    action();
  };
  return a;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** A time (seconds since the epoch) in local time, as notebooks write it: `2026-11-30 10:06`,
 * with seconds in the detail views. */
export function fmtTime(ts: number | null | undefined, seconds = false): string {
  if (ts === null || ts === undefined || !isFinite(ts)) {
    return '';
  }
  const d = new Date(ts * 1000);
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? ':' + pad(d.getSeconds()) : ''}`;
  return `${day} ${time}`;
}

/** A clock time of today (the status line): `10:06:56`. */
export function fmtClock(d: Date): string {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const m = Math.floor(seconds / 60);
  if (m < 60) {
    return `${m} min ${pad(Math.floor(seconds % 60))} s`;
  }
  return `${Math.floor(m / 60)} h ${pad(m % 60)} min`;
}

export function fmtNum(v: Json): string {
  if (v === null || v === undefined) {
    return '';
  }
  if (typeof v !== 'number') {
    return String(v);
  }
  if (Number.isInteger(v) && Math.abs(v) < 1e9) {
    return String(v);
  }
  return Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : String(+v.toPrecision(4));
}

export function fmtSize(n: number | null | undefined): string {
  if (n === null || n === undefined) {
    return '';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i ? x.toFixed(1) : x} ${units[i]}`;
}

export function badge(text: string, kind: string, title = ''): HTMLElement {
  return el('span', { class: `mlops-badge mlops-badge-${kind}`, ...(title ? { title } : {}) }, text);
}

/** A small line of *values* (the last points of a metric). */
export function sparkline(values: number[], title = ''): SVGSVGElement | null {
  const vals = values.filter(v => typeof v === 'number' && isFinite(v));
  if (vals.length < 2) {
    return null;
  }
  const w = 64;
  const h = 16;
  const lo = Math.min(...vals);
  const span = Math.max(...vals) - lo || 1;
  const pts = vals
    .map((v, i) => `${((i / (vals.length - 1)) * (w - 2) + 1).toFixed(1)},${(h - 1 - ((v - lo) / span) * (h - 2)).toFixed(1)}`)
    .join(' ');
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', String(w));
  svg.setAttribute('height', String(h));
  svg.setAttribute('class', 'mlops-spark');
  if (title) {
    const t = document.createElementNS(ns, 'title');
    t.textContent = title;
    svg.append(t);
  }
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', pts);
  svg.append(line);
  return svg;
}

type Cell = Node | string | null | undefined;

/** A table: header cells, then rows of cells; `num` columns right-aligned. */
export function table(headers: string[], rows: Cell[][], opts: { num?: number[]; cls?: string } = {}): HTMLTableElement {
  const num = new Set(opts.num || []);
  const head = headers.some(h => h)
    ? el('thead', {}, el('tr', {}, ...headers.map((h, i) => el('th', num.has(i) ? { class: 'mlops-num' } : {}, h))))
    : null; // a table of names and values needs no header
  const body = rows.map(r =>
    el('tr', {}, ...r.map((c, i) => el('td', num.has(i) ? { class: 'mlops-num' } : {}, c ?? '')))
  );
  return el('table', { class: `mlops-table ${opts.cls || ''}`.trim() }, head, el('tbody', {}, ...body));
}

/** A titled part of a detail view. */
export function section(title: string, ...children: (Node | string | null | undefined | false)[]): HTMLElement {
  return el('section', { class: 'mlops-section' }, el('h3', { class: 'mlops-h' }, title), ...children);
}

export function note(text: string): HTMLElement {
  return el('div', { class: 'mlops-note' }, text);
}
