// The patching heatmap: one cell per (layer, position) or (layer, head), diverging colours centred
// on 0, token labels, hover values, click for the per-example values, raw / normalised toggle.
// The data on show (the plane, its labels, its scale) is in patching/view.ts.

import type { AnyWidget, RenderProps } from '@anywidget/types';
import './patching.css';
import { bytes, floats } from './lib/buffers';
import { colorBar, sizeCanvas, themeColor } from './lib/canvas';
import { cssColor, divergingIndex, inkFor } from './lib/colors';
import {
  fmt,
  h,
  placeColumn,
  placeRow,
  setPressed,
  table,
  texts,
  toggleButton,
  widgetHeader
} from './lib/dom';
import { attachGrid, type Cell } from './lib/grid';
import {
  cellPx,
  centre,
  geometry,
  label,
  meta,
  plane,
  planeOf,
  toRaw,
  vmax,
  where,
  type PatchingDom,
  type PatchingTraits,
  type Plane,
  type View
} from './patching/view';

function buildDom(el: HTMLElement): PatchingDom {
  const root = h('div', 'im-patch');
  el.appendChild(root);
  const sliceSelect = h('select', 'im-patch-slice', { 'aria-label': 'Head to show' });
  const rawButton = toggleButton('im-patch-button', 'Raw metric');
  const tableButton = toggleButton('im-patch-button', 'As table');
  const { header, title } = widgetHeader('im-patch', [sliceSelect, rawButton, tableButton]);
  const baselines = h('div', 'im-patch-baselines');
  const wrap = h('div', 'im-patch-wrap');
  const colLabels = h('div', 'im-patch-cols');
  const rowLabels = h('div', 'im-patch-rows');
  const canvas = h('canvas', 'im-patch-canvas', {
    tabindex: '0',
    role: 'application',
    'data-role': 'heatmap',
    'data-lm-suppress-shortcuts': 'true'
  });
  wrap.append(colLabels, rowLabels, canvas);
  const legend = h('div', 'im-patch-legend');
  const live = h('div', 'im-patch-live', { 'aria-live': 'polite', 'data-role': 'live' });
  const detail = h('div', 'im-patch-detail', { 'data-role': 'cell' });
  const table = h('div', 'im-patch-table');
  const notes = h('div', 'im-patch-notes');
  root.append(header, baselines, wrap, legend, live, detail, table, notes);
  const dom = { root, title, sliceSelect, rawButton, tableButton, baselines, colLabels };
  return { ...dom, rowLabels, canvas, legend, live, detail, table, notes };
}
/** Draw the heatmap with its labels, legend and baselines (and the table when asked). */
function draw(v: View): void {
  const { canvas, root, title, baselines } = v.dom;
  const m = meta(v);
  const p = plane(v);
  const cell = cellPx(p.rows, p.cols);
  const ctx = sizeCanvas(canvas, p.cols * cell, p.rows * cell);
  canvas.setAttribute(
    'aria-label',
    `${m.title}: ${p.rows} ${p.rowAxis}s by ${p.cols} ${p.colAxis || 'cell'}s. ` +
      'Arrow keys move, Enter shows the examples.'
  );
  const c0 = centre(v);
  const top = vmax(p.values.map(x => x - c0));
  if (ctx) {
    paintCells(ctx, p, cell, c0, top, bytes(v.model.get('lut')));
    paintNotSignificant(v, ctx, p, cell);
    paintMarks(v, ctx, cell);
  }
  drawLabels(v, p, cell);
  drawLegend(v, top, c0);
  title.textContent = m.title;
  const value = v.showRaw ? `raw ${m.metric}` : m.value_name;
  const corrupt = m.corrupt === null ? '' : ` · corrupted baseline ${fmt(m.corrupt)}`;
  baselines.textContent = `${value} · clean baseline ${fmt(m.clean)}${corrupt}`;
  if (v.showTable) drawTable(v, p);
  if (!root.dataset.firstPaintMs) {
    root.dataset.firstPaintMs = (performance.now() - v.started).toFixed(1);
  }
}

function paintCells(
  ctx: CanvasRenderingContext2D,
  p: Plane,
  cell: number,
  c0: number,
  top: number,
  lut: Uint8Array
): void {
  for (let r = 0; r < p.rows; r++) {
    for (let c = 0; c < p.cols; c++) {
      const x = p.values[r * p.cols + c];
      const idx = divergingIndex(x - c0, top);
      ctx.fillStyle = cssColor(lut, idx);
      ctx.fillRect(c * cell, r * cell, cell, cell);
      if (cell >= 34 && Number.isFinite(x)) {
        ctx.fillStyle = inkFor(lut, idx);
        ctx.font = '10px sans-serif';
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        ctx.fillText(fmt(x, 2), c * cell + cell / 2, r * cell + cell / 2);
      }
    }
  }
}

/** Hatch the cells whose corrected test is not significant (no claim should rest on them). */
function paintNotSignificant(v: View, ctx: CanvasRenderingContext2D, p: Plane, cell: number): void {
  const sig = planeOf(v, bytes(v.model.get('significant')));
  if (sig.length === 0) return;
  const ink = 'rgba(90, 90, 90, 0.6)';
  for (let r = 0; r < p.rows; r++) {
    for (let c = 0; c < p.cols; c++) {
      if (sig[r * p.cols + c]) continue;
      const x = c * cell;
      const y = r * cell;
      ctx.save();
      ctx.beginPath();
      ctx.rect(x, y, cell, cell);
      ctx.clip();
      ctx.strokeStyle = ink;
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let k = -cell; k < cell; k += 6) {
        ctx.moveTo(x + k, y + cell);
        ctx.lineTo(x + k + cell, y);
      }
      ctx.stroke();
      ctx.restore();
    }
  }
}

/** Outline the selected cell, and the keyboard cursor while the heatmap has focus. */
function paintMarks(v: View, ctx: CanvasRenderingContext2D, cell: number): void {
  const { root, canvas } = v.dom;
  const sel = v.model.get('selected');
  if (sel && sel.length === 2) {
    ctx.strokeStyle = themeColor(root, '--im-accent', '#111');
    ctx.lineWidth = 2;
    ctx.strokeRect(sel[1] * cell + 1, sel[0] * cell + 1, cell - 2, cell - 2);
  }
  if (document.activeElement === canvas) {
    const [r, c] = v.cursor.cell;
    ctx.strokeStyle = themeColor(root, '--im-cursor', '#1976d2');
    ctx.lineWidth = 1;
    ctx.strokeRect(c * cell + 0.5, r * cell + 0.5, cell - 1, cell - 1);
  }
}

function drawLabels(v: View, p: Plane, cell: number): void {
  const { colLabels, rowLabels } = v.dom;
  colLabels.replaceChildren();
  rowLabels.replaceChildren();
  for (let r = 0; r < p.rows; r++) {
    const span = h('span', 'im-patch-label', undefined, label(v, p.rowAxis, r));
    rowLabels.appendChild(placeRow(span, r, cell));
  }
  if (!p.colAxis) return;
  const every = Math.max(1, Math.ceil(12 / cell)); // thin out labels on narrow cells
  for (let c = 0; c < p.cols; c += every) {
    const text = label(v, p.colAxis, c);
    colLabels.appendChild(placeColumn(h('span', 'im-patch-label', { title: text }, text), c, cell));
  }
}

function drawLegend(v: View, top: number, c0: number): void {
  const bar = colorBar('im-patch-legend-bar', bytes(v.model.get('lut')));
  const ticks = h('div', 'im-patch-ticks');
  ticks.append(
    ...texts(
      'span',
      [-1, -0.5, 0, 0.5, 1].map(f => fmt(c0 + f * top, 3))
    )
  );
  v.dom.legend.replaceChildren(bar, ticks);
}

function drawTable(v: View, p: Plane): void {
  const head = [p.rowAxis];
  for (let c = 0; c < p.cols; c++) head.push(p.colAxis ? label(v, p.colAxis, c) : 'value');
  const rows: string[][] = [];
  for (let r = 0; r < p.rows; r++) {
    const values = Array.from(p.values.subarray(r * p.cols, (r + 1) * p.cols), x => fmt(x, 3));
    rows.push([label(v, p.rowAxis, r), ...values]);
  }
  v.dom.table.replaceChildren(table('im-patch-grid', head, rows, true));
}

/** Show the per-example values of the selected cell (the kernel sends them on selection). */
function drawDetail(v: View): void {
  const { detail } = v.dom;
  detail.replaceChildren();
  const sel = v.model.get('selected');
  const vals = floats(v.model.get('cell_values'));
  const m = meta(v);
  if (!sel || sel.length !== 2 || vals.length === 0) return;
  const at = where(v, plane(v), sel[0], sel[1]);
  detail.appendChild(
    h('div', 'im-patch-detail-title', undefined, `Per-example ${m.metric}, ${at}`)
  );
  const withCorrupt = m.corrupt !== null;
  const head = ['example', 'patched', 'clean', ...(withCorrupt ? ['corrupted'] : [])];
  const clean = floats(v.model.get('clean_values'));
  const corrupt = floats(v.model.get('corrupt_values'));
  const rows = Array.from(vals, (x, i) => [
    String(i),
    fmt(x, 4),
    fmt(clean[i], 4),
    ...(withCorrupt ? [fmt(corrupt[i], 4)] : [])
  ]);
  detail.appendChild(table('im-patch-examples', head, rows));
}

/** Read out the value of cell (r, c). */
function describe(v: View, r: number, c: number): void {
  const { live } = v.dom;
  const m = meta(v);
  const p = plane(v);
  const x = p.values[r * p.cols + c];
  const name = v.showRaw ? m.metric : m.value_name;
  let text = `${where(v, p, r, c)}: ${name} ${fmt(x, 5)}`;
  const lows = planeOf(v, floats(v.model.get('ci_low')));
  const highs = planeOf(v, floats(v.model.get('ci_high')));
  const ps = planeOf(v, floats(v.model.get('p_corrected')));
  const sig = planeOf(v, bytes(v.model.get('significant')));
  const i = r * p.cols + c;
  if (lows.length && highs.length) {
    const scale = (y: number): number => (v.showRaw ? toRaw(v, y) : y);
    const [lo, hi] = [scale(lows[i]), scale(highs[i])].sort((a, b) => a - b);
    const level = Math.round((m.level ?? 0.95) * 100);
    text += ` · ${level}% CI [${fmt(lo, 4)}, ${fmt(hi, 4)}]`;
    live.dataset.ciLow = String(lo);
    live.dataset.ciHigh = String(hi);
  }
  if (ps.length) {
    const ok = sig.length ? sig[i] === 1 : ps[i] < (m.alpha ?? 0.05);
    text += ` · p (${m.correction ?? 'corrected'}) ${fmt(ps[i], 3)}${ok ? '' : ', not significant'}`;
    live.dataset.significant = ok ? 'true' : 'false';
  }
  live.textContent = text;
  live.dataset.value = String(x);
  live.dataset.cell = `${r}/${c}`;
}

function attachInput(v: View): void {
  const { canvas, rawButton, tableButton, sliceSelect } = v.dom;
  const select = ([r, c]: Cell): void => {
    v.model.set('selected', [r, c]);
    v.model.save_changes();
    draw(v);
  };
  attachGrid(canvas, v.cursor, {
    geometry: () => geometry(v),
    hover: hit => {
      if (hit) describe(v, hit[0], hit[1]);
    },
    activate: select,
    move: ([r, c]) => {
      describe(v, r, c);
      draw(v);
    },
    focus: () => draw(v)
  });
  rawButton.addEventListener('click', () => {
    v.showRaw = !v.showRaw;
    setPressed(rawButton, v.showRaw);
    draw(v);
  });
  tableButton.addEventListener('click', () => {
    v.showTable = !v.showTable;
    setPressed(tableButton, v.showTable);
    draw(v);
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
    cursor: { cell: [0, 0] }
  };
  attachInput(v);
  const onChange = (): void => {
    fillControls(v);
    draw(v);
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

  return () => {
    for (const e of events) model.off(e, onChange);
    v.dom.root.remove();
  };
}

export default { render } satisfies AnyWidget<PatchingTraits>;
