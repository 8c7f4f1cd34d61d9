// The legend under the heatmap, aligned with the grid: the colour bar of the theme's map, round
// ticks placed where their values fall, the legend's title (what the colours mean, with units),
// the scale and what it is shared by, values beyond the scale, and the key of the hatching.

import { bytes } from '../lib/buffers';
import { fmt, h } from '../lib/dom';
import type { Ink } from '../lib/theme';
import { barPixels } from './paint';
import { clipped, legendTicks, tickLabels } from './scale';
import { meta, type Plane, type View } from './view';

export interface LegendDom {
  legend: HTMLDivElement;
  scale: HTMLDivElement; // the bar and its ticks, as wide as the bar plus PAD each side
  bar: HTMLCanvasElement;
  ticks: HTMLDivElement;
  title: HTMLDivElement;
  note: HTMLDivElement;
  key: HTMLDivElement;
}

export interface LegendSpec {
  lo: number; // the value at the bar's left end
  hi: number; // and right end
  lut: Uint8Array;
  title: string; // what the colours are, with units
  note: string; // the scale, and what it is shared by
  key: string; // what the hatching means ('' when there are no tests)
  hatch: string; // the hatching's ink
  left: number; // px: the grid's left edge, which the bar starts under
  width: number; // px: the bar's width
}

export const PAD = 14; // px each side of the bar: the end ticks' labels are centred on the ends

/** Return the legend's elements (empty; `drawLegend` fills them). */
export function legendDom(): LegendDom {
  const legend = h('div', 'im-patch-legend', { 'data-role': 'legend' });
  const scale = h('div', 'im-patch-scale');
  const bar = h('canvas', 'im-patch-scale-bar', { 'aria-hidden': 'true' });
  const ticks = h('div', 'im-patch-scale-ticks', { 'data-role': 'legend-ticks' });
  scale.append(bar, ticks);
  const title = h('div', 'im-patch-legend-title', { 'data-role': 'legend-title' });
  const note = h('div', 'im-patch-scale-note', { 'data-role': 'scale-note' });
  const key = h('div', 'im-patch-key', { 'data-role': 'key' });
  const words = h('div', 'im-patch-legend-words', { 'data-role': 'legend-words' });
  words.append(title, note, key);
  legend.append(scale, words);
  return { legend, scale, bar, ticks, title, note, key };
}

/** Fill the legend for `s`: the bar, its ticks at their values' places, the words. */
export function drawLegend(d: LegendDom, s: LegendSpec): void {
  d.legend.style.paddingLeft = `${Math.max(0, s.left - PAD)}px`;
  d.scale.style.width = `${s.width + 2 * PAD}px`;
  d.legend.dataset.lo = String(s.lo);
  d.legend.dataset.hi = String(s.hi);
  const w = Math.max(1, Math.round(s.width));
  d.bar.width = w;
  d.bar.height = 1;
  d.bar.style.width = `${w}px`;
  d.bar.style.marginLeft = `${PAD}px`;
  d.bar.getContext('2d')?.putImageData(new ImageData(barPixels(s.lut, w), w, 1), 0, 0);
  const ticks = legendTicks(s.lo, s.hi);
  const labels = tickLabels(ticks, (s.hi - s.lo) / 2);
  d.ticks.replaceChildren(
    ...ticks.map((t, i) => {
      const span = h('span', 'im-patch-tick', { 'data-value': String(t) }, labels[i]);
      span.style.left = `${PAD + ((t - s.lo) / (s.hi - s.lo)) * w}px`;
      return span;
    })
  );
  d.title.textContent = s.title;
  d.note.textContent = s.note;
  d.key.replaceChildren();
  d.key.hidden = !s.key;
  if (s.key) d.key.append(hatchSwatch(s.hatch), h('span', undefined, undefined, s.key));
}

/** Return a small hatched swatch: what a not-significant cell looks like. */
function hatchSwatch(ink: string): HTMLCanvasElement {
  const c = h('canvas', 'im-patch-swatch', { 'aria-hidden': 'true' });
  c.width = 14;
  c.height = 10;
  const ctx = c.getContext('2d');
  if (ctx) {
    ctx.strokeStyle = ink;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let k = -10; k < 14; k += 4) {
      ctx.moveTo(k, 10);
      ctx.lineTo(k + 10, 0);
    }
    ctx.stroke();
  }
  return c;
}

/** Fill the legend: ticks, what the colours mean, the scale and what it is shared by. */
export function drawScaleLegend(
  v: View,
  p: Plane,
  left: number,
  gridW: number,
  width: number,
  s: { lut: Uint8Array; c0: number; limit: number; ink: Ink }
): void {
  const m = meta(v);
  let barW = Math.min(320, Math.max(160, gridW));
  let at = left;
  if (barW > width - left - PAD) {
    barW = Math.min(barW, width - left - PAD);
    if (barW < 120) {
      at = PAD;
      barW = Math.max(60, Math.min(320, width - 2 * PAD));
    }
  }
  const amount = fmt(s.limit, 3);
  const which = m.corrupt === null ? 'clean' : 'corrupted';
  const title = v.showRaw
    ? `raw ${m.metric} (centre: the ${which} baseline, ${fmt(s.c0, 4)})`
    : (m.units ?? m.value_name);
  let note = v.showRaw
    ? `scale ±${fmt(s.limit, 3)} around the ${which} baseline: the colours of the normalised view`
    : `scale ±${amount}, ${m.scale?.note ?? 'from the largest |value| of this plot'}`;
  const out = clipped(p.values, s.c0, s.limit);
  if (out.count) {
    note +=
      `; ${out.count} cell${out.count === 1 ? '' : 's'} beyond the scale ` +
      `(up to ±${fmt(out.max, 3)}) drawn at its end colours`;
  }
  const tests = bytes(v.model.get('significant')).length > 0;
  const corrected =
    m.correction && m.correction !== 'none' ? `${m.correction} corrected` : 'uncorrected';
  drawLegend(v.dom.legend, {
    lo: s.c0 - s.limit,
    hi: s.c0 + s.limit,
    lut: s.lut,
    title,
    note,
    key: tests ? `hatched: not significant (${corrected}, α ${m.alpha ?? 0.05})` : '',
    hatch: s.ink.fg,
    left: at,
    width: barW
  });
}
