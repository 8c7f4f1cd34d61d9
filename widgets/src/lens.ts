// The lens view: a layers x positions grid of one example (the last layer on top), each cell
// coloured by its top-1 token's probability and, when wide enough, showing that token; a legend
// titled "top-1 probability"; a floating tooltip with the cell's top-k (asked of the kernel per
// column) and a highlight of its row and column; a click picks the position whose answer rank
// trajectory is charted under the grid. It fits the output area's width and redraws in the
// theme's colours. The parts: lens/decode.ts (the bytes), layout.ts, paint.ts, axes.ts,
// legend.ts, readout.ts (tooltip, live region, kernel requests), trajectory.ts and panel.ts (the
// chart and the table), view.ts (the state).

import type { AnyWidget, RenderProps } from '@anywidget/types';
import './lens.css';
import { bytes } from './lib/buffers';
import { sizeCanvas } from './lib/canvas';
import { h, setPressed, texts, toggleButton, widgetHeader } from './lib/dom';
import { moveCursor } from './lib/geometry';
import { pointerAt, sameCell, type Cell } from './lib/grid';
import { themeInk, onThemeChange, type Ink } from './lib/theme';
import { Tooltip } from './lib/tooltip';
import { highlightLabels, LABEL_LINE_PX, measurer, placeAxes, type Shown } from './lens/axes';
import { drawLegend, legendDom, PAD } from './lens/legend';
import { cellAt, colLeft, layout, rowTop } from './lens/layout';
import { padColour, paintCells, paintMarks } from './lens/paint';
import { drawTable, drawTrajectory, panelDom, wireTrajectory, type PanelDom } from './lens/panel';
import { describe, onColumnReply } from './lens/readout';
import {
  columnLabel,
  decodeData,
  meta,
  top1Text,
  type LensDom,
  type LensTraits,
  type View
} from './lens/view';

let views = 0;
const FALLBACK_WIDTH = 640; // px, before the view is laid out

function buildDom(el: HTMLElement): { dom: LensDom; panel: PanelDom } {
  const root = h('div', 'im-lens');
  el.appendChild(root);
  const exampleSelect = h('select', 'im-lens-example', { 'aria-label': 'Example to show' });
  const tableButton = toggleButton('im-lens-button', 'As table');
  const { header, title } = widgetHeader('im-lens', [exampleSelect, tableButton]);
  const subtitle = h('div', 'im-lens-subtitle', { 'data-role': 'subtitle' });
  const box = h('div', 'im-lens-plotbox');
  const plot = h('div', 'im-lens-plot', { 'data-role': 'plot' });
  const yTitle = h('div', 'im-lens-ytitle', { 'data-role': 'y-title' });
  const xTitle = h('div', 'im-lens-xtitle', { 'data-role': 'x-title' });
  const rowLabels = h('div', 'im-lens-rows', { 'data-role': 'row-labels' });
  const colLabels = h('div', 'im-lens-cols', { 'data-role': 'col-labels' });
  const canvas = h('canvas', 'im-lens-canvas', {
    tabindex: '0',
    role: 'application',
    'data-role': 'grid',
    'data-lm-suppress-shortcuts': 'true'
  });
  plot.append(yTitle, rowLabels, canvas, colLabels, xTitle);
  box.appendChild(plot);
  // When the plot scrolls (only when even 1-px columns do not fit), the layer axis stays in view.
  box.addEventListener('scroll', () => {
    rowLabels.style.transform = `translateX(${box.scrollLeft}px)`;
    yTitle.style.translate = `${box.scrollLeft}px 0`;
  });
  const legend = legendDom();
  const live = h('div', 'im-lens-live', { 'aria-live': 'polite', 'data-role': 'live' });
  const panel = panelDom();
  const table = h('div', 'im-lens-table', { 'data-role': 'table' });
  const notes = h('div', 'im-lens-notes');
  root.append(header, subtitle, box, legend.legend, live, panel.box, table, notes);
  const dom: LensDom = {
    root,
    title,
    exampleSelect,
    tableButton,
    subtitle,
    box,
    plot,
    yTitle,
    xTitle,
    rowLabels,
    colLabels,
    canvas,
    legend: legend.legend,
    live,
    trajectory: panel.box,
    table,
    notes
  };
  legends.set(root, legend);
  return { dom, panel };
}

const legends = new WeakMap<HTMLElement, ReturnType<typeof legendDom>>();

interface Drawn {
  ink: Ink;
  base: HTMLCanvasElement | null; // the cells as painted, copied under the marks on each hover
  shown: Shown;
}
const drawn = new WeakMap<View, Drawn>();

/** Return the colour of each probability step in the theme on show. */
function themeLut(v: View, ink: Ink): Uint8Array {
  const dark = bytes(v.model.get('lut_dark'));
  return ink.dark && dark.length ? dark : bytes(v.model.get('lut'));
}

/** Lay out and draw everything for the current state, width and theme. */
function draw(v: View, panel: PanelDom, width: number): void {
  const { root, canvas } = v.dom;
  const m = meta(v);
  const ink = themeInk(root);
  const lut = themeLut(v, ink);
  const measure = measurer(root);
  const cols = Array.from({ length: m.cols }, (_, c) => columnLabel(v, c));
  const l = layout({
    width,
    rows: m.rows,
    cols: m.cols,
    rowLabelWidth: Math.max(0, ...m.layer_labels.map(measure)),
    colLabelWidths: cols.map(measure),
    line: LABEL_LINE_PX,
    text: m.text
  });
  v.layout = l;
  root.classList.toggle('im-lens-scrolls', l.scroll);
  const shown = placeAxes(v.dom, l, {
    rows: m.layer_labels,
    cols,
    rowTitle: 'layer',
    colTitle: 'position'
  });
  const pad = padColour(ink);
  const base = drawn.get(v)?.base ?? document.createElement('canvas');
  const baseCtx = sizeCanvas(base, l.gridW, l.gridH);
  const font = `11px ${getComputedStyle(root).fontFamily || 'sans-serif'}`;
  const text = v.data.top1.length ? (r: number, c: number) => top1Text(v, r, c) : null;
  if (baseCtx)
    paintCells(baseCtx, { codes: v.data.codes, lut, pad: v.data.pad, padRgb: pad, text, font }, l);
  drawn.set(v, { ink, base: baseCtx ? base : null, shown });
  sizeCanvas(canvas, l.gridW, l.gridH);
  repaint(v);
  const barW = Math.max(120, Math.min(320, l.gridW, width - l.left - 2 * PAD));
  const hasPad = v.data.pad.some(p => p === 1);
  drawLegend(legends.get(root)!, {
    lut,
    levels: m.levels,
    left: barW + l.left + PAD <= width ? l.left : PAD,
    width: barW,
    pad: hasPad ? pad : null
  });
  drawTrajectory(v, panel, width, ink, measure);
  drawTable(v);
  canvas.setAttribute(
    'aria-label',
    `${m.title}, example ${v.model.get('example')}: ${m.rows} layers by ${m.cols} positions, ` +
      'coloured by the top-1 probability. Arrow keys move, Enter charts the position.'
  );
  v.dom.title.textContent = m.title;
  const answer = v.model.get('answer');
  v.dom.subtitle.textContent =
    `example ${v.model.get('example')} of ${m.examples} · top-${m.k} per cell` +
    (answer ? ` · answer “${answer}”` : '');
  // the first paint is the first at the output area's real width (a view drawn before it is
  // in the page is drawn again at once, at that width)
  if (!root.dataset.firstPaintMs && root.clientWidth > 0) {
    root.dataset.firstPaintMs = (performance.now() - v.started).toFixed(1);
  }
}

/** Repaint the grid (cells and marks) from the last layout, e.g. when the hover moves. */
function repaint(v: View): void {
  const d = drawn.get(v);
  const l = v.layout;
  const canvas = v.dom.canvas;
  const ctx = canvas.getContext('2d');
  if (!d || !l || !ctx || !d.base) return;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(d.base, 0, 0);
  const dpr = canvas.width / Math.max(1, l.gridW);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const focused = document.activeElement === canvas;
  const column = v.data.trajectory ? v.model.get('trajectory_col') : null;
  paintMarks(ctx, { hover: v.hover, column, cursor: focused ? v.cursor.cell : null }, l, d.ink);
  highlightLabels(d.shown, v.hover);
}

/** Return the client point at the centre of a cell (where the keys' tooltip goes). */
function cellCentre(v: View, [r, c]: Cell): [number, number] {
  const l = v.layout!;
  const box = v.dom.canvas.getBoundingClientRect();
  const x = (colLeft(l, c) + colLeft(l, c + 1)) / 2;
  return [box.left + x, box.top + rowTop(l, r) + l.cellH / 2];
}

function wireInput(v: View): void {
  const { canvas, tableButton, exampleSelect } = v.dom;
  const point = (cell: Cell | null, at: [number, number] | null): void => {
    v.pointer = cell ? at : null;
    if (!sameCell(cell, v.hover)) {
      v.hover = cell;
      repaint(v);
    }
    describe(v, cell);
  };
  const hit = (ev: MouseEvent): Cell | null =>
    v.layout ? cellAt(v.layout, ...pointerAt(ev, canvas)) : null;
  const select = (cell: Cell): void => {
    v.model.set('selected', [cell[0], cell[1]]);
    v.model.save_changes();
  };
  canvas.addEventListener('mousemove', ev => point(hit(ev), [ev.clientX, ev.clientY]));
  canvas.addEventListener('mouseleave', () => point(null, null));
  canvas.addEventListener('click', ev => {
    const cell = hit(ev);
    if (!cell) return;
    v.cursor.cell = cell;
    select(cell);
  });
  canvas.addEventListener('keydown', ev => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      select(v.cursor.cell);
      ev.preventDefault();
      return;
    }
    // the last layer is drawn on top: ArrowUp goes up a layer
    const flip: Record<string, string> = { ArrowUp: 'ArrowDown', ArrowDown: 'ArrowUp' };
    const m = meta(v);
    const next = moveCursor(v.cursor.cell, flip[ev.key] ?? ev.key, m.rows, m.cols);
    if (!next || !v.layout) return;
    ev.preventDefault();
    v.cursor.cell = next;
    point(next, cellCentre(v, next));
  });
  canvas.addEventListener('focus', () => repaint(v));
  canvas.addEventListener('blur', () => {
    point(null, null);
    repaint(v);
  });
  tableButton.addEventListener('click', () => {
    v.showTable = !v.showTable;
    setPressed(tableButton, v.showTable);
    drawTable(v);
  });
  exampleSelect.addEventListener('change', () => {
    v.model.set('example', Number(exampleSelect.value));
    v.model.save_changes();
  });
}

/** Fill the example selector (shown only for a batch) and the notes. */
function fillControls(v: View): void {
  const m = meta(v);
  const { exampleSelect, notes } = v.dom;
  exampleSelect.replaceChildren(
    ...Array.from({ length: m.examples }, (_, i) =>
      h('option', undefined, { value: String(i) }, `example ${i}`)
    )
  );
  exampleSelect.hidden = m.examples < 2;
  exampleSelect.value = String(v.model.get('example'));
  notes.replaceChildren(...texts('div', m.notes));
}

function render({ model, el }: RenderProps<LensTraits>): () => void {
  const started = performance.now();
  const { dom, panel } = buildDom(el);
  const v: View = {
    model,
    dom,
    tooltip: new Tooltip(dom.root, `im-lens-tip-${++views}`),
    started,
    data: decodeData(model),
    layout: null,
    cursor: { cell: [0, 0] },
    hover: null,
    pointer: null,
    showTable: false,
    columns: new Map(),
    request: { inFlight: null, lastId: 0, pending: null }
  };
  let laidOut = -1;
  const redraw = (): void => {
    laidOut = dom.root.clientWidth || FALLBACK_WIDTH;
    draw(v, panel, laidOut);
    if (v.hover) describe(v, v.hover);
  };
  wireInput(v);
  wireTrajectory(v, panel);
  const update = (): void => {
    v.data = decodeData(model);
    fillControls(v);
    redraw();
  };
  // Python sends an example's traits together: one redraw after the last of their events.
  let queued = false;
  const onData = (): void => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      update();
    });
  };
  const onMessage = (msg: unknown): void =>
    onColumnReply(v, msg, () => {
      if (v.hover) describe(v, v.hover);
      drawTable(v);
    });
  const events = [
    'meta',
    'example',
    'tokens',
    'pad',
    'codes',
    'top1',
    'top1_vocab',
    'answer',
    'trajectory',
    'trajectory_col'
  ].map(name => `change:${name}`);
  for (const e of events) model.on(e, onData);
  model.on('msg:custom', onMessage);
  v.data = decodeData(model);
  fillControls(v);
  // A view not yet in the page has no width: the resize observer's first report, once it is
  // placed, draws it (drawing at a guessed width first would only be thrown away).
  if (dom.root.clientWidth > 0 || !globalThis.ResizeObserver) redraw();
  let frame = 0;
  let placed = false; // the first report comes once the view is in the page: draw for real then
  const resized = new (globalThis.ResizeObserver ?? NoResize)(() => {
    if ((dom.root.clientWidth || FALLBACK_WIDTH) === laidOut && placed) return; // height only
    placed = true;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(redraw);
  });
  resized.observe(dom.root);
  const stopTheme = onThemeChange(redraw);
  return () => {
    for (const e of events) model.off(e, onData);
    model.off('msg:custom', onMessage);
    resized.disconnect();
    stopTheme();
    cancelAnimationFrame(frame);
    dom.root.remove();
  };
}

/** Stands in for ResizeObserver where there is none (old front ends, tests): no relayout. */
class NoResize {
  observe(): void {}
  disconnect(): void {}
}

export default { render } satisfies AnyWidget<LensTraits>;
