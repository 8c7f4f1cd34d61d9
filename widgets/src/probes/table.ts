// The numbers as text, in tables that fit the output area: the decisive columns first (for a
// sweep: layer, accuracy, CI, corrected p, significant), headers that wrap, and the columns that
// do not fit beside them moved into a further table below (the key column repeated), never
// behind a horizontal scroll.

import { h } from '../lib/dom';
import type { Column } from './types';

/** Return a table of `columns` (indices into `all`) for every row; row i has data-index i. */
function grid(all: Column[], columns: number[], rows: string[][]): HTMLTableElement {
  const t = h('table', 'im-probe-grid');
  const head = h('tr');
  for (const c of columns)
    head.appendChild(h('th', undefined, { scope: 'col', 'data-column': all[c].key }, all[c].label));
  const body = h('tbody');
  rows.forEach((row, i) => {
    const tr = h('tr', undefined, { 'data-index': String(i) });
    for (const c of columns)
      tr.appendChild(h('td', undefined, { 'data-column': all[c].key }, row[c] ?? ''));
    body.appendChild(tr);
  });
  const thead = h('thead');
  thead.appendChild(head);
  t.append(thead, body);
  return t;
}

/** Fill `box` with tables of `rows` that fit its width; the first `keep` columns stay together
 * in the first table (wrapping their cells if even they do not fit). */
export function fitTables(
  box: HTMLElement,
  columns: Column[],
  rows: string[][],
  keep: number
): void {
  box.replaceChildren();
  const avail = box.clientWidth;
  let rest = columns.map((_, i) => i).slice(1);
  let first = true;
  while (rest.length) {
    let take = rest.slice();
    let table = grid(columns, [0, ...take], rows);
    box.appendChild(table);
    const least = first ? Math.max(1, keep - 1) : 1;
    // without a layout (not in the page yet, or no DOM layout at all) everything stays in one
    while (avail > 0 && table.offsetWidth > avail && take.length > least) {
      take = take.slice(0, -1);
      const smaller = grid(columns, [0, ...take], rows);
      table.replaceWith(smaller);
      table = smaller;
    }
    if (avail > 0 && table.offsetWidth > avail) table.classList.add('im-probe-grid-wrap');
    rest = rest.slice(take.length);
    first = false;
  }
}

/** Mark row `index` of every table in `box` as the one under the cursor (null: none). */
export function highlightRow(box: HTMLElement, index: number | null): void {
  for (const tr of box.querySelectorAll('tr[data-index]'))
    tr.classList.toggle('im-probe-row-hover', tr.getAttribute('data-index') === String(index));
}
