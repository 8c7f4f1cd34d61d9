// The parts under the grid that speak of one position: the answer's rank trajectory (a chart
// with its titles, hover to read a layer) and the "as table" view of that position (every
// layer's top-k, and the answer's rank and probability). Both follow the trajectory's column.

import { sizeCanvas } from '../lib/canvas';
import { h, table } from '../lib/dom';
import { pointerAt } from '../lib/grid';
import type { Ink } from '../lib/theme';
import { positionOf } from './decode';
import { fmtProb, requestColumn } from './readout';
import { drawRankChart, rankChart, type RankChart } from './trajectory';
import { columnKey, meta, type View } from './view';

export interface PanelDom {
  box: HTMLDivElement;
  title: HTMLDivElement;
  plot: HTMLDivElement;
  canvas: HTMLCanvasElement;
  yTitle: HTMLDivElement;
  xTitle: HTMLDivElement;
}

const Y_TITLE = 18; // px left of the chart for its rotated title
const MAX_WIDTH = 560;

/** Return the trajectory's elements (filled by `drawTrajectory`). */
export function panelDom(): PanelDom {
  const box = h('div', 'im-lens-traj', { 'data-role': 'trajectory' });
  const title = h('div', 'im-lens-traj-title', { 'data-role': 'trajectory-title' });
  const plot = h('div', 'im-lens-traj-plot');
  const canvas = h('canvas', 'im-lens-traj-canvas', {
    'data-role': 'trajectory-canvas',
    role: 'img'
  });
  const yTitle = h('div', 'im-lens-traj-ytitle', { 'data-role': 'trajectory-y-title' });
  const xTitle = h('div', 'im-lens-traj-xtitle', { 'data-role': 'trajectory-x-title' });
  plot.append(yTitle, canvas, xTitle);
  box.append(title, plot);
  return { box, title, plot, canvas, yTitle, xTitle };
}

const charts = new WeakMap<View, { chart: RankChart; ink: Ink; hover: number | null }>();

/** Return the words of the trajectory's position: `position 31 “p”`. */
function where(v: View): string {
  const col = v.model.get('trajectory_col');
  return `position ${positionOf(meta(v), col)} “${v.model.get('tokens')[col] ?? ''}”`;
}

/** Draw the answer's rank by layer at the trajectory's column (hidden without an answer). */
export function drawTrajectory(
  v: View,
  d: PanelDom,
  width: number,
  ink: Ink,
  measure: (s: string) => number
): void {
  const t = v.data.trajectory;
  d.box.hidden = !t;
  if (!t) return;
  const m = meta(v);
  const w = Math.max(200, Math.min(MAX_WIDTH, width) - Y_TITLE);
  const chart = rankChart(m.layer_labels, t.rank, w, measure);
  d.title.textContent = `Rank of the answer “${v.model.get('answer')}” by layer at ${where(v)} (log scale)`;
  d.yTitle.textContent = 'answer rank (1 = top)';
  d.xTitle.textContent = 'layer';
  d.plot.style.height = `${chart.height + 18}px`;
  d.canvas.style.left = `${Y_TITLE}px`;
  d.yTitle.style.top = `${chart.height / 2}px`;
  Object.assign(d.xTitle.style, {
    left: `${Y_TITLE + chart.frame.x0}px`,
    width: `${chart.frame.x1 - chart.frame.x0}px`,
    top: `${chart.height}px`
  });
  const ranks = Array.from(t.rank, r => r + 1).join(', ');
  d.canvas.setAttribute('aria-label', `Rank of the answer by layer (1 = top): ${ranks}`);
  charts.set(v, { chart, ink, hover: charts.get(v)?.hover ?? null });
  paintTrajectory(v, d);
}

function paintTrajectory(v: View, d: PanelDom): void {
  const c = charts.get(v);
  const t = v.data.trajectory;
  if (!c || !t) return;
  const width = c.chart.frame.x1 + 12;
  const ctx = sizeCanvas(d.canvas, width, c.chart.height);
  if (!ctx) return;
  ctx.font = `11px ${getComputedStyle(v.dom.root).fontFamily || 'sans-serif'}`;
  drawRankChart(ctx, c.chart, meta(v).layer_labels, t.rank, c.ink, c.hover);
}

/** Read a layer of the trajectory out on hover. */
export function wireTrajectory(v: View, d: PanelDom): void {
  const show = (ev: MouseEvent | null): void => {
    const c = charts.get(v);
    const t = v.data.trajectory;
    if (!c || !t) return;
    const i = ev ? c.chart.hit(pointerAt(ev, d.canvas)[0]) : null;
    if (i === c.hover) return;
    c.hover = i;
    paintTrajectory(v, d);
    if (i === null || !ev) {
      v.tooltip.hide();
      return;
    }
    const rank = t.rank[i] + 1;
    v.tooltip.show(
      [
        `${meta(v).layer_labels[i]} · ${where(v)}`,
        `answer “${v.model.get('answer')}”: rank ${rank}${rank === 1 ? ' (top)' : ''}`,
        `p ${fmtProb(t.prob[i])}`
      ],
      ev.clientX,
      ev.clientY
    );
  };
  d.canvas.addEventListener('mousemove', show);
  d.canvas.addEventListener('mouseleave', () => show(null));
}

/** Fill the table of the trajectory's column: every layer's top-k (asked of the kernel). */
export function drawTable(v: View): void {
  const box = v.dom.table;
  if (!v.showTable) {
    box.replaceChildren();
    return;
  }
  const m = meta(v);
  const ex = v.model.get('example');
  const col = v.model.get('trajectory_col');
  const column = v.columns.get(columnKey(ex, col));
  const caption = h('div', 'im-lens-table-title', undefined, `Every layer at ${where(v)}`);
  if (!column) {
    requestColumn(v, ex, col);
    box.replaceChildren(caption, h('div', undefined, undefined, 'loading…'));
    return;
  }
  const answer = !!column.answer_rank && !!column.answer_prob;
  const head = ['layer', ...Array.from({ length: m.k }, (_, i) => `top ${i + 1}`)];
  if (answer) head.push('answer rank', 'answer p');
  const rows = m.layer_labels.map((label, r) => {
    const cells = column.tokens[r].map((t, i) => `${t} ${fmtProb(column.probs[r][i])}`);
    const extra = answer
      ? [String(column.answer_rank![r] + 1), fmtProb(column.answer_prob![r])]
      : [];
    return [label, ...cells, ...extra];
  });
  box.replaceChildren(caption, table('im-lens-grid', head, rows.reverse(), true));
}
