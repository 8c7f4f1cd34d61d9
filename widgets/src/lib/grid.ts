// Keyboard and pointer input over a canvas drawn as a grid of cells: the arrow keys (Home, End)
// move a cursor, Enter or Space activates the cell under it, a click activates the cell under the
// pointer, and hovering reports it. What a cell means is the widget's business, through handlers.

import { cellAt, moveCursor, type Grid } from './geometry';

/** A cell of a grid: [row, column]. */
export type Cell = [number, number];

/** A grid's keyboard cursor: the view owns (and draws) it, the grid's input moves it. */
export interface Cursor {
  cell: Cell;
}

export interface GridHandlers {
  /** Return the grid as drawn now, to hit-test the pointer and to keep the cursor inside. */
  geometry(): Grid;
  /** The pointer is over `cell`, or over none (null: a gap, outside the cells, or gone). */
  hover?(cell: Cell | null): void;
  /** A click on `cell`, or Enter / Space on the cursor; the cursor is on `cell` already. */
  activate?(cell: Cell, ev: MouseEvent | KeyboardEvent): void;
  /** The keys moved the cursor to `cell`. */
  move?(cell: Cell): void;
  /** The widget's own keys, tried first: return true when `ev` was one (it is then consumed). */
  key?(ev: KeyboardEvent): boolean;
  /** The canvas gained or lost focus (a cursor is drawn only while its grid has focus). */
  focus?(): void;
}

/** Return whether two cells (or two absences of a cell) are the same. */
export function sameCell(a: Cell | null, b: Cell | null): boolean {
  return a?.[0] === b?.[0] && a?.[1] === b?.[1];
}

/** Return [x, y] of a pointer event in CSS pixels from the top-left corner of `node`. */
export function pointerAt(ev: MouseEvent, node: Element): [number, number] {
  const r = node.getBoundingClientRect();
  return [ev.clientX - r.left, ev.clientY - r.top];
}

/** Drive `cursor` and the handlers from the keyboard and pointer events of `canvas`. */
export function attachGrid(canvas: HTMLElement, cursor: Cursor, on: GridHandlers): void {
  const hit = (ev: MouseEvent): Cell | null => cellAt(on.geometry(), ...pointerAt(ev, canvas));
  const { hover, activate, focus } = on;
  if (hover) {
    canvas.addEventListener('mousemove', ev => hover(hit(ev)));
    canvas.addEventListener('mouseleave', () => hover(null));
  }
  if (activate) {
    canvas.addEventListener('click', ev => {
      const cell = hit(ev);
      if (!cell) return;
      cursor.cell = cell;
      activate(cell, ev);
    });
  }
  canvas.addEventListener('keydown', ev => onKey(ev, cursor, on));
  if (focus) {
    canvas.addEventListener('focus', focus);
    canvas.addEventListener('blur', focus);
  }
}

function onKey(ev: KeyboardEvent, cursor: Cursor, on: GridHandlers): void {
  if (on.key?.(ev)) {
    ev.preventDefault();
    return;
  }
  if (on.activate && (ev.key === 'Enter' || ev.key === ' ')) {
    on.activate(cursor.cell, ev);
    ev.preventDefault();
    return;
  }
  const { rows, cols } = on.geometry();
  const next = moveCursor(cursor.cell, ev.key, rows, cols);
  if (!next) return;
  ev.preventDefault();
  cursor.cell = next;
  on.move?.(next);
}
