// One probe report as horizontal bars: the probe, its balanced accuracy, the shuffled-label null
// and each control, with 95% whiskers, the chance levels as rules, and each value printed at
// the right end of its row.

import { niceTicks, tickLabel } from '../lib/ticks';
import type { Ink } from '../lib/theme';
import { ellipsize, rule, textStyle, type Box, type Chart, type Measure } from './chart';
import { chanceDash, colourOn, withAlpha } from './style';
import type { ProbeData } from './types';

const ROW_H = 26;

/** Return the bar chart of a single report laid out for `width` CSS pixels. */
export function barsChart(d: ProbeData, width: number, measure: Measure): Chart {
  const bars = d.bars ?? [];
  const widest = Math.max(40, ...bars.map(b => measure(b.name)));
  const labelW = Math.min(widest + 14, Math.round(width * 0.38));
  const valueW = measure('0.000') + 14;
  const x0 = labelW;
  const x1 = Math.max(x0 + 60, width - valueW);
  const frame: Box = { x0, x1, y0: 8, y1: 8 + bars.length * ROW_H };
  const X = (v: number): number => x0 + Math.min(1, Math.max(0, v)) * (x1 - x0);
  const ticks = niceTicks(0, 1, Math.max(2, Math.min(5, Math.floor((x1 - x0) / 70))));
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;

  function draw(ctx: CanvasRenderingContext2D, ink: Ink, hover: number | null): void {
    const { y0, y1 } = frame;
    for (const t of ticks) rule(ctx, X(t), y0, X(t), y1, ink.border);
    if (hover !== null) {
      ctx.fillStyle = withAlpha(ink.accent, 0.16);
      ctx.fillRect(0, y0 + hover * ROW_H, width, ROW_H);
    }
    bars.forEach((b, i) => {
      const y = y0 + i * ROW_H;
      const mid = y + ROW_H / 2;
      const colour = colourOn(b.color, ink);
      ctx.fillStyle = b.role === 'balanced' ? withAlpha(colour, 0.55) : colour;
      ctx.fillRect(X(0), y + 5, X(b.value) - X(0), ROW_H - 10);
      if (hover === i) {
        ctx.strokeStyle = ink.fg;
        ctx.lineWidth = 1.5;
        ctx.strokeRect(X(0), y + 5, X(b.value) - X(0), ROW_H - 10);
      }
      if (b.lo !== null && b.hi !== null) whisker(ctx, X(b.lo), X(b.hi), mid, ink.fg);
      textStyle(ctx, ink.fg, 'right', 'middle');
      ctx.fillText(ellipsize(b.name, labelW - 12, measure), x0 - 8, mid);
      ctx.fillText(b.value.toFixed(3), width - 4, mid);
    });
    // the chance levels over the bars, so a bar never hides them
    for (const c of d.chance)
      rule(ctx, X(c.value), y0 - 4, X(c.value), y1, ink.fg, chanceDash(c.role), 1.25);
    rule(ctx, x0, y1, x1, y1, ink.muted);
    textStyle(ctx, ink.muted, 'center', 'top');
    for (const t of ticks) ctx.fillText(tickLabel(t, step), X(t), y1 + 4);
  }

  return {
    height: frame.y1 + 22,
    frame,
    count: bars.length,
    draw,
    hit: (_x, y) => (y < frame.y0 || y >= frame.y1 ? null : Math.floor((y - frame.y0) / ROW_H)),
    anchor: i => [X(bars[i]?.value ?? 0), frame.y0 + i * ROW_H + ROW_H / 2]
  };
}

/** Draw a 95% interval from lo to hi at height y: a line with end caps. */
function whisker(
  ctx: CanvasRenderingContext2D,
  lo: number,
  hi: number,
  y: number,
  ink: string
): void {
  ctx.save();
  ctx.strokeStyle = ink;
  ctx.lineWidth = 1.5;
  ctx.setLineDash([]);
  ctx.beginPath();
  ctx.moveTo(lo, y);
  ctx.lineTo(hi, y);
  ctx.moveTo(lo, y - 5);
  ctx.lineTo(lo, y + 5);
  ctx.moveTo(hi, y - 5);
  ctx.lineTo(hi, y + 5);
  ctx.stroke();
  ctx.restore();
}
