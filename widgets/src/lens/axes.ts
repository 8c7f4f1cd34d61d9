// The grid's axes as text elements around the canvas: layer labels down the left (the last
// layer on top), position labels under the grid (flat or rotated, thinned as the layout says),
// the axis titles in words, and the highlight of the hovered cell's labels. Text from data goes
// in through textContent only.

import { h } from '../lib/dom';
import { colLeft, rowTop, type Layout } from './layout';

export const LABEL_FONT_PX = 11;
export const LABEL_LINE_PX = 14;

export interface Shown {
  rows: Map<number, HTMLElement>;
  cols: Map<number, HTMLElement>;
}

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

export interface AxesDom {
  plot: HTMLDivElement;
  yTitle: HTMLDivElement;
  xTitle: HTMLDivElement;
  rowLabels: HTMLDivElement;
  colLabels: HTMLDivElement;
  canvas: HTMLCanvasElement;
}

/** Place labels and titles for layout `l`; return the shown labels by index, to highlight. */
export function placeAxes(
  d: AxesDom,
  l: Layout,
  text: { rows: string[]; cols: string[]; rowTitle: string; colTitle: string }
): Shown {
  d.plot.style.height = `${l.height}px`;
  d.plot.style.width = l.scroll ? `${l.plotWidth}px` : '';
  d.canvas.style.left = `${l.left}px`;
  d.canvas.style.top = `${l.top}px`;
  const shown: Shown = { rows: new Map(), cols: new Map() };
  d.rowLabels.replaceChildren();
  Object.assign(d.rowLabels.style, {
    left: '0px',
    top: `${l.top}px`,
    width: `${l.left - 4}px`,
    height: `${l.gridH}px`
  });
  for (const r of l.rowShown) {
    const span = h('span', 'im-lens-label', { 'data-index': String(r) }, text.rows[r]);
    span.style.top = `${rowTop(l, r) + l.cellH / 2 - LABEL_LINE_PX / 2}px`;
    shown.rows.set(r, d.rowLabels.appendChild(span));
  }
  d.colLabels.replaceChildren();
  Object.assign(d.colLabels.style, { left: `${l.left}px`, top: `${l.top + l.gridH + 4}px` });
  for (const c of l.colShown) {
    const span = h('span', 'im-lens-label', { 'data-index': String(c) }, text.cols[c]);
    span.style.left = `${(colLeft(l, c) + colLeft(l, c + 1)) / 2}px`;
    // Rotated labels end under their column and run down to the left: nothing passes the
    // grid's right edge.
    span.style.transform = l.rotated ? 'rotate(-60deg) translate(-100%, -50%)' : 'translateX(-50%)';
    shown.cols.set(c, d.colLabels.appendChild(span));
  }
  d.yTitle.textContent = text.rowTitle;
  d.yTitle.style.top = `${l.top + l.gridH / 2}px`;
  d.xTitle.textContent = text.colTitle;
  Object.assign(d.xTitle.style, {
    left: `${l.left}px`,
    top: `${l.xTitleY}px`,
    width: `${l.gridW}px`
  });
  return shown;
}

/** Mark the labels of the hovered cell's layer and position (or none). */
export function highlightLabels(shown: Shown, cell: [number, number] | null): void {
  for (const [i, span] of shown.rows) span.classList.toggle('im-lens-label-on', cell?.[0] === i);
  for (const [i, span] of shown.cols) span.classList.toggle('im-lens-label-on', cell?.[1] === i);
}
