// The legend under the grid, its bar starting under the grid's left edge: the probability
// steps as they are painted (one block per step, so the bar shows exactly the colours a cell can
// have), ticks at round probabilities that fall on step edges, the title "top-1 probability",
// and what the steps and the grey cells mean.

import { css, type Rgb } from '../lib/contrast';
import { fmt, h } from '../lib/dom';
import { levelRgb } from './paint';

export interface LegendDom {
  legend: HTMLDivElement;
  scale: HTMLDivElement;
  bar: HTMLCanvasElement;
  ticks: HTMLDivElement;
  title: HTMLDivElement;
  note: HTMLDivElement;
  key: HTMLDivElement;
}

export const PAD = 14; // px each side of the bar: the end ticks' labels centre on its ends

/** Return the legend's elements, empty until `drawLegend` fills them. */
export function legendDom(): LegendDom {
  const legend = h('div', 'im-lens-legend', { 'data-role': 'legend' });
  const scale = h('div', 'im-lens-scale');
  const bar = h('canvas', 'im-lens-scale-bar', { 'aria-hidden': 'true' });
  const ticks = h('div', 'im-lens-scale-ticks', { 'data-role': 'legend-ticks' });
  scale.append(bar, ticks);
  const title = h('div', 'im-lens-legend-title', { 'data-role': 'legend-title' });
  const note = h('div', 'im-lens-scale-note', { 'data-role': 'scale-note' });
  const key = h('div', 'im-lens-key', { 'data-role': 'key' });
  const words = h('div', 'im-lens-legend-words', { 'data-role': 'legend-words' });
  words.append(title, note, key);
  legend.append(scale, words);
  return { legend, scale, bar, ticks, title, note, key };
}

/** Return the legend's tick values: quarters, which are step edges for 4, 8, 16... steps. */
export function legendTicks(levels: number): number[] {
  return levels % 4 === 0 ? [0, 0.25, 0.5, 0.75, 1] : [0, 0.5, 1];
}

/** Fill the legend: `levels` colours across `width` px from `left`, ticks, words. */
export function drawLegend(
  d: LegendDom,
  s: { lut: Uint8Array; levels: number; left: number; width: number; pad: Rgb | null }
): void {
  const w = Math.max(1, Math.round(s.width));
  d.legend.style.paddingLeft = `${Math.max(0, s.left - PAD)}px`;
  d.scale.style.width = `${w + 2 * PAD}px`;
  d.bar.width = w;
  d.bar.height = 1;
  d.bar.style.width = `${w}px`;
  d.bar.style.marginLeft = `${PAD}px`;
  const px = new Uint8ClampedArray(w * 4);
  for (let x = 0; x < w; x++) {
    const rgb = levelRgb(s.lut, Math.min(s.levels - 1, Math.floor((x / w) * s.levels)));
    px.set([rgb[0], rgb[1], rgb[2], 255], x * 4);
  }
  d.bar.getContext('2d')?.putImageData(new ImageData(px, w, 1), 0, 0);
  d.ticks.replaceChildren(
    ...legendTicks(s.levels).map(t => {
      const span = h('span', 'im-lens-tick', { 'data-value': String(t) }, fmt(t));
      span.style.left = `${PAD + t * w}px`;
      return span;
    })
  );
  d.title.textContent = 'top-1 probability';
  d.note.textContent =
    `${s.levels} steps of 1/${s.levels}, from 0 to 1 for every layer and example; ` +
    'point at a cell for its top tokens and exact probabilities';
  d.key.replaceChildren();
  d.key.hidden = !s.pad;
  if (s.pad) {
    const swatch = h('span', 'im-lens-swatch', { 'aria-hidden': 'true' });
    swatch.style.background = css(s.pad);
    d.key.append(swatch, h('span', undefined, undefined, 'padding (no token)'));
  }
}
