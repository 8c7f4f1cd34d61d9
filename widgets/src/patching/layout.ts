// Where everything of a heatmap goes, for the width the output area gives it: the cell size
// (cells shrink to fit, up to a comfortable maximum), which row and column labels are shown
// (thinned so they never overlap, the last column always among them), whether column labels
// lie flat or are rotated (only when rotating lets more of them show), and the gutters the
// labels and axis titles need. Pure arithmetic on measured text widths, tested without a browser.

export interface LayoutInput {
  width: number; // CSS pixels available (the output area's width)
  rows: number;
  cols: number;
  rowLabelWidth: number; // the widest row label, px
  colLabelWidths: number[]; // each column label's width, px (empty: no column axis)
  line: number; // the labels' line height, px
}

export interface Layout {
  cellW: number; // CSS pixels per cell, across
  cellH: number; // and down
  gridW: number;
  gridH: number;
  left: number; // x of the grid: the y-axis title and row labels are left of it
  top: number; // y of the grid
  rowShown: number[]; // the rows that get a label
  colShown: number[]; // the columns that get a label
  rotated: boolean; // column labels at -60 degrees (else flat)
  colBand: number; // height of the column labels under the grid
  xTitleY: number; // y of the x-axis title's top
  height: number; // the plot's height, titles included
  plotWidth: number; // the plot's width (never more than the width given, unless it scrolls)
  scroll: boolean; // even the smallest cells do not fit: the plot scrolls inside itself
}

export const MAX_CELL = 44; // px: big enough for a number, small enough for a 12 x 12 grid
export const MIN_CELL = 2; // px: below this a cell is not a visible mark
export const MIN_ROW = 10; // px: rows get at least this tall when cells are narrower
export const TITLE = 16; // px: the line of an axis title
export const TOP = 4; // px above the grid
const GAP = 4; // px between labels and the grid
const ANGLE = Math.PI / 3; // rotated labels at 60 degrees
const FLAT_PAD = 6; // px between flat labels

/** Return every `every`-th index of `n`, the last one always among them (it replaces the
 * label before it, so spacing never gets tighter than `every`). The last position is often
 * the decisive one (where the answer is read): it must never be thinned away. */
export function thinned(n: number, every: number): number[] {
  const out: number[] = [];
  const step = Math.max(1, Math.floor(every));
  for (let i = 0; i < n; i += step) out.push(i);
  if (out.length && out[out.length - 1] !== n - 1) out[out.length - 1] = n - 1;
  return out;
}

/** Return the horizontal room (px) a rotated label of width `w` takes left of its anchor. */
function rotatedReach(w: number, line: number): number {
  return w * Math.cos(ANGLE) + line * Math.sin(ANGLE);
}

/** Return how the column labels go at cell width `cellW`: flat or rotated, which are shown. */
function columnLabels(
  widths: number[],
  cellW: number,
  line: number
): { rotated: boolean; shown: number[]; band: number } {
  const n = widths.length;
  if (n === 0) return { rotated: false, shown: [], band: 0 };
  const widest = Math.max(...widths);
  const flatEvery = Math.ceil((widest + FLAT_PAD) / cellW);
  const rotEvery = Math.ceil((line / Math.sin(ANGLE) + 2) / cellW);
  // Rotate only when that shows more labels: single digits under wide cells stay flat.
  const rotated = rotEvery < flatEvery;
  const shown = thinned(n, rotated ? rotEvery : flatEvery);
  const tallest = Math.max(...shown.map(i => widths[i]));
  const band = rotated ? tallest * Math.sin(ANGLE) + line * Math.cos(ANGLE) + GAP : line + GAP;
  return { rotated, shown, band: Math.ceil(band) };
}

/** Return the cell width that fits `cols` columns into `room` px (0 when even MIN_CELL does not). */
function fitCell(room: number, cols: number): number {
  const w = Math.floor(room / Math.max(cols, 1));
  return w >= MIN_CELL ? Math.min(MAX_CELL, w) : 0;
}

/** Return the layout of a rows x cols heatmap in `input.width` px. */
export function layout(input: LayoutInput): Layout {
  const { width, rows, cols, rowLabelWidth, colLabelWidths, line } = input;
  const labelsLeft = TITLE + rowLabelWidth + GAP;
  let left = labelsLeft;
  let cellW = 0;
  let labels = columnLabels(colLabelWidths, MAX_CELL, line);
  let right = 0;
  // Two passes: the labels' reach past the grid's edges depends on the cell size, which
  // depends on the room the reach leaves.
  for (let pass = 0; pass < 3; pass++) {
    cellW = fitCell(width - left - right, cols);
    if (cellW === 0) break;
    labels = columnLabels(colLabelWidths, cellW, line);
    const reach = reachOf(labels, colLabelWidths, cellW, line);
    const nextLeft = Math.max(labelsLeft, Math.ceil(reach.left));
    const nextRight = Math.ceil(reach.right);
    if (nextLeft === left && nextRight === right) break;
    left = nextLeft;
    right = nextRight;
  }
  const scroll = cellW === 0;
  if (scroll) {
    cellW = MIN_CELL;
    labels = columnLabels(colLabelWidths, cellW, line);
  }
  const cellH = Math.max(cellW, Math.min(MIN_ROW, MAX_CELL));
  const gridW = cellW * cols;
  const gridH = cellH * rows;
  const rowShown = thinned(rows, Math.ceil(line / cellH));
  const xTitleY = TOP + gridH + labels.band + (labels.shown.length ? 0 : GAP);
  const hasXTitle = colLabelWidths.length > 0;
  return {
    cellW,
    cellH,
    gridW,
    gridH,
    left,
    top: TOP,
    rowShown,
    colShown: labels.shown,
    rotated: labels.rotated,
    colBand: labels.band,
    xTitleY,
    height: xTitleY + (hasXTitle ? TITLE + GAP : 0),
    plotWidth: left + gridW + right,
    scroll
  };
}

/** Return how far the shown column labels reach left of the grid and right of it, px. */
function reachOf(
  labels: { rotated: boolean; shown: number[] },
  widths: number[],
  cellW: number,
  line: number
): { left: number; right: number } {
  let left = 0;
  let right = 0;
  const n = widths.length;
  for (const i of labels.shown) {
    const centre = i * cellW + cellW / 2;
    if (labels.rotated) {
      // A rotated label ends at its column's centre and runs down to the left.
      left = Math.max(left, rotatedReach(widths[i], line) - centre);
    } else {
      left = Math.max(left, widths[i] / 2 - centre);
      right = Math.max(right, centre + widths[i] / 2 - n * cellW);
    }
  }
  return { left, right };
}

/** Return [row, col] under CSS offset (x, y) from the grid's top-left corner, or null. */
export function cellAt(l: Layout, rows: number, cols: number, x: number, y: number) {
  if (x < 0 || y < 0) return null;
  const c = Math.floor(x / l.cellW);
  const r = Math.floor(y / l.cellH);
  if (r >= rows || c >= cols) return null;
  return [r, c] as [number, number];
}
