// What one feature dashboard works with: the model's traits (typed), the decoded list and
// details, its elements, and the reader's state (the list's order and filter, the requests).

import type { AnyModel } from '@anywidget/types';
import type { Tooltip } from '../lib/tooltip';

export type SortKey = 'max_activation' | 'density' | 'index';

/** The traits of `FeatureDashboard` (interp_magics/widgets/features.py). */
export interface FeatureTraits {
  meta: Meta;
  density: DataView; // float32 [n]
  max_activation: DataView; // float32 [n]
  labels: DataView; // UTF-8, joined
  label_offsets: DataView; // uint32 [n + 1]
  detail: DataView; // the first view's feature, packed (decode.ts decodeDetail)
  selected: number;
  sort: SortKey;
  query: string;
}

export interface Meta {
  title: string;
  site: string;
  n_features: number;
  highlight: { light: string; dark: string }; // '#rrggbb': a token at its feature's max
  colours: { light: string[]; dark: string[] }; // [negative, positive] for the logit bars
}

/** Every feature's list entry, decoded once. */
export interface FeatureList {
  n: number;
  density: Float32Array;
  max: Float32Array;
  labels: string[];
  lower: string[]; // the labels in lower case, for the search
}

/** One feature's detail, as the kernel packed it. */
export interface Detail {
  feature: number;
  label: string;
  k: number; // examples
  window: number; // token slots per example
  lengths: number[]; // real tokens of each example (the rest is padding)
  scale: number; // code 255 stands for this activation
  codes: Uint8Array; // [k, window] uint8 activation codes
  index: Uint16Array | Uint32Array; // [k, window] into vocab
  vocab: string[];
  counts: Float64Array; // histogram counts [bins]
  edges: Float64Array; // histogram bin edges [bins + 1]
  promoted: [string, number][];
  suppressed: [string, number][];
  density: number;
}

export interface FeatureDom {
  root: HTMLDivElement;
  title: HTMLDivElement;
  subtitle: HTMLDivElement;
  body: HTMLDivElement;
  search: HTMLInputElement;
  head: HTMLDivElement;
  sortButtons: HTMLButtonElement[];
  scroll: HTMLDivElement; // the list's viewport (role=listbox)
  spacer: HTMLDivElement; // as tall as every row, holds the few drawn
  count: HTMLDivElement;
  detail: HTMLDivElement;
  detailTitle: HTMLDivElement;
  detailStats: HTMLDivElement;
  status: HTMLDivElement;
  legend: HTMLDivElement;
  wrapButton: HTMLButtonElement;
  examples: HTMLDivElement;
  histBox: HTMLDivElement;
  histPlot: HTMLDivElement;
  histCanvas: HTMLCanvasElement;
  histYTitle: HTMLDivElement;
  histXTitle: HTMLDivElement;
  logits: HTMLDivElement;
  live: HTMLDivElement;
}

export interface View {
  model: AnyModel<FeatureTraits>;
  dom: FeatureDom;
  tooltip: Tooltip;
  id: number; // this view's number, for element ids
  started: number; // performance.now() at render, for the paint timing
  list: FeatureList;
  order: Uint32Array; // the features the list shows, in order
  sorted: Map<SortKey, Uint32Array>; // every feature in each order asked for so far
  rows: HTMLDivElement[]; // the pool of drawn rows
  details: Map<number, Detail>; // by feature: the first view's and the kernel's replies
  errors: Map<number, string>; // by feature: what the kernel said instead
  request: { inFlight: number | null; lastId: number; pending: number | null };
  width: number; // of the root as last laid out
  labelWidth: number; // px of the list's label column (0: not laid out, labels whole)
  measureLabel: (s: string) => number; // px of a label in the rows' (bold) font
  wrap: boolean; // examples shown whole (wrapped), not one line around their peak
}

/** Return the meta of the feature set on show. */
export function meta(v: View): Meta {
  return v.model.get('meta');
}
