// The circuit graph's geometry as pure functions: nodes in rows by layer (embeddings at the
// bottom, logits on top, heads side by side, the MLP after them), every edge rising from its
// sender to its receiver's port, the layout fitting any width, the edges shown (top k, or the
// circuit's), and hit-testing the pointer against nodes and curves.
import { describe, expect, it } from 'vitest';
import { decodeEdges, maxAbs, type CircuitTraits, type NodeRow } from '../src/circuit/data';
import { curve, edgeAt, pointAt, sample, type Path } from '../src/circuit/curves';
import { layoutGraph, MAX_SLOT, nodeAt, PORT_AT, type GraphLayout } from '../src/circuit/layout';
import { nodeEdges, shownEdges } from '../src/circuit/select';
import { strokeAlpha, strokeWidth } from '../src/circuit/style';
import { spec } from './circuit-graph';

const measure = (t: string): number => t.length * 6.6;

/** Return whether sender `s` writes before receiver `r` reads (graph.py's rule, sequential). */
function isEdge(s: NodeRow, r: NodeRow): boolean {
  return s[2] < r[2] || (s[2] === r[2] && s[1] === 'head' && r[1] === 'mlp');
}

const node = (l: GraphLayout, name: string) => l.nodes[l.byName.get(name)!];

describe('circuit layout', () => {
  it('puts nodes in rows by layer, embeddings at the bottom and logits on top', () => {
    const g = spec(2, 4);
    const l = layoutGraph(g, 900, measure);
    for (const layer of [0, 1]) {
      const ys = [0, 1, 2, 3].map(h => node(l, `L${layer}H${h}`).y);
      expect(new Set(ys).size).toBe(1); // a layer's heads side by side
      const xs = [0, 1, 2, 3].map(h => node(l, `L${layer}H${h}`).x);
      expect(xs).toEqual([...xs].sort((a, b) => a - b)); // in head order, left to right
      const mlp = node(l, `MLP${layer}`);
      expect(mlp.x).toBeGreaterThan(node(l, `L${layer}H3`).x + node(l, `L${layer}H3`).w);
      expect(mlp.y).toBeLessThan(ys[0]); // after (above) its layer's attention
    }
    expect(node(l, 'L1H0').y).toBeLessThan(node(l, 'L0H0').y);
    expect(node(l, 'MLP0').y).toBeGreaterThan(node(l, 'L1H0').y + node(l, 'L1H0').h);
    expect(node(l, 'embed').y).toBe(Math.max(...l.nodes.map(n => n.y)));
    expect(node(l, 'logits').y).toBe(Math.min(...l.nodes.map(n => n.y)));
    expect(l.rows.map(r => r.text)).toEqual(['logits', 'L1', 'L0', 'embed']);
    expect(l.cols.map(c => c.text)).toEqual(['0', '1', '2', '3', 'MLP']);
    expect(l.slot).toBe(MAX_SLOT); // 900 px is more than 5.5 columns need: capped
    expect(node(l, 'L0H2').label).toBe('L0H2');
  });

  it('puts q, k and v ports on the head, and every edge rises', () => {
    const g = spec(3, 4);
    const l = layoutGraph(g, 700, measure);
    const h = node(l, 'L1H2');
    for (const kind of ['q', 'k', 'v'] as const) {
      const r = g.receivers.findIndex(x => x[0] === `L1H2.${kind}`);
      expect(l.port[r]).toEqual({ x: h.x + h.w * PORT_AT[kind], y: h.y + h.h });
      expect(l.readers[r]).toEqual([l.byName.get('L1H2')]);
    }
    expect(l.out[g.senders.findIndex(s => s[0] === 'L0H2')]).toEqual({
      x: node(l, 'L0H2').x + node(l, 'L0H2').w / 2,
      y: node(l, 'L0H2').y
    });
    let edges = 0;
    g.senders.forEach((s, i) =>
      g.receivers.forEach((r, j) => {
        if (!isEdge(s, r)) return;
        edges++;
        expect(l.out[i].y).toBeGreaterThan(l.port[j].y);
      })
    );
    expect(edges).toBeGreaterThan(200);
  });

  it('gives grouped keys and values ports on a bar under the heads that share them', () => {
    const g = spec(2, 4, 2);
    const l = layoutGraph(g, 700, measure);
    const r = g.receivers.findIndex(x => x[0] === 'L1KV1.k');
    expect(l.readers[r]).toEqual([l.byName.get('L1H2'), l.byName.get('L1H3')]);
    const bar = l.bars.find(b => b.layer === 1 && b.kv === 1)!;
    expect(bar.x).toBe(node(l, 'L1H2').x);
    expect(bar.x + bar.w).toBeCloseTo(node(l, 'L1H3').x + node(l, 'L1H3').w);
    expect(l.port[r].y).toBe(bar.y + bar.h);
    expect(l.port[r].y).toBeGreaterThan(node(l, 'L1H2').y + node(l, 'L1H2').h);
    expect(l.portLetters).toBe(false);
  });

  it('fits any width, boxes and labels shrinking', () => {
    for (const [layers, heads, width] of [
      [2, 4, 300],
      [12, 12, 1100],
      [12, 12, 500],
      [32, 32, 600]
    ]) {
      const l = layoutGraph(spec(layers, heads), width, measure);
      expect(l.width).toBeLessThanOrEqual(width);
      for (const n of l.nodes) expect(n.x + n.w).toBeLessThanOrEqual(l.width);
      for (const n of l.nodes) if (n.label) expect(measure(n.label)).toBeLessThan(n.w);
      const shown = l.cols.map(c => c.at);
      for (let i = 1; i < shown.length; i++) expect(shown[i] - shown[i - 1]).toBeGreaterThan(6);
    }
    // one style a kind: L10H11 does not fit, so no head shows its full name
    const narrow = layoutGraph(spec(12, 12), 600, measure);
    const heads = narrow.nodes.filter(n => n.kind === 'head');
    expect(heads.find(n => n.name === 'L3H7')!.label).toBe('H7');
    expect(heads.every(n => n.label === `H${n.head}`)).toBe(true);
    expect(layoutGraph(spec(12, 12), 300, measure).nodes[1].label).toBe(''); // none fits
  });
});

// 5 edges in rank order: sender, receiver (indices of spec(2, 4)), scores.
const g = spec(2, 4);
const ri = (name: string): number => g.receivers.findIndex(r => r[0] === name);
const si = (name: string): number => g.senders.findIndex(s => s[0] === name);
const EDGES: [string, string, number][] = [
  ['embed', 'L0H2.v', -3.25],
  ['L1H2', 'logits', -1.5],
  ['L0H2', 'L1H1.k', -1.0],
  ['L0H2', 'L1H2.k', 0.75],
  ['embed', 'L1H1.q', 0.01]
];

function traits(offset = 0): (k: keyof CircuitTraits) => unknown {
  // byte buffers as anywidget hands them: DataViews, possibly at an odd offset of a larger one
  const view = (bytes: Uint8Array): DataView => {
    const buf = new Uint8Array(bytes.length + offset);
    buf.set(bytes, offset);
    return new DataView(buf.buffer, offset, bytes.length);
  };
  const u8 = (a: ArrayLike<number> & { buffer: ArrayBufferLike }) => new Uint8Array(a.buffer);
  const state: Record<string, unknown> = {
    meta: { groups: ['top', 'random'] },
    edges: view(u8(new Uint32Array(EDGES.flatMap(([s, r]) => [si(s), ri(r)])))),
    scores: view(u8(new Float32Array(EDGES.map(e => e[2])))),
    ranks: view(u8(new Uint32Array([0, 1, 2, 3, 9]))),
    in_circuit: view(new Uint8Array([1, 1, 1, 0, 0])),
    exact: view(u8(new Float32Array([-1.5, -2, -1, 0.5, 0.25, 0.75]))),
    exact_at: view(u8(new Uint32Array([2, 4]))),
    exact_group: view(new Uint8Array([0, 1]))
  };
  return k => state[k];
}

describe('circuit edges', () => {
  it('decode from the bytes Python sends, at any offset', () => {
    for (const offset of [0, 1, 3]) {
      const e = decodeEdges(traits(offset) as never);
      expect(e.n).toBe(5);
      expect(Array.from(e.sender)).toEqual(EDGES.map(([s]) => si(s)));
      expect(Array.from(e.receiver)).toEqual(EDGES.map(([, r]) => ri(r)));
      expect(Array.from(e.score)).toEqual(EDGES.map(x => Math.fround(x[2])));
      expect(Array.from(e.rank)).toEqual([0, 1, 2, 3, 9]);
      expect(e.exact.get(2)).toEqual({ value: -1.5, low: -2, high: -1, group: 'top' });
      expect(e.exact.get(4)).toEqual({ value: 0.5, low: 0.25, high: 0.75, group: 'random' });
      expect(maxAbs(e)).toBe(3.25);
    }
  });

  it('shows the top k, or the circuit only, and finds a node’s edges', () => {
    const e = decodeEdges(traits() as never);
    expect(shownEdges(e, 3, false)).toEqual([0, 1, 2]);
    expect(shownEdges(e, 50, false)).toEqual([0, 1, 2, 3, 4]);
    expect(shownEdges(e, 0, false)).toEqual([]);
    expect(shownEdges(e, 1, true)).toEqual([0, 1, 2]); // the circuit, whatever k
    const l = layoutGraph(g, 800, measure);
    const all = shownEdges(e, 5, false);
    expect(nodeEdges(l, e, all, l.byName.get('L0H2')!)).toEqual([0, 2, 3]); // in and out
    expect(nodeEdges(l, e, all, l.byName.get('L1H1')!)).toEqual([2, 4]);
    expect(nodeEdges(l, e, all, l.byName.get('logits')!)).toEqual([1]);
  });

  it('hit-tests the pointer against curves and boxes', () => {
    const e = decodeEdges(traits() as never);
    const l = layoutGraph(g, 800, measure);
    const shown = shownEdges(e, 5, false);
    const paths = new Map<number, Path>();
    const curves = shown.map(k => curve(l.out[e.sender[k]], l.port[e.receiver[k]]));
    shown.forEach((k, i) => paths.set(k, sample(curves[i])));
    const width = (k: number): number => strokeWidth(e.score[k], 4);
    for (const k of shown) {
      for (const t of [0.3, 0.5, 0.7]) {
        const p = pointAt(curves[k], t);
        // the edge itself, or a stronger one drawn over it there
        expect(edgeAt(shown, paths, width, p.x, p.y)).toBeLessThanOrEqual(k);
      }
    }
    const mid = pointAt(curves[2], 0.5); // L0H2 -> L1H1.k
    expect(edgeAt(shown, paths, width, mid.x, mid.y)).toBe(2);
    expect(edgeAt(shown, paths, width, mid.x + 2, mid.y)).toBe(2); // within its reach
    expect(edgeAt(shown, paths, width, 2, 2)).toBeNull();
    const h = node(l, 'L0H2');
    expect(nodeAt(l, h.x + 1, h.y + 1)).toBe(l.byName.get('L0H2'));
    expect(nodeAt(l, h.x - 1, h.y - 1)).toBeNull();
    // a tie goes to the stronger edge: the two L0H2 edges leave from the same point
    expect(edgeAt(shown, paths, width, l.out[si('L0H2')].x, l.out[si('L0H2')].y)).toBe(2);
  });

  it('styles strokes by |score| on a fixed scale', () => {
    expect(strokeWidth(-4, 4)).toBe(strokeWidth(4, 4));
    expect(strokeWidth(8, 4)).toBe(strokeWidth(4, 4)); // clipped at the limit
    expect(strokeWidth(1, 4)).toBeLessThan(strokeWidth(2, 4));
    expect(strokeAlpha(0, 4)).toBeGreaterThan(0);
    expect(strokeAlpha(4, 4)).toBe(1);
  });
});
