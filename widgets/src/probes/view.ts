// The probe panel's view: the verdict in words first, then the chart (canvas, sized to the
// output area's width, drawn in the theme's colours read at draw time), its axis titles and
// legend, a live readout, the tables and the notes. Hovering or moving the keyboard cursor over
// a bar or a layer highlights it (and its table row) and shows a tooltip with its numbers.

import type { AnyModel, RenderProps } from '@anywidget/types';
import { sizeCanvas } from '../lib/canvas';
import { h, texts } from '../lib/dom';
import { onThemeChange, themeInk } from '../lib/theme';
import { Tooltip } from '../lib/tooltip';
import { barsChart } from './bars';
import { FONT_PX, type Chart, type Measure } from './chart';
import { layersChart } from './layers';
import { buildLegend } from './legend';
import { fitTables, highlightRow } from './table';
import type { ProbeData, ProbeTraits } from './types';

const Y_TITLE_W = 20; // the rotated y-axis title's column
const NO_LAYOUT_W = 560; // the width to lay out for when there is no layout (tests without a browser)
let views = 0;

interface View {
  model: AnyModel<ProbeTraits>;
  root: HTMLDivElement;
  verdict: HTMLDivElement;
  title: HTMLDivElement;
  plot: HTMLDivElement;
  yTitle: HTMLDivElement;
  canvas: HTMLCanvasElement;
  xTitle: HTMLDivElement;
  legend: HTMLDivElement;
  live: HTMLDivElement;
  tables: HTMLDivElement;
  notes: HTMLDivElement;
  tip: Tooltip;
  chart: Chart | null;
  width: number; // the plot width the chart was laid out for
  chartWidth: number; // the canvas width, CSS pixels
  hover: number | null;
  paintLegend: (ink: ReturnType<typeof themeInk>) => void;
}

function build(model: AnyModel<ProbeTraits>, el: HTMLElement): View {
  const root = h('div', 'im-probe');
  const verdict = h('div', 'im-probe-verdict', { 'data-role': 'verdict' });
  const title = h('div', 'im-probe-title');
  const plot = h('div', 'im-probe-plot');
  const yTitle = h('div', 'im-probe-ytitle', { 'data-role': 'y-title' });
  const canvas = h('canvas', 'im-probe-chart', {
    tabindex: '0',
    role: 'img',
    'data-role': 'chart'
  });
  const xTitle = h('div', 'im-probe-xtitle', { 'data-role': 'x-title' });
  plot.append(yTitle, canvas, xTitle);
  const legend = h('div', 'im-probe-legend');
  const live = h('div', 'im-probe-live', { 'aria-live': 'polite', 'data-role': 'live' });
  const tables = h('div', 'im-probe-tables');
  const notes = h('div', 'im-probe-notes');
  root.append(verdict, title, plot, legend, live, tables, notes);
  el.appendChild(root);
  const tip = new Tooltip(plot, `im-probe-tip-${++views}`);
  canvas.setAttribute('aria-describedby', tip.node.id);
  const view: View = {
    ...{ model, root, verdict, title, plot, yTitle, canvas, xTitle, legend, live, tables, notes },
    tip,
    chart: null,
    width: -1,
    chartWidth: NO_LAYOUT_W,
    hover: null,
    paintLegend: () => undefined
  };
  return view;
}

/** Put the data's words into the page: verdict, titles, legend, notes (no layout needed). */
function fill(v: View, d: ProbeData): void {
  const { headline, detail, level } = d.verdict;
  v.verdict.dataset.level = level;
  v.verdict.replaceChildren(
    h('div', 'im-probe-headline', undefined, keepTogether(headline)),
    h('div', 'im-probe-detail', undefined, keepTogether(detail))
  );
  v.title.textContent = d.title;
  const layers = d.mode === 'layers';
  v.yTitle.textContent = layers ? d.value_title : '';
  v.yTitle.hidden = !layers;
  v.xTitle.textContent = layers ? (d.x_title ?? 'layer') : d.value_title;
  v.plot.style.paddingLeft = layers ? `${Y_TITLE_W}px` : '0';
  v.canvas.setAttribute('aria-label', `${headline}. ${d.title}`);
  v.paintLegend = buildLegend(v.legend, d);
  v.notes.replaceChildren(...texts('div', d.notes.filter(Boolean)));
  v.live.textContent = hint(d);
}

/** Return what the readout says while nothing is pointed at: how to get the numbers. */
function hint(d: ProbeData): string {
  const what = d.mode === 'single' ? 'a bar' : 'a layer';
  return `Point at ${what}, or focus the chart and use the arrow keys, for its numbers.`;
}

/** Return `text` with "p < 0.01" and "p = 0.76" kept on one line (no-break spaces). */
export function keepTogether(text: string): string {
  return text.replace(/\bp ([<=≤]) (\S+)/g, 'p\u00a0$1\u00a0$2');
}

function font(v: View): string {
  return `${FONT_PX}px ${getComputedStyle(v.root).fontFamily || 'sans-serif'}`;
}

/** Lay the chart and the tables out for the current width, then paint. */
function layout(v: View): void {
  const d = v.model.get('data');
  const avail = v.plot.clientWidth;
  v.width = avail;
  const layers = d.mode === 'layers';
  const width = Math.max(120, (avail || NO_LAYOUT_W) - (layers ? Y_TITLE_W : 0));
  const ctx = v.canvas.getContext('2d');
  if (ctx) ctx.font = font(v);
  const measure: Measure = ctx ? t => ctx.measureText(t).width : t => t.length * 7;
  const chart = layers ? layersChart(d, width, measure) : barsChart(d, width, measure);
  v.chart = chart;
  v.chartWidth = width;
  const { x0, x1, y0, y1 } = chart.frame;
  v.yTitle.style.top = `${y0}px`;
  v.yTitle.style.height = `${y1 - y0}px`;
  v.xTitle.style.marginLeft = `${x0}px`;
  v.xTitle.style.width = `${x1 - x0}px`;
  v.canvas.dataset.frame = [x0, y0, x1, y1].map(Math.round).join(',');
  // where each bar or layer is drawn: for tests and tools that point at an item
  v.canvas.dataset.anchors = Array.from({ length: chart.count }, (_, i) =>
    chart.anchor(i).map(Math.round).join(',')
  ).join(';');
  fitTables(v.tables, d.columns, d.rows, d.key_columns);
  if (v.hover !== null && v.hover >= chart.count) v.hover = null;
  highlightRow(v.tables, rowOf(d, v.hover));
  paint(v);
}

/** Draw the chart and the legend's swatches in the theme's colours as they are now. */
function paint(v: View): void {
  const chart = v.chart;
  if (!chart) return;
  const ink = themeInk(v.root);
  const ctx = sizeCanvas(v.canvas, v.chartWidth, chart.height);
  if (ctx) {
    ctx.font = font(v);
    chart.draw(ctx, ink, v.hover);
  }
  v.paintLegend(ink);
}

/** Return the tooltip lines of item i (a bar, or a layer). */
function tipLines(d: ProbeData, i: number): string[] {
  if (d.mode === 'single') return d.bars?.[i]?.tip ?? [];
  return d.tips?.[i] ?? [d.layers?.[i] ?? ''];
}

/** Return the table row of item i: a layer's own row, or the row of a bar's measure. */
function rowOf(d: ProbeData, i: number | null): number | null {
  if (i === null) return null;
  return d.mode === 'single' ? (d.bars?.[i]?.row ?? null) : i;
}

function valueOf(d: ProbeData, i: number): number | undefined {
  return d.mode === 'single' ? d.bars?.[i]?.value : d.series?.[0]?.values[i];
}

/** Point at item i (null: none) from the client point (x, y): highlight, tooltip, readout. */
function point(v: View, i: number | null, x = 0, y = 0): void {
  const changed = i !== v.hover;
  v.hover = i;
  if (changed) {
    paint(v);
    highlightRow(v.tables, rowOf(v.model.get('data'), i));
  }
  if (i === null) {
    v.tip.hide();
    v.live.textContent = hint(v.model.get('data'));
    return;
  }
  const d = v.model.get('data');
  const lines = tipLines(d, i);
  v.tip.show(lines, x, y);
  if (changed) {
    v.live.textContent = lines.slice(0, 3).join('; ');
    v.live.dataset.value = String(valueOf(d, i) ?? '');
  }
}

function onMove(v: View, ev: MouseEvent): void {
  if (!v.chart) return;
  const r = v.canvas.getBoundingClientRect();
  point(v, v.chart.hit(ev.clientX - r.left, ev.clientY - r.top), ev.clientX, ev.clientY);
}

function onKey(v: View, ev: KeyboardEvent): void {
  const chart = v.chart;
  if (!chart || !chart.count) return;
  const last = chart.count - 1;
  const at = v.hover ?? -1;
  const next: Record<string, number | null> = {
    ArrowRight: Math.min(last, at + 1),
    ArrowDown: Math.min(last, at + 1),
    ArrowLeft: Math.max(0, at - 1),
    ArrowUp: Math.max(0, at - 1),
    Home: 0,
    End: last,
    Escape: null
  };
  if (!(ev.key in next)) return;
  ev.preventDefault();
  const i = next[ev.key];
  const r = v.canvas.getBoundingClientRect();
  const [ax, ay] = i === null ? [0, 0] : chart.anchor(i);
  point(v, i, r.left + ax, r.top + ay);
}

/** Render a probe panel into `el`; return its cleanup. */
export function render({ model, el }: RenderProps<ProbeTraits>): () => void {
  const v = build(model, el);
  const refresh = (): void => {
    v.hover = null;
    v.tip.hide();
    fill(v, model.get('data'));
    layout(v);
  };
  v.canvas.addEventListener('mousemove', ev => onMove(v, ev));
  v.canvas.addEventListener('mouseleave', () => point(v, null));
  v.canvas.addEventListener('keydown', ev => onKey(v, ev));
  model.on('change:data', refresh);
  refresh();
  // Lay out again whenever the output area's width changes (and once it first has one: a view
  // is often rendered before it is in the page). Only a new width triggers it, and the layout
  // never changes the width, so there is no resize loop.
  const resize =
    typeof ResizeObserver === 'undefined'
      ? null
      : new ResizeObserver(() => {
          if (v.plot.clientWidth !== v.width) layout(v);
        });
  resize?.observe(v.root);
  const stopTheme = onThemeChange(() => paint(v));
  return () => {
    resize?.disconnect();
    stopTheme();
    model.off('change:data', refresh);
    v.root.remove();
  };
}
