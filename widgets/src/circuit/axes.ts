// The text around and over the graph's canvas: layer labels down the left, head labels under
// it, the axis titles, and one label per node laid exactly over its box (so the box can be found
// from the page, and its text is real text: crisp, selectable, measured like any other).

import { h } from '../lib/dom';
import type { GraphLayout } from './layout';

export const LABEL_FONT_PX = 11;
export const LABEL_LINE_PX = 14;
export const Y_TITLE = 20; // px of the rotated layer title
export const COL_BAND = 16; // px of the head labels under the canvas
export const X_TITLE = 18;

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
  nodeLabels: HTMLDivElement;
}

/** Place the canvas `left` px from the plot's edge, its labels and titles, for layout `l`. */
export function placeAxes(d: AxesDom, l: GraphLayout, left: number): void {
  const height = l.height + COL_BAND + X_TITLE;
  Object.assign(d.plot.style, { width: `${left + l.width}px`, height: `${height}px` });
  for (const el of [d.canvas, d.nodeLabels]) {
    Object.assign(el.style, { left: `${left}px`, top: '0px' });
  }
  Object.assign(d.nodeLabels.style, { width: `${l.width}px`, height: `${l.height}px` });
  d.rowLabels.style.width = `${left - Y_TITLE - 4}px`;
  d.rowLabels.style.left = `${Y_TITLE}px`;
  d.rowLabels.replaceChildren(
    ...l.rows.map(r => {
      const span = h('span', 'im-circuit-label', undefined, r.text);
      span.style.top = `${r.at - LABEL_LINE_PX / 2}px`;
      return span;
    })
  );
  d.colLabels.style.left = `${left}px`;
  d.colLabels.style.top = `${l.height}px`;
  d.colLabels.replaceChildren(
    ...l.cols.map(c => {
      const span = h('span', 'im-circuit-label', undefined, c.text);
      span.style.left = `${c.at}px`;
      return span;
    })
  );
  d.yTitle.textContent = 'layer';
  d.yTitle.style.top = `${l.height / 2}px`;
  d.xTitle.textContent = 'head · MLP';
  Object.assign(d.xTitle.style, {
    left: `${left}px`,
    top: `${l.height + COL_BAND}px`,
    width: `${l.width}px`
  });
  d.nodeLabels.replaceChildren(
    ...l.nodes.map(n => {
      const span = h('span', `im-circuit-node im-circuit-node-${n.kind}`, {
        'data-node': n.name
      });
      span.textContent = n.label;
      // the text sits above the port letters when they are written
      const line = l.portLetters && n.kind === 'head' ? n.h - 12 : n.h;
      Object.assign(span.style, {
        left: `${n.x}px`,
        top: `${n.y}px`,
        width: `${n.w}px`,
        height: `${n.h}px`,
        lineHeight: `${line}px`
      });
      return span;
    })
  );
}
