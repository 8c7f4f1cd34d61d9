// How an edge looks: width and opacity grow with |score| up to the scale's limit (a round number
// at or above the largest |score| sent, so changing how many edges are shown never rescales
// them), colour by sign from a diverging pair (the static PNG's map, RdBu: negative red,
// positive blue), lighter on dark backgrounds and made to reach 3:1 against the background at
// full strength (WCAG's ratio for graphical marks). Edges without a score (a circuit given by
// hand) are drawn in the muted ink at a middle width.

import { css, parseColor, readableOn } from '../lib/contrast';
import type { Ink } from '../lib/theme';
import { niceLimit } from '../lib/ticks';
import type { Meta } from './data';

export const MIN_WIDTH = 0.75; // px at |score| 0
export const MAX_WIDTH = 6; // px at the limit
export const MIN_ALPHA = 0.2;
export const UNSCORED_WIDTH = 2;
export const MARK_CONTRAST = 3;

export interface EdgeStyle {
  limit: number; // |score| drawn at full width and opacity
  negative: string;
  positive: string;
  unscored: string;
}

/** Return the strength (0..1) of `score` on a scale up to `limit`. */
export function strength(score: number, limit: number): number {
  if (!Number.isFinite(score) || !(limit > 0)) return 0;
  return Math.min(1, Math.abs(score) / limit);
}

/** Return the stroke width of an edge, px. */
export function strokeWidth(score: number, limit: number): number {
  if (Number.isNaN(score)) return UNSCORED_WIDTH;
  return MIN_WIDTH + (MAX_WIDTH - MIN_WIDTH) * strength(score, limit);
}

/** Return the stroke opacity of an edge. */
export function strokeAlpha(score: number, limit: number): number {
  if (Number.isNaN(score)) return 0.85;
  return MIN_ALPHA + (1 - MIN_ALPHA) * strength(score, limit);
}

/** Return the colours of the two signs in the theme on show, each at least 3:1 on the background. */
export function edgeStyle(meta: Meta, ink: Ink, maxAbs: number): EdgeStyle {
  const bg = parseColor(ink.bg) ?? [255, 255, 255];
  const pair = ink.dark ? meta.colours.dark : meta.colours.light;
  const readable = (c: string): string =>
    css(readableOn(parseColor(c) ?? [128, 128, 128], bg, MARK_CONTRAST));
  return {
    limit: niceLimit(maxAbs),
    negative: readable(pair[0]),
    positive: readable(pair[1]),
    unscored: ink.muted
  };
}

/** Return the colour of an edge. */
export function strokeColour(score: number, s: EdgeStyle): string {
  if (Number.isNaN(score)) return s.unscored;
  return score < 0 ? s.negative : s.positive;
}
