// The graph spec CircuitGraph sends for a model, built as interp_magics.circuits.graph_of builds
// it (senders: embed, then each layer's heads and MLP; receivers: each layer's q, k, v and MLP,
// then the logits), for the circuit tests.
import type { NodeRow } from '../src/circuit/data';
import type { GraphSpec } from '../src/circuit/layout';

/** Return the spec of a `layers` x `heads` graph (`kvHeads` < `heads`: grouped-query). */
export function spec(layers: number, heads: number, kvHeads = heads): GraphSpec {
  const grouped = kvHeads !== heads;
  const senders: NodeRow[] = [['embed', 'embed', -1, -1]];
  const receivers: NodeRow[] = [];
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < heads; h++) senders.push([`L${l}H${h}`, 'head', l, h]);
    senders.push([`MLP${l}`, 'mlp', l, -1]);
    for (const [kind, count] of [
      ['q', heads],
      ['k', kvHeads],
      ['v', kvHeads]
    ] as const) {
      for (let h = 0; h < count; h++) {
        const letter = grouped && kind !== 'q' ? 'KV' : 'H';
        receivers.push([`L${l}${letter}${h}.${kind}`, kind, l, h]);
      }
    }
    receivers.push([`MLP${l}`, 'mlp', l, -1]);
  }
  receivers.push(['logits', 'logits', layers, -1]);
  return { n_layers: layers, n_heads: heads, n_kv_heads: kvHeads, grouped, senders, receivers };
}
