// The reader's input: pointer and keys over the overview (pick a head) and the detail (read a
// weight), the header's buttons, and a click on a token (focus on it). Every input sets what the
// reader points at (`v.target`) and redraws what depends on it: the highlight, the readout and
// the tooltip.

import { indexTable } from '../lib/colors';
import { setPressed } from '../lib/dom';
import { attachGrid, sameCell, type Cell } from '../lib/grid';
import { drawHighlight, drawTable, detailGrid } from './detail';
import { redraw } from './draw';
import { drawGrid, overviewGrid } from './overview';
import { drawText, lastRealToken } from './text';
import { refreshReadout } from './values';
import type { Target, View } from './view';

/** Make the viewer respond to the pointer, the keyboard and its buttons. */
export function attachInput(v: View): void {
  attachOverview(v);
  attachDetail(v);
  attachButtons(v);
  v.dom.text.addEventListener('click', ev => {
    const target = (ev.target as HTMLElement).closest<HTMLElement>('.im-attn-token');
    if (target?.dataset.index) setFocus(v, Number(target.dataset.index));
  });
}

/** Show where query `q` attends, in every head (focus mode). */
function setFocus(v: View, q: number): void {
  v.mode = 'focus';
  setPressed(v.dom.modeButton, true);
  v.model.set('focus', q);
  v.model.save_changes();
  redraw(v);
}

/** Return where the pointer last was over `canvas` (client coordinates), kept up to date. */
function trackPointer(canvas: HTMLElement): { x: number; y: number } {
  const at = { x: 0, y: 0 };
  // Registered before the grid's own listener, so a hover handler sees this event's position.
  canvas.addEventListener('mousemove', ev => {
    at.x = ev.clientX;
    at.y = ev.clientY;
  });
  return at;
}

/** Point at `cell` of kind `kind` (or at nothing, when the input that pointed there ends). */
function pointAt(
  v: View,
  kind: Target['kind'],
  cell: Cell | null,
  via: Target['via'],
  at?: { x: number; y: number }
): boolean {
  const before = v.target;
  if (cell) v.target = { kind, cell, via, x: at?.x, y: at?.y };
  else if (before?.kind === kind && before.via === via) v.target = null;
  else return false;
  return !(before?.kind === v.target?.kind && sameCell(before?.cell ?? null, cell));
}

function attachOverview(v: View): void {
  const { gridCanvas, detailCanvas } = v.dom;
  const at = trackPointer(gridCanvas);
  const changed = (moved: boolean): void => {
    if (moved) {
      drawGrid(v);
      if (v.mode === 'focus') drawText(v);
    }
    refreshReadout(v);
  };
  attachGrid(gridCanvas, v.grid, {
    geometry: () => overviewGrid(v),
    hover: hit => changed(pointAt(v, 'head', hit, 'pointer', at)),
    activate: ([l, hd], ev) => {
      v.model.set('selected', [l, hd]);
      v.model.save_changes();
      redraw(v);
      if (ev.type === 'keydown') detailCanvas.focus();
    },
    move: cell => changed(pointAt(v, 'head', cell, 'keys')),
    focus: () => {
      if (document.activeElement !== gridCanvas) pointAt(v, 'head', null, 'keys');
      changed(true);
    }
  });
}

function attachDetail(v: View): void {
  const { detailCanvas } = v.dom;
  const at = trackPointer(detailCanvas);
  const changed = (moved: boolean): void => {
    if (moved) drawHighlight(v);
    refreshReadout(v);
  };
  attachGrid(detailCanvas, v.detail, {
    geometry: () => detailGrid(v),
    hover: hit => {
      if (hit) v.detail.cell = hit;
      changed(pointAt(v, 'cell', hit, 'pointer', at));
    },
    move: cell => changed(pointAt(v, 'cell', cell, 'keys')),
    key: ev => {
      if (ev.key === 'Escape') v.dom.gridCanvas.focus();
      else if (ev.key === 'f') setFocus(v, v.detail.cell[0]);
      else return false;
      return true;
    },
    focus: () => {
      if (document.activeElement !== detailCanvas) changed(pointAt(v, 'cell', null, 'keys'));
    }
  });
}

function attachButtons(v: View): void {
  const { modeButton, contrastButton, tableButton, batchSelect } = v.dom;
  modeButton.addEventListener('click', () => {
    if (v.mode === 'focus') {
      v.mode = 'grid';
      setPressed(modeButton, false);
      redraw(v);
      return;
    }
    const q = v.model.get('focus');
    setFocus(v, q >= 0 ? q : lastRealToken(v));
  });
  contrastButton.addEventListener('click', () => {
    v.contrast = v.contrast === 'linear' ? 'sqrt' : 'linear';
    setPressed(contrastButton, v.contrast === 'sqrt');
    v.index = indexTable(v.contrast);
    redraw(v);
  });
  tableButton.addEventListener('click', () => {
    v.showTable = !v.showTable;
    setPressed(tableButton, v.showTable);
    drawTable(v);
  });
  batchSelect.addEventListener('change', () => {
    v.model.set('batch_index', Number(batchSelect.value));
    v.model.save_changes();
  });
}
