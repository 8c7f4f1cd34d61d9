// Pointer and keyboard over the heatmap's canvas. Cells need not be square (rows keep a
// readable height when many columns make cells narrow), so the pointer is hit-tested against
// the layout here rather than with the square-cell grid of lib/grid.ts; the keys move the same
// cursor with lib/geometry's moveCursor.

import { moveCursor } from '../lib/geometry';
import type { Cell, Cursor } from '../lib/grid';
import { pointerAt } from '../lib/grid';
import { cellAt, type Layout } from './layout';

export interface InputHandlers {
  layout(): { l: Layout | null; rows: number; cols: number };
  /** The pointer is over `cell` at client point (x, y), or over no cell (null). */
  hover(cell: Cell | null, x: number, y: number): void;
  /** A click on `cell`, or Enter / Space on the cursor. */
  activate(cell: Cell): void;
  /** The keys moved the cursor to `cell`. */
  move(cell: Cell): void;
  /** The canvas gained or lost focus. */
  focus(): void;
}

/** Drive `cursor` and the handlers from `canvas`'s pointer and keyboard events. */
export function attachInput(canvas: HTMLCanvasElement, cursor: Cursor, on: InputHandlers): void {
  const hit = (ev: MouseEvent): Cell | null => {
    const { l, rows, cols } = on.layout();
    return l ? cellAt(l, rows, cols, ...pointerAt(ev, canvas)) : null;
  };
  canvas.addEventListener('mousemove', ev => on.hover(hit(ev), ev.clientX, ev.clientY));
  canvas.addEventListener('mouseleave', ev => on.hover(null, ev.clientX, ev.clientY));
  canvas.addEventListener('click', ev => {
    const cell = hit(ev);
    if (!cell) return;
    cursor.cell = cell;
    on.activate(cell);
  });
  canvas.addEventListener('keydown', ev => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      on.activate(cursor.cell);
      ev.preventDefault();
      return;
    }
    const { rows, cols } = on.layout();
    const next = moveCursor(cursor.cell, ev.key, rows, cols);
    if (!next) return;
    ev.preventDefault();
    cursor.cell = next;
    on.move(next);
  });
  canvas.addEventListener('focus', () => on.focus());
  canvas.addEventListener('blur', () => on.focus());
}

/** Return the client point at the centre of `cell` of the canvas (for the keys' tooltip). */
export function cellCentre(canvas: HTMLCanvasElement, l: Layout, [r, c]: Cell): [number, number] {
  const box = canvas.getBoundingClientRect();
  return [box.left + (c + 0.5) * l.cellW, box.top + (r + 0.5) * l.cellH];
}
