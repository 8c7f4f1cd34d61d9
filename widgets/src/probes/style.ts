// How each series looks: its colour in the current theme (at least 3:1 against the background,
// WCAG's rule for graphics), and a dash and marker of its own, so that no two lines are told
// apart by colour alone (the shuffled-labels line and the majority rule used to coincide).

import { css, parseColor, readableOn } from '../lib/contrast';
import type { Ink } from '../lib/theme';
import type { ChanceLine, Colour, Role } from './types';

export type Marker = 'circle' | 'square' | 'diamond' | 'triangle' | 'cross';

export interface LineStyle {
  dash: number[];
  marker: Marker;
  width: number;
}

const STYLES: Record<Role, LineStyle> = {
  probe: { dash: [], marker: 'circle', width: 2.5 },
  balanced: { dash: [], marker: 'circle', width: 2 },
  shuffled: { dash: [], marker: 'square', width: 1.5 },
  random: { dash: [6, 3], marker: 'diamond', width: 1.5 },
  task: { dash: [2, 2], marker: 'triangle', width: 1.5 },
  other: { dash: [8, 3, 2, 3], marker: 'cross', width: 1.5 }
};

/** Return the dash, marker and width of a series with `role`. */
export function lineStyle(role: Role): LineStyle {
  return STYLES[role] ?? STYLES.other;
}

/** Return the dash of a chance rule: majority long dashes, frequency guess dots. */
export function chanceDash(role: ChanceLine['role']): number[] {
  return role === 'majority' ? [5, 4] : [1.5, 3];
}

/** Return the theme's variant of `c`, moved if needed to reach 3:1 against the background. */
export function colourOn(c: Colour, ink: Ink): string {
  const rgb = parseColor(ink.dark ? c.dark : c.light);
  const bg = parseColor(ink.bg);
  return rgb && bg ? css(readableOn(rgb, bg, 3)) : ink.fg;
}

/** Return `colour` (an `rgb()` or hex string) at opacity `alpha`. */
export function withAlpha(colour: string, alpha: number): string {
  const rgb = parseColor(colour);
  return rgb ? `rgba(${rgb[0]}, ${rgb[1]}, ${rgb[2]}, ${alpha})` : colour;
}

/** Draw a marker of radius `r` at (x, y): filled, or an outline on the background. */
export function drawMarker(
  ctx: CanvasRenderingContext2D,
  marker: Marker,
  x: number,
  y: number,
  r: number,
  colour: string,
  filled: boolean,
  bg: string
): void {
  ctx.save();
  ctx.setLineDash([]);
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = colour;
  ctx.fillStyle = filled ? colour : bg;
  ctx.beginPath();
  if (marker === 'circle') ctx.arc(x, y, r, 0, 2 * Math.PI);
  else if (marker === 'square') ctx.rect(x - r * 0.85, y - r * 0.85, r * 1.7, r * 1.7);
  else if (marker === 'diamond') {
    ctx.moveTo(x, y - r * 1.1);
    ctx.lineTo(x + r * 1.1, y);
    ctx.lineTo(x, y + r * 1.1);
    ctx.lineTo(x - r * 1.1, y);
    ctx.closePath();
  } else if (marker === 'triangle') {
    ctx.moveTo(x, y - r * 1.1);
    ctx.lineTo(x + r, y + r * 0.8);
    ctx.lineTo(x - r, y + r * 0.8);
    ctx.closePath();
  } else {
    ctx.moveTo(x - r, y - r);
    ctx.lineTo(x + r, y + r);
    ctx.moveTo(x + r, y - r);
    ctx.lineTo(x - r, y + r);
    ctx.stroke();
    ctx.restore();
    return;
  }
  ctx.fill();
  ctx.stroke();
  ctx.restore();
}
