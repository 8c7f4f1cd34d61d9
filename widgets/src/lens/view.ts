// What one lens view works with: the model's traits (typed), its elements, the reader's state,
// and the example on show decoded once per change (codes, top-1 table, padding, trajectory).

import type { AnyModel } from '@anywidget/types';
import { bytes } from '../lib/buffers';
import { showToken } from '../lib/dom';
import type { Cell, Cursor } from '../lib/grid';
import type { Tooltip } from '../lib/tooltip';
import { positionOf, trajectoryOf, uint16s, unpackCodes, type Trajectory } from './decode';
import type { Layout } from './layout';

/** The traits of `LensView` (interp_magics/widgets/lens.py). */
export interface LensTraits {
  meta: Meta;
  example: number;
  tokens: string[]; // the input token of each column
  pad: DataView; // one byte per column (1 = padding), or empty: no padding
  codes: DataView; // 4-bit top-1 probability codes, row-major (row 0 = embeddings)
  top1: DataView; // uint16 index into top1_vocab per cell, or empty (no text)
  top1_vocab: string[];
  lut: DataView; // levels x RGB for light backgrounds
  lut_dark: DataView; // levels x RGB for dark backgrounds
  answer: string; // the example's answer token, or ''
  trajectory: DataView; // float32: the answer's probability by layer, then its rank
  trajectory_col: number; // the column the trajectory is of
  selected: number[]; // [layer row, column] last clicked, or empty
}

export interface Meta {
  title: string;
  method: string;
  model: string;
  layer_labels: string[];
  rows: number;
  cols: number;
  examples: number;
  k: number;
  levels: number;
  text: boolean;
  has_answer: boolean;
  position_start: number | null;
  positions: number[] | null;
  notes: string[];
}

/** The example on show, decoded. */
export interface Data {
  codes: Uint8Array; // one per cell
  top1: Uint16Array; // one per cell, or empty
  vocab: string[];
  pad: Uint8Array; // one per column
  trajectory: Trajectory | null;
}

/** The top-k of every layer at one column, as the kernel sent it. */
export interface Column {
  tokens: string[][]; // [row][rank]
  probs: number[][];
  answer_prob?: number[];
  answer_rank?: number[];
}

export interface LensDom {
  root: HTMLDivElement;
  title: HTMLDivElement;
  exampleSelect: HTMLSelectElement;
  tableButton: HTMLButtonElement;
  subtitle: HTMLDivElement;
  box: HTMLDivElement; // scrolls only when even 1-px columns do not fit
  plot: HTMLDivElement;
  yTitle: HTMLDivElement;
  xTitle: HTMLDivElement;
  rowLabels: HTMLDivElement;
  colLabels: HTMLDivElement;
  canvas: HTMLCanvasElement;
  legend: HTMLDivElement;
  live: HTMLDivElement;
  trajectory: HTMLDivElement;
  table: HTMLDivElement;
  notes: HTMLDivElement;
}

export interface View {
  model: AnyModel<LensTraits>;
  dom: LensDom;
  tooltip: Tooltip;
  started: number; // performance.now() at render, for the paint timing
  data: Data;
  layout: Layout | null; // as last drawn, for hit-testing
  cursor: Cursor; // [layer row, column]
  hover: Cell | null; // the cell under the pointer or the keys' cursor
  pointer: [number, number] | null; // client point of the tooltip (null: the keys)
  showTable: boolean;
  columns: Map<string, Column>; // kernel replies by `${example}/${col}`
  request: { inFlight: number | null; lastId: number; pending: [number, number] | null };
}

/** Return the meta of the result on show. */
export function meta(v: View): Meta {
  return v.model.get('meta');
}

/** Return the example on show decoded from the traits. */
export function decodeData(model: AnyModel<LensTraits>): Data {
  const m = model.get('meta');
  return {
    codes: unpackCodes(bytes(model.get('codes')), m.rows * m.cols),
    top1: uint16s(model.get('top1')),
    vocab: model.get('top1_vocab') ?? [],
    pad: bytes(model.get('pad')),
    trajectory: trajectoryOf(model.get('trajectory'), m.rows)
  };
}

/** Return the top-1 token of a cell when the first view carries it, else null. */
export function top1Text(v: View, row: number, col: number): string | null {
  const d = v.data;
  if (!d.top1.length) return null;
  return d.vocab[d.top1[row * meta(v).cols + col]] ?? null;
}

/** Return the label of column `col`: its absolute position and its input token. */
export function columnLabel(v: View, col: number, max = 12): string {
  const token = v.model.get('tokens')[col] ?? '';
  return `${positionOf(meta(v), col)} ${showToken(token, max)}`;
}

/** Return the key of a column's kernel reply. */
export function columnKey(example: number, col: number): string {
  return `${example}/${col}`;
}
