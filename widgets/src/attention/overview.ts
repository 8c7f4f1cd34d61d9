// The overview: one thumbnail per head (layers down, heads across, labelled L0.. and H0.. with
// the axis titles "layer" and "head"), or in focus mode one strip per head of where it sends the
// focus query's attention. Thumbnails shrink with the room; when shown smaller than Python pooled
// them, they are pooled again here by block maxima, so a single strong weight stays visible.

import { bytes } from '../lib/buffers';
import { sizeCanvas, themeColor } from '../lib/canvas';
import { showToken } from '../lib/dom';
import type { Grid } from '../lib/geometry';
import { paintStrip, poolMax, poolPad } from '../lib/paint';
import {
  every,
  highlightTicks,
  placeColumns,
  placeRows,
  sizeFrame,
  thinning,
  TICK_LINE
} from './axes';
import { paintHead, poolSquare } from './pixels';
import { GAP, HEAD_H, LAYER_W, layout } from './layout';
import { focusRows, meta, palette, pad, type View } from './view';

interface Thumbnail {
  data: Uint8ClampedArray<ArrayBuffer>;
  w: number;
  hgt: number;
}

/** Return the overview's geometry, for hit-testing. */
export function overviewGrid(v: View): Grid {
  const m = meta(v);
  return { rows: m.layers, cols: m.heads, cell: layout(v).step, gap: GAP };
}

/** Draw the overview of every head, its labels, the selected head's outline, the hovered head
 * and (with focus) the keyboard cursor. */
export function drawGrid(v: View): void {
  const { gridCanvas, overview } = v.dom;
  const m = meta(v);
  const L = layout(v);
  const width = m.heads * L.step - GAP;
  const height = m.layers * L.step - GAP;
  sizeFrame(overview, {
    yBand: LAYER_W,
    xBand: HEAD_H,
    w: width,
    hgt: height,
    overhang: 0,
    room: L.overviewWidth
  });
  // The panel is as wide as the layout says (its caption wraps), so the detail lands beside it
  // or below it exactly as the layout decided.
  const panel = overview.frame.parentElement;
  if (panel) panel.style.width = `${L.overviewWidth}px`;
  drawLabels(v);
  gridCanvas.dataset.step = String(L.step);
  gridCanvas.setAttribute(
    'aria-label',
    `Attention heads, ${m.layers} layers by ${m.heads} heads` +
      (v.mode === 'focus' ? `, showing where query ${v.model.get('focus')} attends` : '') +
      '. Arrow keys move between heads, Enter opens one.'
  );
  v.dom.gridCaption.textContent = caption(v);
  const ctx = sizeCanvas(gridCanvas, width, height);
  if (!ctx) return;
  ctx.imageSmoothingEnabled = false;
  const { ink } = palette(v);
  // The gaps between thumbnails are faint grid lines: in a dark theme, where zero attention is
  // the background, they still show where each head's square is.
  ctx.globalAlpha = 0.7;
  ctx.fillStyle = ink.border;
  ctx.fillRect(0, 0, width, height);
  ctx.globalAlpha = 1;
  paintHeads(v, ctx);
  const [sl, sh] = v.model.get('selected');
  // The selected head in the theme's warning colour (orange): it stands out on blue maps.
  outline(v, ctx, sl, sh, themeColor(v.dom.root, '--im-accent', '#e65100'), 2);
  const t = v.target;
  let hl: [number, number] = [-1, -1];
  if (t?.kind === 'head') {
    outline(v, ctx, t.cell[0], t.cell[1], ink.fg, 1);
    hl = t.cell;
  }
  if (document.activeElement === gridCanvas) {
    ctx.setLineDash([3, 2]);
    outline(v, ctx, v.grid.cell[0], v.grid.cell[1], ink.fg, 1);
    ctx.setLineDash([]);
  }
  highlightTicks(overview, hl[0], hl[1]);
}

/** Label the layers (L<model layer>) down and the heads (H<n>) across, thinned when small. */
function drawLabels(v: View): void {
  const m = meta(v);
  const { step, thumb } = layout(v);
  const kRows = thinning(step, TICK_LINE);
  const headChars = 1 + String(Math.max(0, m.heads - 1)).length;
  const kCols = thinning(step, headChars * 7 + 4);
  const rowTicks = every(m.layers, kRows).map(l => {
    const text = `L${m.layer_labels[l] ?? l}`;
    return { index: l, text, title: `layer ${m.layer_labels[l] ?? l}` };
  });
  const colTicks = every(m.heads, kCols).map(hd => ({
    index: hd,
    text: `H${hd}`,
    title: `head ${hd}`
  }));
  placeRows(v.dom.overview.yLabels, rowTicks, step);
  placeColumns(v.dom.overview.xLabels, colTicks, step, false, thumb);
}

function paintHeads(v: View, ctx: CanvasRenderingContext2D): void {
  const m = meta(v);
  const { step, thumb } = layout(v);
  const scratch = document.createElement('canvas');
  const sctx = scratch.getContext('2d');
  if (!sctx) return;
  for (let l = 0; l < m.layers; l++) {
    for (let hd = 0; hd < m.heads; hd++) {
      const img = thumbnail(v, l, hd, thumb);
      const x = hd * step;
      const y = l * step;
      // The background under each square: the causal mask (left transparent) shows it.
      ctx.fillStyle = palette(v).ink.bg;
      ctx.fillRect(x, y, thumb, thumb);
      if (!img) continue;
      scratch.width = img.w;
      scratch.height = img.hgt;
      sctx.putImageData(new ImageData(img.data, img.w, img.hgt), 0, 0);
      ctx.drawImage(scratch, 0, 0, img.w, img.hgt, x, y, thumb, thumb);
    }
  }
}

/** Return the pixels of one head's thumbnail at most `size` wide, or null while its focus rows
 * are on their way. */
function thumbnail(v: View, l: number, hd: number, size: number): Thumbnail | null {
  const m = meta(v);
  const pal = palette(v);
  if (v.mode === 'focus') {
    const rows = focusRows(v);
    if (!rows) return null;
    const off = (l * m.heads + hd) * m.seq;
    const strip = poolMax(rows.subarray(off, off + m.seq), size);
    const data = paintStrip(strip, { lut: pal.lut, index: v.index });
    recolourStripPad(data, poolPad(pad(v), size), pal.pad);
    return { data, w: strip.length, hgt: 1 };
  }
  const t = m.thumb;
  const all = bytes(v.model.get('thumbs'));
  const off = (l * m.heads + hd) * t * t;
  let codes = all.subarray(off, off + t * t);
  let padMask = bytes(v.model.get('thumb_pad'));
  let side = t;
  if (t > size) {
    codes = poolSquare(codes, t, size);
    padMask = poolPad(padMask, size);
    side = size;
  }
  const data = paintHead(codes, side, { pal, index: v.index, pad: padMask, causal: m.causal });
  return { data, w: side, hgt: side };
}

function recolourStripPad(data: Uint8ClampedArray, padMask: Uint8Array, rgb: number[]): void {
  for (let k = 0; k < padMask.length; k++) {
    if (padMask[k] === 1) data.set([rgb[0], rgb[1], rgb[2], 255], k * 4);
  }
}

/** Outline the head at (row, col) inside its square (so the first row and column show it too). */
function outline(
  v: View,
  ctx: CanvasRenderingContext2D,
  row: number,
  col: number,
  colour: string,
  width: number
): void {
  const { step, thumb } = layout(v);
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  const inset = width / 2;
  ctx.strokeRect(col * step + inset, row * step + inset, thumb - width, thumb - width);
}

function caption(v: View): string {
  const m = meta(v);
  const q = v.model.get('focus');
  if (v.mode === 'focus') {
    return `Where each head sends query ${q} (${showToken(v.model.get('tokens')[q] ?? '')})`;
  }
  return `${m.layers} layers × ${m.heads} heads`;
}
