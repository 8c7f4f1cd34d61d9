// The tokens as text under the views; in focus mode each token is a chip coloured by the
// attention the focus query gives it in the hovered (or else the selected) head, in the theme's
// colour table (zero is the page background), its text black or white, whichever reads better.

import { lutIndex } from '../lib/colors';
import { h, showToken } from '../lib/dom';
import { chipInk } from './palette';
import { focusRows, meta, palette, pad, type View } from './view';

/** Draw the tokens as text, coloured by attention in focus mode. */
export function drawText(v: View): void {
  const { text } = v.dom;
  text.replaceChildren();
  const toks = v.model.get('tokens');
  const padMask = pad(v);
  const m = meta(v);
  const q = v.model.get('focus');
  const rows = focusRows(v);
  const [l, hd] = v.target?.kind === 'head' ? v.target.cell : v.model.get('selected');
  const table = palette(v).lut;
  toks.forEach((t, i) => {
    const attrs = { 'data-index': String(i), title: `${i}: ${t}` };
    const span = h('span', 'im-attn-token', attrs, showToken(t, 40));
    if (padMask[i] === 1) span.classList.add('im-attn-pad');
    if (v.mode === 'focus' && i === q) span.classList.add('im-attn-focus');
    if (rows && padMask[i] !== 1) {
      const li = lutIndex(rows[(l * m.heads + hd) * m.seq + i], v.contrast) * 3;
      const rgb: [number, number, number] = [table[li], table[li + 1], table[li + 2]];
      span.style.background = `rgb(${rgb.join(', ')})`;
      span.style.color = chipInk(rgb);
      span.classList.add('im-attn-chip');
    }
    text.appendChild(span);
  });
}

/** Return the last position that is not padding (the natural first focus query). */
export function lastRealToken(v: View): number {
  const padMask = pad(v);
  for (let i = padMask.length - 1; i >= 0; i--) if (padMask[i] !== 1) return i;
  return Math.max(0, v.model.get('tokens').length - 1);
}
