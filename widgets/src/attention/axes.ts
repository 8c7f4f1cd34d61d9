// Axis labels around a plot: the rows' labels down the left, the columns' labels across the top
// (rotated for tokens, level for head numbers). Labels are thinned, never dropped: when cells
// are smaller than a line of text, every k-th label is shown, k just large enough that
// neighbours do not overlap, so any length of input keeps its axes readable.

import { h, showToken } from '../lib/dom';
import type { PlotFrame } from './dom';
import { TITLE_W } from './layout';

export const TICK_FONT = 11; // CSS pixels
export const TICK_LINE = 14; // a label's line height
const SIN60 = Math.sin(Math.PI / 3);

export interface Tick {
  index: number; // the row or column it labels
  text: string; // shown (already shortened)
  title: string; // the full label, for the native tooltip
  pad?: boolean; // a padding position (drawn muted)
}

/** Return the smallest k such that labels every k cells of `cell` pixels are `spacing` apart. */
export function thinning(cell: number, spacing: number): number {
  return Math.max(1, Math.ceil(spacing / Math.max(cell, 1e-6) - 1e-9));
}

/** Return the spacing rotated column labels need: one line, measured across the slant. */
export function slantedSpacing(): number {
  return TICK_LINE / SIN60;
}

/** Return the indices 0, k, 2k, ... below `n`. */
export function every(n: number, k: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i += k) out.push(i);
  return out;
}

let measurer: CanvasRenderingContext2D | null | undefined;

/** Return `text` shortened (with an ellipsis) to at most `maxPx` CSS pixels in `font`.

Measured, not counted in characters: a label that fits its band never sticks out of the plot. */
export function fitText(text: string, maxPx: number, font: string): string {
  if (measurer === undefined) measurer = document.createElement('canvas').getContext('2d');
  const ctx = measurer;
  // Without a canvas (jsdom) assume a wide average character.
  const width = (s: string): number => (ctx ? ctx.measureText(s).width : s.length * 7.5);
  if (ctx) ctx.font = font;
  if (width(text) <= maxPx) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (width(text.slice(0, mid) + '…') <= maxPx) lo = mid;
    else hi = mid - 1;
  }
  return text.slice(0, lo) + '…';
}

/** Return the CSS font of the labels drawn in `band`. */
export function tickFont(band: Element): string {
  const family = getComputedStyle(band).fontFamily || 'sans-serif';
  return `${TICK_FONT}px ${family}`;
}

/** Return the ticks of token labels (every k-th token), each at most `maxPx` wide in `font`. */
export function tokenTicks(
  tokens: string[],
  padMask: Uint8Array,
  k: number,
  maxPx: number,
  font: string
): Tick[] {
  return every(tokens.length, k).map(i => ({
    index: i,
    text: fitText(showToken(tokens[i], 40), maxPx, font),
    title: `${i}: ${tokens[i]}`,
    pad: padMask[i] === 1
  }));
}

/** Size a frame: label bands of `yBand` (width) and `xBand` (height) around a body `w` x `hgt`
 * pixels; column labels may reach `overhang` pixels past the body; the scroll box is at most
 * `room` pixels wide (titles included), and scrolls inside when the plot is wider. */
export function sizeFrame(
  f: PlotFrame,
  o: { yBand: number; xBand: number; w: number; hgt: number; overhang: number; room: number }
): void {
  f.plot.style.gridTemplateColumns = `${o.yBand}px ${o.w + o.overhang}px`;
  f.plot.style.gridTemplateRows = `${o.xBand}px ${o.hgt}px`;
  f.body.style.width = `${o.w}px`;
  f.body.style.height = `${o.hgt}px`;
  f.scroll.style.maxWidth = `${Math.max(40, Math.floor(o.room - TITLE_W))}px`;
  // Titles centred on the body (not on the labels beside it). Margins, not padding: the
  // vertical title is turned round, and its padding would turn with it.
  const visible = Math.min(o.w, o.room - TITLE_W - o.yBand);
  f.xTitle.style.marginLeft = `${o.yBand}px`;
  f.xTitle.style.width = `${Math.max(20, visible)}px`;
  f.yTitle.style.marginTop = `${o.xBand}px`;
  f.yTitle.style.height = `${o.hgt}px`;
}

function tickSpan(t: Tick, cls: string): HTMLSpanElement {
  const span = h('span', `im-attn-tick ${cls}`, { title: t.title, 'data-index': String(t.index) });
  span.textContent = t.text;
  if (t.pad) span.classList.add('im-attn-tick-pad');
  return span;
}

/** Put row labels down `band`, centred on rows of `cell` pixels. */
export function placeRows(band: HTMLElement, ticks: Tick[], cell: number): void {
  band.replaceChildren(
    ...ticks.map(t => {
      const span = tickSpan(t, 'im-attn-tick-row');
      span.style.top = `${t.index * cell + cell / 2 - TICK_LINE / 2}px`;
      return span;
    })
  );
}

/** Put column labels across `band`, at the centres of columns of `cell` pixels: slanted
 * (tokens) or level and centred (short labels such as head numbers). */
export function placeColumns(
  band: HTMLElement,
  ticks: Tick[],
  cell: number,
  slanted: boolean,
  width = cell
): void {
  band.replaceChildren(
    ...ticks.map(t => {
      const span = tickSpan(t, slanted ? 'im-attn-tick-slant' : 'im-attn-tick-col');
      // A slanted label starts at its column's centre; a level one is centred on it.
      const centre = t.index * cell + width / 2;
      span.style.left = slanted ? `${centre - (TICK_LINE / 2) * SIN60}px` : `${centre}px`;
      return span;
    })
  );
}

/** Mark the labels of row `row` and column `col` as highlighted (or none, with -1). */
export function highlightTicks(f: PlotFrame, row: number, col: number): void {
  for (const [band, i] of [
    [f.yLabels, row],
    [f.xLabels, col]
  ] as const) {
    for (const el of band.querySelectorAll<HTMLElement>('.im-attn-tick')) {
      el.classList.toggle('im-attn-tick-hl', Number(el.dataset.index) === i);
    }
  }
}
