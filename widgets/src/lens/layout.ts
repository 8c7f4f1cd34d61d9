// Where the lens grid's parts go for the width the output area gives it: the column width
// (whole pixels when there is room, else fractional so that hundreds of positions still fit
// without a scroll; a scroll only below one pixel a column), the row height (taller when
// top-1 tokens are written in the cells), which row and column labels are shown (thinned so
// they never overlap, the last layer and the last position always among them), flat or rotated
// column labels, and the gutters for labels and titles. The embeddings are the bottom row, the
// last layer the top one, as in the static PNG. Pure arithmetic, tested without a browser.

export interface LayoutInput {
  width: number; // CSS pixels available
  rows: number; // layers (residual streams)
  cols: number; // positions
  rowLabelWidth: number; // the widest row label, px
  colLabelWidths: number[]; // each column label's width, px
  line: number; // the labels' line height, px
  text: boolean; // the top-1 token of each cell is at hand (to write when cells are wide)
}

export interface Layout {
  rows: number;
  cols: number;
  cellW: number; // CSS px per column (fractional when many columns share the width)
  cellH: number; // CSS px per row
  gridW: number; // whole CSS px
  gridH: number;
  left: number; // x of the grid
  top: number; // y of the grid
  rowShown: number[]; // layer rows that get a label
  colShown: number[]; // columns that get a label
  rotated: boolean; // column labels at -60 degrees
  colBand: number; // height of the column labels under the grid
  xTitleY: number;
  height: number; // the plot's height, titles included
  plotWidth: number;
  scroll: boolean; // even 1-px columns do not fit: the plot scrolls inside itself
  text: boolean; // top-1 tokens are written in the cells
}

export const MAX_CELL = 56; // px: room for a token such as " the" at 11 px
export const MIN_TEXT_CELL = 14; // px: narrower cells get no text (wider: what fits, paint.ts)
export const TEXT_ROW = 18; // px: rows with text
export const MIN_ROW = 6; // px
export const MAX_ROW = 22; // px
export const GRID_HEIGHT = 480; // px the rows share when there are many
export const TITLE = 16; // px: the line of an axis title
export const TOP = 4;
const GAP = 4;
const ANGLE = Math.PI / 3;
const FLAT_PAD = 6;

/** Return every `every`-th index of `n`, the last always among them (it replaces the one
 * before it, so labels never get closer than `every`): the last layer and the last position
 * are where a lens is read. */
export function thinned(n: number, every: number): number[] {
  const out: number[] = [];
  const step = Math.max(1, Math.ceil(every));
  for (let i = 0; i < n; i += step) out.push(i);
  if (out.length && out[out.length - 1] !== n - 1) out[out.length - 1] = n - 1;
  return out;
}

/** Return the column width for `cols` columns in `room` px: whole pixels up to MAX_CELL,
 * fractional between 1 and 4 px (every pixel used), 0 when even 1 px does not fit. */
export function fitCell(room: number, cols: number): number {
  const w = room / Math.max(1, cols);
  if (w >= MAX_CELL) return MAX_CELL;
  if (w >= 4) return Math.floor(w);
  if (w >= 1) return Math.floor(room) / cols;
  return 0;
}

/** Return the row height: taller with text, else `GRID_HEIGHT` shared, within bounds. */
export function rowHeight(rows: number, text: boolean): number {
  const h = Math.max(MIN_ROW, Math.min(MAX_ROW, Math.floor(GRID_HEIGHT / Math.max(1, rows))));
  return text ? Math.max(TEXT_ROW, h) : h;
}

function columnLabels(widths: number[], cellW: number, line: number) {
  if (widths.length === 0) return { rotated: false, shown: [] as number[], band: 0 };
  const widest = Math.max(...widths);
  const flatEvery = Math.ceil((widest + FLAT_PAD) / cellW);
  const rotEvery = Math.ceil((line / Math.sin(ANGLE) + 2) / cellW);
  const rotated = rotEvery < flatEvery; // rotate only when that shows more labels
  const shown = thinned(widths.length, rotated ? rotEvery : flatEvery);
  const tallest = Math.max(...shown.map(i => widths[i]));
  const band = rotated ? tallest * Math.sin(ANGLE) + line * Math.cos(ANGLE) + GAP : line + GAP;
  return { rotated, shown, band: Math.ceil(band) };
}

/** Return how far the shown column labels reach left and right of the grid, px. */
function reachOf(
  labels: { rotated: boolean; shown: number[] },
  widths: number[],
  cellW: number,
  line: number
): { left: number; right: number } {
  let left = 0;
  let right = 0;
  const gridW = widths.length * cellW;
  for (const i of labels.shown) {
    const centre = i * cellW + cellW / 2;
    if (labels.rotated) {
      // a rotated label ends under its column and runs down to the left; half its line
      // height sticks out to the right of its anchor
      left = Math.max(left, widths[i] * Math.cos(ANGLE) + line * Math.sin(ANGLE) - centre);
      right = Math.max(right, centre + (line / 2) * Math.sin(ANGLE) - gridW);
    } else {
      left = Math.max(left, widths[i] / 2 - centre);
      right = Math.max(right, centre + widths[i] / 2 - gridW);
    }
  }
  return { left, right };
}

/** Return the layout of a rows x cols lens grid in `input.width` px. */
export function layout(input: LayoutInput): Layout {
  const { width, rows, cols, rowLabelWidth, colLabelWidths, line } = input;
  const labelsLeft = TITLE + rowLabelWidth + GAP;
  let left = labelsLeft;
  let right = 2;
  let cellW = 0;
  let labels = columnLabels(colLabelWidths, MAX_CELL, line);
  // The labels' reach past the grid's edges depends on the cell size, and the cell size on
  // the room that reach leaves: a few passes settle it.
  for (let pass = 0; pass < 3; pass++) {
    cellW = fitCell(width - left - right, cols);
    if (cellW === 0) break;
    labels = columnLabels(colLabelWidths, cellW, line);
    const reach = reachOf(labels, colLabelWidths, cellW, line);
    const nextLeft = Math.max(labelsLeft, Math.ceil(reach.left));
    const nextRight = Math.max(2, Math.ceil(reach.right));
    if (nextLeft === left && nextRight === right) break;
    left = nextLeft;
    right = nextRight;
  }
  const scroll = cellW === 0;
  if (scroll) {
    cellW = 1;
    labels = columnLabels(colLabelWidths, cellW, line);
  }
  const text = input.text && cellW >= MIN_TEXT_CELL;
  const cellH = rowHeight(rows, text);
  const gridW = Math.round(cellW * cols);
  const gridH = cellH * rows;
  const xTitleY = TOP + gridH + labels.band + (labels.shown.length ? 0 : GAP);
  return {
    rows,
    cols,
    cellW,
    cellH,
    gridW,
    gridH,
    left,
    top: TOP,
    rowShown: thinned(rows, line / cellH),
    colShown: labels.shown,
    rotated: labels.rotated,
    colBand: labels.band,
    xTitleY,
    height: xTitleY + TITLE + GAP,
    plotWidth: left + gridW + right,
    scroll,
    text
  };
}

/** Return the y (px from the grid's top) of layer row `r`: the embeddings at the bottom. */
export function rowTop(l: Layout, r: number): number {
  return (l.rows - 1 - r) * l.cellH;
}

/** Return the x (px from the grid's left) where column `c` starts. */
export function colLeft(l: Layout, c: number): number {
  return Math.round(c * l.cellW);
}

/** Return the [layer row, column] under (x, y) px from the grid's corner, or null. */
export function cellAt(l: Layout, x: number, y: number): [number, number] | null {
  if (x < 0 || y < 0 || x >= l.gridW || y >= l.gridH) return null;
  const c = Math.min(l.cols - 1, Math.floor(x / l.cellW));
  const r = l.rows - 1 - Math.floor(y / l.cellH);
  return r >= 0 ? [r, c] : null;
}
