// What one patching heatmap works with: the model's traits (typed), its elements and the reader's
// settings, and the data on show: the 2-D plane of the result, its labels and its colour centre.

import type { AnyModel } from '@anywidget/types';
import { floats } from '../lib/buffers';
import { showToken } from '../lib/dom';
import type { Grid } from '../lib/geometry';
import type { Cursor } from '../lib/grid';

/** The traits of `PatchingHeatmap` (interp_magics/widgets/patching.py). */
export interface PatchingTraits {
  meta: Meta;
  values: DataView; // float32 per cell, in the order of meta.shape
  raw: DataView; // float32 per cell: the raw metric
  lut: DataView; // 256 x RGB, a diverging colormap
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

interface Meta {
  axes: string[];
  shape: number[];
  labels: Record<string, string[]>;
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

export interface PatchingDom {
  root: HTMLDivElement;
  title: HTMLDivElement;
  sliceSelect: HTMLSelectElement;
  rawButton: HTMLButtonElement;
  tableButton: HTMLButtonElement;
  baselines: HTMLDivElement;
  colLabels: HTMLDivElement;
  rowLabels: HTMLDivElement;
  canvas: HTMLCanvasElement;
  legend: HTMLDivElement;
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
}

const WIDTH = 640; // CSS pixels the heatmap is about as wide as, at most

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

/** Return the largest finite |value| (1 when there is none): the half-width of the colour scale. */
export function vmax(values: Float32Array): number {
  let m = 0;
  for (const v of values) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m || 1;
}

/** Return the CSS pixel size of a cell of a rows x cols heatmap. */
export function cellPx(rows: number, cols: number): number {
  const fit = Math.min(Math.floor(WIDTH / Math.max(cols, 1)), Math.floor(480 / Math.max(rows, 1)));
  return Math.max(6, Math.min(40, fit));
}

/** Return the heatmap's geometry, for hit-testing. */
export function geometry(v: View): Grid {
  const p = plane(v);
  return { rows: p.rows, cols: p.cols, cell: cellPx(p.rows, p.cols), gap: 0 };
}

/** Return the label of position i on an axis (a token, with its index, for positions). */
export function label(v: View, axis: string, i: number): string {
  const labels = meta(v).labels[axis];
  if (!labels) return String(i);
  return axis === 'pos' ? `${i} ${showToken(labels[i] ?? '', 16)}` : (labels[i] ?? String(i));
}

/** Return where cell (r, c) of the plane is, in words: "layer 3 · pos 2 cat". */
export function where(v: View, p: Plane, r: number, c: number): string {
  const col = p.colAxis ? ` · ${p.colAxis} ${label(v, p.colAxis, c)}` : '';
  return `${p.rowAxis} ${label(v, p.rowAxis, r)}${col}`;
}

/** Return the value the diverging scale is centred on.

Raw metric values are coloured by their distance from the unpatched run (the corrupted baseline,
or the clean one for ablations), so the scale stays centred on "no effect". */
export function centre(v: View): number {
  const m = meta(v);
  return v.showRaw ? (m.corrupt ?? m.clean) : 0;
}
