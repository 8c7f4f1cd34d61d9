// The readout (under the header) and the tooltip (next to the pointer) say what the reader points
// at, derived afresh from the view's state at every change, so they never describe a head or a
// cell that is no longer on show. A detail cell's weight shows at once from its byte code, to the
// precision the code has, then the exact float asked of the kernel replaces it. One request is in
// flight at a time; while it is, only the latest cell asked about waits its turn.

import { decode, maxError } from '../lib/buffers';
import { fmt, showToken } from '../lib/dom';
import { fmtResolved } from '../lib/ticks';
import { quantum } from './detail';
import { currentDetail, headName, meta, pad, type View } from './view';

/** A kernel reply to a `value` request. */
interface ValueReply {
  type: 'value';
  id: number;
  b: number;
  l: number;
  h: number;
  q: number;
  k: number;
  value?: number;
  error?: string;
}

const exactValues = new WeakMap<View, Map<string, number>>();

function exactCache(v: View): Map<string, number> {
  let cache = exactValues.get(v);
  if (!cache) exactValues.set(v, (cache = new Map()));
  return cache;
}

function tokenAt(v: View, i: number): string {
  return `${i} “${showToken(v.model.get('tokens')[i] ?? '')}”`;
}

/** Show what the reader points at now (or, with nothing, what is on show) in the readout and
 * the tooltip. */
export function refreshReadout(v: View): void {
  const t = v.target;
  if (t?.kind === 'cell') describeCell(v, t.cell[0], t.cell[1]);
  else if (t?.kind === 'head') describeHead(v, t.cell[0], t.cell[1]);
  else describeView(v);
}

function describeView(v: View): void {
  const { live } = v.dom;
  const [l, hd] = v.model.get('selected');
  let text = `Showing ${headName(v, l, hd)} in detail. Point at a map, or focus it and use the arrow keys, to read a weight.`;
  const q = v.model.get('focus');
  if (v.mode === 'focus' && q >= 0) text += ` Focus: query ${tokenAt(v, q)}.`;
  live.textContent = text;
  delete live.dataset.cell;
  v.tooltip.hide();
}

function describeHead(v: View, l: number, hd: number): void {
  const t = v.target;
  const [sl, sh] = v.model.get('selected');
  const m = meta(v);
  const action =
    sl === l && sh === hd
      ? 'shown in detail'
      : t?.via === 'keys'
        ? 'Enter to open in detail'
        : 'click to open in detail';
  const name = headName(v, l, hd);
  v.dom.live.textContent = `${name} (layer ${m.layer_labels[l]}, head ${hd}) — ${action}`;
  delete v.dom.live.dataset.cell;
  const lines = [name, `layer ${m.layer_labels[l]} · head ${hd}`, action];
  if (v.mode === 'focus')
    lines.push(`strip: where query ${tokenAt(v, v.model.get('focus'))} attends`);
  showTip(v, lines);
}

function showTip(v: View, lines: string[]): void {
  const t = v.target;
  if (t?.via === 'pointer' && t.x !== undefined && t.y !== undefined) {
    v.tooltip.show(lines, t.x, t.y);
  } else v.tooltip.hide();
}

/** Show the weight of cell (query q, key k) of the selected head, and ask for its exact value. */
export function describeCell(v: View, q: number, k: number): void {
  const { live } = v.dom;
  const m = meta(v);
  const [l, hd] = v.model.get('selected');
  const b = v.model.get('batch_index');
  const d = currentDetail(v);
  const pair = `query ${tokenAt(v, q)} → key ${tokenAt(v, k)}`;
  const name = `${headName(v, l, hd)} (layer ${m.layer_labels[l]}, head ${hd})`;
  const at = `${headName(v, l, hd)} · ${pair}`;
  const say = (weight: string, readout: string): void => {
    live.textContent = `${at} · ${readout}`;
    showTip(v, [weight, pair, name]);
  };
  delete live.dataset.cell;
  if (!d) {
    say('loading…', 'loading');
    return;
  }
  if (m.causal && k > q) {
    live.dataset.value = '0';
    say('not attended (causal mask)', 'not attended (causal mask)');
    return;
  }
  const padMask = pad(v);
  if (padMask[q] === 1 || padMask[k] === 1) {
    say('padding (no real token)', 'padding (no real token)');
    return;
  }
  const key = `${b}/${l}/${hd}/${q}/${k}`;
  live.dataset.cell = key;
  const exact = exactCache(v).get(key);
  if (exact !== undefined) {
    live.dataset.value = String(exact);
    live.dataset.exact = 'true';
    say(`weight ${fmt(exact, 4)}`, `weight ${fmt(exact, 6)}`);
    return;
  }
  const approx = decode(d.codes[q * m.seq + k], d.scale);
  const shown = fmtResolved(approx, quantum(d.scale));
  const err = fmtResolved(maxError(d.scale), 0, 1);
  live.dataset.value = String(approx);
  live.dataset.exact = 'false';
  say(`weight ${shown}`, `weight ≈ ${shown} (±${err})`);
  requestExact(v, { b, l, h: hd, q, k });
}

function requestExact(v: View, cell: Record<string, number>): void {
  const exact = v.exact;
  if (exact.inFlight !== null) {
    exact.pending = cell; // only the latest cell matters; ask for it when the current reply lands
    return;
  }
  exact.inFlight = ++exact.lastId;
  v.model.send({ type: 'value', id: exact.inFlight, ...cell });
}

function isValueReply(msg: unknown): msg is ValueReply {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'value';
}

/** Keep a kernel reply, show it when it is for the cell on show, then send the waiting request. */
export function onValueReply(v: View, msg: unknown): void {
  if (!isValueReply(msg)) return;
  const exact = v.exact;
  if (msg.id === exact.inFlight) exact.inFlight = null;
  const key = `${msg.b}/${msg.l}/${msg.h}/${msg.q}/${msg.k}`;
  if (typeof msg.value === 'number') {
    exactCache(v).set(key, msg.value);
    if (v.dom.live.dataset.cell === key) refreshReadout(v);
  }
  if (exact.pending) {
    const next = exact.pending;
    exact.pending = null;
    const pendingKey = `${next.b}/${next.l}/${next.h}/${next.q}/${next.k}`;
    if (!exactCache(v).has(pendingKey)) requestExact(v, next);
  }
}
