// The heatmap's axes as text elements around the canvas: the row labels and the column labels
// (flat or rotated, thinned, as the layout says), the axis titles in words, and the highlight of
// the hovered cell's row and column labels. Text from data goes in through textContent only.

import { h } from '../lib/dom';
import type { Layout } from './layout';

export interface AxesDom {
  plot: HTMLDivElement; // positioning context of everything below
  yTitle: HTMLDivElement;
  xTitle: HTMLDivElement;
  rowLabels: HTMLDivElement;
  colLabels: HTMLDivElement;
  canvas: HTMLCanvasElement;
}

export interface AxesText {
  rows: string[]; // every row's label
  cols: string[]; // every column's label (empty: one-axis result)
  rowTitle: string;
  colTitle: string;
}

export const LABEL_FONT_PX = 11;
export const LABEL_LINE_PX = 14;

let measureCtx: CanvasRenderingContext2D | null | undefined;

/** Return a function giving the width (px) of a label in `root`'s font at the labels' size. */
export function measurer(root: Element): (text: string) => number {
  if (measureCtx === undefined) measureCtx = document.createElement('canvas').getContext('2d');
  const family = getComputedStyle(root).fontFamily || 'sans-serif';
  const ctx = measureCtx;
  if (!ctx) return text => text.length * LABEL_FONT_PX * 0.6; // no canvas (tests without one)
  ctx.font = `${LABEL_FONT_PX}px ${family}`;
  return text => Math.ceil(ctx.measureText(text).width);
}

/** Place the labels and titles for layout `l`; return the shown labels by index, to highlight. */
export function placeAxes(
  d: AxesDom,
  l: Layout,
  t: AxesText
): { rows: Map<number, HTMLElement>; cols: Map<number, HTMLElement> } {
  d.plot.style.height = `${l.height}px`;
  d.plot.style.width = l.scroll ? `${l.plotWidth}px` : '';
  d.canvas.style.left = `${l.left}px`;
  d.canvas.style.top = `${l.top}px`;
  const rows = new Map<number, HTMLElement>();
  const cols = new Map<number, HTMLElement>();
  d.rowLabels.replaceChildren();
  Object.assign(d.rowLabels.style, {
    left: '0px',
    top: `${l.top}px`,
    width: `${l.left - 4}px`,
    height: `${l.gridH}px`
  });
  for (const r of l.rowShown) {
    const span = h('span', 'im-patch-label', { 'data-index': String(r) }, t.rows[r]);
    span.style.top = `${r * l.cellH + l.cellH / 2 - LABEL_LINE_PX / 2}px`;
    rows.set(r, d.rowLabels.appendChild(span));
  }
  d.colLabels.replaceChildren();
  Object.assign(d.colLabels.style, { left: `${l.left}px`, top: `${l.top + l.gridH + 4}px` });
  for (const c of l.colShown) {
    const span = h('span', 'im-patch-label', { 'data-index': String(c) }, t.cols[c]);
    const x = c * l.cellW + l.cellW / 2;
    span.style.left = `${x}px`;
    // Flat: centred under the column. Rotated: the label ends under the column's centre and
    // runs down to the left, so nothing reaches past the grid's right edge.
    span.style.transform = l.rotated ? `rotate(-60deg) translate(-100%, -50%)` : 'translateX(-50%)';
    span.classList.toggle('im-patch-label-rotated', l.rotated);
    cols.set(c, d.colLabels.appendChild(span));
  }
  d.yTitle.textContent = t.rowTitle;
  Object.assign(d.yTitle.style, { top: `${l.top + l.gridH / 2}px` });
  d.xTitle.textContent = t.colTitle;
  d.xTitle.hidden = t.cols.length === 0;
  Object.assign(d.xTitle.style, {
    left: `${l.left}px`,
    top: `${l.xTitleY}px`,
    width: `${l.gridW}px`
  });
  return { rows, cols };
}

/** Mark the labels of row `r` and column `c` (or none) as the hovered cell's. */
export function highlightLabels(
  shown: { rows: Map<number, HTMLElement>; cols: Map<number, HTMLElement> },
  cell: [number, number] | null
): void {
  for (const [i, span] of shown.rows) span.classList.toggle('im-patch-label-on', cell?.[0] === i);
  for (const [i, span] of shown.cols) span.classList.toggle('im-patch-label-on', cell?.[1] === i);
}
