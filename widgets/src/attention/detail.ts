// The detail of the selected head: its query x key matrix with token labels, the colour legend
// and, on request, the same head as a table of each query's strongest keys.

import { decode } from '../lib/buffers';
import { colorBar } from '../lib/canvas';
import { fmt, h, placeColumn, placeRow, showToken, table, texts } from '../lib/dom';
import { matrixCell, type Grid } from '../lib/geometry';
import { paintMatrix } from '../lib/paint';
import { currentDetail, DETAIL_PX, LABEL_LIMIT, lut, meta, pad, type View } from './view';

/** Return the detail's geometry (one cell per query x key), for hit-testing. */
export function detailGrid(v: View): Grid {
  const n = meta(v).seq;
  return { rows: n, cols: n, cell: matrixCell(n, DETAIL_PX), gap: 0 };
}

/** Draw the selected head, or mark the detail as loading until the kernel sends it. */
export function drawDetail(v: View): void {
  const { detailCanvas, detailCaption, root } = v.dom;
  const m = meta(v);
  const [l, hd] = v.model.get('selected');
  const n = m.seq;
  const cell = matrixCell(n, DETAIL_PX);
  const size = n * cell;
  detailCanvas.width = n;
  detailCanvas.height = n;
  detailCanvas.style.width = `${size}px`;
  detailCanvas.style.height = `${size}px`;
  detailCanvas.dataset.layer = String(m.layer_labels[l]);
  detailCanvas.dataset.head = String(hd);
  detailCanvas.setAttribute(
    'aria-label',
    `Layer ${m.layer_labels[l]} head ${hd}: ${n} query tokens by ${n} key tokens. ` +
      'Arrow keys move, Escape returns to the overview.'
  );
  detailCaption.textContent = `Layer ${m.layer_labels[l]} · Head ${hd} — rows: query, columns: key`;
  const ctx = detailCanvas.getContext('2d');
  const d = currentDetail(v);
  if (!ctx) return;
  ctx.clearRect(0, 0, n, n);
  if (!d) {
    detailCanvas.dataset.state = 'loading';
    return;
  }
  // Codes are relative to the head's own maximum; the colour range is shared by all heads.
  const codeScale = d.scale / m.vmax;
  const opts = { lut: lut(v), index: v.index, pad: pad(v), causal: m.causal, codeScale };
  ctx.putImageData(new ImageData(paintMatrix(d.codes, n, opts), n, n), 0, 0);
  detailCanvas.dataset.state = 'ready';
  if (!root.dataset.detailPaintMs) {
    root.dataset.detailPaintMs = (performance.now() - v.started).toFixed(1);
  }
  drawLabels(v, cell);
  if (v.showTable) drawTable(v);
}

/** Label the keys (across, rotated) and the queries (down) with their tokens, when few enough. */
function drawLabels(v: View, cell: number): void {
  const { keyLabels, queryLabels, detailWrap } = v.dom;
  keyLabels.replaceChildren();
  queryLabels.replaceChildren();
  const toks = v.model.get('tokens');
  const padMask = pad(v);
  const show = toks.length <= LABEL_LIMIT;
  detailWrap.classList.toggle('im-attn-labelled', show);
  if (!show) return;
  const font = `${Math.max(9, Math.min(13, cell - 2))}px`;
  toks.forEach((t, i) => {
    const cls = padMask[i] === 1 ? 'im-attn-label im-attn-pad' : 'im-attn-label';
    const k = placeColumn(h('span', cls, { title: t }, showToken(t, 14)), i, cell);
    k.style.fontSize = font;
    keyLabels.appendChild(k);
    const q = placeRow(h('span', cls, { title: t }, showToken(t, 14)), i, cell);
    q.style.fontSize = font;
    queryLabels.appendChild(q);
  });
}

/** Show the selected head as a table: each query's three strongest keys (or clear it). */
export function drawTable(v: View): void {
  v.dom.table.replaceChildren();
  const d = currentDetail(v);
  if (!v.showTable || !d) return;
  const n = meta(v).seq;
  const toks = v.model.get('tokens');
  const rows: string[][] = [];
  for (let q = 0; q < n; q++) {
    const top = Array.from(d.codes.subarray(q * n, (q + 1) * n))
      .map((c, k) => [c, k] as [number, number])
      .sort((a, b) => b[0] - a[0])
      .slice(0, 3)
      .filter(([c]) => c > 0);
    const keys = top.map(([c, k]) => `${showToken(toks[k])} ${fmt(decode(c, d.scale), 3)}`);
    rows.push([`${q} ${showToken(toks[q])}`, keys.join(', ')]);
  }
  v.dom.table.appendChild(table('im-attn-rows', ['query', 'top keys (weight)'], rows));
}

/** Draw the colour legend: the lookup table under the current contrast, with weight ticks. */
export function drawLegend(v: View): void {
  const vmax = meta(v).vmax;
  // Position i along the bar is the weight i/255 * vmax, coloured as the views colour it.
  const bar = colorBar('im-attn-legend-bar', lut(v), v.index);
  const ticks = h('div', 'im-attn-ticks');
  ticks.append(
    ...texts(
      'span',
      [0, 0.25, 0.5, 0.75, 1].map(f => fmt(f * vmax, 2))
    )
  );
  v.dom.legend.replaceChildren(
    h('span', 'im-attn-legend-title', undefined, 'attention weight'),
    bar,
    ticks
  );
}
