// The data of a probe panel, as `ProbePanel._data()` (interp_magics/widgets/probes.py) sends it:
// every number already formatted where it is shown as text, colours per theme, tooltip lines.

/** A colour for the light and for the dark theme. */
export interface Colour {
  light: string;
  dark: string;
}

/** What a bar or a line stands for; it picks its dash and marker. */
export type Role = 'probe' | 'balanced' | 'shuffled' | 'random' | 'task' | 'other';

/** One bar of a single report: the probe, its balanced accuracy, or a control. */
export interface Bar {
  name: string;
  role: Role;
  color: Colour;
  value: number;
  lo: number | null;
  hi: number | null;
  tip: string[];
  row: number | null; // the table row it stands for
}

/** One line across the layers of a sweep (the probe's has its 95% CI). */
export interface Series {
  name: string;
  role: Role;
  color: Colour;
  values: number[];
  lo?: number[];
  hi?: number[];
}

/** A chance level drawn as a rule across the plot. */
export interface ChanceLine {
  name: string;
  role: 'majority' | 'frequency';
  value: number;
}

/** A table column: its key in `to_dataframe()` terms, and its header text. */
export interface Column {
  key: string;
  label: string;
}

export interface Verdict {
  headline: string;
  detail: string;
  level: 'above' | 'partial' | 'chance' | 'untested';
}

export interface ProbeData {
  mode: 'single' | 'layers';
  verdict: Verdict;
  title: string;
  value_title: string;
  chance: ChanceLine[];
  bars?: Bar[];
  layers?: string[];
  ticks?: string[];
  x_title?: string;
  series?: Series[];
  significant?: boolean[];
  correction?: string;
  tips?: string[][];
  columns: Column[];
  rows: string[][];
  key_columns: number;
  notes: string[];
}

/** The traits of `ProbePanel`. */
export interface ProbeTraits {
  data: ProbeData;
}
