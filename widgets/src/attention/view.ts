// What one attention view works with: the model's traits (typed), the elements it draws into,
// the reader's settings, what the pointer or the keys point at, and the heads and focus rows
// this browser has received so far.

import type { AnyModel } from '@anywidget/types';
import { bytes } from '../lib/buffers';
import { indexTable, type Contrast } from '../lib/colors';
import type { Cell, Cursor } from '../lib/grid';
import type { Tooltip } from '../lib/tooltip';
import type { AttentionDom } from './dom';
import type { Layout } from './layout';
import { themedPalette, type Palette } from './palette';

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

/** What the reader points at now: a head of the overview or a cell of the detail, and how
 * (the pointer, with where it is for the tooltip, or the keyboard cursor). */
export type Target =
  | { kind: 'head'; cell: Cell; via: 'pointer' | 'keys'; x?: number; y?: number }
  | { kind: 'cell'; cell: Cell; via: 'pointer' | 'keys'; x?: number; y?: number };

export interface View {
  model: AttentionModel;
  dom: AttentionDom;
  tooltip: Tooltip;
  started: number; // performance.now() at render, for the paint timings
  contrast: Contrast;
  index: Uint8Array; // code -> LUT row under `contrast`
  mode: 'grid' | 'focus';
  target: Target | null;
  showTable: boolean;
  grid: Cursor; // over the heads of the overview: [layer index, head]
  detail: Cursor; // over the selected head: [query, key]
  details: Map<string, Detail>; // heads received: `headKey(b, l, h)`
  focusCache: Map<string, Uint8Array>; // "b/q" -> layers x heads x seq codes
  exact: ExactRequests;
  layout: Layout | null; // sizes for the width the view had when it was last drawn
  palette: Palette | null; // colours of the theme the view was last drawn in
}

/** Return a new view of `model` drawing into `dom`, with its tooltip. */
export function createView(model: AttentionModel, dom: AttentionDom, tooltip: Tooltip): View {
  return {
    model,
    dom,
    tooltip,
    started: performance.now(),
    contrast: 'linear',
    index: indexTable('linear'),
    mode: 'grid',
    target: null,
    showTable: false,
    grid: { cell: [0, 0] },
    detail: { cell: [0, 0] },
    details: new Map(),
    focusCache: new Map(),
    exact: { lastId: 0, inFlight: null, pending: null },
    layout: null,
    palette: null
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

/** Return the name of a head as the views label it: `L2 H5` (the model's layer number). */
export function headName(v: View, l: number, hd: number): string {
  return `L${meta(v).layer_labels[l] ?? l} H${hd}`;
}

/** Return the theme's colours and the colour table for the theme the page shows now.

Read at draw time (a canvas cannot follow CSS variables): the view redraws on a theme change. */
export function palette(v: View): Palette {
  v.palette = themedPalette(v.dom.root, bytes(v.model.get('lut')), v.palette);
  return v.palette;
}

/** Return the colour lookup table for the current theme (256 x RGB). */
export function lut(v: View): Uint8Array {
  return palette(v).lut;
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
