// What one attention view works with: the model's traits (typed), the elements it draws into,
// the reader's settings, and the heads and focus rows this browser has received so far.

import type { AnyModel } from '@anywidget/types';
import { bytes } from '../lib/buffers';
import { indexTable, type Contrast } from '../lib/colors';
import type { Cell, Cursor } from '../lib/grid';
import type { AttentionDom } from './dom';

/** The traits of `AttentionView` (interp_magics/widgets/attention.py). */
export interface AttentionTraits {
  meta: Meta;
  tokens: string[];
  pad: DataView; // uint8 per token: 1 where it is padding
  thumbs: DataView; // uint8 codes, layers x heads x thumb x thumb
  thumb_pad: DataView;
  lut: DataView; // 256 x RGB
  detail: DataView; // uint8 codes of the head `detail_key`, seq x seq
  detail_key: number[]; // [batch, layer index, head], or empty
  detail_scale: number;
  focus_rows: DataView; // uint8 codes, layers x heads x seq, for the query `focus_key`
  focus_key: number[]; // [batch, query], or empty
  selected: [number, number]; // [layer index, head]
  batch_index: number;
  focus: number; // the focus-token query, or -1
}

export type AttentionModel = AnyModel<AttentionTraits>;

export interface Meta {
  layers: number;
  heads: number;
  seq: number;
  batch: number;
  thumb: number;
  vmax: number;
  causal: boolean;
  layer_labels: number[];
  batch_labels: string[];
  title: string;
  notes: string[];
}

/** One head at full resolution: codes relative to the head's own maximum `scale`. */
export interface Detail {
  codes: Uint8Array;
  scale: number;
}

/** The latest hovered cell the view asks the kernel about, and the one request in flight. */
export interface ExactRequests {
  lastId: number;
  inFlight: number | null;
  pending: Record<string, number> | null;
}

export interface View {
  model: AttentionModel;
  dom: AttentionDom;
  started: number; // performance.now() at render, for the paint timings
  contrast: Contrast;
  index: Uint8Array; // code -> LUT row under `contrast`
  mode: 'grid' | 'focus';
  hoverHead: Cell | null;
  showTable: boolean;
  grid: Cursor; // over the heads of the overview: [layer index, head]
  detail: Cursor; // over the selected head: [query, key]
  details: Map<string, Detail>; // heads received: `headKey(b, l, h)`
  focusCache: Map<string, Uint8Array>; // "b/q" -> layers x heads x seq codes
  exact: ExactRequests;
}

export const THUMB_PX = 40; // CSS pixels per head in the overview (Python pools thumbnails to this)
export const GAP = 3;
export const DETAIL_PX = 480; // about this wide, whatever the sequence length
export const LABEL_LIMIT = 64; // axis token labels are drawn up to this many tokens

/** Return a new view of `model` drawing into `dom`. */
export function createView(model: AttentionModel, dom: AttentionDom): View {
  return {
    model,
    dom,
    started: performance.now(),
    contrast: 'linear',
    index: indexTable('linear'),
    mode: 'grid',
    hoverHead: null,
    showTable: false,
    grid: { cell: [0, 0] },
    detail: { cell: [0, 0] },
    details: new Map(),
    focusCache: new Map(),
    exact: { lastId: 0, inFlight: null, pending: null }
  };
}

/** Return the key of one head in the view's cache of details. */
export function headKey(b: number, l: number, hd: number): string {
  return `${b}/${l}/${hd}`;
}

/** Return the shape, labels and notes of the patterns on show. */
export function meta(v: View): Meta {
  return v.model.get('meta');
}

/** Return the colour lookup table (256 x RGB). */
export function lut(v: View): Uint8Array {
  return bytes(v.model.get('lut'));
}

/** Return the padding flags of the sequence on show. */
export function pad(v: View): Uint8Array {
  return bytes(v.model.get('pad'));
}

/** Return the focus rows of the focus query when the view is in focus mode and has them. */
export function focusRows(v: View): Uint8Array | undefined {
  if (v.mode !== 'focus') return undefined;
  return v.focusCache.get(`${v.model.get('batch_index')}/${v.model.get('focus')}`);
}

/** Return the selected head's detail, when this browser has it. */
export function currentDetail(v: View): Detail | undefined {
  const [l, hd] = v.model.get('selected');
  return v.details.get(headKey(v.model.get('batch_index'), l, hd));
}
