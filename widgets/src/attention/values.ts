// The live readout of one detail cell: at once the weight its byte stands for (with its error),
// then the exact float, asked of the kernel. One request is in flight at a time; while it is,
// only the latest cell asked about waits its turn.

import { decode, maxError } from '../lib/buffers';
import { fmt, showToken } from '../lib/dom';
import { currentDetail, meta, type View } from './view';

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

function where(v: View, l: number, hd: number, q: number, k: number): string {
  const m = meta(v);
  const toks = v.model.get('tokens');
  return (
    `L${m.layer_labels[l]} H${hd} · query ${q} “${showToken(toks[q])}” → ` +
    `key ${k} “${showToken(toks[k])}”`
  );
}

/** Show the weight of cell (query q, key k) of the selected head, and ask for its exact value. */
export function describeCell(v: View, q: number, k: number): void {
  const { live } = v.dom;
  const m = meta(v);
  const [l, hd] = v.model.get('selected');
  const b = v.model.get('batch_index');
  const d = currentDetail(v);
  const at = where(v, l, hd, q, k);
  if (!d) {
    live.textContent = `${at} · loading`;
    return;
  }
  if (m.causal && k > q) {
    live.textContent = `${at} · not attended (causal mask)`;
    live.dataset.value = '0';
    return;
  }
  const approx = decode(d.codes[q * m.seq + k], d.scale);
  live.textContent = `${at} · weight ≈ ${fmt(approx)} (±${fmt(maxError(d.scale), 2)})`;
  live.dataset.value = String(approx);
  live.dataset.exact = 'false';
  live.dataset.cell = `${b}/${l}/${hd}/${q}/${k}`;
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

/** Show a kernel reply when it is for the cell on show, then send the waiting request. */
export function onValueReply(v: View, msg: unknown): void {
  if (!isValueReply(msg)) return;
  const { live } = v.dom;
  const exact = v.exact;
  if (msg.id === exact.inFlight) exact.inFlight = null;
  const cell = `${msg.b}/${msg.l}/${msg.h}/${msg.q}/${msg.k}`;
  if (live.dataset.cell === cell && typeof msg.value === 'number') {
    live.textContent = `${where(v, msg.l, msg.h, msg.q, msg.k)} · weight ${fmt(msg.value, 6)}`;
    live.dataset.value = String(msg.value);
    live.dataset.exact = 'true';
  }
  if (exact.pending) {
    const next = exact.pending;
    exact.pending = null;
    requestExact(v, next);
  }
}
