// The histogram of a feature's nonzero activations: bars over the bin edges the kernel sent,
// round ticks on both axes (tick labels drawn on the canvas in the theme's muted ink, the axis
// titles "activation" and "count" in the DOM beside it), hover reads a bin out. Laid out for a
// width as a pure function, then drawn.

import type { Ink } from '../lib/theme';
import { niceTicks, niceStep, tickLabel } from '../lib/ticks';

export const HIST_HEIGHT = 150; // px of the canvas
const TICK_GAP = 5;

export interface HistChart {
  width: number;
  height: number;
  frame: { x0: number; x1: number; y0: number; y1: number };
  xTicks: number[];
  xStep: number;
  yTicks: number[];
  yStep: number;
  x(value: number): number; // activation -> px
  y(count: number): number; // count -> px
  hit(px: number): number | null; // px -> bin
}

/** Return the chart of a histogram (`counts` [bins], `edges` [bins + 1]) `width` px wide. */
export function histChart(
  counts: Float64Array,
  edges: Float64Array,
  width: number,
  measure: (s: string) => number
): HistChart {
  const lo = edges.length ? edges[0] : 0;
  const hi = edges.length ? edges[edges.length - 1] : 1;
  const top = Math.max(1, ...Array.from(counts).filter(Number.isFinite));
  const yTicks = niceTicks(0, top, 3);
  const yStep = niceStep(top, 3);
  const yMax = Math.max(top, yTicks[yTicks.length - 1]);
  const x0 = Math.max(...yTicks.map(t => measure(tickLabel(t, yStep)))) + TICK_GAP + 2;
  const frame = { x0, x1: width - 16, y0: 6, y1: HIST_HEIGHT - 20 };
  const span = hi > lo ? hi - lo : 1;
  const x = (value: number): number => frame.x0 + ((value - lo) / span) * (frame.x1 - frame.x0);
  const y = (count: number): number => frame.y1 - (count / yMax) * (frame.y1 - frame.y0);
  // as many x ticks as their labels allow
  const room = Math.max(2, Math.floor((frame.x1 - frame.x0) / 56));
  const xTicks = niceTicks(lo, hi, Math.min(5, room));
  const xStep = niceStep(hi - lo, Math.min(5, room));
  const hit = (px: number): number | null => {
    if (!counts.length || px < frame.x0 || px > frame.x1) return null;
    const value = lo + ((px - frame.x0) / (frame.x1 - frame.x0)) * span;
    for (let b = 0; b < counts.length; b++) if (value <= edges[b + 1]) return b;
    return counts.length - 1;
  };
  return { width, height: HIST_HEIGHT, frame, xTicks, xStep, yTicks, yStep, x, y, hit };
}

/** Draw `c` in the theme's ink, the bars in `bar`, bin `hover` marked. */
export function drawHistogram(
  ctx: CanvasRenderingContext2D,
  c: HistChart,
  counts: Float64Array,
  edges: Float64Array,
  ink: Ink,
  bar: string,
  hover: number | null
): void {
  const { x0, x1, y0, y1 } = c.frame;
  ctx.lineWidth = 1;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  for (const t of c.yTicks) {
    const ty = Math.round(c.y(t)) + 0.5;
    ctx.strokeStyle = ink.border;
    line(ctx, x0, ty, x1, ty);
    ctx.fillStyle = ink.muted;
    ctx.fillText(tickLabel(t, c.yStep), x0 - TICK_GAP, ty);
  }
  for (let b = 0; b < counts.length; b++) {
    const left = c.x(edges[b]);
    const right = c.x(edges[b + 1]);
    const top = c.y(counts[b]);
    ctx.fillStyle = b === hover ? ink.accent : bar;
    ctx.fillRect(left, top, Math.max(1, right - left - (right - left > 3 ? 1 : 0)), y1 - top);
  }
  ctx.strokeStyle = ink.muted;
  line(ctx, x0 + 0.5, y0, x0 + 0.5, y1 + 0.5);
  line(ctx, x0, y1 + 0.5, x1, y1 + 0.5);
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  ctx.fillStyle = ink.muted;
  for (const t of c.xTicks) {
    const tx = Math.round(c.x(t)) + 0.5;
    line(ctx, tx, y1 + 0.5, tx, y1 + 4);
    ctx.fillText(tickLabel(t, c.xStep), tx, y1 + 6);
  }
}

function line(ctx: CanvasRenderingContext2D, ax: number, ay: number, bx: number, by: number) {
  ctx.beginPath();
  ctx.moveTo(ax, ay);
  ctx.lineTo(bx, by);
  ctx.stroke();
}

let measureCtx: CanvasRenderingContext2D | null | undefined;

/** Return a function giving the width (px) of a text in `root`'s font family at `px` pixels
 * (`weight` e.g. '600'); tick labels by default. */
export function measurer(root: Element, px = 11, weight = ''): (text: string) => number {
  if (measureCtx === undefined) measureCtx = document.createElement('canvas').getContext('2d');
  const ctx = measureCtx;
  if (!ctx) return text => text.length * px * 0.6; // no canvas (tests without one)
  const font = `${weight ? `${weight} ` : ''}${px}px ${getComputedStyle(root).fontFamily || 'sans-serif'}`;
  return text => {
    ctx.font = font;
    return Math.ceil(ctx.measureText(text).width);
  };
}
