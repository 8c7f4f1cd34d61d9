// The reader's input: pointer and keys over the overview (pick a head) and the detail (read a
// weight), the header's buttons, and a click on a token (focus on it).

import { indexTable } from '../lib/colors';
import { setPressed } from '../lib/dom';
import { attachGrid, sameCell, type Cell } from '../lib/grid';
import { detailGrid, drawTable } from './detail';
import { redraw } from './draw';
import { drawGrid, overviewGrid } from './overview';
import { drawText, lastRealToken } from './text';
import { describeCell } from './values';
import { meta, type View } from './view';

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

function attachOverview(v: View): void {
  const { live, detailCanvas } = v.dom;
  const headName = ([l, hd]: Cell): string => `Layer ${meta(v).layer_labels[l]} · Head ${hd}`;
  attachGrid(v.dom.gridCanvas, v.grid, {
    geometry: () => overviewGrid(v),
    hover: hit => {
      const before = v.hoverHead;
      v.hoverHead = hit;
      if (hit) live.textContent = `${headName(hit)} — click to open`;
      if (v.mode === 'focus' && !sameCell(before, hit)) drawText(v);
    },
    activate: ([l, hd], ev) => {
      v.model.set('selected', [l, hd]);
      v.model.save_changes();
      redraw(v);
      if (ev.type === 'keydown') detailCanvas.focus();
    },
    move: cell => {
      live.textContent = `${headName(cell)} — Enter to open`;
      drawGrid(v);
    },
    focus: () => drawGrid(v)
  });
}

function attachDetail(v: View): void {
  attachGrid(v.dom.detailCanvas, v.detail, {
    geometry: () => detailGrid(v),
    hover: hit => {
      if (!hit || (sameCell(hit, v.detail.cell) && v.dom.live.dataset.cell)) return;
      v.detail.cell = hit;
      describeCell(v, hit[0], hit[1]);
    },
    move: ([q, k]) => describeCell(v, q, k),
    key: ev => {
      if (ev.key === 'Escape') v.dom.gridCanvas.focus();
      else if (ev.key === 'f') setFocus(v, v.detail.cell[0]);
      else return false;
      return true;
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
