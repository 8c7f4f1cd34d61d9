// The logits a feature's decoder direction promotes and suppresses: two short tables, each row
// a token, a bar as long as |value| (on one scale for both tables) in the sign's colour, and
// the value in figures.

import { fmt, h, showToken } from '../lib/dom';
import type { Detail } from './view';

/** Return a signed value with its sign: +0.532, −0.321. */
export function fmtSigned(value: number): string {
  if (value === 0) return '0';
  return `${value > 0 ? '+' : '−'}${fmt(Math.abs(value), 3)}`;
}

function logitTable(
  title: string,
  role: string,
  pairs: [string, number][],
  scale: number,
  colour: string
): HTMLDivElement {
  const box = h('div', 'im-feat-logit-box', { 'data-role': role });
  box.appendChild(h('div', 'im-feat-section', undefined, title));
  if (!pairs.length) {
    box.appendChild(h('div', 'im-feat-empty', undefined, 'none'));
    return box;
  }
  const table = h('table', 'im-feat-logit-table');
  for (const [token, value] of pairs) {
    const tr = h('tr');
    const tok = h('td', 'im-feat-logit-tok', { title: token }, showToken(token, 16));
    const barCell = h('td', 'im-feat-logit-barcell', { 'aria-hidden': 'true' });
    const bar = h('span', 'im-feat-logit-bar');
    bar.style.width = `${Math.round((Math.abs(value) / scale) * 100)}%`;
    bar.style.background = colour;
    barCell.appendChild(bar);
    tr.append(tok, barCell, h('td', 'im-feat-num', undefined, fmtSigned(value)));
    table.appendChild(tr);
  }
  box.appendChild(table);
  return box;
}

/** Draw the promoted and suppressed logits of `d`; `colours` are [negative, positive]. */
export function drawLogits(box: HTMLDivElement, d: Detail, colours: string[]): void {
  const all = [...d.promoted, ...d.suppressed].map(([, v]) => Math.abs(v));
  const scale = Math.max(1e-12, ...all.filter(Number.isFinite));
  box.replaceChildren(
    logitTable('Promoted logits', 'promoted', d.promoted, scale, colours[1]),
    logitTable('Suppressed logits', 'suppressed', d.suppressed, scale, colours[0])
  );
}
