// Drawing the whole viewer again: after a change of the selection, the mode, the contrast, the
// sequence on show, the metadata, the theme or the width the output area gives the view.

import { h, texts } from '../lib/dom';
import { drawDetail, drawLegend } from './detail';
import { layout } from './layout';
import { drawGrid } from './overview';
import { drawText } from './text';
import { refreshReadout } from './values';
import { meta, type View } from './view';

/** Redraw every part of the viewer. */
export function redraw(v: View): void {
  fillHeader(v);
  const L = layout(v);
  v.dom.root.dataset.layout = L.beside ? 'beside' : 'stacked';
  drawGrid(v);
  drawDetail(v);
  drawText(v);
  drawLegend(v);
  refreshReadout(v);
  const { root } = v.dom;
  if (!root.dataset.firstPaintMs) {
    root.dataset.firstPaintMs = (performance.now() - v.started).toFixed(1);
  }
}

/** Fill the title, the choice of sequence (for a batch) and the notes. */
function fillHeader(v: View): void {
  const { title, batchSelect, notes } = v.dom;
  const m = meta(v);
  title.textContent = m.title;
  batchSelect.replaceChildren(
    ...m.batch_labels.map((label, i) =>
      h('option', undefined, { value: String(i) }, `${i}: ${label}`)
    )
  );
  batchSelect.value = String(v.model.get('batch_index'));
  batchSelect.hidden = m.batch < 2;
  notes.replaceChildren(...texts('div', m.notes));
}
