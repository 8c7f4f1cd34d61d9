// The colour scale of the plane on show: its half-width (from the rule the Python side applies,
// so the PNG and the live view agree), the legend's round ticks, and numbers printed to the
// scale's precision. Pure functions, tested without a browser.

import { niceLimit, niceTicks, tickLabel } from '../lib/ticks';
import type { ScaleMeta } from './view';

/** Return the largest finite |value| (0 when there is none). */
export function vmax(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]);
    if (Number.isFinite(v) && v > m) m = v;
  }
  return m;
}

/** Return the half-width of the colour scale of plane `slice` of the values (or of the raw
 * metric when `raw`), from the sent scale; without one (a widget saved by an older version),
 * the round limit of the plane itself. `plane` holds the values on the scale shown, centred. */
export function scaleLimit(
  scale: ScaleMeta | undefined,
  slice: number,
  raw: boolean,
  plane: ArrayLike<number>
): number {
  if (!scale || scale.limits.length === 0) return niceLimit(vmax(plane));
  const base = scale.limits[Math.min(slice, scale.limits.length - 1)];
  return raw ? base * scale.raw_factor : base;
}

/** Return the legend's ticks over [lo, hi]: round values, both ends labelled when a round step
 * reaches them (±1 by 0.5, ±0.6 by 0.2), else about four round values inside. */
export function legendTicks(lo: number, hi: number): number[] {
  const tol = (hi - lo) * 1e-9;
  for (const count of [4, 5, 6, 3, 2]) {
    const ticks = snapped(niceTicks(lo, hi, count));
    if (Math.abs(ticks[0] - lo) <= tol && Math.abs(ticks[ticks.length - 1] - hi) <= tol)
      return ticks;
  }
  return snapped(niceTicks(lo, hi, 4));
}

/** Return ticks put exactly on multiples of their step: lib/ticks.ts adds the step up from the
 * first tick, so -0.6 + 3 * 0.2 comes out as -5.6e-17, which would print as a tick label. */
function snapped(ticks: number[]): number[] {
  if (ticks.length < 2) return ticks;
  const step = Number((ticks[1] - ticks[0]).toPrecision(12));
  return ticks.map(t => Number((Math.round(t / step) * step).toPrecision(12)) || 0);
}

/** Return the step between ticks (the limit itself for a single tick). */
export function tickStep(ticks: number[], limit: number): number {
  return ticks.length > 1 ? ticks[1] - ticks[0] : limit;
}

/** Return tick labels for `ticks`, each with the decimals the step needs. */
export function tickLabels(ticks: number[], limit: number): string[] {
  const step = tickStep(ticks, limit);
  return ticks.map(t => tickLabel(t, step));
}

/** Return the decimals a cell's number gets: two below the scale's first digit (±1: 0.93;
 * ±0.2: 0.153; ±50: 31.2), so a cell never shows noise digits like -3.06e-5. */
export function cellDecimals(limit: number): number {
  if (!(limit > 0)) return 2;
  return Math.max(0, 2 - Math.floor(Math.log10(limit) + 1e-9));
}

/** Return a cell's number to `decimals` (a value that rounds to zero prints as 0). */
export function cellText(value: number, decimals: number): string {
  if (!Number.isFinite(value)) return '';
  const text = value.toFixed(decimals);
  if (Number(text) === 0) return '0';
  return text.replace(/^-/, '\u2212');
}

/** Return how many values lie beyond ±limit around `centre`, and the largest |distance|. */
export function clipped(
  values: ArrayLike<number>,
  centre: number,
  limit: number
): { count: number; max: number } {
  let count = 0;
  let max = 0;
  for (let i = 0; i < values.length; i++) {
    const d = Math.abs(values[i] - centre);
    if (!Number.isFinite(d)) continue;
    if (d > limit * (1 + 1e-3)) count++; // float noise past ±1 is not "beyond"
    if (d > max) max = d;
  }
  return { count, max };
}

/** Return the full value of a readout or tooltip: 5 significant digits, exponent when tiny. */
export function fullValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return '0';
  const text =
    Math.abs(value) < 1e-3 || Math.abs(value) >= 1e6
      ? value.toExponential(3)
      : String(Number(value.toPrecision(5)));
  return text.replace(/^-/, '\u2212');
}
