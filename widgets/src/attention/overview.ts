// The overview: one thumbnail per head (layers down, heads across), or in focus mode one strip
// per head of where it sends the focus query's attention.

import { bytes } from '../lib/buffers';
import { sizeCanvas, themeColor } from '../lib/canvas';
import { showToken } from '../lib/dom';
import type { Grid } from '../lib/geometry';
import { paintMatrix, paintStrip, poolMax, poolPad } from '../lib/paint';
import { focusRows, GAP, lut, meta, pad, THUMB_PX, type View } from './view';

const STEP = THUMB_PX + GAP;

interface Thumbnail {
  data: Uint8ClampedArray<ArrayBuffer>;
  w: number;
  hgt: number;
}

/** Return the overview's geometry, for hit-testing. */
export function overviewGrid(v: View): Grid {
  const m = meta(v);
  return { rows: m.layers, cols: m.heads, cell: STEP, gap: GAP };
}

/** Draw the overview of every head, the selected head's outline and (with focus) the cursor. */
export function drawGrid(v: View): void {
  const { gridCanvas } = v.dom;
  const m = meta(v);
  const width = m.heads * STEP - GAP;
  const height = m.layers * STEP - GAP;
  const ctx = sizeCanvas(gridCanvas, width, height);
  gridCanvas.setAttribute(
    'aria-label',
    `Attention heads, ${m.layers} layers by ${m.heads} heads` +
      (v.mode === 'focus' ? `, showing where query ${v.model.get('focus')} attends` : '') +
      '. Arrow keys move between heads, Enter opens one.'
  );
  if (!ctx) return;
  ctx.imageSmoothingEnabled = false;
  paintHeads(v, ctx);
  const [sl, sh] = v.model.get('selected');
  outline(v, ctx, sh, sl, '--im-accent', 2);
  if (document.activeElement === gridCanvas) {
    outline(v, ctx, v.grid.cell[1], v.grid.cell[0], '--im-cursor', 1);
  }
  v.dom.gridCaption.textContent = caption(v);
}

function paintHeads(v: View, ctx: CanvasRenderingContext2D): void {
  const m = meta(v);
  const scratch = document.createElement('canvas');
  const sctx = scratch.getContext('2d');
  if (!sctx) return;
  for (let l = 0; l < m.layers; l++) {
    for (let hd = 0; hd < m.heads; hd++) {
      const img = thumbnail(v, l, hd);
      const x = hd * STEP;
      const y = l * STEP;
      if (!img) {
        ctx.fillStyle = 'rgba(128,128,128,0.15)';
        ctx.fillRect(x, y, THUMB_PX, THUMB_PX);
        continue;
      }
      scratch.width = img.w;
      scratch.height = img.hgt;
      sctx.putImageData(new ImageData(img.data, img.w, img.hgt), 0, 0);
      ctx.drawImage(scratch, 0, 0, img.w, img.hgt, x, y, THUMB_PX, THUMB_PX);
    }
  }
}

/** Return the pixels of one head's thumbnail, or null while its focus rows are on their way. */
function thumbnail(v: View, l: number, hd: number): Thumbnail | null {
  const m = meta(v);
  if (v.mode === 'focus') {
    const rows = focusRows(v);
    if (!rows) return null;
    const off = (l * m.heads + hd) * m.seq;
    const strip = poolMax(rows.subarray(off, off + m.seq), THUMB_PX);
    const stripPad = poolPad(pad(v), THUMB_PX);
    return {
      data: paintStrip(strip, { lut: lut(v), index: v.index, pad: stripPad }),
      w: strip.length,
      hgt: 1
    };
  }
  const t = m.thumb;
  const all = bytes(v.model.get('thumbs'));
  const off = (l * m.heads + hd) * t * t;
  const thumbPad = bytes(v.model.get('thumb_pad'));
  const opts = { lut: lut(v), index: v.index, pad: thumbPad, causal: m.causal };
  return { data: paintMatrix(all.subarray(off, off + t * t), t, opts), w: t, hgt: t };
}

function outline(
  v: View,
  ctx: CanvasRenderingContext2D,
  col: number,
  row: number,
  property: string,
  width: number
): void {
  ctx.strokeStyle = themeColor(v.dom.root, property, '#e65100');
  ctx.lineWidth = width;
  ctx.strokeRect(col * STEP - 1, row * STEP - 1, THUMB_PX + 2, THUMB_PX + 2);
}

function caption(v: View): string {
  const m = meta(v);
  const q = v.model.get('focus');
  if (v.mode === 'focus') {
    return `Where each head sends query ${q} (${showToken(v.model.get('tokens')[q] ?? '')})`;
  }
  const labels = m.layer_labels;
  return (
    `${m.layers} layers × ${m.heads} heads ` +
    `(rows: layers ${labels[0]}–${labels[labels.length - 1]})`
  );
}
