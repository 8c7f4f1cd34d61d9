// Hit-testing: from a pointer position over a canvas to the cell under it.

export interface Grid {
  rows: number;
  cols: number;
  cell: number; // CSS pixels per cell, including the gap
  gap: number; // CSS pixels between cells (not part of any cell)
}

/** Return [row, col] of the cell at CSS offset (x, y), or null over a gap or outside. */
export function cellAt(grid: Grid, x: number, y: number): [number, number] | null {
  if (x < 0 || y < 0) return null;
  const col = Math.floor(x / grid.cell);
  const row = Math.floor(y / grid.cell);
  if (row >= grid.rows || col >= grid.cols) return null;
  if (grid.gap > 0) {
    const inX = x - col * grid.cell;
    const inY = y - row * grid.cell;
    if (inX >= grid.cell - grid.gap || inY >= grid.cell - grid.gap) return null;
  }
  return [row, col];
}

/** Return the CSS pixel size of one matrix cell when an n x n matrix is shown about `target` wide. */
export function matrixCell(n: number, target: number): number {
  return Math.max(1, Math.floor(target / n));
}

/** Move a [row, col] cursor by an arrow key, clamped to the grid. */
export function moveCursor(
  cursor: [number, number],
  key: string,
  rows: number,
  cols: number
): [number, number] | null {
  const [r, c] = cursor;
  const moves: Record<string, [number, number]> = {
    ArrowUp: [r - 1, c],
    ArrowDown: [r + 1, c],
    ArrowLeft: [r, c - 1],
    ArrowRight: [r, c + 1],
    Home: [r, 0],
    End: [r, cols - 1]
  };
  const next = moves[key];
  if (!next) return null;
  return [Math.max(0, Math.min(rows - 1, next[0])), Math.max(0, Math.min(cols - 1, next[1]))];
}
