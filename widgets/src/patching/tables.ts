// The heatmap as a table ("As table"), and the per-example values of the selected cell. The
// table puts the longer axis down the page (32 positions become 32 rows, not 32 columns), so it
// fits the output area's width and scrolls, if at all, vertically.

import { floats } from '../lib/buffers';
import { fmt, h, table } from '../lib/dom';
import { cellText } from './scale';
import { label, meta, plane, type View } from './view';
import { whereWords } from './readout';

/** Return whether the table shows the plane transposed (its columns down the page). */
export function transposeTable(rows: number, cols: number): boolean {
  return cols > rows;
}

/** Fill the table of the plane on show, numbers to `decimals`. */
export function drawTable(v: View, decimals: number): void {
  const p = plane(v);
  const m = meta(v);
  const title = (a: string): string => m.axis_titles?.[a] ?? a;
  const flip = Boolean(p.colAxis) && transposeTable(p.rows, p.cols);
  const down = flip ? p.colAxis : p.rowAxis;
  const across = flip ? p.rowAxis : p.colAxis;
  const nDown = flip ? p.cols : p.rows;
  const nAcross = flip ? p.rows : p.cols;
  const head = [across ? `${title(down)} \\ ${title(across)}` : title(down)];
  for (let j = 0; j < nAcross; j++) head.push(across ? label(v, across, j) : 'value');
  const body: string[][] = [];
  for (let i = 0; i < nDown; i++) {
    const row = [label(v, down, i, 24)];
    for (let j = 0; j < nAcross; j++) {
      const x = flip ? p.values[j * p.cols + i] : p.values[i * p.cols + j];
      row.push(cellText(x, decimals));
    }
    body.push(row);
  }
  const t = table('im-patch-grid', head, body, true);
  t.dataset.transposed = String(flip);
  v.dom.table.replaceChildren(t);
}

/** Show the per-example values of the selected cell (the kernel sends them on selection). */
export function drawDetail(v: View): void {
  const { detail } = v.dom;
  detail.replaceChildren();
  const sel = v.model.get('selected');
  const vals = floats(v.model.get('cell_values'));
  const m = meta(v);
  if (!sel || sel.length !== 2 || vals.length === 0) return;
  const at = whereWords(v, sel[0], sel[1]);
  detail.appendChild(
    h('div', 'im-patch-detail-title', undefined, `Per-example ${m.metric}, ${at}`)
  );
  const withCorrupt = m.corrupt !== null;
  const head = ['example', 'patched', 'clean', ...(withCorrupt ? ['corrupted'] : [])];
  const clean = floats(v.model.get('clean_values'));
  const corrupt = floats(v.model.get('corrupt_values'));
  const rows = Array.from(vals, (x, i) => [
    String(i),
    fmt(x, 4),
    fmt(clean[i], 4),
    ...(withCorrupt ? [fmt(corrupt[i], 4)] : [])
  ]);
  detail.appendChild(table('im-patch-examples', head, rows));
}
