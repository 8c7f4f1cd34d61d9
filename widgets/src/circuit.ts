// The circuit graph: edge attribution scores (or a circuit) drawn as the model's computational
// graph, nodes in rows by layer (embeddings at the bottom, logits on top, a layer's heads side by
// side and its MLP after them), edges as curves into the receivers' ports (q, k, v), width and
// opacity by |score|, colour by sign. The top k edges are shown (a slider and a number set k; a
// "circuit only" switch shows a circuit's edges instead); a floating tooltip says what an edge or
// node is, with its score and, when checked, its exact patch; a click on a node keeps its edges
// highlighted and lists them beside the graph. It fits the output area's width and redraws in the
// theme's colours. The parts: circuit/data.ts (the bytes), layout.ts, curves.ts (hit-testing),
// select.ts, style.ts, paint.ts, axes.ts, legend.ts, readout.ts, view.ts (the state).

import type { AnyWidget, RenderProps } from '@anywidget/types';
import './circuit.css';
import { sizeCanvas } from './lib/canvas';
import { h, setPressed, toggleButton, widgetHeader } from './lib/dom';
import { pointerAt } from './lib/grid';
import { themeInk, onThemeChange } from './lib/theme';
import { Tooltip } from './lib/tooltip';
import { measurer, placeAxes, Y_TITLE } from './circuit/axes';
import { decodeEdges, maxAbs, type CircuitTraits } from './circuit/data';
import { edgeAt, pointAt, sample } from './circuit/curves';
import { layoutGraph, nodeAt } from './circuit/layout';
import { drawLegend, legendDom } from './circuit/legend';
import { edgeCurve, paintBase, paintMarks } from './circuit/paint';
import { describe, drawSide, drawTable } from './circuit/readout';
import { nodeEdges, shownEdges } from './circuit/select';
import { edgeStyle, strokeWidth } from './circuit/style';
import { meta, selectedNode, type CircuitDom, type Hover, type View } from './circuit/view';

let views = 0;
const FALLBACK_WIDTH = 640; // px, before the view is laid out
const SIDE_MIN = 760; // px of output area from which the readout sits beside the graph
const SIDE_W = 276; // px the readout (and the gap before it) takes beside the graph
const RANGE_MAX = 2000; // the slider's reach; the number input goes to every edge sent

function buildDom(el: HTMLElement): { dom: CircuitDom; legend: ReturnType<typeof legendDom> } {
  const root = h('div', 'im-circuit');
  el.appendChild(root);
  const topKRange = h('input', 'im-circuit-range', {
    type: 'range',
    min: '1',
    'data-role': 'top-k-range',
    'aria-label': 'Edges shown, strongest first'
  });
  const topK = h('input', 'im-circuit-number', {
    type: 'number',
    min: '1',
    'data-role': 'top-k',
    'aria-label': 'Edges shown, strongest first'
  });
  const topKOf = h('span', 'im-circuit-of');
  const kLabel = h('label', 'im-circuit-k', undefined, 'top edges ');
  kLabel.append(topKRange, topK, topKOf);
  const circuitOnly = h('input', undefined, { type: 'checkbox', 'data-role': 'circuit-only' });
  const circuitLabel = h('label', 'im-circuit-only');
  circuitLabel.append(circuitOnly, document.createTextNode(' circuit only'));
  const tableButton = toggleButton('im-circuit-button', 'As table');
  const { header, title } = widgetHeader('im-circuit', [kLabel, circuitLabel, tableButton]);
  const subtitle = h('div', 'im-circuit-subtitle', { 'data-role': 'subtitle' });
  const body = h('div', 'im-circuit-body');
  const plot = h('div', 'im-circuit-plot', { 'data-role': 'plot' });
  const yTitle = h('div', 'im-circuit-ytitle', { 'data-role': 'y-title' });
  const xTitle = h('div', 'im-circuit-xtitle', { 'data-role': 'x-title' });
  const rowLabels = h('div', 'im-circuit-rows', { 'data-role': 'row-labels' });
  const colLabels = h('div', 'im-circuit-cols', { 'data-role': 'col-labels' });
  const canvas = h('canvas', 'im-circuit-canvas', {
    tabindex: '0',
    role: 'application',
    'data-role': 'graph',
    'data-lm-suppress-shortcuts': 'true'
  });
  const nodeLabels = h('div', 'im-circuit-nodes', { 'data-role': 'nodes' });
  plot.append(yTitle, rowLabels, canvas, nodeLabels, colLabels, xTitle);
  const side = h('div', 'im-circuit-side', { 'data-role': 'readout' });
  body.append(plot, side);
  const legend = legendDom();
  const live = h('div', 'im-circuit-live', { 'aria-live': 'polite', 'data-role': 'live' });
  const table = h('div', 'im-circuit-table', { 'data-role': 'table', hidden: '' });
  root.append(header, subtitle, body, legend.legend, live, table);
  const dom: CircuitDom = {
    root,
    title,
    topK,
    topKRange,
    topKOf,
    circuitOnly,
    circuitLabel,
    tableButton,
    subtitle,
    body,
    plot,
    yTitle,
    xTitle,
    rowLabels,
    colLabels,
    canvas,
    nodeLabels,
    side,
    legend: legend.legend,
    live,
    table
  };
  return { dom, legend };
}

const bases = new WeakMap<View, HTMLCanvasElement>();

/** Lay out and draw everything for the current state, width and theme. */
function draw(v: View, legend: ReturnType<typeof legendDom>, width: number): void {
  const { root } = v.dom;
  const m = meta(v);
  v.ink = themeInk(root);
  const measure = measurer(root);
  const plotW = width >= SIDE_MIN ? width - SIDE_W : width;
  const rowLabelW = Math.max(...['embed', 'logits', `L${m.n_layers - 1}`].map(measure));
  const left = Y_TITLE + rowLabelW + 8;
  v.layout = layoutGraph(m, Math.max(40, plotW - left), measure);
  placeAxes(v.dom, v.layout, left);
  sizeCanvas(v.dom.canvas, v.layout.width, v.layout.height);
  v.style = edgeStyle(m, v.ink, v.maxAbs);
  const scored = Array.from(v.edges.score).some(s => !Number.isNaN(s));
  const unscored = Array.from(v.edges.score).some(s => Number.isNaN(s));
  drawLegend(legend, m, v.style, { scored, unscored });
  v.dom.title.textContent = m.title;
  update(v);
  if (!root.dataset.firstPaintMs && root.clientWidth > 0) {
    root.dataset.firstPaintMs = (performance.now() - v.started).toFixed(1);
  }
}

/** Redraw what depends on the edges shown and the selection (not on the width). */
function update(v: View): void {
  const l = v.layout;
  if (!l || !v.style || !v.ink) return;
  const m = meta(v);
  const circuitOnly = v.model.get('circuit_only') && v.edges.inCircuit.length > 0;
  v.shown = shownEdges(v.edges, v.model.get('top_k'), circuitOnly);
  v.paths = new Map(v.shown.map(k => [k, sample(edgeCurve(l, v.edges, k))]));
  v.cursor = Math.min(v.cursor, Math.max(0, v.shown.length - 1));
  if (v.hover && 'edge' in v.hover && !v.paths.has(v.hover.edge)) v.hover = null;
  const selected = selectedNode(v);
  const touching = selected === null ? null : new Set(nodeEdges(l, v.edges, v.shown, selected));
  const base = bases.get(v) ?? document.createElement('canvas');
  bases.set(v, base);
  const ctx = sizeCanvas(base, l.width, l.height);
  const family = getComputedStyle(v.dom.root).fontFamily || 'sans-serif';
  if (ctx) paintBase(ctx, l, v.edges, v.shown, v.style, v.ink, touching, family);
  repaint(v);
  syncControls(v);
  const what = circuitOnly
    ? `the circuit’s ${v.shown.length} edges (${m.circuit?.how ?? ''})`
    : `the top ${v.shown.length} by |score|`;
  const base0 = m.baselines;
  v.dom.subtitle.textContent =
    (m.metric ? `${m.metric} · ` : '') +
    `${m.n_edges} edges, showing ${what}` +
    (base0 ? ` · clean ${fmtBaseline(base0.clean)}, corrupted ${fmtBaseline(base0.corrupt)}` : '');
  v.dom.canvas.setAttribute(
    'aria-label',
    `${m.title}: ${v.shown.length} of ${m.n_edges} edges drawn. Arrow keys step through them ` +
      'from the strongest, Enter selects the sender, Escape lets go.'
  );
  drawSide(v);
  drawTable(v);
  describe(v);
}

function fmtBaseline(x: number): string {
  return Number(x.toPrecision(4)).toString().replace(/^-/, '−');
}

/** Repaint the canvas from the base, with the hover and selection marks. */
function repaint(v: View): void {
  const l = v.layout;
  const base = bases.get(v);
  const canvas = v.dom.canvas;
  const ctx = canvas.getContext('2d');
  if (!l || !base || !ctx || !v.style || !v.ink) return;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(base, 0, 0);
  const dpr = canvas.width / Math.max(1, l.width);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const hover = v.hover;
  let edge: number | null = null;
  let nodes: number[] = [];
  if (hover && 'edge' in hover) {
    edge = hover.edge;
    nodes = [v.edges.sender[edge], ...l.readers[v.edges.receiver[edge]]];
  } else if (hover) {
    nodes = [hover.node];
  }
  paintMarks(ctx, l, v.edges, v.style, v.ink, { edge, nodes, selected: selectedNode(v) });
}

function sameHover(a: Hover, b: Hover): boolean {
  if (!a || !b) return a === b;
  if ('edge' in a) return 'edge' in b && a.edge === b.edge;
  return 'node' in b && a.node === b.node;
}

/** Return what is under canvas point (x, y): a node, else the nearest edge, else null. */
function hit(v: View, x: number, y: number): Hover {
  const l = v.layout;
  if (!l || !v.style) return null;
  const node = nodeAt(l, x, y);
  if (node !== null) return { node };
  const limit = v.style.limit;
  const edge = edgeAt(v.shown, v.paths, k => strokeWidth(v.edges.score[k], limit), x, y);
  return edge === null ? null : { edge };
}

function point(v: View, hover: Hover, at: [number, number] | null): void {
  v.pointer = hover ? at : null;
  if (!sameHover(hover, v.hover)) {
    v.hover = hover;
    repaint(v);
  }
  describe(v);
}

function select(v: View, name: string): void {
  v.model.set('selected', name);
  v.model.save_changes();
  update(v);
}

/** Put the keys' cursor on shown edge `i` and say what it is, the tooltip at its middle. */
function moveTo(v: View, i: number): void {
  if (!v.shown.length || !v.layout) return;
  v.cursor = Math.max(0, Math.min(v.shown.length - 1, i));
  const k = v.shown[v.cursor];
  const mid = pointAt(edgeCurve(v.layout, v.edges, k), 0.5);
  const box = v.dom.canvas.getBoundingClientRect();
  point(v, { edge: k }, [box.left + mid.x, box.top + mid.y]);
}

function wireInput(v: View): void {
  const { canvas, tableButton, topK, topKRange, circuitOnly } = v.dom;
  canvas.addEventListener('mousemove', ev =>
    point(v, hit(v, ...pointerAt(ev, canvas)), [ev.clientX, ev.clientY])
  );
  canvas.addEventListener('mouseleave', () => point(v, null, null));
  canvas.addEventListener('click', ev => {
    const target = hit(v, ...pointerAt(ev, canvas));
    const name = target && 'node' in target ? v.layout!.nodes[target.node].name : '';
    select(v, name && name === v.model.get('selected') ? '' : name);
  });
  canvas.addEventListener('keydown', ev => {
    const moves: Record<string, number> = {
      ArrowRight: v.cursor + 1,
      ArrowDown: v.cursor + 1,
      ArrowLeft: v.cursor - 1,
      ArrowUp: v.cursor - 1,
      Home: 0,
      End: v.shown.length - 1
    };
    if (ev.key in moves) moveTo(v, moves[ev.key]);
    else if (ev.key === 'Enter' && v.shown.length) {
      const name = meta(v).senders[v.edges.sender[v.shown[v.cursor]]][0];
      select(v, name === v.model.get('selected') ? '' : name);
    } else if (ev.key === 'Escape') select(v, '');
    else return;
    ev.preventDefault();
  });
  canvas.addEventListener('blur', () => point(v, null, null));
  tableButton.addEventListener('click', () => {
    v.showTable = !v.showTable;
    setPressed(tableButton, v.showTable);
    drawTable(v);
  });
  const setK = (value: number, save: boolean): void => {
    const k = Math.max(1, Math.min(v.edges.n, Math.round(value) || 1));
    v.model.set('top_k', k);
    if (save) v.model.save_changes();
    update(v);
  };
  topKRange.addEventListener('input', () => setK(Number(topKRange.value), false));
  topKRange.addEventListener('change', () => setK(Number(topKRange.value), true));
  // typing redraws at once; the value reaches Python when it is committed (Enter, leaving)
  topK.addEventListener('input', () => {
    if (topK.value !== '') setK(Number(topK.value), false);
  });
  topK.addEventListener('change', () => setK(Number(topK.value), true));
  circuitOnly.addEventListener('change', () => {
    v.model.set('circuit_only', circuitOnly.checked);
    v.model.save_changes();
    update(v);
  });
}

/** Make the controls show the state (k, its reach, the circuit switch). */
function syncControls(v: View): void {
  const { topK, topKRange, topKOf, circuitOnly, circuitLabel } = v.dom;
  const n = v.edges.n;
  const k = String(Math.min(n, v.model.get('top_k')));
  const circuit = v.edges.inCircuit.length > 0 && meta(v).kind === 'scores';
  const only = v.model.get('circuit_only') && v.edges.inCircuit.length > 0;
  topK.max = String(n);
  topKRange.max = String(Math.min(n, RANGE_MAX));
  if (topK.value !== k && document.activeElement !== topK) topK.value = k;
  if (document.activeElement !== topKRange) topKRange.value = k;
  topKOf.textContent = ` of ${meta(v).n_edges}`;
  topK.disabled = only;
  topKRange.disabled = only;
  circuitLabel.hidden = !circuit;
  circuitOnly.checked = only;
}

function render({ model, el }: RenderProps<CircuitTraits>): () => void {
  const started = performance.now();
  const { dom, legend } = buildDom(el);
  const decode = (): ReturnType<typeof decodeEdges> => decodeEdges(k => model.get(k));
  const edges = decode();
  const v: View = {
    model,
    dom,
    tooltip: new Tooltip(dom.root, `im-circuit-tip-${++views}`),
    started,
    edges,
    maxAbs: maxAbs(edges),
    layout: null,
    shown: [],
    paths: new Map(),
    style: null,
    ink: null,
    hover: null,
    pointer: null,
    cursor: 0,
    showTable: false
  };
  let laidOut = -1;
  const redraw = (): void => {
    laidOut = dom.root.clientWidth || FALLBACK_WIDTH;
    v.hover = null;
    draw(v, legend, laidOut);
  };
  wireInput(v);
  // Python sends a result's traits together: one redraw after the last of their events.
  let queued = false;
  const onData = (): void => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      v.edges = decode();
      v.maxAbs = maxAbs(v.edges);
      redraw();
    });
  };
  const onState = (): void => update(v);
  const data = ['meta', 'edges', 'scores', 'ranks', 'in_circuit', 'exact', 'exact_at'].map(
    name => `change:${name}`
  );
  const state = ['top_k', 'circuit_only', 'selected'].map(name => `change:${name}`);
  for (const e of data) model.on(e, onData);
  for (const e of state) model.on(e, onState);
  // A view not yet in the page has no width: the resize observer's first report draws it.
  if (dom.root.clientWidth > 0 || !globalThis.ResizeObserver) redraw();
  let frame = 0;
  let placed = false;
  const resized = new (globalThis.ResizeObserver ?? NoResize)(() => {
    if ((dom.root.clientWidth || FALLBACK_WIDTH) === laidOut && placed) return; // height only
    placed = true;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(redraw);
  });
  resized.observe(dom.root);
  const stopTheme = onThemeChange(redraw);
  return () => {
    for (const e of data) model.off(e, onData);
    for (const e of state) model.off(e, onState);
    resized.disconnect();
    stopTheme();
    cancelAnimationFrame(frame);
    dom.root.remove();
  };
}

/** Stands in for ResizeObserver where there is none (old front ends, tests): no relayout. */
class NoResize {
  observe(): void {}
  disconnect(): void {}
}

export default { render } satisfies AnyWidget<CircuitTraits>;
