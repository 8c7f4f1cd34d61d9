// The patching heatmap: one cell per (layer, position) or (layer, head), diverging colours centred
// on 0 on one scale for the whole result, axis titles and a legend aligned with the grid, a
// floating tooltip with the value, interval and test, click for the per-example values, a raw /
// normalised toggle. It fits the output area's width (re-laid out when that changes) and redraws
// in the theme's colours when the theme changes. The parts: patching/layout.ts (where things go),
// scale.ts (the colour scale), paint.ts (the canvas), axes.ts and legend.ts (the text around it),
// readout.ts (what a cell says), tables.ts, input.ts, resize.ts, view.ts (the data on show).

import type { AnyWidget, RenderProps } from '@anywidget/types';
import './patching.css';
import { bytes } from './lib/buffers';
import { sizeCanvas } from './lib/canvas';
import { fmt, h, setPressed, texts, toggleButton, widgetHeader } from './lib/dom';
import { sameCell, type Cell } from './lib/grid';
import { themeInk, onThemeChange, type Ink } from './lib/theme';
import { Tooltip } from './lib/tooltip';
import {
  highlightLabels,
  LABEL_LINE_PX,
  measurer,
  placeAxes,
  type AxesText
} from './patching/axes';
import { attachInput, cellCentre } from './patching/input';
import { layout } from './patching/layout';
import { drawScaleLegend, legendDom } from './patching/legend';
import { paintCells, paintMarks, type Painting } from './patching/paint';
import { describe, refreshReadouts } from './patching/readout';
import { FALLBACK_WIDTH, NoResize, widthTracker } from './patching/resize';
import { cellDecimals, scaleLimit } from './patching/scale';
import { drawDetail, drawTable } from './patching/tables';
import {
  centre,
  label,
  meta,
  plane,
  planeOf,
  type PatchingDom,
  type PatchingTraits,
  type Plane,
  type View
} from './patching/view';

let views = 0;

function buildDom(el: HTMLElement): PatchingDom {
  const root = h('div', 'im-patch');
  el.appendChild(root);
  const sliceSelect = h('select', 'im-patch-slice', { 'aria-label': 'Head to show' });
  const rawButton = toggleButton('im-patch-button', 'Raw metric');
  const tableButton = toggleButton('im-patch-button', 'As table');
  const { header, title } = widgetHeader('im-patch', [sliceSelect, rawButton, tableButton]);
  const baselines = h('div', 'im-patch-baselines');
  const box = h('div', 'im-patch-plotbox');
  const plot = h('div', 'im-patch-plot', { 'data-role': 'plot' });
  const yTitle = h('div', 'im-patch-ytitle', { 'data-role': 'y-title' });
  const xTitle = h('div', 'im-patch-xtitle', { 'data-role': 'x-title' });
  const colLabels = h('div', 'im-patch-cols', { 'data-role': 'col-labels' });
  const rowLabels = h('div', 'im-patch-rows', { 'data-role': 'row-labels' });
  const canvas = h('canvas', 'im-patch-canvas', {
    tabindex: '0',
    role: 'application',
    'data-role': 'heatmap',
    'data-lm-suppress-shortcuts': 'true'
  });
  plot.append(yTitle, rowLabels, canvas, colLabels, xTitle);
  box.appendChild(plot);
  // When the plot scrolls (only when even 2-px cells do not fit), the y axis stays in view.
  box.addEventListener('scroll', () => {
    const shift = `translateX(${box.scrollLeft}px)`;
    rowLabels.style.transform = shift;
    yTitle.style.translate = `${box.scrollLeft}px 0`;
  });
  const legend = legendDom();
  const live = h('div', 'im-patch-live', { 'aria-live': 'polite', 'data-role': 'live' });
  const detail = h('div', 'im-patch-detail', { 'data-role': 'cell' });
  const table = h('div', 'im-patch-table');
  const notes = h('div', 'im-patch-notes');
  root.append(header, baselines, box, legend.legend, live, detail, table, notes);
  const dom = { root, title, sliceSelect, rawButton, tableButton, baselines, plot, yTitle, xTitle };
  return { ...dom, rowLabels, colLabels, canvas, legend, live, detail, table, notes };
}

/** Return the labels and titles of the plane on show. */
function axesText(v: View, p: Plane): AxesText {
  const m = meta(v);
  const title = (a: string): string => m.axis_titles?.[a] ?? a;
  const rows = Array.from({ length: p.rows }, (_, i) => label(v, p.rowAxis, i));
  const cols = p.colAxis
    ? Array.from({ length: p.cols }, (_, i) => label(v, p.colAxis, i, 12))
    : [];
  const mid = m.axes.length === 3 ? ` (${title(m.axes[1])} ${v.model.get('slice_index')})` : '';
  return {
    rows,
    cols,
    rowTitle: title(p.rowAxis),
    colTitle: p.colAxis ? title(p.colAxis) + mid : ''
  };
}

/** Return the lookup table for the theme: the dark-centred one on a dark background. */
function themeLut(v: View, ink: Ink): Uint8Array {
  const dark = bytes(v.model.get('lut_dark'));
  return ink.dark && dark.length === 768 ? dark : bytes(v.model.get('lut'));
}

interface Drawn {
  painting: Painting;
  ink: Ink;
  base: HTMLCanvasElement | null; // the cells as painted, copied under the marks on each hover
}
const drawn = new WeakMap<View, Drawn>();

/** Lay out and draw everything for the current state, width and theme. */
function draw(v: View, width: number): void {
  const { root, canvas } = v.dom;
  const m = meta(v);
  const p = plane(v);
  const ink = themeInk(root);
  const lut = themeLut(v, ink);
  const c0 = centre(v);
  const slice = v.model.get('slice_index');
  const limit = scaleLimit(
    m.scale,
    slice,
    v.showRaw,
    p.values.map(x => x - c0)
  );
  const text = axesText(v, p);
  const measure = measurer(root);
  const l = layout({
    width,
    rows: p.rows,
    cols: p.cols,
    rowLabelWidth: Math.max(0, ...text.rows.map(measure)),
    colLabelWidths: text.cols.map(measure),
    line: LABEL_LINE_PX
  });
  v.layout = l;
  v.dom.root.classList.toggle('im-patch-scrolls', l.scroll);
  v.shown = placeAxes(v.dom, l, text);
  const painting: Painting = {
    values: p.values,
    rows: p.rows,
    cols: p.cols,
    centre: c0,
    limit,
    lut,
    significant: planeOf(v, bytes(v.model.get('significant'))),
    decimals: cellDecimals(limit),
    font: `11px ${getComputedStyle(root).fontFamily || 'sans-serif'}`
  };
  // Paint the cells once into an offscreen canvas; a hover then only copies it and draws marks.
  const base = drawn.get(v)?.base ?? document.createElement('canvas');
  const baseCtx = sizeCanvas(base, l.gridW, l.gridH);
  if (baseCtx) paintCells(baseCtx, painting, l);
  drawn.set(v, { painting, ink, base: baseCtx ? base : null });
  sizeCanvas(canvas, l.gridW, l.gridH);
  repaint(v);
  drawScaleLegend(v, p, l.left, l.gridW, width, { lut, c0, limit, ink });
  canvas.setAttribute(
    'aria-label',
    `${m.title}: ${p.rows} ${text.rowTitle}s by ${p.cols} ${text.colTitle || 'cell'}s. ` +
      'Arrow keys move, Enter shows the examples.'
  );
  v.dom.title.textContent = m.title;
  const value = v.showRaw ? `raw ${m.metric}` : m.value_name;
  const corrupt = m.corrupt === null ? '' : ` · corrupted baseline ${fmt(m.corrupt)}`;
  v.dom.baselines.textContent = `${value} · clean baseline ${fmt(m.clean)}${corrupt}`;
  if (v.showTable) drawTable(v, cellDecimals(limit) + 1);
  if (!root.dataset.firstPaintMs) {
    root.dataset.firstPaintMs = (performance.now() - v.started).toFixed(1);
  }
}

/** Repaint the canvas (cells and marks) from the last layout, e.g. when the hover moves. */
function repaint(v: View): void {
  const d = drawn.get(v);
  const l = v.layout;
  if (!d || !l) return;
  const canvas = v.dom.canvas;
  const ctx = canvas.getContext('2d');
  if (!ctx || !d.base) return;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(d.base, 0, 0);
  const dpr = canvas.width / Math.max(1, l.gridW);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const sel = v.model.get('selected');
  const focused = document.activeElement === canvas;
  paintMarks(
    ctx,
    {
      hover: v.hover,
      selected: sel && sel.length === 2 ? [sel[0], sel[1]] : null,
      cursor: focused ? v.cursor.cell : null
    },
    l,
    d.painting,
    d.ink
  );
  highlightLabels(v.shown, v.hover);
}

function wireInput(v: View, tooltip: Tooltip, redraw: () => void): void {
  const { canvas, rawButton, tableButton, sliceSelect } = v.dom;
  const size = () => ({ l: v.layout, rows: plane(v).rows, cols: plane(v).cols });
  const mark = (cell: Cell | null): void => {
    if (sameCell(cell, v.hover)) return;
    v.hover = cell;
    repaint(v);
  };
  attachInput(canvas, v.cursor, {
    layout: size,
    hover: (cell, x, y) => {
      mark(cell);
      if (cell) describe(v, tooltip, cell, x, y);
      else tooltip.hide();
    },
    activate: cell => {
      v.model.set('selected', [cell[0], cell[1]]);
      v.model.save_changes();
      repaint(v);
    },
    move: cell => {
      mark(cell);
      if (v.layout) describe(v, tooltip, cell, ...cellCentre(canvas, v.layout, cell));
    },
    focus: () => {
      if (document.activeElement !== canvas) {
        tooltip.hide();
        mark(null);
      }
      repaint(v);
    }
  });
  rawButton.addEventListener('click', () => {
    v.showRaw = !v.showRaw;
    setPressed(rawButton, v.showRaw);
    redraw();
  });
  tableButton.addEventListener('click', () => {
    v.showTable = !v.showTable;
    setPressed(tableButton, v.showTable);
    redraw();
    if (!v.showTable) v.dom.table.replaceChildren();
  });
  sliceSelect.addEventListener('change', () => {
    v.model.set('slice_index', Number(sliceSelect.value));
    v.model.save_changes();
  });
}

/** Fill the choice of head (for a 3-axis result), the raw toggle and the notes. */
function fillControls(v: View): void {
  const { sliceSelect, rawButton, notes } = v.dom;
  const m = meta(v);
  sliceSelect.replaceChildren();
  const three = m.axes.length === 3;
  sliceSelect.hidden = !three;
  if (three) {
    const axis = m.axes[1];
    for (let i = 0; i < m.shape[1]; i++) {
      const text = `${axis} ${label(v, axis, i)}`;
      sliceSelect.appendChild(h('option', undefined, { value: String(i) }, text));
    }
    sliceSelect.value = String(v.model.get('slice_index'));
  }
  rawButton.hidden = !m.normalised;
  notes.replaceChildren(...texts('div', m.notes));
}

function render({ model, el }: RenderProps<PatchingTraits>): () => void {
  const v: View = {
    model,
    dom: buildDom(el),
    started: performance.now(),
    showRaw: false,
    showTable: false,
    cursor: { cell: [0, 0] },
    hover: null,
    layout: null,
    shown: { rows: new Map(), cols: new Map() },
    described: null,
    pointer: null
  };
  const tooltip = new Tooltip(v.dom.root, `im-patch-tip-${++views}`);
  const widthNow = widthTracker(v.dom.root);
  let laidOut = -1;
  const redraw = (): void => {
    laidOut = widthNow();
    draw(v, laidOut);
    refreshReadouts(v, tooltip);
  };
  wireInput(v, tooltip, redraw);
  const onChange = (): void => {
    fillControls(v);
    redraw();
    drawDetail(v);
  };
  const events = [
    'change:values',
    'change:meta',
    'change:slice_index',
    'change:selected',
    'change:cell_values'
  ];
  for (const e of events) model.on(e, onChange);
  onChange();
  let frame = 0;
  let placed = false; // the first report comes once the view is in the page: draw for real then
  const resized = new (globalThis.ResizeObserver ?? NoResize)(() => {
    const same = (v.dom.root.clientWidth || FALLBACK_WIDTH) === laidOut;
    if (same && placed) return; // a height change only
    placed = true;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(redraw);
  });
  resized.observe(v.dom.root);
  const stopTheme = onThemeChange(redraw);

  return () => {
    for (const e of events) model.off(e, onChange);
    resized.disconnect();
    stopTheme();
    cancelAnimationFrame(frame);
    v.dom.root.remove();
  };
}

export default { render } satisfies AnyWidget<PatchingTraits>;
