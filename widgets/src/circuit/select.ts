// Which edges are drawn: the top k by |score| (the rows arrive in rank order, so the first k),
// or only the circuit's when "circuit only" is on; and which of them touch a node (it sends
// them, or reads through their receiver's port).

import type { Edges } from './data';
import type { GraphLayout } from './layout';

/** Return the rows of the edges to draw, strongest first. */
export function shownEdges(e: Edges, topK: number, circuitOnly: boolean): number[] {
  const out: number[] = [];
  if (circuitOnly && e.inCircuit.length) {
    for (let k = 0; k < e.n; k++) if (e.inCircuit[k]) out.push(k);
    return out;
  }
  const k = Math.max(0, Math.min(e.n, Math.floor(topK)));
  for (let i = 0; i < k; i++) out.push(i);
  return out;
}

/** Return whether edge row `k` touches node `node`. */
export function touches(l: GraphLayout, e: Edges, k: number, node: number): boolean {
  return e.sender[k] === node || l.readers[e.receiver[k]].includes(node);
}

/** Return the rows of `shown` that touch `node`, in the same order. */
export function nodeEdges(l: GraphLayout, e: Edges, shown: number[], node: number): number[] {
  return shown.filter(k => touches(l, e, k, node));
}
