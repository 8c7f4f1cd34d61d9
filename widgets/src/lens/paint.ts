// Painting the lens grid: each cell in the colour of its top-1 probability step (one pixel
// buffer at CSS resolution, so a column is exactly the pixels the pointer hit-tests as that
// column, also when 512 columns share 1000 px), padding in a grey between the background and
// the text, the top-1 token written in the cell when it is wide enough (black or white, whichever
// contrasts more with the cell), and the marks: the hovered cell with its row and column, the
// column whose trajectory is shown, and the keyboard cursor.

import { contrastRatio, parseColor, type Rgb } from '../lib/contrast';
import type { Ink } from '../lib/theme';
import { colLeft, rowTop, type Layout } from './layout';

export interface Painting {
  codes: Uint8Array; // one per cell, row-major (row 0 = embeddings)
  lut: Uint8Array; // levels x RGB
  pad: Uint8Array; // one per column
  padRgb: Rgb;
  text: ((row: number, col: number) => string | null) | null; // the top-1 token of a cell
  font: string;
}

/** Return black or white, whichever has the higher contrast with `bg` (at least 4.58:1). */
export function inkOn(bg: Rgb): Rgb {
  return contrastRatio([0, 0, 0], bg) >= contrastRatio([255, 255, 255], bg)
    ? [0, 0, 0]
    : [255, 255, 255];
}

/** Return the colour of step `code`. */
export function levelRgb(lut: Uint8Array, code: number): Rgb {
  const i = code * 3;
  return [lut[i] ?? 0, lut[i + 1] ?? 0, lut[i + 2] ?? 0];
}

/** Return the padding grey: a third of the way from the background to the text. */
export function padColour(ink: Ink): Rgb {
  const bg = parseColor(ink.bg) ?? [255, 255, 255];
  const fg = parseColor(ink.fg) ?? [0, 0, 0];
  return bg.map((c, i) => Math.round(c + (fg[i] - c) * 0.3)) as Rgb;
}

/** Return RGBA pixels of the grid at CSS resolution (gridW x gridH). */
export function gridPixels(p: Painting, l: Layout): Uint8ClampedArray<ArrayBuffer> {
  const { gridW, gridH, cols } = l;
  const out = new Uint8ClampedArray(gridW * gridH * 4);
  const colOf = new Int32Array(gridW);
  for (let x = 0; x < gridW; x++) colOf[x] = Math.min(cols - 1, Math.floor(x / l.cellW));
  for (let y = 0; y < gridH; y++) {
    const r = l.rows - 1 - Math.floor(y / l.cellH);
    const base = r * cols;
    let at = y * gridW * 4;
    for (let x = 0; x < gridW; x++, at += 4) {
      const c = colOf[x];
      const rgb = p.pad[c] === 1 ? p.padRgb : levelRgb(p.lut, p.codes[base + c]);
      out[at] = rgb[0];
      out[at + 1] = rgb[1];
      out[at + 2] = rgb[2];
      out[at + 3] = 255;
    }
  }
  return out;
}

/** Return `text` whole, or cut with an ellipsis to fit `max` px, keeping at least two
 * letters ('' when they do not fit: a lone letter and an ellipsis says too little). */
export function fitText(text: string, max: number, measure: (s: string) => number): string {
  if (measure(text) <= max) return text;
  for (let n = text.length - 1; n >= 2; n--) {
    const cut = text.slice(0, n) + '…';
    if (measure(cut) <= max) return cut;
  }
  return '';
}

/** Paint the cells, and their top-1 tokens when the layout has room for text. */
export function paintCells(ctx: CanvasRenderingContext2D, p: Painting, l: Layout): void {
  if (l.gridW > 0 && l.gridH > 0) {
    const off = document.createElement('canvas');
    off.width = l.gridW;
    off.height = l.gridH;
    off.getContext('2d')?.putImageData(new ImageData(gridPixels(p, l), l.gridW, l.gridH), 0, 0);
    ctx.imageSmoothingEnabled = false; // columns stay crisp at any device pixel ratio
    ctx.drawImage(off, 0, 0, l.gridW, l.gridH);
  }
  if (!l.text || !p.text) return;
  ctx.font = p.font;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  const measure = (s: string): number => ctx.measureText(s).width;
  for (let r = 0; r < l.rows; r++) {
    for (let c = 0; c < l.cols; c++) {
      if (p.pad[c] === 1) continue;
      const token = p.text(r, c);
      if (token === null) continue;
      const x0 = colLeft(l, c);
      const w = colLeft(l, c + 1) - x0;
      const shown = fitText(token, w - 4, measure);
      if (!shown) continue;
      const [cr, cg, cb] = inkOn(levelRgb(p.lut, p.codes[r * l.cols + c]));
      ctx.fillStyle = `rgb(${cr}, ${cg}, ${cb})`;
      ctx.fillText(shown, x0 + w / 2, rowTop(l, r) + l.cellH / 2);
    }
  }
}

export interface Marks {
  hover: [number, number] | null;
  column: number | null; // the trajectory's column
  cursor: [number, number] | null; // only while the grid has focus
}

/** Draw the hovered cell's row and column, the trajectory's column, and the cursor. */
export function paintMarks(ctx: CanvasRenderingContext2D, m: Marks, l: Layout, ink: Ink): void {
  if (m.column !== null && m.column < l.cols) {
    const x = colLeft(l, m.column);
    const w = Math.max(2, colLeft(l, m.column + 1) - x);
    ctx.strokeStyle = ink.accent;
    ctx.lineWidth = 2;
    ctx.strokeRect(x + 1, 1, w - 2, l.gridH - 2);
  }
  if (m.hover) {
    const [r, c] = m.hover;
    const x = colLeft(l, c);
    const w = Math.max(1, colLeft(l, c + 1) - x);
    const y = rowTop(l, r);
    ctx.save();
    ctx.strokeStyle = ink.fg;
    ctx.globalAlpha = 0.6;
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 2]);
    ctx.strokeRect(0.5, y + 0.5, l.gridW - 1, l.cellH - 1);
    ctx.strokeRect(x + 0.5, 0.5, Math.max(1, w - 1), l.gridH - 1);
    ctx.restore();
    outline(ctx, x, y, w, l.cellH, ink.bg, 4); // a halo in the background colour, so the
    outline(ctx, x, y, w, l.cellH, ink.fg, 2); // mark shows on cells of any colour
  }
  if (m.cursor) {
    const [r, c] = m.cursor;
    const x = colLeft(l, c);
    outline(ctx, x, rowTop(l, r), Math.max(1, colLeft(l, c + 1) - x), l.cellH, ink.accent, 1);
  }
}

function outline(
  ctx: CanvasRenderingContext2D,
  x: number,
  y: number,
  w: number,
  h: number,
  colour: string,
  width: number
): void {
  // a column narrower than the mark is outlined as a few pixels around it, so it still shows
  const wide = Math.max(w, 5);
  const left = x - (wide - w) / 2;
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  const inset = width / 2;
  ctx.strokeRect(left + inset, y + inset, wide - width, h - width);
}
