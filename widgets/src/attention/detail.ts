// The detail of the selected head: its query x key matrix with token labels on both axes (thinned,
// never dropped) and the axis titles "query" and "key", the hovered cell's row and column
// highlighted, the colour legend with round ticks, and on request the head as a table of each
// query's strongest keys, every weight printed to the precision its byte code has.

import { decode } from '../lib/buffers';
import { colorBar } from '../lib/canvas';
import { h, showToken, table } from '../lib/dom';
import type { Grid } from '../lib/geometry';
import { fmtResolved, niceStep, niceTicks, tickLabel } from '../lib/ticks';
import {
  highlightTicks,
  placeColumns,
  placeRows,
  sizeFrame,
  slantedSpacing,
  thinning,
  TICK_LINE,
  tickFont,
  tokenTicks
} from './axes';
import { KEY_LABEL_PX, KEYS_H, KEYS_OVERHANG, layout, QUERY_W, TITLE_W } from './layout';
import { paintHead } from './pixels';
import { currentDetail, headName, meta, palette, pad, type View } from './view';

/** Return the detail's geometry (one cell per query x key), for hit-testing. */
export function detailGrid(v: View): Grid {
  const n = meta(v).seq;
  return { rows: n, cols: n, cell: layout(v).cell, gap: 0 };
}

/** Return the resolution of the selected head's weights: one step of its byte codes. */
export function quantum(scale: number): number {
  return scale / 255;
}

/** Draw the selected head, or mark the detail as loading until the kernel sends it. */
export function drawDetail(v: View): void {
  const { detailCanvas, detailCaption, root, detailPlot } = v.dom;
  const m = meta(v);
  const [l, hd] = v.model.get('selected');
  const n = m.seq;
  const { cell, detailRoom } = layout(v);
  const size = n * cell;
  sizeFrame(detailPlot, {
    yBand: QUERY_W,
    xBand: KEYS_H,
    w: size,
    hgt: size,
    overhang: KEYS_OVERHANG,
    room: detailRoom
  });
  detailCanvas.width = n;
  detailCanvas.height = n;
  detailCanvas.style.width = `${size}px`;
  detailCanvas.style.height = `${size}px`;
  detailCanvas.dataset.layer = String(m.layer_labels[l]);
  detailCanvas.dataset.head = String(hd);
  detailCanvas.dataset.cell = String(cell);
  detailCanvas.setAttribute(
    'aria-label',
    `Layer ${m.layer_labels[l]} head ${hd}: ${n} query tokens by ${n} key tokens. ` +
      'Arrow keys move, Escape returns to the overview.'
  );
  detailCaption.textContent = `${headName(v, l, hd)} in detail (layer ${m.layer_labels[l]}, head ${hd})`;
  drawLabels(v, cell);
  drawHighlight(v);
  const ctx = detailCanvas.getContext('2d');
  const d = currentDetail(v);
  if (!ctx) return;
  ctx.clearRect(0, 0, n, n);
  if (!d) {
    detailCanvas.dataset.state = 'loading';
    return;
  }
  // Codes are relative to the head's own maximum; the colour range is shared by all heads.
  const codeScale = d.scale / m.vmax;
  const opts = { pal: palette(v), index: v.index, pad: pad(v), causal: m.causal, codeScale };
  ctx.putImageData(new ImageData(paintHead(d.codes, n, opts), n, n), 0, 0);
  detailCanvas.dataset.state = 'ready';
  if (!root.dataset.detailPaintMs) {
    root.dataset.detailPaintMs = (performance.now() - v.started).toFixed(1);
  }
  if (v.showTable) drawTable(v);
}

/** Label the queries (down) and the keys (across, slanted) with their tokens, every k-th when
 * the cells are smaller than a line of text. */
function drawLabels(v: View, cell: number): void {
  const { detailPlot } = v.dom;
  const toks = v.model.get('tokens');
  const padMask = pad(v);
  const kRows = thinning(cell, TICK_LINE);
  const kCols = thinning(cell, slantedSpacing());
  const font = tickFont(detailPlot.yLabels);
  const rows = tokenTicks(toks, padMask, kRows, QUERY_W - 8, font);
  const cols = tokenTicks(toks, padMask, kCols, KEY_LABEL_PX, font);
  placeRows(detailPlot.yLabels, rows, cell);
  placeColumns(detailPlot.xLabels, cols, cell, true);
  detailPlot.frame.dataset.labelEvery = `${kRows},${kCols}`;
}

/** Highlight the row and column of the cell the pointer or the cursor is on (or none). */
export function drawHighlight(v: View): void {
  const { hlRow, hlCol, hlCell, detailPlot } = v.dom;
  const t = v.target;
  const show = t?.kind === 'cell';
  for (const el of [hlRow, hlCol, hlCell]) el.hidden = !show;
  if (!show) {
    highlightTicks(detailPlot, -1, -1);
    return;
  }
  const [q, k] = t.cell;
  const { cell } = layout(v);
  const size = meta(v).seq * cell;
  Object.assign(hlRow.style, { top: `${q * cell}px`, height: `${cell}px`, width: `${size}px` });
  Object.assign(hlCol.style, { left: `${k * cell}px`, width: `${cell}px`, height: `${size}px` });
  Object.assign(hlCell.style, {
    left: `${k * cell}px`,
    top: `${q * cell}px`,
    width: `${cell}px`,
    height: `${cell}px`
  });
  highlightTicks(detailPlot, q, k);
}

/** Show the selected head as a table: each query's three strongest keys (or clear it). */
export function drawTable(v: View): void {
  v.dom.table.replaceChildren();
  const d = currentDetail(v);
  if (!v.showTable || !d) return;
  const n = meta(v).seq;
  const toks = v.model.get('tokens');
  const step = quantum(d.scale);
  const rows: string[][] = [];
  for (let q = 0; q < n; q++) {
    const top = Array.from(d.codes.subarray(q * n, (q + 1) * n))
      .map((c, k) => [c, k] as [number, number])
      .sort((a, b) => b[0] - a[0])
      .slice(0, 3)
      .filter(([c]) => c > 0);
    const keys = top.map(
      ([c, k]) => `${showToken(toks[k])} ${fmtResolved(decode(c, d.scale), step)}`
    );
    rows.push([`${q} ${showToken(toks[q])}`, keys.join(', ')]);
  }
  v.dom.table.appendChild(table('im-attn-rows', ['query', 'top keys (weight)'], rows));
}

/** Draw the colour legend: the colour table under the current contrast, with round ticks placed
 * where their weights are on the bar. */
export function drawLegend(v: View): void {
  const vmax = meta(v).vmax;
  // Position i along the bar is the weight i/255 * vmax, coloured as the views colour it.
  const bar = colorBar('im-attn-legend-bar', palette(v).lut, v.index);
  const values = niceTicks(0, vmax, 4);
  const step = niceStep(vmax, 4);
  const ticks = h('div', 'im-attn-ticks');
  for (const value of values) {
    const tick = h('span', 'im-attn-tick-value', undefined, tickLabel(value, step));
    tick.style.left = `${(value / vmax) * 256 + 1}px`;
    ticks.appendChild(tick);
  }
  const title = v.contrast === 'sqrt' ? 'attention weight (√ contrast)' : 'attention weight';
  // Under the matrix (past the query labels) when there is room for the bar there.
  const under = TITLE_W + QUERY_W;
  v.dom.legend.style.marginLeft = layout(v).detailRoom >= under + 270 ? `${under}px` : '0px';
  v.dom.legend.replaceChildren(h('span', 'im-attn-legend-title', undefined, title), bar, ticks);
}
