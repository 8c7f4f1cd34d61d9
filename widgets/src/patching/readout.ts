// What a cell says in words, for the floating tooltip and the live region: where it is (row and
// column labels), its value in full (and the raw metric beside a normalised value), its interval
// and its corrected test. Built from the current state each time, so a readout never shows a
// value of a view that is gone (raw after switching back to normalised, another head).

import { bytes, floats } from '../lib/buffers';
import { fmt } from '../lib/dom';
import type { Cell } from '../lib/grid';
import type { Tooltip } from '../lib/tooltip';
import { fullValue } from './scale';
import { label, meta, plane, planeOf, toRaw, type View } from './view';

export interface CellInfo {
  head: string; // where: "layer 3 · position 2 cat→cow"
  lines: string[]; // the value, the raw value, the interval, the test
  live: string; // one line for the live region
  value: number;
  ciLow?: number;
  ciHigh?: number;
  significant?: boolean;
}

/** Return a p-value in words: two significant digits, an exponent when tiny. */
export function fmtP(p: number): string {
  if (!Number.isFinite(p)) return String(p);
  return p >= 0.001 ? String(Number(p.toPrecision(2))) : p.toExponential(1);
}

/** Return where cell (r, c) of the plane on show is, with axis titles in words. */
export function whereWords(v: View, r: number, c: number): string {
  const m = meta(v);
  const p = plane(v);
  const title = (a: string): string => m.axis_titles?.[a] ?? a;
  const row = `${title(p.rowAxis)} ${label(v, p.rowAxis, r, 40)}`;
  const col = p.colAxis ? ` · ${title(p.colAxis)} ${label(v, p.colAxis, c, 40)}` : '';
  const mid = m.axes.length === 3 ? ` · ${title(m.axes[1])} ${v.model.get('slice_index')}` : '';
  return row + mid + col;
}

/** Return everything the readouts say about cell (r, c) of the plane on show. */
export function cellInfo(v: View, r: number, c: number): CellInfo {
  const m = meta(v);
  const p = plane(v);
  const i = r * p.cols + c;
  const x = p.values[i];
  const head = whereWords(v, r, c);
  const name = v.showRaw ? `raw ${m.metric}` : m.value_name;
  const lines = [`${name} ${fullValue(x)}`];
  const live = `${head}: ${name} ${fmt(x, 5)}`;
  if (m.normalised && !v.showRaw) {
    lines.push(`raw ${m.metric} ${fullValue(toRaw(v, x))}`);
  }
  const info: CellInfo = { head, lines, live, value: x };
  const lows = planeOf(v, floats(v.model.get('ci_low')));
  const highs = planeOf(v, floats(v.model.get('ci_high')));
  if (lows.length && highs.length) {
    const scale = (y: number): number => (v.showRaw ? toRaw(v, y) : y);
    const [lo, hi] = [scale(lows[i]), scale(highs[i])].sort((a, b) => a - b);
    const level = Math.round((m.level ?? 0.95) * 100);
    const ci = `${level}% CI [${fmt(lo, 4)}, ${fmt(hi, 4)}]`;
    lines.push(ci);
    info.live += ` · ${ci}`;
    info.ciLow = lo;
    info.ciHigh = hi;
  }
  const ps = planeOf(v, floats(v.model.get('p_corrected')));
  if (ps.length) {
    const sig = planeOf(v, bytes(v.model.get('significant')));
    const alpha = m.alpha ?? 0.05;
    const ok = sig.length ? sig[i] === 1 : ps[i] < alpha;
    const how =
      m.correction && m.correction !== 'none' ? `${m.correction} corrected` : 'uncorrected';
    const verdict = ok ? `significant at α ${alpha}` : `not significant at α ${alpha}`;
    lines.push(`p (${how}) ${fmtP(ps[i])} · ${verdict}`);
    info.live += ` · p (${m.correction ?? 'corrected'}) ${fmtP(ps[i])}${ok ? '' : ', not significant'}`;
    info.significant = ok;
  }
  return info;
}

/** Write cell `info` into the live region (and its numbers into data attributes for tools). */
export function showLive(
  live: HTMLElement,
  info: CellInfo | null,
  cell: [number, number] | null
): void {
  if (!info || !cell) {
    live.textContent = '';
    for (const k of ['value', 'cell', 'ciLow', 'ciHigh', 'significant']) delete live.dataset[k];
    return;
  }
  live.textContent = info.live;
  live.dataset.value = String(info.value);
  live.dataset.cell = `${cell[0]}/${cell[1]}`;
  if (info.ciLow !== undefined) live.dataset.ciLow = String(info.ciLow);
  if (info.ciHigh !== undefined) live.dataset.ciHigh = String(info.ciHigh);
  if (info.significant !== undefined) live.dataset.significant = String(info.significant);
}

/** Say what `cell` is in the tooltip (at client point x, y) and the live region. */
export function describe(v: View, tooltip: Tooltip, cell: Cell | null, x: number, y: number): void {
  v.described = cell;
  if (!cell) {
    tooltip.hide();
    return;
  }
  const info = cellInfo(v, cell[0], cell[1]);
  tooltip.show([info.head, ...info.lines], x, y);
  v.pointer = [x, y];
  showLive(v.dom.live, info, cell);
}

/** Bring the readouts up to date with the state (a value of a view that is gone never stays). */
export function refreshReadouts(v: View, tooltip: Tooltip): void {
  const cell = v.described;
  const p = plane(v);
  if (!cell || cell[0] >= p.rows || cell[1] >= p.cols) {
    showLive(v.dom.live, null, null);
    tooltip.hide();
    return;
  }
  const info = cellInfo(v, cell[0], cell[1]);
  showLive(v.dom.live, info, cell);
  if (tooltip.visible && v.pointer) tooltip.show([info.head, ...info.lines], ...v.pointer);
}
