// Where the graph's nodes and ports go for the width the output area gives it. Rows by layer:
// the logits on top, then the layers from the last down, the embeddings at the bottom. In a
// layer's band the heads sit side by side in its lower part and the MLP after them, to the
// right and higher up (it reads what the heads wrote), so every edge runs upward. An edge leaves
// its sender from the top of the box and enters its receiver through a port on the bottom edge:
// a head's query, key and value inputs at PORT_AT of its width; with grouped-query attention the
// key and value ports sit on a bar under the query heads that share them. The columns (one per
// head, then the MLP) share the width up to MAX_SLOT px each; rows are MIN_ROW..MAX_ROW px.
// Pure arithmetic, tested without a browser.

import type { NodeRow } from './data';

export type NodeKind = 'embed' | 'head' | 'mlp' | 'logits';

export interface Point {
  x: number;
  y: number;
}

export interface NodeBox {
  name: string;
  kind: NodeKind;
  layer: number; // -1 for the embeddings, n_layers for the logits
  head: number; // -1 when not a head
  x: number;
  y: number;
  w: number;
  h: number;
  label: string; // the text written in the box ('' when none fits)
}

/** The bar carrying a key/value head's ports under the query heads that read it. */
export interface Bar {
  layer: number;
  kv: number;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface AxisLabel {
  text: string;
  at: number; // the centre: y for rows, x for columns
}

export interface GraphSpec {
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  grouped: boolean;
  senders: NodeRow[];
  receivers: NodeRow[];
}

export interface GraphLayout {
  width: number; // the canvas, CSS px
  height: number;
  slot: number; // px per column (a head, or the MLP)
  rowH: number; // px per layer band
  nodes: NodeBox[]; // the senders in their order, then the logits
  byName: Map<string, number>;
  out: Point[]; // per sender: where its edges leave (the top of its box)
  port: Point[]; // per receiver: where its edges arrive
  portKind: string[]; // per receiver: 'q', 'k', 'v', 'mlp' or 'logits'
  readers: number[][]; // per receiver: the nodes that read through it
  bars: Bar[];
  rows: AxisLabel[]; // layer labels down the left
  cols: AxisLabel[]; // head labels under the plot (thinned), then "MLP"
  portLetters: boolean; // boxes are big enough to write q, k, v over their ports
}

export const MAX_SLOT = 120; // px: wider columns only spread the same picture
export const BOX = 0.8; // of a column: the box (the rest is the gap between boxes)
export const MLP_GAP = 0.5; // columns between the last head and the MLP
export const PAD = 8;
export const TOP = 6;
export const BOTTOM = 6;
export const ROW_BUDGET = 640; // px the bands share when there are many layers
export const MIN_ROW = 46;
export const MAX_ROW = 92;
export const HEAD_TOP = 0.42; // where a band's heads start (fraction of the band, from its top)
export const MLP_TOP = 0.06;
export const BOX_H = 0.34; // a box's height as a fraction of the band (14..30 px)
export const PORT_AT = { q: 0.25, k: 0.5, v: 0.75 } as const; // of a head box's width
export const BAR_GAP = 3;
export const BAR_H = 4;
export const LETTERS_MIN = { w: 34, h: 26 }; // px a head box needs for its port letters
const LABEL_PAD = 6;
const TERMINAL_W = 140; // px: the embeddings' and logits' boxes at most

const clamp = (v: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, v));

/** Return how the boxes of one kind are labelled: by their names when every name fits `w` px,
 * else by their short names when every one of those fits, else not at all (one style a kind, so
 * a row never mixes L9H9 with H10). */
function labelStyle(
  names: string[],
  shorts: string[],
  w: number,
  measure: (t: string) => number
): 'name' | 'short' | 'none' {
  const fits = (texts: string[]): boolean => texts.every(t => measure(t) + LABEL_PAD <= w);
  return fits(names) ? 'name' : fits(shorts) ? 'short' : 'none';
}

/** Return every `every`-th of `n` column indices, the last always among them. */
export function thinned(n: number, every: number): number[] {
  const out: number[] = [];
  const step = Math.max(1, Math.ceil(every));
  for (let i = 0; i < n; i += step) out.push(i);
  if (out.length && out[out.length - 1] !== n - 1) out[out.length - 1] = n - 1;
  return out;
}

/** The sizes every part of the layout follows. */
interface Grid {
  slot: number; // px per column
  boxW: number;
  inset: number; // px between a column's edge and its box
  rowH: number;
  boxH: number;
  headsW: number; // px of the heads' columns
  band: (layer: number) => number; // the top of a layer's band
}

function grid(spec: GraphSpec, width: number): Grid {
  const L = spec.n_layers;
  const slot = clamp((width - 2 * PAD) / (spec.n_heads + MLP_GAP + 1), 1, MAX_SLOT);
  const boxW = slot * BOX;
  const rowH = clamp(ROW_BUDGET / (L + 2), MIN_ROW, MAX_ROW);
  return {
    slot,
    boxW,
    inset: (slot - boxW) / 2,
    rowH,
    boxH: clamp(rowH * BOX_H, 14, 30),
    headsW: spec.n_heads * slot,
    band: layer => TOP + (L - layer) * rowH
  };
}

/** Return the boxes of the senders, in their order, then the logits'. */
function placeNodes(spec: GraphSpec, g: Grid, measure: (t: string) => number): NodeBox[] {
  const L = spec.n_layers;
  const terminalW = Math.min(
    g.headsW,
    Math.max(g.boxW, Math.min(TERMINAL_W, g.headsW - 2 * g.inset))
  );
  const terminal = (name: string, kind: NodeKind, layer: number, top: number): NodeBox => ({
    name,
    kind,
    layer,
    head: -1,
    x: PAD + (g.headsW - terminalW) / 2,
    y: top + (g.rowH - g.boxH) / 2,
    w: terminalW,
    h: g.boxH,
    label: labelStyle([name], [name], terminalW, measure) === 'name' ? name : ''
  });
  const of = (kind: string): NodeRow[] => spec.senders.filter(s => s[1] === kind);
  const style = {
    head: labelStyle(
      of('head').map(s => s[0]),
      of('head').map(s => `H${s[3]}`),
      g.boxW,
      measure
    ),
    mlp: labelStyle(
      of('mlp').map(s => s[0]),
      ['MLP'],
      g.boxW,
      measure
    )
  };
  const label = (kind: 'head' | 'mlp', name: string, short: string): string =>
    style[kind] === 'name' ? name : style[kind] === 'short' ? short : '';
  const nodes: NodeBox[] = spec.senders.map(([name, kind, layer, head]) => {
    if (kind === 'embed') return terminal(name, 'embed', -1, TOP + (L + 1) * g.rowH);
    const isHead = kind === 'head';
    return {
      name,
      kind: isHead ? 'head' : 'mlp',
      layer,
      head: isHead ? head : -1,
      x: PAD + (isHead ? head * g.slot : g.headsW + MLP_GAP * g.slot) + g.inset,
      y: g.band(layer) + g.rowH * (isHead ? HEAD_TOP : MLP_TOP),
      w: g.boxW,
      h: g.boxH,
      label: isHead ? label('head', name, `H${head}`) : label('mlp', name, 'MLP')
    };
  });
  nodes.push(terminal('logits', 'logits', L, TOP));
  return nodes;
}

/** Return where each receiver's edges arrive, what kind of port it is, the nodes that read
 * through it, and the grouped key/value bars. */
function placePorts(
  spec: GraphSpec,
  nodes: NodeBox[]
): Pick<GraphLayout, 'port' | 'portKind' | 'readers' | 'bars'> {
  // nodes are found by what they are (layer, head), never by parsing names
  const heads = new Map<string, number>();
  const mlps = new Map<number, number>();
  nodes.forEach((n, i) => {
    if (n.kind === 'head') heads.set(`${n.layer}/${n.head}`, i);
    if (n.kind === 'mlp') mlps.set(n.layer, i);
  });
  const head = (layer: number, h: number): number => heads.get(`${layer}/${h}`) ?? -1;
  const group = Math.max(1, Math.floor(spec.n_heads / Math.max(1, spec.n_kv_heads)));
  const bars: Bar[] = [];
  if (spec.grouped) {
    for (let layer = 0; layer < spec.n_layers; layer++) {
      for (let kv = 0; kv < spec.n_kv_heads; kv++) {
        const first = nodes[head(layer, kv * group)];
        const last = nodes[head(layer, kv * group + group - 1)];
        const y = first.y + first.h + BAR_GAP;
        bars.push({ layer, kv, x: first.x, y, w: last.x + last.w - first.x, h: BAR_H });
      }
    }
  }
  const out: Pick<GraphLayout, 'port' | 'portKind' | 'readers' | 'bars'> = {
    port: [],
    portKind: [],
    readers: [],
    bars
  };
  const bottom = (n: NodeBox, at: number): Point => ({ x: n.x + n.w * at, y: n.y + n.h });
  for (const [, kind, layer, h] of spec.receivers) {
    out.portKind.push(kind);
    if ((kind === 'k' || kind === 'v') && spec.grouped) {
      const bar = bars[layer * spec.n_kv_heads + h];
      out.port.push({ x: bar.x + bar.w * (kind === 'k' ? 1 / 3 : 2 / 3), y: bar.y + bar.h });
      out.readers.push(Array.from({ length: group }, (_, i) => head(layer, h * group + i)));
      continue;
    }
    const isHead = kind === 'q' || kind === 'k' || kind === 'v';
    const n = isHead ? head(layer, h) : kind === 'mlp' ? mlps.get(layer)! : nodes.length - 1;
    const at = isHead && !(kind === 'q' && spec.grouped) ? PORT_AT[kind] : 0.5;
    out.port.push(bottom(nodes[n], at));
    out.readers.push([n]);
  }
  return out;
}

/** Return the layer labels down the left and the head labels (thinned) under the plot. */
function axisLabels(
  spec: GraphSpec,
  nodes: NodeBox[],
  g: Grid,
  measure: (t: string) => number
): Pick<GraphLayout, 'rows' | 'cols'> {
  const centre = (n: NodeBox): number => n.y + n.h / 2;
  const rows: AxisLabel[] = [{ text: 'logits', at: centre(nodes[nodes.length - 1]) }];
  for (let layer = spec.n_layers - 1; layer >= 0; layer--) {
    rows.push({ text: `L${layer}`, at: g.band(layer) + g.rowH * HEAD_TOP + g.boxH / 2 });
  }
  rows.push({ text: 'embed', at: centre(nodes[0]) });
  const H = spec.n_heads;
  const widest = Math.max(0, ...Array.from({ length: H }, (_, h) => measure(String(h))));
  const cols: AxisLabel[] = thinned(H, (widest + LABEL_PAD) / g.slot).map(h => ({
    text: String(h),
    at: PAD + h * g.slot + g.slot / 2
  }));
  cols.push({ text: 'MLP', at: PAD + g.headsW + MLP_GAP * g.slot + g.slot / 2 });
  return { rows, cols };
}

/** Return the layout of `spec`'s graph in at most `width` px (text widths from `measure`). */
export function layoutGraph(
  spec: GraphSpec,
  width: number,
  measure: (text: string) => number
): GraphLayout {
  const g = grid(spec, width);
  const nodes = placeNodes(spec, g, measure);
  return {
    width: Math.floor(2 * PAD + g.headsW + (MLP_GAP + 1) * g.slot), // boxes end PAD before it
    height: Math.ceil(TOP + (spec.n_layers + 2) * g.rowH + BOTTOM),
    slot: g.slot,
    rowH: g.rowH,
    nodes,
    byName: new Map(nodes.map((n, i) => [n.name, i])),
    out: nodes.slice(0, spec.senders.length).map(n => ({ x: n.x + n.w / 2, y: n.y })),
    ...placePorts(spec, nodes),
    ...axisLabels(spec, nodes, g, measure),
    portLetters: !spec.grouped && g.boxW >= LETTERS_MIN.w && g.boxH >= LETTERS_MIN.h
  };
}

/** Return the node whose box holds (x, y), or null. */
export function nodeAt(l: GraphLayout, x: number, y: number): number | null {
  for (let i = 0; i < l.nodes.length; i++) {
    const n = l.nodes[i];
    if (x >= n.x && x <= n.x + n.w && y >= n.y && y <= n.y + n.h) return i;
  }
  return null;
}
