// What an edge or a node says, in the floating tooltip and the live region, and the two lists:
// the side readout of the clicked node's edges and the "as table" list of every edge shown.
// Readouts are rebuilt from the state each time; names from data go in as text only.

import { fmt, h, table } from '../lib/dom';
import type { Edges } from './data';
import { nodeEdges } from './select';
import { meta, selectedNode, type View } from './view';

const PORT_WORDS: Record<string, string> = {
  q: 'query',
  k: 'key',
  v: 'value',
  mlp: 'MLP input',
  logits: 'final norm input'
};

/** Return a score as text: four significant digits, a true minus sign; '–' for none. */
export function fmtScore(value: number): string {
  if (Number.isNaN(value)) return '–';
  return fmt(value, 4).replace(/^-/, '−');
}

/** Return the names of edge row `k`: sender, receiver. */
export function edgeNames(v: View, k: number): [string, string] {
  const m = meta(v);
  return [m.senders[v.edges.sender[k]][0], m.receivers[v.edges.receiver[k]][0]];
}

/** Return the exact patch of row `k` as text, or null when it was not checked. */
function exactText(e: Edges, k: number): string | null {
  const x = e.exact.get(k);
  if (!x) return null;
  // a no-break space inside the interval: a narrow column breaks before it, never inside
  return `${fmtScore(x.value)} [${fmtScore(x.low)},\u00a0${fmtScore(x.high)}]`;
}

/** Return the tooltip lines of edge row `k` (the first in bold). */
export function edgeLines(v: View, k: number): string[] {
  const m = meta(v);
  const e = v.edges;
  const [sender, receiver] = edgeNames(v, k);
  const port = PORT_WORDS[m.receivers[e.receiver[k]][1]] ?? '';
  const lines = [`${sender} → ${receiver} (${port})`];
  if (Number.isNaN(e.score[k])) lines.push('in the circuit (no score given)');
  else {
    const of = m.kind === 'circuit' ? `the circuit’s ${m.sent}` : String(m.n_edges);
    lines.push(`score ${fmtScore(e.score[k])} · rank ${e.rank[k] + 1} of ${of}`);
  }
  const exact = exactText(e, k);
  if (exact) {
    const group = e.exact.get(k)!.group;
    lines.push(`exact patch ${exact}${group ? ` (${group} edges checked)` : ''}`);
  } else if (e.exact.size) {
    lines.push(`not among the ${e.exact.size} edges patched exactly`);
  }
  if (e.inCircuit.length && m.kind === 'scores')
    lines.push(e.inCircuit[k] ? 'in the circuit' : 'not in the circuit');
  return lines;
}

/** Return the words for a node: its name and what it is. */
export function nodeTitle(v: View, node: number): string {
  const n = v.layout!.nodes[node];
  if (n.kind === 'head') return `${n.name} (attention head ${n.head} of layer ${n.layer})`;
  if (n.kind === 'mlp') return `${n.name} (the MLP of layer ${n.layer})`;
  if (n.kind === 'embed') return 'embed (token and position embeddings)';
  return 'logits (the unembedding, through the final norm)';
}

/** Return the tooltip lines of a node. */
export function nodeLines(v: View, node: number): string[] {
  const l = v.layout!;
  const e = v.edges;
  const rows = nodeEdges(l, e, v.shown, node);
  const sends = rows.filter(k => e.sender[k] === node).length;
  const lines = [nodeTitle(v, node), `edges shown: ${sends} out, ${rows.length - sends} in`];
  if (rows.length) {
    const [s, r] = edgeNames(v, rows[0]);
    lines.push(`strongest: ${s} → ${r} (score ${fmtScore(e.score[rows[0]])})`);
  }
  lines.push('click to list its edges');
  return lines;
}

/** Say what is under the pointer (or the keys' cursor) in the tooltip and the live region. */
export function describe(v: View): void {
  const { live } = v.dom;
  const hover = v.hover;
  for (const key of ['edge', 'node', 'score', 'exact']) delete live.dataset[key];
  if (!hover || !v.layout) {
    v.tooltip.hide();
    live.textContent = '';
    return;
  }
  let lines: string[];
  if ('edge' in hover) {
    lines = edgeLines(v, hover.edge);
    const [s, r] = edgeNames(v, hover.edge);
    live.dataset.edge = `${s}->${r}`;
    live.dataset.score = String(v.edges.score[hover.edge]);
    const x = v.edges.exact.get(hover.edge);
    if (x) live.dataset.exact = String(x.value);
  } else {
    lines = nodeLines(v, hover.node);
    live.dataset.node = v.layout.nodes[hover.node].name;
  }
  if (v.pointer) v.tooltip.show(lines, ...v.pointer);
  else v.tooltip.hide();
  live.textContent = lines.slice(0, 3).join(' · ');
}

/** Return the table rows of edge `rows`: rank, sender, receiver (or, `compact`, the edge in
 * one cell and no rank), score, and the exact patch when any edge was checked. */
function edgeRows(v: View, rows: number[], compact: boolean): string[][] {
  const e = v.edges;
  return rows.map(k => {
    const [s, r] = edgeNames(v, k);
    const cells = compact ? [`${s} → ${r}`] : [String(e.rank[k] + 1), s, r];
    cells.push(fmtScore(e.score[k]));
    if (e.exact.size) cells.push(exactText(e, k) ?? '');
    return cells;
  });
}

function head(v: View, compact: boolean): string[] {
  const cols = compact ? ['edge', 'score'] : ['rank', 'sender', 'receiver', 'score'];
  return v.edges.exact.size ? [...cols, 'exact [interval]'] : cols;
}

/** Fill the side readout: the clicked node's edges among those shown, or what to do. */
export function drawSide(v: View): void {
  const side = v.dom.side;
  const node = selectedNode(v);
  const m = meta(v);
  const parts: HTMLElement[] = [];
  if (node === null || !v.layout) {
    parts.push(
      h('div', 'im-circuit-side-title', { 'data-role': 'readout-title' }, 'Edges of a node'),
      h(
        'div',
        'im-circuit-hint',
        undefined,
        'Click a node to keep its edges highlighted and list them here; point at an edge ' +
          'or a node for its numbers.'
      )
    );
  } else {
    const rows = nodeEdges(v.layout, v.edges, v.shown, node);
    parts.push(
      h(
        'div',
        'im-circuit-side-title',
        { 'data-role': 'readout-title' },
        `${nodeTitle(v, node)}: ${rows.length} of the edges shown`
      )
    );
    if (rows.length) {
      const t = table('im-circuit-list', head(v, true), edgeRows(v, rows, true));
      t.setAttribute('data-role', 'readout-edges');
      parts.push(t);
    }
    parts.push(h('div', 'im-circuit-hint', undefined, 'Click the node again (or Esc) to let go.'));
  }
  if (m.verification?.length) {
    parts.push(h('div', 'im-circuit-side-title', undefined, 'Scores against exact patching'));
    for (const line of m.verification) parts.push(h('div', 'im-circuit-hint', undefined, line));
  }
  side.replaceChildren(...parts);
}

/** Fill (or empty) the table of every edge shown. */
export function drawTable(v: View): void {
  const box = v.dom.table;
  if (!v.showTable) {
    box.replaceChildren();
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const t = table('im-circuit-list', head(v, false), edgeRows(v, v.shown, false));
  t.setAttribute('data-role', 'edge-table');
  box.replaceChildren(
    h('div', 'im-circuit-side-title', undefined, `The ${v.shown.length} edges shown`),
    t
  );
}
