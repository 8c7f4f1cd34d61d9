// What one circuit view works with: the traits of CircuitGraph (interp_magics/widgets/circuit.py),
// typed, and the edges decoded from their bytes once per change. Edges arrive in rank order
// (largest |score| first): row k of every array is the same edge.

import { bytes, floats, type Binary } from '../lib/buffers';

/** A node of the model's graph as Python sends it: name, kind, layer, head (-1: none). */
export type NodeRow = [string, string, number, number];

export interface Meta {
  kind: 'scores' | 'circuit';
  title: string;
  method: string;
  metric: string;
  family: string;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  grouped: boolean;
  parallel: boolean;
  senders: NodeRow[];
  receivers: NodeRow[];
  n_edges: number; // in the whole graph
  sent: number; // rows of the edge arrays
  baselines: { clean: number; corrupt: number } | null;
  circuit: { how: string; edges: number } | null;
  verification: string[] | null; // one line per group: signs, largest error, Spearman
  colours: { light: [string, string]; dark: [string, string] }; // [negative, positive]
  groups: string[]; // names of the verification groups ("top", "random")
}

export interface CircuitTraits {
  meta: Meta;
  edges: DataView; // uint32 [n, 2]: sender index, receiver index
  scores: DataView; // float32 [n]; NaN: an edge without a score (a circuit given by hand)
  ranks: DataView; // uint32 [n]: 0-based rank by |score| among all the graph's edges
  in_circuit: DataView; // uint8 [n], or empty: no circuit
  exact: DataView; // float32 [m, 3]: exact change, interval low, high
  exact_at: DataView; // uint32 [m]: the edge row each exact value is of
  exact_group: DataView; // uint8 [m]: index into meta.groups
  top_k: number;
  circuit_only: boolean;
  selected: string; // the clicked node's name, or ''
}

/** An exact edge patch: the change in the metric with its interval, and the check's group. */
export interface Exact {
  value: number;
  low: number;
  high: number;
  group: string;
}

/** The edges, decoded. */
export interface Edges {
  n: number;
  sender: Uint32Array;
  receiver: Uint32Array;
  score: Float32Array;
  rank: Uint32Array;
  inCircuit: Uint8Array; // empty: no circuit
  exact: Map<number, Exact>; // by edge row
}

/** Return a uint32 binary trait as a Uint32Array (copied when the view is not 4-byte aligned). */
export function uint32s(value: Binary): Uint32Array {
  const b = bytes(value);
  const n = Math.floor(b.byteLength / 4);
  if (b.byteOffset % 4 === 0) return new Uint32Array(b.buffer, b.byteOffset, n);
  return new Uint32Array(b.slice().buffer, 0, n);
}

/** Return the edges the traits carry. */
export function decodeEdges(get: <K extends keyof CircuitTraits>(k: K) => CircuitTraits[K]): Edges {
  const pairs = uint32s(get('edges'));
  const n = Math.floor(pairs.length / 2);
  const sender = new Uint32Array(n);
  const receiver = new Uint32Array(n);
  for (let k = 0; k < n; k++) {
    sender[k] = pairs[2 * k];
    receiver[k] = pairs[2 * k + 1];
  }
  const exactRows = floats(get('exact'));
  const at = uint32s(get('exact_at'));
  const group = bytes(get('exact_group'));
  const names = get('meta').groups ?? [];
  const exact = new Map<number, Exact>();
  at.forEach((row, i) => {
    const [value, low, high] = exactRows.subarray(3 * i, 3 * i + 3);
    exact.set(row, { value, low, high, group: names[group[i]] ?? '' });
  });
  return {
    n,
    sender,
    receiver,
    score: floats(get('scores')).subarray(0, n),
    rank: uint32s(get('ranks')).subarray(0, n),
    inCircuit: bytes(get('in_circuit')),
    exact
  };
}

/** Return the largest finite |score| of the edges (0 when none has a score). */
export function maxAbs(e: Edges): number {
  let m = 0;
  for (const s of e.score) if (Number.isFinite(s) && Math.abs(s) > m) m = Math.abs(s);
  return m;
}
