// Reading what LensView (interp_magics/widgets/lens.py) sends: 4-bit probability codes two a
// byte, uint16 indices into a table of top-1 tokens, the answer's trajectory as float32, and the
// absolute position of a column. Pure functions over typed arrays, tested without a browser.

import { bytes, floats, type Binary } from '../lib/buffers';

/** Return `n` 4-bit codes packed two a byte, the first in the high nibble. */
export function unpackCodes(packed: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const b = packed[i >> 1] ?? 0;
    out[i] = i & 1 ? b & 0x0f : b >> 4;
  }
  return out;
}

/** Return the probabilities [low, high) that `code` of `levels` equal steps stands for. */
export function codeRange(code: number, levels: number): [number, number] {
  return [code / levels, (code + 1) / levels];
}

/** Return a code's probabilities in words, two decimals: "0.81–0.88". */
export function rangeText(code: number, levels: number): string {
  const [lo, hi] = codeRange(code, levels);
  return `${lo.toFixed(2)}–${Math.min(1, hi).toFixed(2)}`;
}

/** Return little-endian uint16 values of a binary trait (any byte offset). */
export function uint16s(value: Binary): Uint16Array {
  const b = bytes(value);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Uint16Array(b.byteLength >> 1);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint16(i * 2, true);
  return out;
}

/** The answer at every layer of one position: its probability and its rank (0 = the top). */
export interface Trajectory {
  prob: Float32Array;
  rank: Float32Array;
}

/** Return the trajectory of `rows` layers (probabilities, then ranks), or null when none. */
export function trajectoryOf(value: Binary, rows: number): Trajectory | null {
  const all = floats(value);
  if (all.length < 2 * rows || rows === 0) return null;
  return { prob: all.subarray(0, rows), rank: all.subarray(rows, 2 * rows) };
}

/** Return the absolute token position of column `col`. */
export function positionOf(
  meta: { position_start: number | null; positions: number[] | null },
  col: number
): number {
  return meta.positions ? (meta.positions[col] ?? col) : (meta.position_start ?? 0) + col;
}
