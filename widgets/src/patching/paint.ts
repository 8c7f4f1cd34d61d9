// Painting the heatmap's canvas: the cells in the theme's diverging colours, their numbers
// when they fit (in black or white, whichever contrasts more with the cell), hatching on the
// cells whose corrected test is not significant, and the marks: the hovered cell with its row
// and column, the selected cell and the keyboard cursor. Colours come from the theme at draw time.

import { contrastRatio, type Rgb } from '../lib/contrast';
import { divergingIndex } from '../lib/colors';
import type { Ink } from '../lib/theme';
import type { Layout } from './layout';
import { cellText } from './scale';

export interface Painting {
  values: Float32Array; // the plane on show, row-major
  rows: number;
  cols: number;
  centre: number; // the value drawn at the scale's centre
  limit: number; // half-width of the scale
  lut: Uint8Array; // 256 x RGB
  significant: Float32Array; // 1 / 0 per cell, or empty (no tests)
  decimals: number; // of the numbers written in cells
  font: string; // CSS font of the numbers
}

export interface Marks {
  hover: [number, number] | null;
  selected: [number, number] | null;
  cursor: [number, number] | null; // only while the canvas has focus
}

/** Return the LUT colour of row `index`. */
function lutRgb(lut: Uint8Array, index: number): Rgb {
  const i = Math.max(0, Math.min(255, index)) * 3;
  return [lut[i], lut[i + 1], lut[i + 2]];
}

/** Return black or white, whichever has the higher contrast with `bg`. */
export function inkOn(bg: Rgb): Rgb {
  return contrastRatio([0, 0, 0], bg) >= contrastRatio([255, 255, 255], bg)
    ? [0, 0, 0]
    : [255, 255, 255];
}

const rgb = ([r, g, b]: Rgb, a = 1): string =>
  a === 1 ? `rgb(${r}, ${g}, ${b})` : `rgba(${r}, ${g}, ${b}, ${a})`;

/** Return whether every number of the plane fits inside its cell (else none is written). */
export function numbersFit(ctx: CanvasRenderingContext2D, p: Painting, l: Layout): boolean {
  if (l.cellH < 13 || l.cellW < 16) return false;
  ctx.font = p.font;
  let widest = 0;
  for (const x of p.values)
    widest = Math.max(widest, ctx.measureText(cellText(x, p.decimals)).width);
  return widest + 4 <= l.cellW;
}

/** Paint the cells (and their numbers when they fit) at the layout's cell size. */
export function paintCells(ctx: CanvasRenderingContext2D, p: Painting, l: Layout): void {
  const numbers = numbersFit(ctx, p, l);
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  for (let r = 0; r < p.rows; r++) {
    for (let c = 0; c < p.cols; c++) {
      const x = p.values[r * p.cols + c];
      const colour = lutRgb(p.lut, divergingIndex(x - p.centre, p.limit));
      ctx.fillStyle = rgb(colour);
      ctx.fillRect(c * l.cellW, r * l.cellH, l.cellW, l.cellH);
      if (numbers && Number.isFinite(x)) {
        ctx.fillStyle = rgb(inkOn(colour));
        ctx.fillText(cellText(x, p.decimals), c * l.cellW + l.cellW / 2, r * l.cellH + l.cellH / 2);
      }
    }
  }
  if (p.significant.length) paintNotSignificant(ctx, p, l);
}

/** Hatch the cells whose corrected test is not significant (no claim should rest on them),
 * in the ink that contrasts with each cell, so the marks show on any colour and theme. One clip
 * per ink (the union of its cells) and one set of lines across the grid keep this fast for
 * thousands of cells. */
function paintNotSignificant(ctx: CanvasRenderingContext2D, p: Painting, l: Layout): void {
  const step = Math.max(3, Math.min(7, Math.round(Math.min(l.cellW, l.cellH) / 3)));
  const groups = new Map<string, [number, number][]>();
  for (let r = 0; r < p.rows; r++) {
    for (let c = 0; c < p.cols; c++) {
      if (p.significant[r * p.cols + c]) continue;
      const colour = lutRgb(p.lut, divergingIndex(p.values[r * p.cols + c] - p.centre, p.limit));
      const ink = rgb(inkOn(colour), 0.45);
      const cells = groups.get(ink) ?? [];
      cells.push([r, c]);
      groups.set(ink, cells);
    }
  }
  const w = p.cols * l.cellW;
  const hgt = p.rows * l.cellH;
  for (const [ink, cells] of groups) {
    ctx.save();
    ctx.beginPath();
    for (const [r, c] of cells) ctx.rect(c * l.cellW, r * l.cellH, l.cellW, l.cellH);
    ctx.clip();
    ctx.strokeStyle = ink;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let k = -hgt; k < w; k += step) {
      ctx.moveTo(k, hgt);
      ctx.lineTo(k + hgt, 0);
    }
    ctx.stroke();
    ctx.restore();
  }
}

/** Draw the hovered cell's row and column bands, the hovered and selected cells and the cursor. */
export function paintMarks(
  ctx: CanvasRenderingContext2D,
  m: Marks,
  l: Layout,
  size: { rows: number; cols: number },
  ink: Ink
): void {
  if (m.hover) {
    const [r, c] = m.hover;
    ctx.strokeStyle = ink.fg;
    ctx.globalAlpha = 0.6;
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 2]);
    ctx.strokeRect(0.5, r * l.cellH + 0.5, size.cols * l.cellW - 1, l.cellH - 1);
    ctx.strokeRect(c * l.cellW + 0.5, 0.5, l.cellW - 1, size.rows * l.cellH - 1);
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;
    outline(ctx, m.hover, l, ink.bg, 4); // a halo in the background colour, so the mark
    outline(ctx, m.hover, l, ink.fg, 2); // shows on cells of any colour
  }
  if (m.selected) {
    outline(ctx, m.selected, l, ink.bg, 4);
    outline(ctx, m.selected, l, ink.accent, 2);
  }
  if (m.cursor) outline(ctx, m.cursor, l, ink.accent, 1);
}

function outline(
  ctx: CanvasRenderingContext2D,
  [r, c]: [number, number],
  l: Layout,
  colour: string,
  width: number
): void {
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  const inset = width / 2;
  ctx.strokeRect(
    c * l.cellW + inset,
    r * l.cellH + inset,
    Math.max(1, l.cellW - width),
    Math.max(1, l.cellH - width)
  );
}

/** Return RGBA pixels of the legend's colour bar, `width` px wide, the LUT across it. */
export function barPixels(lut: Uint8Array, width: number): Uint8ClampedArray<ArrayBuffer> {
  const out = new Uint8ClampedArray(width * 4);
  for (let x = 0; x < width; x++) {
    const [r, g, b] = lutRgb(lut, Math.round((x / Math.max(1, width - 1)) * 255));
    out.set([r, g, b, 255], x * 4);
  }
  return out;
}
