// The heatmap's layout and colour scale as pure functions: it fits the width it is given, labels
// never overlap and the last column keeps its label, rotation only when it shows more labels,
// round legend ticks (the same table tests/test_patching_widget.py checks on the Python side).
import { describe, expect, it } from 'vitest';
import { cellAt, layout, MAX_CELL, MIN_ROW, thinned } from '../src/patching/layout';
import {
  cellDecimals,
  cellText,
  clipped,
  fullValue,
  legendTicks,
  scaleLimit,
  tickLabels
} from '../src/patching/scale';
import { niceLimit } from '../src/lib/ticks';
import { widthTracker } from '../src/patching/resize';

const tokenLabels = Array.from({ length: 32 }, (_, i) => 6.6 * `${i} tok`.length);

describe('layout', () => {
  it('fits 32 positions into the width, cells shrinking', () => {
    for (const width of [1000, 700, 520, 400]) {
      const l = layout({
        width,
        rows: 2,
        cols: 32,
        rowLabelWidth: 8,
        colLabelWidths: tokenLabels,
        line: 14
      });
      expect(l.scroll).toBe(false);
      expect(l.plotWidth).toBeLessThanOrEqual(width);
      expect(l.gridW).toBe(l.cellW * 32);
      expect(l.cellW).toBeLessThanOrEqual(MAX_CELL);
      expect(l.colShown[l.colShown.length - 1]).toBe(31); // the decisive last position
      expect(l.cellH).toBeGreaterThanOrEqual(Math.max(l.cellW, MIN_ROW));
    }
  });

  it('rotates only when that shows more labels, and never overlaps them', () => {
    const digits = layout({
      width: 600,
      rows: 6,
      cols: 8,
      rowLabelWidth: 8,
      colLabelWidths: Array(8).fill(7),
      line: 14
    });
    expect(digits.rotated).toBe(false);
    expect(digits.colShown).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(digits.colBand).toBeLessThan(24); // no tall empty band for single digits
    const tokens = layout({
      width: 520,
      rows: 2,
      cols: 32,
      rowLabelWidth: 8,
      colLabelWidths: tokenLabels,
      line: 14
    });
    expect(tokens.rotated).toBe(true);
    const gaps = tokens.colShown.slice(1).map((c, i) => (c - tokens.colShown[i]) * tokens.cellW);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(14 / Math.sin(Math.PI / 3));
    // rotated labels run down-left from their column: the gutter makes room for the first
    const firstReach = tokenLabels[0] * 0.5 + 14 * Math.sin(Math.PI / 3);
    expect(tokens.left + tokens.cellW / 2).toBeGreaterThanOrEqual(firstReach - 1e-9);
  });

  it('keeps the grid and titles close: no empty band above, rows thinned when short', () => {
    const l = layout({
      width: 800,
      rows: 40,
      cols: 300,
      rowLabelWidth: 14,
      colLabelWidths: Array(300).fill(20),
      line: 14
    });
    expect(l.top).toBeLessThanOrEqual(4);
    expect(l.cellH).toBe(MIN_ROW);
    const rowGaps = l.rowShown.slice(1).map((r, i) => (r - l.rowShown[i]) * l.cellH);
    expect(Math.min(...rowGaps)).toBeGreaterThanOrEqual(14);
    expect(l.rowShown[l.rowShown.length - 1]).toBe(39);
  });

  it('scrolls inside the plot only when even 2-px cells do not fit', () => {
    const l = layout({
      width: 300,
      rows: 2,
      cols: 400,
      rowLabelWidth: 8,
      colLabelWidths: Array(400).fill(20),
      line: 14
    });
    expect(l.scroll).toBe(true);
    expect(l.cellW).toBe(2);
  });

  it('hit-tests cells that are not square', () => {
    const l = layout({
      width: 500,
      rows: 3,
      cols: 100,
      rowLabelWidth: 8,
      colLabelWidths: Array(100).fill(20),
      line: 14
    });
    expect(l.cellH).toBeGreaterThan(l.cellW);
    expect(cellAt(l, 3, 100, l.cellW * 7 + 1, l.cellH * 2 + 1)).toEqual([2, 7]);
    expect(cellAt(l, 3, 100, 1, l.cellH * 3 + 1)).toBeNull();
    expect(cellAt(l, 3, 100, -1, 1)).toBeNull();
  });

  it('thins labels by a step and keeps the last', () => {
    expect(thinned(32, 3)).toEqual([0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 31]);
    expect(thinned(4, 1)).toEqual([0, 1, 2, 3]);
    expect(thinned(0, 2)).toEqual([]);
  });
});

describe('colour scale', () => {
  // the same table as LIMITS, TICKS and CELLS in tests/test_patching_widget.py
  it('picks the round limits the PNG picks', () => {
    const table: [number, number][] = [
      [0.546, 0.6],
      [0.092, 0.1],
      [0.16, 0.2],
      [2.95, 3],
      [3.58, 4],
      [12.3, 15]
    ];
    for (const [vmax, limit] of table) expect(niceLimit(vmax)).toBeCloseTo(limit, 12);
  });

  it('puts round ticks on the legend, both ends labelled when a round step reaches them', () => {
    expect(legendTicks(-1, 1)).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(legendTicks(-0.6, 0.6)).toEqual([-0.6, -0.4, -0.2, 0, 0.2, 0.4, 0.6]);
    expect(legendTicks(-4, 4)).toEqual([-4, -2, 0, 2, 4]);
    expect(legendTicks(-17.23, 5.52)).toEqual([-15, -10, -5, 0, 5]);
    expect(tickLabels([-1, -0.5, 0, 0.5, 1], 1)).toEqual(['−1.0', '−0.5', '0', '0.5', '1.0']);
  });

  it('uses the sent scale, the same for every head and for the raw view', () => {
    const scale = { mode: 'shared' as const, limits: [1, 1, 1], raw_factor: 11.37, note: '' };
    const faint = [0.01, -0.09];
    const strong = [0.16, -0.02];
    expect(scaleLimit(scale, 0, false, faint)).toBe(1);
    expect(scaleLimit(scale, 2, false, strong)).toBe(1);
    expect(scaleLimit(scale, 1, true, faint)).toBeCloseTo(11.37);
    // a widget saved without a scale falls back to its own plane's round limit
    expect(scaleLimit(undefined, 0, false, [0.546, -0.2])).toBeCloseTo(0.6);
  });

  it('writes cell numbers to the precision of the scale, never noise digits', () => {
    expect(cellDecimals(1)).toBe(2);
    expect(cellText(-3.06e-5, cellDecimals(1))).toBe('0');
    expect(cellText(0.5, cellDecimals(1))).toBe('0.50');
    expect(cellText(-0.153, cellDecimals(0.2))).toBe('−0.153');
    expect(cellText(31.24, cellDecimals(50))).toBe('31.2');
    expect(fullValue(-3.06e-5)).toBe('−3.060e-5');
    expect(fullValue(5.516598)).toBe('5.5166');
  });

  it('counts values beyond the scale, ignoring float noise at its ends', () => {
    expect(clipped([1.00005, 0.5, -1.6, 2.2], 0, 1)).toEqual({ count: 2, max: 2.2 });
  });
});

describe('resizing', () => {
  it('settles on the narrower width when a relayout makes the width bounce', () => {
    const root = { clientWidth: 700 };
    const width = widthTracker(root as HTMLElement);
    expect(width()).toBe(700);
    root.clientWidth = 685; // the relayout showed the page's scrollbar
    expect(width()).toBe(685);
    root.clientWidth = 700; // ... which went away again: stay at the width that fits both
    expect(width()).toBe(685);
    root.clientWidth = 500; // a real resize is followed
    expect(width()).toBe(500);
  });
});
