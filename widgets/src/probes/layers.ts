// A layer sweep as lines: the probe with its 95% band, the shuffled-label null and each control
// across the layers, the chance levels as rules, and the layers significant after correction
// marked twice: a star in a strip above the plot (clear of the frame and the tick labels) and
// a filled marker (hollow where not significant).

import { niceTicks, tickLabel } from '../lib/ticks';
import type { Ink } from '../lib/theme';
import { boldText, rule, textStyle, type Box, type Chart, type Measure } from './chart';
import { shorten, thinned } from './labels';
import { chanceDash, colourOn, drawMarker, lineStyle, withAlpha } from './style';
import type { ProbeData, Series } from './types';

const STAR_STRIP = 22; // room above the plot for the significance stars

/** Return the lowest value the y axis must show: a round tenth below every value and rule. */
function yFloor(d: ProbeData): number {
  const values = [
    ...(d.series ?? []).flatMap(s => [...s.values, ...(s.lo ?? [])]),
    ...d.chance.map(c => c.value)
  ].filter(Number.isFinite);
  const low = values.length ? Math.min(...values) : 0;
  return Math.max(0, Math.floor((low - 0.05) * 10) / 10);
}

/** Return the layer chart of a sweep laid out for `width` CSS pixels. */
export function layersChart(d: ProbeData, width: number, measure: Measure): Chart {
  const layers = d.layers ?? [];
  const n = layers.length;
  const labels = d.ticks ?? shorten(layers).short;
  const series = d.series ?? [];
  const significant = d.significant ?? [];
  const lo = yFloor(d);
  const yTicks = niceTicks(lo, 1, 4);
  const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
  const height = Math.round(Math.min(320, Math.max(220, width * 0.42)));
  const x0 = Math.max(...yTicks.map(t => measure(tickLabel(t, yStep)))) + 10;
  const frame: Box = { x0, x1: width - 10, y0: STAR_STRIP + 4, y1: height - 24 };
  const inner = frame.x1 - frame.x0;
  const pad = Math.min(20, inner / (2 * Math.max(n, 1)));
  const spacing = n > 1 ? (inner - 2 * pad) / (n - 1) : inner;
  const X = (i: number): number => (n <= 1 ? frame.x0 + inner / 2 : frame.x0 + pad + i * spacing);
  const Y = (v: number): number =>
    frame.y1 - ((Math.min(1, Math.max(lo, v)) - lo) / (1 - lo)) * (frame.y1 - frame.y0);
  const shown = thinned(n, spacing, Math.max(0, ...labels.map(measure)));

  function axes(ctx: CanvasRenderingContext2D, ink: Ink, hover: number | null): void {
    const { x0, x1, y0, y1 } = frame;
    for (const t of yTicks) rule(ctx, x0, Y(t), x1, Y(t), ink.border);
    rule(ctx, x0, y0, x0, y1, ink.muted);
    rule(ctx, x0, y1, x1, y1, ink.muted);
    textStyle(ctx, ink.muted, 'right', 'middle');
    for (const t of yTicks) ctx.fillText(tickLabel(t, yStep), x0 - 6, Y(t));
    labels.forEach((l, i) => {
      if (i === hover) return;
      if (!shown[i]) return;
      textStyle(ctx, ink.muted, 'center', 'top');
      ctx.fillText(l, X(i), y1 + 5);
    });
    if (hover !== null) {
      textStyle(ctx, ink.fg, 'center', 'top');
      boldText(ctx, labels[hover], X(hover), y1 + 5);
    }
  }

  function line(ctx: CanvasRenderingContext2D, s: Series, ink: Ink): void {
    const colour = colourOn(s.color, ink);
    const style = lineStyle(s.role);
    if (s.lo && s.hi) {
      ctx.fillStyle = withAlpha(colour, 0.16);
      ctx.beginPath();
      s.hi.forEach((v, i) => (i ? ctx.lineTo(X(i), Y(v)) : ctx.moveTo(X(i), Y(v))));
      for (let i = s.lo.length - 1; i >= 0; i--) ctx.lineTo(X(i), Y(s.lo[i]));
      ctx.closePath();
      ctx.fill();
    }
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.lineWidth = style.width;
    ctx.setLineDash(style.dash);
    ctx.beginPath();
    s.values.forEach((v, i) => (i ? ctx.lineTo(X(i), Y(v)) : ctx.moveTo(X(i), Y(v))));
    ctx.stroke();
    ctx.restore();
    const probe = s.role === 'probe';
    s.values.forEach((v, i) =>
      drawMarker(
        ctx,
        style.marker,
        X(i),
        Y(v),
        probe ? 4.5 : 3.5,
        colour,
        !probe || !!significant[i],
        ink.bg
      )
    );
  }

  function draw(ctx: CanvasRenderingContext2D, ink: Ink, hover: number | null): void {
    axes(ctx, ink, hover);
    if (hover !== null) rule(ctx, X(hover), frame.y0, X(hover), frame.y1, ink.accent, [], 1.5);
    for (const c of d.chance)
      rule(ctx, frame.x0, Y(c.value), frame.x1, Y(c.value), ink.fg, chanceDash(c.role), 1.25);
    // controls first, the probe last: it is the line that matters, drawn on top
    [...series].reverse().forEach(s => line(ctx, s, ink));
    textStyle(ctx, ink.fg, 'center', 'middle');
    significant.forEach((sig, i) => sig && boldText(ctx, '*', X(i), STAR_STRIP / 2 + 2));
    if (hover === null) return;
    for (const s of series) {
      const v = s.values[hover];
      if (!Number.isFinite(v)) continue;
      ctx.save();
      ctx.strokeStyle = ink.fg;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.arc(X(hover), Y(v), 7, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.restore();
    }
  }

  function hit(x: number, y: number): number | null {
    if (!n || y > height || x < frame.x0 - 8 || x > frame.x1 + 8) return null;
    const i = n <= 1 ? 0 : Math.round((x - frame.x0 - pad) / spacing);
    return Math.min(n - 1, Math.max(0, i));
  }

  return {
    height,
    frame,
    count: n,
    draw,
    hit,
    anchor: i => [X(i), Y(series[0]?.values[i] ?? lo)]
  };
}
