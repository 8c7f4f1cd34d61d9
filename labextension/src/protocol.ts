/**
 * The messages the panels exchange with the kernel (comm target `interp_magics`) and the
 * server (`/interp-magics/rigor`). Kept in one place so both ends can be checked against it.
 */

export const PROTOCOL_VERSION = 1;
export const COMM_TARGET = 'interp_magics';

export interface ITensorEntry {
  key: string;
  shape: number[];
  dtype: string;
  device: string;
  bytes: number;
}

export interface ICacheSummary {
  name: string;
  tensors: number;
  bytes: number;
  dtypes: string[];
  devices: string[];
  model: string;
  /** Null in a push: the entries of the same `rev` in the previous snapshot. */
  entries: ITensorEntry[] | null;
  truncated: boolean;
  /** Changes whenever the kernel summarises the cache again. */
  rev: number;
}

export interface IModelSummary {
  name: string;
  class: string;
  parameters: number;
  bytes: number;
  dtype: string;
  device: string;
}

export interface ISnapshot {
  v: number;
  type: 'snapshot';
  version: string;
  seq: number;
  busy: boolean;
  caches: ICacheSummary[];
  models: IModelSummary[];
  total_bytes: number;
  ledger: { schema: number; entries: unknown[] } | null;
}

export interface IFreed {
  v: number;
  type: 'freed';
  name: string;
  ok: boolean;
  bytes?: number;
  busy?: boolean;
  message: string;
}

export interface IFinding {
  rule: string;
  title?: string;
  severity: 'error' | 'warning';
  cell_id: string;
  cell_index: number;
  line: number;
  message: string;
  fix: string;
  reference: string;
  execution_count: number | null;
  source: string;
  suppressed: boolean;
  reason: string;
}

export interface IRigorResponse {
  version: string;
  summary: string;
  findings: IFinding[];
}

/** Return a byte count as text with a binary unit (`18.0 MiB`). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) {
    return '?';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Return whether a comm message is a snapshot this panel understands. */
export function isSnapshot(data: unknown): data is ISnapshot {
  const d = data as ISnapshot | null;
  return (
    !!d &&
    d.type === 'snapshot' &&
    d.v === PROTOCOL_VERSION &&
    Array.isArray(d.caches) &&
    Array.isArray(d.models)
  );
}
