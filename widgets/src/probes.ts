// The probe panel: a probe's accuracy next to every control with CI whiskers and chance lines
// (one report), or per-layer curves of probe vs controls with significant layers marked (a layer
// sweep). Every number is also in the table, as text.

import type { AnyModel, AnyWidget, RenderProps } from '@anywidget/types';
import './probes.css';
import { sizeCanvas, themeColor } from './lib/canvas';
import { fmt, h, table, texts } from './lib/dom';

/** The traits of `ProbePanel` (interp_magics/widgets/probes.py). */
export interface ProbeTraits {
  data: ProbeData;
}

interface Bar {
  name: string;
  value: number;
  lo: number | null;
  hi: number | null;
}

interface Series {
  name: string;
  values: number[];
  lo?: number[];
  hi?: number[];
}

interface ProbeData {
  mode: 'single' | 'layers';
  title: string;
  colors: string[];
  majority: number;
  frequency: number;
  bars?: Bar[];
  layers?: string[];
  series?: Series[];
  significant?: boolean[];
  columns: string[];
  rows: (string | number | null)[][];
  notes: string[];
}

/** Where the chart was drawn, for reading the pointer back. */
interface Layout {
  kind: 'bars' | 'layers';
  x0: number;
  x1: number;
  y0: number;
}

interface View {
  model: AnyModel<ProbeTraits>;
  root: HTMLDivElement;
  title: HTMLDivElement;
  canvas: HTMLCanvasElement;
  legend: HTMLDivElement;
  live: HTMLDivElement;
  table: HTMLDivElement;
  notes: HTMLDivElement;
  layout: Layout | null;
}

/** Theme colours of the chart's text and lines. */
interface Ink {
  fg: string;
  muted: string;
}

type Scale = (v: number) => number;

const W = 560;
const ROW_H = 26; // one bar
const TICKS = [0, 0.25, 0.5, 0.75, 1];

/** Return the labels without their common dotted prefix ("resid_post.3" -> "3"), and the prefix. */
export function shorten(labels: string[]): { prefix: string; short: string[] } {
  if (labels.length < 2) return { prefix: '', short: labels };
  let prefix = labels[0];
  for (const l of labels) while (!l.startsWith(prefix)) prefix = prefix.slice(0, -1);
  prefix = prefix.slice(0, prefix.lastIndexOf('.') + 1);
  return { prefix, short: labels.map(l => l.slice(prefix.length) || l) };
}

function buildView(model: AnyModel<ProbeTraits>, el: HTMLElement): View {
  const root = h('div', 'im-probe');
  el.appendChild(root);
  const title = h('div', 'im-probe-title');
  const canvas = h('canvas', 'im-probe-chart', {
    tabindex: '0',
    role: 'img',
    'data-role': 'chart'
  });
  const legend = h('div', 'im-probe-legend');
  const live = h('div', 'im-probe-live', { 'aria-live': 'polite', 'data-role': 'live' });
  const table = h('div', 'im-probe-table');
  const notes = h('div', 'im-probe-notes');
  root.append(title, canvas, legend, live, table, notes);
  return { model, root, title, canvas, legend, live, table, notes, layout: null };
}

function color(d: ProbeData, i: number): string {
  return d.colors[i % d.colors.length];
}

function ink(v: View): Ink {
  return {
    fg: themeColor(v.root, '--im-fg', '#1f1f1f'),
    muted: themeColor(v.root, '--im-muted', '#616161')
  };
}

function setup(v: View, height: number): CanvasRenderingContext2D | null {
  const ctx = sizeCanvas(v.canvas, W, height);
  if (ctx) ctx.font = '11px sans-serif';
  return ctx;
}

/** Draw one report: a bar per probe and control, with CI whiskers and the chance lines. */
function drawBars(v: View, d: ProbeData): void {
  const bars = d.bars ?? [];
  const x0 = 150;
  const x1 = W - 20;
  const y0 = 30; // room above the bars for the chance-line labels
  const y1 = y0 + bars.length * ROW_H;
  const ctx = setup(v, y1 + 30);
  v.layout = { kind: 'bars', x0, x1, y0 };
  const described = bars.map(b => `${b.name} ${fmt(b.value, 3)}`).join(', ');
  v.canvas.setAttribute('aria-label', `${d.title}: ${described}`);
  if (!ctx) return;
  const { fg, muted } = ink(v);
  const X: Scale = x => x0 + x * (x1 - x0);
  bars.forEach((b, i) => {
    const y = y0 + i * ROW_H;
    ctx.fillStyle = color(d, i);
    ctx.fillRect(X(0), y + 5, X(b.value) - X(0), ROW_H - 10);
    if (b.lo !== null && b.hi !== null) whisker(ctx, X(b.lo), X(b.hi), y, fg);
    ctx.fillStyle = fg;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.fillText(b.name, x0 - 8, y + ROW_H / 2);
  });
  chanceLines(ctx, d, x => [X(x), y0, X(x), y1], muted);
  ctx.fillStyle = muted;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (const t of TICKS) ctx.fillText(String(t), X(t), y1 + 4);
}

/** Draw a confidence interval from lo to hi across the bar row at y. */
function whisker(
  ctx: CanvasRenderingContext2D,
  lo: number,
  hi: number,
  y: number,
  fg: string
): void {
  ctx.strokeStyle = fg;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ctx.moveTo(lo, y + ROW_H / 2);
  ctx.lineTo(hi, y + ROW_H / 2);
  ctx.moveTo(lo, y + 8);
  ctx.lineTo(lo, y + ROW_H - 8);
  ctx.moveTo(hi, y + 8);
  ctx.lineTo(hi, y + ROW_H - 8);
  ctx.stroke();
}

function chanceLines(
  ctx: CanvasRenderingContext2D,
  d: ProbeData,
  line: (v: number) => [number, number, number, number],
  muted: string
): void {
  const marks: [number, number[], string][] = [
    [d.majority, [5, 3], `majority ${fmt(d.majority, 3)}`],
    [d.frequency, [1, 3], `frequency guess ${fmt(d.frequency, 3)}`]
  ];
  marks.forEach(([v, dash, label], i) => {
    const [ax, ay, bx, by] = line(v);
    ctx.strokeStyle = muted;
    ctx.setLineDash(dash);
    ctx.beginPath();
    ctx.moveTo(ax, ay);
    ctx.lineTo(bx, by);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = muted;
    ctx.textBaseline = 'bottom';
    if (ax === bx) {
      // a vertical line (bars): label above the plot, the two labels on separate rows
      ctx.textAlign = 'center';
      ctx.fillText(label, ax, ay - 2 - i * 12);
    } else {
      // a horizontal line (layers): label to the right, the two labels on separate rows
      ctx.textAlign = 'left';
      ctx.fillText(label, bx + 4, by + 4 + i * 12);
    }
  });
}

/** Draw a layer sweep: accuracy by layer of the probe and each control, significance marked. */
function drawLayers(v: View, d: ProbeData): void {
  const layers = d.layers ?? [];
  const x0 = 44;
  const x1 = W - 140; // room on the right for the chance-line labels
  const y0 = 12;
  const y1 = 230;
  const ctx = setup(v, y1 + 34);
  v.layout = { kind: 'layers', x0, x1, y0 };
  const significant = (d.significant ?? []).filter(Boolean).length;
  v.canvas.setAttribute(
    'aria-label',
    `${d.title}: probe accuracy by layer, ${significant} of ${layers.length} layers ` +
      'significant after correction'
  );
  if (!ctx) return;
  const { fg, muted } = ink(v);
  const n = Math.max(1, layers.length - 1);
  const X: Scale = i => x0 + (layers.length === 1 ? 0.5 : i / n) * (x1 - x0);
  const Y: Scale = y => y1 - y * (y1 - y0);
  layerAxes(ctx, layers, X, Y, { x0, x1, y0, y1 }, muted);
  (d.series ?? []).forEach((s, si) => drawSeries(ctx, s, color(d, si), si === 0, X, Y));
  const probe = d.series?.[0];
  (d.significant ?? []).forEach((sig, i) => {
    if (!sig || !probe) return;
    ctx.fillStyle = fg;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    ctx.fillText('*', X(i), Y(probe.values[i]) - 3);
  });
  chanceLines(ctx, d, y => [x0, Y(y), x1, Y(y)], muted);
}

/** Draw the frame of a layer sweep, accuracy ticks down the left and layer names across. */
function layerAxes(
  ctx: CanvasRenderingContext2D,
  layers: string[],
  X: Scale,
  Y: Scale,
  box: { x0: number; x1: number; y0: number; y1: number },
  muted: string
): void {
  const { x0, x1, y0, y1 } = box;
  ctx.strokeStyle = muted;
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.fillStyle = muted;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const t of TICKS) ctx.fillText(String(t), x0 - 4, Y(t));
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const { prefix, short } = shorten(layers);
  short.forEach((l, i) => ctx.fillText(l, X(i), y1 + 4));
  if (prefix) ctx.fillText(prefix.replace(/\.$/, ''), (x0 + x1) / 2, y1 + 18);
}

/** Draw one series across the layers: its CI band (when it has one) and its line. */
function drawSeries(
  ctx: CanvasRenderingContext2D,
  s: Series,
  c: string,
  isProbe: boolean,
  X: Scale,
  Y: Scale
): void {
  if (s.lo && s.hi) {
    ctx.fillStyle = c + '33';
    ctx.beginPath();
    s.hi.forEach((y, i) => (i ? ctx.lineTo(X(i), Y(y)) : ctx.moveTo(X(i), Y(y))));
    for (let i = s.lo.length - 1; i >= 0; i--) ctx.lineTo(X(i), Y(s.lo[i]));
    ctx.closePath();
    ctx.fill();
  }
  ctx.strokeStyle = c;
  ctx.lineWidth = isProbe ? 2 : 1.5;
  ctx.beginPath();
  s.values.forEach((y, i) => (i ? ctx.lineTo(X(i), Y(y)) : ctx.moveTo(X(i), Y(y))));
  ctx.stroke();
}

function fillLegend(v: View, d: ProbeData): void {
  const { legend } = v;
  legend.replaceChildren();
  const names =
    d.mode === 'single' ? (d.bars ?? []).map(b => b.name) : (d.series ?? []).map(s => s.name);
  names.forEach((name, i) => {
    const item = h('span', 'im-probe-key');
    const swatch = h('span', 'im-probe-swatch');
    swatch.style.background = color(d, i);
    item.append(swatch, document.createTextNode(name));
    legend.appendChild(item);
  });
  if (d.mode === 'layers') {
    legend.appendChild(h('span', 'im-probe-key', undefined, '* significant after correction'));
  }
}

function cellText(x: string | number | null): string {
  return x === null ? '' : typeof x === 'number' ? fmt(x, 4) : x;
}

/** Read out the bar or the layer under the pointer. */
function onMove(v: View, ev: MouseEvent): void {
  const d = v.model.get('data');
  const { layout, live } = v;
  if (!layout) return;
  const r = v.canvas.getBoundingClientRect();
  const x = ev.clientX - r.left;
  const y = ev.clientY - r.top;
  if (layout.kind === 'bars') {
    if (y < layout.y0) return;
    const b = (d.bars ?? [])[Math.floor((y - layout.y0) / ROW_H)];
    if (!b) return;
    const ci = b.lo !== null && b.hi !== null ? ` [95% CI ${fmt(b.lo, 3)}, ${fmt(b.hi, 3)}]` : '';
    live.textContent = `${b.name}: ${fmt(b.value, 4)}${ci}`;
    live.dataset.value = String(b.value);
    return;
  }
  const layers = d.layers ?? [];
  const n = Math.max(1, layers.length - 1);
  const i = Math.round(((x - layout.x0) / (layout.x1 - layout.x0)) * n);
  if (i < 0 || i >= layers.length) return;
  const parts = (d.series ?? []).map(s => `${s.name} ${fmt(s.values[i], 3)}`);
  live.textContent = `${layers[i]}: ${parts.join(', ')}${d.significant?.[i] ? ' (significant)' : ''}`;
  live.dataset.value = String(d.series?.[0]?.values[i] ?? '');
}

function draw(v: View): void {
  const d = v.model.get('data');
  v.title.textContent = d.title;
  if (d.mode === 'single') drawBars(v, d);
  else drawLayers(v, d);
  fillLegend(v, d);
  v.table.replaceChildren(
    table(
      'im-probe-grid',
      d.columns,
      d.rows.map(row => row.map(cellText))
    )
  );
  v.notes.replaceChildren(...texts('div', d.notes));
}

function render({ model, el }: RenderProps<ProbeTraits>): () => void {
  const v = buildView(model, el);
  const redraw = (): void => draw(v);
  v.canvas.addEventListener('mousemove', ev => onMove(v, ev));
  model.on('change:data', redraw);
  redraw();
  return () => {
    model.off('change:data', redraw);
    v.root.remove();
  };
}

export default { render } satisfies AnyWidget<ProbeTraits>;
