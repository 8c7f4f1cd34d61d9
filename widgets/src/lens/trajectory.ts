// The answer's rank trajectory: a small line chart of the answer token's rank (1 = the top
// token, log scale, the best rank at the top) at every layer of one position, with its axis
// titles in words, decade ticks, the layer labels thinned to fit, and a hover that reads a layer
// out. Laid out for a width as a pure function, then drawn in the theme's ink.

import type { Ink } from '../lib/theme';

export const CHART_HEIGHT = 190; // px
const TICK_GAP = 6;

/** Return the decade ticks of a log rank axis from 1 to the first decade past `worst` + 1. */
export function rankTicks(worst: number): number[] {
  const top = Math.max(1, Math.ceil(Math.log10(Math.max(1, worst + 1)) - 1e-9));
  return Array.from({ length: top + 1 }, (_, i) => 10 ** i);
}

/** Return a tick label: 1, 10, 100, 1000, then 10k, 100k, 1M. */
export function rankLabel(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e4) return `${v / 1e3}k`;
  return String(v);
}

export interface RankChart {
  height: number;
  frame: { x0: number; x1: number; y0: number; y1: number };
  ticks: number[];
  x(i: number): number;
  y(rank: number): number; // rank 0 = the top token
  shown: boolean[]; // which layer labels are written
  hit(x: number): number | null;
}

/** Return the chart of `ranks` (one per layer, 0 = top) laid out in `width` px. */
export function rankChart(
  labels: string[],
  ranks: Float32Array,
  width: number,
  measure: (s: string) => number
): RankChart {
  const n = labels.length;
  const ticks = rankTicks(Math.max(0, ...Array.from(ranks).filter(Number.isFinite)));
  const x0 = Math.max(...ticks.map(t => measure(rankLabel(t)))) + TICK_GAP + 4;
  const frame = { x0, x1: width - 12, y0: 8, y1: CHART_HEIGHT - 22 };
  const inner = frame.x1 - frame.x0;
  const pad = Math.min(16, inner / (2 * Math.max(1, n)));
  const spacing = n > 1 ? (inner - 2 * pad) / (n - 1) : 0;
  const x = (i: number): number => (n <= 1 ? frame.x0 + inner / 2 : frame.x0 + pad + i * spacing);
  const span = Math.log10(ticks[ticks.length - 1]) || 1;
  const y = (rank: number): number =>
    frame.y0 + (Math.log10(Math.max(0, rank) + 1) / span) * (frame.y1 - frame.y0);
  // every layer label that fits beside the last written one, the last layer always
  const shown = new Array<boolean>(n).fill(false);
  let right = -Infinity;
  for (let i = 0; i < n; i++) {
    const w = measure(labels[i]);
    const fits = x(i) - w / 2 >= right + 6 && (i === n - 1 || x(n - 1) - x(i) >= w + 6);
    if (fits || i === n - 1) {
      shown[i] = true;
      right = x(i) + w / 2;
    }
  }
  const hit = (px: number): number | null => {
    if (!n || px < frame.x0 - 8 || px > frame.x1 + 8) return null;
    const i = n <= 1 ? 0 : Math.round((px - frame.x0 - pad) / spacing);
    return Math.min(n - 1, Math.max(0, i));
  };
  return { height: CHART_HEIGHT, frame, ticks, x, y, shown, hit };
}

/** Draw `c` for `ranks` and `labels` in the theme's ink; `hover` is the layer pointed at. */
export function drawRankChart(
  ctx: CanvasRenderingContext2D,
  c: RankChart,
  labels: string[],
  ranks: Float32Array,
  ink: Ink,
  hover: number | null
): void {
  const { x0, x1, y0, y1 } = c.frame;
  ctx.lineWidth = 1;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  for (const t of c.ticks) {
    const ty = c.y(t - 1);
    ctx.strokeStyle = ink.border;
    line(ctx, x0, ty, x1, ty);
    ctx.fillStyle = ink.muted;
    ctx.fillText(rankLabel(t), x0 - TICK_GAP, ty);
  }
  ctx.strokeStyle = ink.muted;
  line(ctx, x0, y0, x0, y1);
  line(ctx, x0, y1, x1, y1);
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  labels.forEach((label, i) => {
    if (!c.shown[i] && i !== hover) return;
    ctx.fillStyle = i === hover ? ink.fg : ink.muted;
    ctx.fillText(label, c.x(i), y1 + 5);
  });
  if (hover !== null) {
    ctx.strokeStyle = ink.accent;
    line(ctx, c.x(hover), y0, c.x(hover), y1);
  }
  ctx.strokeStyle = ink.accent;
  ctx.lineWidth = 2;
  ctx.beginPath();
  ranks.forEach((r, i) => (i ? ctx.lineTo(c.x(i), c.y(r)) : ctx.moveTo(c.x(i), c.y(r))));
  ctx.stroke();
  ranks.forEach((r, i) => {
    ctx.beginPath();
    ctx.arc(c.x(i), c.y(r), i === hover ? 5 : 3.5, 0, 2 * Math.PI);
    ctx.fillStyle = r === 0 ? ink.accent : ink.bg; // filled: the answer is the top token
    ctx.fill();
    ctx.lineWidth = 1.5;
    ctx.stroke();
  });
}

function line(ctx: CanvasRenderingContext2D, ax: number, ay: number, bx: number, by: number) {
  ctx.beginPath();
  ctx.moveTo(Math.round(ax) + 0.5, Math.round(ay) + 0.5);
  ctx.lineTo(Math.round(bx) + 0.5, Math.round(by) + 0.5);
  ctx.stroke();
}
