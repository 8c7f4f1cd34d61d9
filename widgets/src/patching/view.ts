// What one patching heatmap works with: the model's traits (typed), its elements and the reader's
// settings, and the data on show: the 2-D plane of the result, its labels and its colour centre.

import type { AnyModel } from '@anywidget/types';
import { floats } from '../lib/buffers';
import { showToken } from '../lib/dom';
import type { Cell, Cursor } from '../lib/grid';
import type { AxesDom } from './axes';
import type { Layout } from './layout';
import type { LegendDom } from './legend';

/** The traits of `PatchingHeatmap` (interp_magics/widgets/patching.py). */
export interface PatchingTraits {
  meta: Meta;
  values: DataView; // float32 per cell, in the order of meta.shape
  raw: DataView; // float32 per cell: the raw metric
  lut: DataView; // 256 x RGB, a diverging colormap for light backgrounds
  lut_dark: DataView; // 256 x RGB whose centre is dark (for dark themes), or empty
  clean_values: DataView; // float32 per example
  corrupt_values: DataView; // float32 per example, or empty
  cell_values: DataView; // float32 per example at the selected cell
  ci_low: DataView; // float32 per cell: the interval of the value, or empty
  ci_high: DataView;
  p_corrected: DataView; // float32 per cell: the test of no effect, corrected across the sweep
  significant: DataView; // one byte (0 or 1) per cell, or empty
  selected: number[]; // [row, column] on show, or empty
  slice_index: number; // the middle axis' index of a 3-axis result
}

/** The colour scale, computed in Python (the PNG uses the same rule): the half-width of each
 * plane's (head's) scale, and how many raw metric units one unit of the values is. */
export interface ScaleMeta {
  mode: 'shared' | 'per-plot' | 'fixed';
  limits: number[];
  raw_factor: number;
  note: string; // what the scale is shared by, in words
}

export interface Meta {
  axes: string[];
  shape: number[];
  labels: Record<string, string[]>;
  axis_titles?: Record<string, string>;
  units?: string;
  scale?: ScaleMeta;
  title: string;
  metric: string;
  normalised: boolean;
  value_name: string;
  clean: number;
  corrupt: number | null;
  batch: number;
  notes: string[];
  alpha?: number;
  correction?: string;
  level?: number;
}

/** The 2-D plane on show: rows along the first axis, columns along the last. */
export interface Plane {
  rows: number;
  cols: number;
  rowAxis: string;
  colAxis: string; // '' for a one-axis result (one column)
  values: Float32Array;
}

export interface PatchingDom extends AxesDom {
  root: HTMLDivElement;
  title: HTMLDivElement;
  sliceSelect: HTMLSelectElement;
  rawButton: HTMLButtonElement;
  tableButton: HTMLButtonElement;
  baselines: HTMLDivElement;
  legend: LegendDom;
  live: HTMLDivElement;
  detail: HTMLDivElement;
  table: HTMLDivElement;
  notes: HTMLDivElement;
}

export interface View {
  model: AnyModel<PatchingTraits>;
  dom: PatchingDom;
  started: number; // performance.now() at render, for the paint timing
  showRaw: boolean;
  showTable: boolean;
  cursor: Cursor;
  hover: Cell | null; // the cell under the pointer (or the keys' cursor), for the marks
  layout: Layout | null; // as last drawn, for hit-testing
  shown: { rows: Map<number, HTMLElement>; cols: Map<number, HTMLElement> };
  described: Cell | null; // the cell the readouts speak of
  pointer: [number, number] | null; // client point of the tooltip
}

/** Return the axes, labels, baselines and notes of the result on show. */
export function meta(v: View): Meta {
  return v.model.get('meta');
}

/** Return the plane on show; a 3-axis result (layer, head, pos) is shown one head at a time. */
export function plane(v: View): Plane {
  const m = meta(v);
  const all = floats(v.model.get(v.showRaw ? 'raw' : 'values'));
  const rowAxis = m.axes[0];
  const colAxis = m.axes[m.axes.length - 1];
  const rows = m.shape[0];
  if (m.axes.length === 1) return { rows, cols: 1, rowAxis, colAxis: '', values: all };
  const cols = m.shape[m.shape.length - 1];
  if (m.axes.length === 2) return { rows, cols, rowAxis, colAxis, values: all };
  const mid = m.shape[1];
  const s = v.model.get('slice_index');
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    out.set(all.subarray((r * mid + s) * cols, (r * mid + s + 1) * cols), r * cols);
  }
  return { rows, cols, rowAxis, colAxis, values: out };
}

/** Return the per-cell statistics of the plane on show, in the plane's order (empty if none). */
export function planeOf(v: View, all: Float32Array | Uint8Array): Float32Array {
  const m = meta(v);
  if (all.length === 0) return new Float32Array(0);
  const rows = m.shape[0];
  if (m.axes.length < 3) return Float32Array.from(all);
  const cols = m.shape[m.shape.length - 1];
  const mid = m.shape[1];
  const s = v.model.get('slice_index');
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = all[(r * mid + s) * cols + c];
  }
  return out;
}

/** Return the raw metric for a value of the result (the toggle shows raw values). */
export function toRaw(v: View, x: number): number {
  const m = meta(v);
  if (m.normalised && m.corrupt !== null) return m.corrupt + x * (m.clean - m.corrupt);
  return x + (m.corrupt ?? m.clean);
}

/** Return the label of position i on an axis (a token, with its index, for positions). */
export function label(v: View, axis: string, i: number, max = 16): string {
  const labels = meta(v).labels[axis];
  if (!labels) return String(i);
  return axis === 'pos' ? `${i} ${showToken(labels[i] ?? '', max)}` : (labels[i] ?? String(i));
}

/** Return the value the diverging scale is centred on.

Raw metric values are coloured by their distance from the unpatched run (the corrupted baseline,
or the clean one for ablations), so the scale stays centred on "no effect". */
export function centre(v: View): number {
  const m = meta(v);
  return v.showRaw ? (m.corrupt ?? m.clean) : 0;
}
