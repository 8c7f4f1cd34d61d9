// What the two charts of the panel share: the plot frame, pointer hit-testing, and the small
// drawing steps (rules, text cut to fit). A chart is laid out for a width, then drawn in the
// theme's ink as often as the hover or the theme changes.

import type { Ink } from '../lib/theme';

/** The plot area inside the canvas, in CSS pixels. */
export interface Box {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** Return the width of `text` in the canvas font. */
export type Measure = (text: string) => number;

export interface Chart {
  /** The canvas height the chart needs, CSS pixels. */
  height: number;
  frame: Box;
  /** How many items (bars, layers) can be hovered. */
  count: number;
  /** Draw everything; `hover` is the item under the pointer or keyboard cursor. */
  draw(ctx: CanvasRenderingContext2D, ink: Ink, hover: number | null): void;
  /** Return the item at (x, y), CSS pixels from the canvas corner, or null. */
  hit(x: number, y: number): number | null;
  /** Return where item i is drawn (the tooltip's anchor for the keyboard). */
  anchor(i: number): [number, number];
}

export const FONT_PX = 12;

/** Return `text` cut with an ellipsis to at most `max` pixels wide. */
export function ellipsize(text: string, max: number, measure: Measure): string {
  if (measure(text) <= max) return text;
  let n = text.length;
  while (n > 1 && measure(text.slice(0, n) + '…') > max) n--;
  return text.slice(0, n) + '…';
}

/** Draw a straight rule from (ax, ay) to (bx, by). */
export function rule(
  ctx: CanvasRenderingContext2D,
  ax: number,
  ay: number,
  bx: number,
  by: number,
  colour: string,
  dash: number[] = [],
  width = 1
): void {
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  ctx.setLineDash(dash);
  ctx.beginPath();
  ctx.moveTo(ax, ay);
  ctx.lineTo(bx, by);
  ctx.stroke();
  ctx.restore();
}

/** Set the text alignment and colour for the next `fillText`. */
export function textStyle(
  ctx: CanvasRenderingContext2D,
  colour: string,
  align: CanvasTextAlign,
  baseline: CanvasTextBaseline
): void {
  ctx.fillStyle = colour;
  ctx.textAlign = align;
  ctx.textBaseline = baseline;
}

/** Draw `text` in bold at (x, y) with the current alignment and colour. */
export function boldText(ctx: CanvasRenderingContext2D, text: string, x: number, y: number): void {
  ctx.save();
  ctx.font = `bold ${ctx.font}`;
  ctx.fillText(text, x, y);
  ctx.restore();
}
