// What a cell says, in the floating tooltip and the live region: its layer, its position and
// the input token there, and its top-k tokens with their probabilities. The first view has only
// each cell's probability step (and, for narrow grids, its top-1 token), so the top-k of a
// column is asked of the kernel when the pointer reaches it: every layer of the column in one
// reply, kept for the next hover. One request is in flight at a time; while it is, only the
// latest column asked about waits its turn. Readouts are rebuilt from the state each time.

import { fmt, showToken } from '../lib/dom';
import { positionOf, rangeText } from './decode';
import { columnKey, meta, top1Text, type Column, type View } from './view';

/** A kernel reply to a `column` request. */
interface ColumnReply extends Partial<Column> {
  type: 'column';
  id: number;
  example: number;
  col: number;
  error?: string;
}

export interface CellInfo {
  lines: string[]; // the tooltip's lines, the first in bold
  live: string; // one line for the live region
  token: string | null; // the top-1 token, when known
  prob: number | null; // its exact probability, when known
}

const quote = (token: string): string => `“${showToken(token, 40)}”`;

/** Return a probability in words: three significant digits. */
export function fmtProb(p: number): string {
  return fmt(p, 3);
}

/** Return what cell (r, c) of the example on show says now. */
export function cellInfo(v: View, r: number, c: number): CellInfo {
  const m = meta(v);
  const ex = v.model.get('example');
  const input = v.model.get('tokens')[c] ?? '';
  const head = `${m.layer_labels[r]} · position ${positionOf(m, c)} ${quote(input)}`;
  if (v.data.pad[c] === 1) {
    return {
      lines: [head, 'padding (no token)'],
      live: `${head}: padding`,
      token: null,
      prob: null
    };
  }
  const column = v.columns.get(columnKey(ex, c));
  if (column && column.tokens[r]) {
    const tokens = column.tokens[r];
    const probs = column.probs[r];
    const lines = [head, `top ${tokens.length}:`];
    tokens.forEach((t, i) => lines.push(`${i + 1}. ${quote(t)} ${fmtProb(probs[i])}`));
    const answer = v.model.get('answer');
    if (answer && column.answer_rank && column.answer_prob) {
      const rank = column.answer_rank[r] + 1;
      const top = rank === 1 ? ' (top)' : '';
      lines.push(
        `answer ${quote(answer)}: rank ${rank}${top} · p ${fmtProb(column.answer_prob[r])}`
      );
    }
    const live = `${head}: top-1 ${quote(tokens[0])} p ${fmtProb(probs[0])}`;
    return { lines, live, token: tokens[0], prob: probs[0] };
  }
  const code = v.data.codes[r * m.cols + c];
  const token = top1Text(v, r, c);
  const step = `p ${rangeText(code, m.levels)}`;
  const first = token === null ? `top-1 ${step}` : `top-1 ${quote(token)} · ${step}`;
  return {
    lines: [head, first, `top ${m.k} with exact probabilities: loading…`],
    live: `${head}: ${first}`,
    token,
    prob: null
  };
}

/** Say what `cell` is in the tooltip (next to `pointer`, or hidden for the keys) and the
 * live region; ask the kernel for its column when it is not at hand. */
export function describe(v: View, cell: [number, number] | null): void {
  const { live } = v.dom;
  if (!cell) {
    v.tooltip.hide();
    live.textContent = '';
    for (const k of ['cell', 'token', 'prob']) delete live.dataset[k];
    return;
  }
  const info = cellInfo(v, cell[0], cell[1]);
  if (v.pointer) v.tooltip.show(info.lines, ...v.pointer);
  else v.tooltip.hide();
  live.textContent = info.live;
  live.dataset.cell = `${cell[0]}/${cell[1]}`;
  if (info.token !== null) live.dataset.token = info.token;
  else delete live.dataset.token;
  if (info.prob !== null) live.dataset.prob = String(info.prob);
  else delete live.dataset.prob;
  if (v.data.pad[cell[1]] !== 1) requestColumn(v, v.model.get('example'), cell[1]);
}

/** Ask the kernel for the top-k of a column (unless it is at hand or already asked for). */
export function requestColumn(v: View, example: number, col: number): void {
  if (v.columns.has(columnKey(example, col))) return;
  const q = v.request;
  if (q.inFlight !== null) {
    q.pending = [example, col]; // only the latest column matters; asked when the reply lands
    return;
  }
  q.inFlight = ++q.lastId;
  v.model.send({ type: 'column', id: q.inFlight, example, col });
}

function isColumnReply(msg: unknown): msg is ColumnReply {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'column';
}

/** Keep a kernel reply, refresh the readouts it concerns, then send the waiting request. */
export function onColumnReply(v: View, msg: unknown, refresh: () => void): void {
  if (!isColumnReply(msg)) return;
  const q = v.request;
  if (msg.id === q.inFlight) q.inFlight = null;
  if (msg.tokens && msg.probs) {
    v.columns.set(columnKey(msg.example, msg.col), {
      tokens: msg.tokens,
      probs: msg.probs,
      answer_prob: msg.answer_prob,
      answer_rank: msg.answer_rank
    });
    refresh();
  }
  if (q.pending) {
    const [ex, col] = q.pending;
    q.pending = null;
    requestColumn(v, ex, col);
  }
}
