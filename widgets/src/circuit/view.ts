// One circuit view's state: the model, its elements, the decoded edges, the layout and curves as
// last drawn (for hit-testing), and the reader's state (hovered edge or node, keyboard cursor).

import type { AnyModel } from '@anywidget/types';
import type { Ink } from '../lib/theme';
import type { Tooltip } from '../lib/tooltip';
import type { CircuitTraits, Edges, Meta } from './data';
import type { Path } from './curves';
import type { GraphLayout } from './layout';
import type { EdgeStyle } from './style';

export interface CircuitDom {
  root: HTMLDivElement;
  title: HTMLDivElement;
  topK: HTMLInputElement; // number input
  topKRange: HTMLInputElement; // slider
  topKOf: HTMLSpanElement;
  circuitOnly: HTMLInputElement;
  circuitLabel: HTMLLabelElement;
  tableButton: HTMLButtonElement;
  subtitle: HTMLDivElement;
  body: HTMLDivElement;
  plot: HTMLDivElement;
  yTitle: HTMLDivElement;
  xTitle: HTMLDivElement;
  rowLabels: HTMLDivElement;
  colLabels: HTMLDivElement;
  canvas: HTMLCanvasElement;
  nodeLabels: HTMLDivElement;
  side: HTMLDivElement;
  legend: HTMLDivElement;
  live: HTMLDivElement;
  table: HTMLDivElement;
}

export type Hover = { edge: number } | { node: number } | null;

export interface View {
  model: AnyModel<CircuitTraits>;
  dom: CircuitDom;
  tooltip: Tooltip;
  started: number; // performance.now() at render, for the paint timing
  edges: Edges;
  maxAbs: number;
  layout: GraphLayout | null;
  shown: number[]; // edge rows drawn, strongest first
  paths: Map<number, Path>; // sampled curves of the shown edges
  style: EdgeStyle | null;
  ink: Ink | null;
  hover: Hover;
  pointer: [number, number] | null; // client point of the tooltip (null: the keys)
  cursor: number; // index into `shown` the arrow keys are on
  showTable: boolean;
}

/** Return the meta of the result on show. */
export function meta(v: View): Meta {
  return v.model.get('meta');
}

/** Return the name of the node the view has selected, as its index (or null). */
export function selectedNode(v: View): number | null {
  const name = v.model.get('selected');
  if (!name || !v.layout) return null;
  return v.layout.byName.get(name) ?? null;
}
