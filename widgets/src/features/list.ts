// The list of features: its order (by max activation or density, largest first, or by index),
// the search (a feature stays when its index or its label contains the text, ignoring case),
// and a virtualised listbox: the viewport scrolls over a spacer as tall as every row, and only
// the rows in view (plus a few) exist in the DOM, recycled as it scrolls. The pure parts are
// tested without a browser (widgets/test/features-list.test.ts).

import { fmt, h } from '../lib/dom';
import type { FeatureList, SortKey, View } from './view';

export const ROW_H = 24; // px of one row
const OVERSCAN = 6; // rows drawn beyond each edge of the viewport
const FALLBACK_HEIGHT = 480; // px of the viewport before it is laid out

/** Return every feature in the order of `key`: largest first for the values (NaN last, ties
 * by index), from 0 for the index. */
export function sortOrder(list: FeatureList, key: SortKey): Uint32Array {
  const order = new Uint32Array(list.n);
  for (let i = 0; i < list.n; i++) order[i] = i;
  if (key === 'index') return order;
  const values = key === 'density' ? list.density : list.max;
  const v = (i: number): number => (Number.isNaN(values[i]) ? -Infinity : values[i]);
  return order.sort((a, b) => v(b) - v(a) || a - b);
}

/** Return the features of `order` whose index or label contains `query` (ignoring case and
 * the spaces around it), in the same order. */
export function filterOrder(order: Uint32Array, list: FeatureList, query: string): Uint32Array {
  const q = query.trim().toLowerCase();
  if (!q) return order;
  return order.filter(i => String(i).includes(q) || list.lower[i].includes(q));
}

/** Return the first and past-the-last position of the rows to draw for a viewport. */
export function rowRange(scrollTop: number, height: number, count: number): [number, number] {
  const first = Math.max(0, Math.floor(scrollTop / ROW_H) - OVERSCAN);
  const last = Math.min(count, Math.ceil((scrollTop + height) / ROW_H) + OVERSCAN);
  return [first, Math.max(first, last)];
}

/** Return a density (a fraction of tokens) as a percentage, three significant digits. */
export function fmtDensity(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return value === 0 ? '0%' : `${fmt(value * 100, 3)}%`;
}

/** Return `text` cut (with an ellipsis) to at most `width` px as `measure` says; the whole
 * text when it fits. */
export function fitLabel(text: string, width: number, measure: (s: string) => number): string {
  if (width <= 0 || measure(text) <= width) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(text.slice(0, mid) + '…') <= width) lo = mid;
    else hi = mid - 1;
  }
  return text.slice(0, lo) + '…';
}

/** Return the element id of a feature's row in view `id`. */
export function rowId(id: number, feature: number): string {
  return `im-feat-${id}-row-${feature}`;
}

function newRow(): HTMLDivElement {
  const row = h('div', 'im-feat-row', { role: 'option' });
  row.append(
    h('span', 'im-feat-idx'),
    h('span', 'im-feat-label'),
    h('span', 'im-feat-num'),
    h('span', 'im-feat-num')
  );
  return row;
}

/** Draw the rows in view (recycling the pool), the selection marked. */
export function drawRows(v: View): void {
  const { scroll, spacer } = v.dom;
  const count = v.order.length;
  spacer.style.height = `${count * ROW_H}px`;
  const height = scroll.clientHeight || FALLBACK_HEIGHT;
  // a list that just got shorter may still be scrolled past its end (until the browser clamps)
  const top = Math.min(scroll.scrollTop, Math.max(0, count * ROW_H - height));
  const [first, last] = rowRange(top, height, count);
  while (v.rows.length < last - first) v.rows.push(spacer.appendChild(newRow()));
  const selected = v.model.get('selected');
  const list = v.list;
  v.rows.forEach((row, k) => {
    const pos = first + k;
    row.hidden = pos >= last;
    if (row.hidden) return;
    const f = v.order[pos];
    if (row.dataset.feature !== String(f) || row.dataset.fit !== String(v.labelWidth)) {
      row.dataset.feature = String(f);
      row.dataset.fit = String(v.labelWidth);
      row.id = rowId(v.id, f);
      const [idx, label, density, max] = row.children as unknown as HTMLSpanElement[];
      idx.textContent = String(f);
      // cut to the column here (not clipped by CSS): nothing is hidden behind an overflow
      label.textContent = fitLabel(list.labels[f] || '(no label)', v.labelWidth, v.measureLabel);
      label.classList.toggle('im-feat-nolabel', !list.labels[f]);
      row.title = `feature ${f}${list.labels[f] ? `: ${list.labels[f]}` : ''}`;
      density.textContent = fmtDensity(list.density[f]);
      max.textContent = fmt(list.max[f], 3);
    }
    row.style.top = `${pos * ROW_H}px`;
    row.setAttribute('aria-posinset', String(pos + 1));
    row.setAttribute('aria-setsize', String(count));
    const on = f === selected;
    row.setAttribute('aria-selected', String(on));
    row.classList.toggle('im-feat-row-on', on);
  });
  if (v.rows.some(r => !r.hidden && r.dataset.feature === String(selected)))
    scroll.setAttribute('aria-activedescendant', rowId(v.id, selected));
  else scroll.removeAttribute('aria-activedescendant');
}

/** Scroll the list (as little as needed) so that position `pos` is in view. */
export function scrollToPosition(v: View, pos: number): void {
  const { scroll } = v.dom;
  const height = scroll.clientHeight || FALLBACK_HEIGHT;
  const top = pos * ROW_H;
  if (top < scroll.scrollTop) scroll.scrollTop = top;
  else if (top + ROW_H > scroll.scrollTop + height) scroll.scrollTop = top + ROW_H - height;
}

/** Return the position of `feature` in the list as it is shown, or -1. */
export function positionOf(v: View, feature: number): number {
  return v.order.indexOf(feature);
}

/** Return the list's count line: how many features the search leaves, of how many. */
export function countText(shown: number, n: number, query: string): string {
  const all = `${n.toLocaleString('en-US')} features`;
  return query.trim() ? `${shown.toLocaleString('en-US')} of ${all} match “${query.trim()}”` : all;
}
