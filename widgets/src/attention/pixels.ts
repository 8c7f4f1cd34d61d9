// Pixels of one head in the theme's colours: the shared painter (lib/paint.ts) with the view's
// colour table, padding in the theme's own grey instead of a fixed light grey, and the causal
// mask left transparent (the plot's background shows through), plus the block-maximum pooling
// that shrinks a thumbnail without losing a single strong weight.

import { paintMatrix } from '../lib/paint';
import type { Palette } from './palette';

export interface HeadPaint {
  pal: Palette;
  index: Uint8Array; // code -> colour-table row (the contrast setting)
  pad?: Uint8Array; // 1 where a position is padding
  causal?: boolean;
  codeScale?: number;
}

/** Return RGBA pixels of an n x n matrix of codes in the palette's colours. */
export function paintHead(
  codes: Uint8Array,
  n: number,
  o: HeadPaint
): Uint8ClampedArray<ArrayBuffer> {
  const out = paintMatrix(codes, n, {
    lut: o.pal.lut,
    index: o.index,
    causal: o.causal,
    codeScale: o.codeScale
  });
  if (!o.pad || !o.pad.some(p => p === 1)) return out;
  const [r, g, b] = o.pal.pad;
  for (let q = 0; q < n; q++) {
    const padQ = o.pad[q] === 1;
    for (let k = 0; k < n; k++) {
      if (o.causal && k > q) continue;
      if (!padQ && o.pad[k] !== 1) continue;
      const p = (q * n + k) * 4;
      out[p] = r;
      out[p + 1] = g;
      out[p + 2] = b;
      out[p + 3] = 255;
    }
  }
  return out;
}

/** Return the `size` x `size` block maxima of a `t` x `t` matrix of codes (t > size). */
export function poolSquare(codes: Uint8Array, t: number, size: number): Uint8Array {
  const out = new Uint8Array(size * size);
  const edge = (b: number): number => Math.floor((b * t) / size);
  for (let bq = 0; bq < size; bq++) {
    const q0 = edge(bq);
    const q1 = Math.max(q0 + 1, edge(bq + 1));
    for (let bk = 0; bk < size; bk++) {
      const k0 = edge(bk);
      const k1 = Math.max(k0 + 1, edge(bk + 1));
      let m = 0;
      for (let q = q0; q < q1; q++) {
        for (let k = k0; k < k1; k++) if (codes[q * t + k] > m) m = codes[q * t + k];
      }
      out[bq * size + bk] = m;
    }
  }
  return out;
}
