// Reading what FeatureDashboard (interp_magics/widgets/features.py) sends: float32 columns, the
// labels as one UTF-8 buffer with uint32 offsets, and a feature's packed detail (a JSON header,
// then uint8 activation codes, token indices into a table of distinct strings, and the
// histogram as float64). Pure functions over bytes, tested without a browser.

import { bytes, floats, type Binary } from '../lib/buffers';
import type { Detail, FeatureList } from './view';

/** The packed detail's format version this reader knows. */
export const DETAIL_VERSION = 1;

/** Return little-endian uint32 values of a binary trait (any byte offset). */
export function uint32s(value: Binary): Uint32Array {
  const b = bytes(value);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Uint32Array(b.byteLength >> 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}

/** Return the strings of a joined UTF-8 buffer: string i is data[offsets[i], offsets[i + 1]). */
export function splitUtf8(data: Uint8Array, offsets: Uint32Array): string[] {
  const n = Math.max(0, offsets.length - 1);
  const out = new Array<string>(n);
  const decoder = new TextDecoder();
  const all = decoder.decode(data);
  if (all.length === data.length) {
    // ASCII only (the usual case): byte offsets are character offsets, one decode in all
    for (let i = 0; i < n; i++) out[i] = all.slice(offsets[i], offsets[i + 1]);
    return out;
  }
  for (let i = 0; i < n; i++) out[i] = decoder.decode(data.subarray(offsets[i], offsets[i + 1]));
  return out;
}

/** The list's traits, by name (the model's get). */
type ListTraits = (name: 'density' | 'max_activation' | 'labels' | 'label_offsets') => Binary;

/** Return every feature's list entry from the traits. */
export function decodeList(get: ListTraits): FeatureList {
  const labels = splitUtf8(bytes(get('labels')), uint32s(get('label_offsets')));
  return {
    n: labels.length,
    density: floats(get('density')),
    max: floats(get('max_activation')),
    labels,
    lower: labels.map(s => s.toLowerCase())
  };
}

const pad8 = (n: number): number => n + ((8 - (n % 8)) % 8);

/** Return the detail packed by `pack_detail`, or throw saying why the bytes are not one. */
export function decodeDetail(value: Binary): Detail {
  const b = bytes(value);
  if (b.byteLength < 8) throw new Error('a packed feature detail is at least 8 bytes');
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const size = view.getUint32(0, true);
  const version = view.getUint32(4, true);
  if (version !== DETAIL_VERSION)
    throw new Error(`packed detail version ${version}, this view reads ${DETAIL_VERSION}`);
  const cut = (): Error => new Error('the packed feature detail is cut short');
  if (8 + size > b.byteLength) throw cut();
  const head = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + size)));
  const cells = head.k * head.window;
  const width = head.index_bytes === 4 ? 4 : 2;
  const edgeCount = head.bins ? head.bins + 1 : 0;
  const need = 8 + pad8(size) + pad8(cells) + pad8(cells * width) + 8 * (head.bins + edgeCount);
  if (need > b.byteLength) throw cut();
  let at = 8 + pad8(size);
  const codes = b.slice(at, at + cells);
  at += pad8(cells);
  const index = width === 4 ? new Uint32Array(cells) : new Uint16Array(cells);
  for (let i = 0; i < cells; i++)
    index[i] = width === 4 ? view.getUint32(at + 4 * i, true) : view.getUint16(at + 2 * i, true);
  at += pad8(cells * width);
  const f64 = (count: number): Float64Array => {
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = view.getFloat64(at + 8 * i, true);
    at += 8 * count;
    return out;
  };
  const counts = f64(head.bins);
  const edges = f64(edgeCount);
  return {
    feature: head.feature,
    label: head.label,
    k: head.k,
    window: head.window,
    lengths: head.lengths,
    scale: head.scale,
    codes,
    index,
    vocab: head.vocab,
    counts,
    edges,
    promoted: head.promoted,
    suppressed: head.suppressed,
    density: head.density
  };
}

/** Return the activation a token's code stands for: code / 255 * scale. */
export function activationOf(d: Detail, example: number, pos: number): number {
  return (d.codes[example * d.window + pos] / 255) * d.scale;
}

/** Return the tokens of one example (its real ones, without the padding). */
export function exampleTokens(d: Detail, example: number): string[] {
  const out: string[] = [];
  const row = example * d.window;
  for (let j = 0; j < d.lengths[example]; j++) out.push(d.vocab[d.index[row + j]]);
  return out;
}

/** Return the position of an example's strongest token (the first, on ties). */
export function peakOf(d: Detail, example: number): number {
  let best = 0;
  const row = example * d.window;
  for (let j = 1; j < d.lengths[example]; j++) if (d.codes[row + j] > d.codes[row + best]) best = j;
  return best;
}
