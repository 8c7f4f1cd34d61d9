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
  /** Only for a model dispatched by accelerate: where its weights live, where its blocks run. */
  placement?: IPlacement;
}

export interface IStoreSummary {
  name: string;
  path: string; // a folder or an fsspec URL
  examples: number;
  tensors: number;
  bytes: number; // on disk, compressed
  complete: boolean;
}

export interface IPlacement {
  devices: string[];
  resident: Record<string, number>; // bytes of weights held on each device
  offloaded: Record<string, number>; // bytes loaded only while their block runs: "cpu", "disk"
}

/** Return one line on a dispatched model: the devices its blocks run on and what is offloaded. */
export function describePlacement(p: IPlacement): string {
  const parts = [`runs on ${p.devices.join(', ') || 'no device'}`];
  for (const [device, bytes] of Object.entries(p.resident)) {
    parts.push(`${formatBytes(bytes)} on ${device}`);
  }
  for (const [where, bytes] of Object.entries(p.offloaded)) {
    parts.push(`${formatBytes(bytes)} offloaded to ${where} (not resident)`);
  }
  return parts.join(' · ');
}

export interface ISnapshot {
  v: number;
  type: 'snapshot';
  version: string;
  seq: number;
  busy: boolean;
  caches: ICacheSummary[];
  models: IModelSummary[];
  /** Activation stores open in the kernel (`open_store`, `harvest`); absent from older kernels. */
  stores?: IStoreSummary[];
  total_bytes: number;
  ledger: ILedger | null;
}

/**
 * The kernel's ledger: one entry per analysis, as `interp_magics/core/records.py` defines
 * them (a test checks these interfaces against the JSON schema generated from the records).
 */
export interface ILedger {
  schema: number;
  entries: ILedgerEntry[];
}

/** The fields the ledger adds to every record: which cell ran it, and when. */
export interface ILedgerContext {
  cell_id: string | null;
  source_sha1: string | null;
  execution_count: number | null;
  time: number | null;
}

/** A control a probe ran with (`CONTROLS` in records.py). */
export type ControlName =
  'shuffled' | 'random_features' | 'majority' | 'control_task' | 'control_representation';

export interface ICaptureRecord extends ILedgerContext {
  kind: 'capture';
  model: string;
  patterns: string[];
  tensors: number;
  bytes: number;
  dtype: string | null;
  positions: number[] | null;
  grad: boolean;
}

export interface IPatchRecord extends ILedgerContext {
  kind: 'patch';
  method: string;
  direction: string;
  site: string;
  by: string[];
  metric: string;
  corruption: string;
  cells: number;
  verified: number;
  normalised: boolean;
  p_values: number;
  corrected: boolean;
  correction: string | null;
}

export interface IAblationRecord extends ILedgerContext {
  kind: 'ablation';
  ablation: string;
  site: string;
  by: string[];
  metric: string;
  cells: number;
  p_values: number;
  corrected: boolean;
  correction: string | null;
}

export interface IProbeRecord extends ILedgerContext {
  kind: 'probe';
  estimator: string;
  controls: ControlName[];
  n_permutations: number;
  p_values: number;
  corrected: boolean;
  seed: number | null;
  correction: string | null;
  accuracy: number | null;
  layers: number;
}

export interface IStatTestRecord extends ILedgerContext {
  kind: 'statistical_test';
  test: string;
  p_values: number;
  corrected: boolean;
  correction: string | null;
}

export interface IInterventionRecord extends ILedgerContext {
  kind: 'intervention';
  edits: number;
  sites: string[];
  operations: string[];
  direction: boolean;
  baseline: string | null;
}

export interface IPathPatchRecord extends ILedgerContext {
  kind: 'path_patch';
  senders: number;
  receivers: number;
  metric: string;
  direction: string;
  p_values: number;
  corrected: boolean;
  correction: string | null;
}

export interface IEdgeAttributionRecord extends ILedgerContext {
  kind: 'edge_attribution';
  method: string;
  edges: number;
  metric: string;
  verified: number;
}

export interface IFaithfulnessRecord extends ILedgerContext {
  kind: 'faithfulness';
  edges: number;
  ablation: string;
  metric: string;
  faithfulness: number | null;
  completeness: boolean;
}

export interface ILensRecord extends ILedgerContext {
  kind: 'lens';
  lens: string;
  layers: number;
  metric: string | null;
}

export type ILedgerEntry =
  | ICaptureRecord
  | IPatchRecord
  | IAblationRecord
  | IProbeRecord
  | IStatTestRecord
  | IInterventionRecord
  | IPathPatchRecord
  | IEdgeAttributionRecord
  | IFaithfulnessRecord
  | ILensRecord;

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

/**
 * What the server's status means: `checked` (200, with findings), `timed-out` (504: the check
 * ran past the server's time limit and was stopped), `busy` (503: the server runs as many
 * checks as it allows; retry after `retry_after` seconds), `superseded` (409: a newer check of
 * the same notebook replaced this one).
 */
export type RigorStatus = 'checked' | 'timed-out' | 'busy' | 'superseded';

export interface IRigorResponse {
  version: string;
  status: RigorStatus;
  summary: string;
  findings: IFinding[];
  notebook: string;
  /** Cells the server did not check (too long), one note each. */
  notes?: string[];
  /** Why there are no findings (every status but `checked`). */
  message?: string;
  /** The time limit in seconds (`timed-out`). */
  timeout?: number;
  /** Seconds to wait before asking again (`busy`). */
  retry_after?: number;
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
