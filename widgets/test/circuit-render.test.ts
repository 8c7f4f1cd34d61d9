// @vitest-environment jsdom
// The circuit graph's render() against a fake anywidget model: titles and legend in words, the
// tooltip of an edge (its score, its exact patch when checked) and of a node, a click that keeps
// a node's edges and lists them beside the graph, the top-k controls and the circuit switch
// writing back to the model, the keys walking the edges, and names from data kept as text.
import { describe, expect, it } from 'vitest';
import circuitView from '../src/circuit';
import { curve, pointAt } from '../src/circuit/curves';
import { PORT_AT } from '../src/circuit/layout';
import { spec } from './circuit-graph';
import { fakeModel } from './fake-model';

// jsdom has no canvas: nothing is painted here (Chromium covers the pixels), the layout runs.
HTMLCanvasElement.prototype.getContext = (() => null) as never;

const g = spec(2, 4);
g.senders[3][0] = '<b>L0H2</b>'; // a name is text, never markup (renamed for this check only)
const ri = (name: string): number => g.receivers.findIndex(r => r[0] === name);
const EDGES: [number, number, number][] = [
  [0, ri('L0H2.v'), -3.25],
  [8, ri('logits'), -1.5],
  [3, ri('L1H1.k'), -1.0],
  [3, ri('L1H2.k'), 0.75],
  [0, ri('L1H1.q'), 0.01]
];
const view = (a: { buffer: ArrayBufferLike }): DataView => new DataView(a.buffer as ArrayBuffer);

function state(circuit: boolean): Record<string, unknown> {
  return {
    meta: {
      ...g,
      kind: 'scores',
      title: 'EAP-IG (5 steps) edge scores',
      method: 'eap-ig',
      metric: 'log-probability of the answer',
      family: 'llama',
      parallel: false,
      n_edges: 110,
      sent: EDGES.length,
      baselines: { clean: -0.21, corrupt: -4.17 },
      circuit: circuit ? { how: 'top 3 edges', edges: 3 } : null,
      verification: ['top (2 edges): signs agree on 100%'],
      colours: { light: ['#a21328', '#1b5a9c'], dark: ['#ee9677', '#71b0d3'] },
      groups: ['top', 'random']
    },
    edges: view(new Uint32Array(EDGES.flatMap(([s, r]) => [s, r]))),
    scores: view(new Float32Array(EDGES.map(e => e[2]))),
    ranks: view(new Uint32Array([0, 1, 2, 3, 40])),
    in_circuit: circuit ? view(new Uint8Array([1, 1, 1, 0, 0])) : view(new Uint8Array(0)),
    exact: view(new Float32Array([-1.5, -2, -1])),
    exact_at: view(new Uint32Array([2])),
    exact_group: view(new Uint8Array([0])),
    top_k: 50,
    circuit_only: circuit,
    selected: ''
  };
}

const text = (el: Element, role: string): string =>
  el.querySelector(`[data-role=${role}]`)?.textContent ?? '';

function mount(circuit = false) {
  const model = fakeModel(state(circuit), true);
  const el = document.createElement('div');
  document.body.appendChild(el);
  const cleanup = circuitView.render({ model, el } as never);
  const canvas = el.querySelector('canvas[data-role=graph]')!;
  const fire = (type: string, x: number, y: number): void => {
    canvas.dispatchEvent(new MouseEvent(type, { clientX: x, clientY: y, bubbles: true }));
  };
  return { model, el, cleanup, canvas, fire };
}

/** Return the point at `t` of edge row `k`, from the node boxes on the page and the port rule
 * (in jsdom the canvas's box is all zeros, so canvas and client coordinates agree). */
function along(el: Element, k: number, t: number): { x: number; y: number } {
  const box = (name: string) => {
    const st = el.querySelector<HTMLElement>(`[data-node="${name}"]`)!.style;
    return [st.left, st.top, st.width, st.height].map(parseFloat);
  };
  const [s, r] = EDGES[k];
  const [sx, sy, sw] = box(g.senders[s][0]);
  const [name, kind] = g.receivers[r];
  const [rx, ry, rw, rh] = box(kind === 'logits' ? 'logits' : name.split('.')[0]);
  const at = kind in PORT_AT ? PORT_AT[kind as 'q' | 'k' | 'v'] : 0.5;
  return pointAt(curve({ x: sx + sw / 2, y: sy }, { x: rx + rw * at, y: ry + rh }), t);
}

describe('circuit view', () => {
  it('titles its axes and legend and draws the top k', () => {
    const { el, cleanup } = mount();
    expect(text(el, 'y-title')).toBe('layer');
    expect(text(el, 'x-title')).toBe('head · MLP');
    expect(text(el, 'legend-title')).toBe('edge score (change in log-probability of the answer)');
    const samples = [...el.querySelectorAll('[data-role=legend-samples] span')].map(
      s => s.textContent
    );
    expect(samples).toEqual(['−4', '−2', '2', '4']); // round scores up to the limit, 4
    expect(text(el, 'subtitle')).toBe(
      'log-probability of the answer · 110 edges, showing the top 5 by |score| · clean ' +
        '−0.21, corrupted −4.17'
    );
    const labels = [...el.querySelectorAll('[data-role=row-labels] span')].map(s => s.textContent);
    expect(labels).toEqual(['logits', 'L1', 'L0', 'embed']);
    expect(el.querySelector('b')).toBeNull();
    expect(el.querySelector('[data-node="<b>L0H2</b>"]')?.textContent).toBe('<b>L0H2</b>');
    expect(el.querySelector<HTMLElement>('.im-circuit-only')!.hidden).toBe(true); // no circuit
    expect(el.querySelector<HTMLInputElement>('[data-role=top-k]')!.value).toBe('5');
    expect(text(el, 'readout')).toContain('Scores against exact patching');
    cleanup();
  });

  it('says what an edge and a node are, and lists a clicked node’s edges', () => {
    const { model, el, cleanup, fire } = mount();
    const p = along(el, 2, 0.5); // <b>L0H2</b> -> L1H1.k, checked exactly
    fire('mousemove', p.x, p.y);
    const tip = el.querySelector<HTMLElement>('[role=tooltip]')!;
    expect(tip.hidden).toBe(false);
    expect(tip.textContent).toContain('<b>L0H2</b> → L1H1.k (key)');
    expect(tip.textContent).toContain('score −1 · rank 3 of 110');
    expect(tip.textContent).toContain('exact patch −1.5 [−2,\u00a0−1] (top edges checked)');
    const live = el.querySelector<HTMLElement>('[data-role=live]')!;
    expect(live.dataset.edge).toBe('<b>L0H2</b>->L1H1.k');
    expect(live.dataset.score).toBe('-1');
    expect(live.dataset.exact).toBe('-1.5');
    const q = along(el, 4, 0.9); // embed -> L1H1.q (not checked), above the layer-0 boxes
    fire('mousemove', q.x, q.y);
    expect(tip.textContent).toContain('not among the 1 edges patched exactly');
    // a node: its edges shown, then a click keeps them and lists them beside the graph
    const box = el.querySelector<HTMLElement>('[data-node="L1H1"]')!;
    const [x, y] = [parseFloat(box.style.left) + 3, parseFloat(box.style.top) + 3];
    fire('mousemove', x, y);
    expect(tip.textContent).toContain('L1H1 (attention head 1 of layer 1)');
    expect(tip.textContent).toContain('edges shown: 0 out, 2 in');
    fire('click', x, y);
    expect(model.get('selected')).toBe('L1H1');
    expect(text(el, 'readout-title')).toBe(
      'L1H1 (attention head 1 of layer 1): 2 of the edges shown'
    );
    const rows = [...el.querySelectorAll('[data-role=readout-edges] tr')].map(r =>
      [...r.children].map(c => c.textContent)
    );
    expect(rows).toEqual([
      ['edge', 'score', 'exact [interval]'],
      ['<b>L0H2</b> → L1H1.k', '−1', '−1.5 [−2,\u00a0−1]'],
      ['embed → L1H1.q', '0.01', '']
    ]);
    fire('click', x, y); // again: let go
    expect(model.get('selected')).toBe('');
    fire('mouseleave', 0, 0);
    expect(tip.hidden).toBe(true);
    cleanup();
  });

  it('sets k from its controls, and shows a circuit alone when asked', () => {
    const { model, el, cleanup } = mount(true);
    const only = el.querySelector<HTMLInputElement>('[data-role=circuit-only]')!;
    const k = el.querySelector<HTMLInputElement>('[data-role=top-k]')!;
    expect(el.querySelector<HTMLElement>('.im-circuit-only')!.hidden).toBe(false);
    expect(only.checked).toBe(true);
    expect(k.disabled).toBe(true);
    expect(text(el, 'subtitle')).toContain('showing the circuit’s 3 edges (top 3 edges)');
    only.click();
    expect(model.get('circuit_only')).toBe(false);
    expect(k.disabled).toBe(false);
    k.value = '2';
    k.dispatchEvent(new Event('change'));
    expect(model.get('top_k')).toBe(2);
    expect(text(el, 'subtitle')).toContain('showing the top 2 by |score|');
    el.querySelector<HTMLButtonElement>('.im-circuit-button')!.click();
    const table = [...el.querySelectorAll('[data-role=edge-table] tr')].map(r =>
      [...r.children].map(c => c.textContent)
    );
    expect(table).toEqual([
      ['rank', 'sender', 'receiver', 'score', 'exact [interval]'],
      ['1', 'embed', 'L0H2.v', '−3.25', ''],
      ['2', 'L1H2', 'logits', '−1.5', '']
    ]);
    // Python sets k: the view follows
    model.set('top_k', 4);
    expect(text(el, 'subtitle')).toContain('showing the top 4 by |score|');
    cleanup();
  });

  it('walks the edges with the keys, strongest first', () => {
    const { model, el, cleanup, canvas } = mount();
    const live = el.querySelector<HTMLElement>('[data-role=live]')!;
    const key = (k: string): void => {
      canvas.dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true }));
    };
    key('ArrowRight');
    expect(live.dataset.edge).toBe('L1H2->logits');
    key('Home');
    expect(live.dataset.edge).toBe('embed->L0H2.v');
    key('Enter');
    expect(model.get('selected')).toBe('embed');
    key('Escape');
    expect(model.get('selected')).toBe('');
    cleanup();
  });
});
