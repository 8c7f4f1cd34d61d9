// The legend under the graph: titled with "edge score" and the metric, one sample stroke per
// round score (drawn exactly as edges of that score are: width, opacity and colour), the sign's
// meaning in words, and a sample for edges without a score when there are any.

import { h } from '../lib/dom';
import { niceTicks, niceStep, tickLabel } from '../lib/ticks';
import type { Meta } from './data';
import { strokeAlpha, strokeColour, strokeWidth, type EdgeStyle } from './style';

export interface LegendDom {
  legend: HTMLDivElement;
  title: HTMLDivElement;
  samples: HTMLDivElement;
  note: HTMLDivElement;
}

const SAMPLE_W = 36; // px
const SAMPLE_H = 14;

/** Return the legend's elements, empty until `drawLegend` fills them. */
export function legendDom(): LegendDom {
  const legend = h('div', 'im-circuit-legend', { 'data-role': 'legend' });
  const title = h('div', 'im-circuit-legend-title', { 'data-role': 'legend-title' });
  const samples = h('div', 'im-circuit-samples', { 'data-role': 'legend-samples' });
  const note = h('div', 'im-circuit-legend-note', { 'data-role': 'legend-note' });
  legend.append(title, samples, note);
  return { legend, title, samples, note };
}

/** Return the legend's scores: round values in [-limit, limit] but 0 (drawn as edges are). */
export function legendValues(limit: number): number[] {
  return niceTicks(-limit, limit, 4).filter(v => v !== 0);
}

/** Return the legend's title: what a score is, in the metric's words. */
export function legendTitle(meta: Meta): string {
  return meta.metric ? `edge score (change in ${meta.metric})` : 'edge score';
}

function sample(score: number, s: EdgeStyle, label: string): HTMLDivElement {
  const item = h('div', 'im-circuit-sample');
  const canvas = h('canvas', 'im-circuit-sample-line', { 'aria-hidden': 'true' });
  const dpr = window.devicePixelRatio || 1;
  canvas.width = SAMPLE_W * dpr;
  canvas.height = SAMPLE_H * dpr;
  canvas.style.width = `${SAMPLE_W}px`;
  canvas.style.height = `${SAMPLE_H}px`;
  const ctx = canvas.getContext('2d');
  if (ctx) {
    ctx.scale(dpr, dpr);
    ctx.globalAlpha = strokeAlpha(score, s.limit);
    ctx.strokeStyle = strokeColour(score, s);
    ctx.lineWidth = strokeWidth(score, s.limit);
    ctx.lineCap = 'round';
    ctx.beginPath();
    ctx.moveTo(4, SAMPLE_H / 2);
    ctx.lineTo(SAMPLE_W - 4, SAMPLE_H / 2);
    ctx.stroke();
  }
  item.append(canvas, h('span', 'im-circuit-sample-label', undefined, label));
  return item;
}

/** Fill the legend for the edges' style (`scored`: some edges have scores; `unscored`: some do not). */
export function drawLegend(
  d: LegendDom,
  meta: Meta,
  s: EdgeStyle,
  has: { scored: boolean; unscored: boolean }
): void {
  d.title.textContent = legendTitle(meta);
  const items: HTMLDivElement[] = [];
  if (has.scored) {
    const values = legendValues(s.limit);
    const step = values.length > 1 ? niceStep(2 * s.limit, 4) : s.limit;
    for (const v of values) items.push(sample(v, s, tickLabel(v, step)));
  }
  if (has.unscored) items.push(sample(NaN, s, 'no score'));
  d.samples.replaceChildren(...items);
  const method = meta.method === 'eap-ig' ? 'EAP-IG' : meta.method === 'eap' ? 'EAP' : '';
  d.note.textContent = has.scored
    ? `${method ? `${method}'s ` : ''}approximate change in the metric when that edge alone is ` +
      'corrupted; red lowers it, blue raises it; width and opacity grow with |score| up to ' +
      `${tickLabel(s.limit, niceStep(s.limit, 4))}`
    : 'the circuit’s edges (given without scores)';
}
