// The lens view's pure parts: reading the bytes LensView sends (the same values
// tests/test_lens_widget.py packs), the layout of 33 layers x 512 positions at notebook widths
// (fits, labels thinned never dropped, hit-testing equal to painting), the pixels of the grid,
// the rank chart's log axis and the legend's ticks.
import { describe, expect, it } from 'vitest';
import {
  codeRange,
  positionOf,
  rangeText,
  trajectoryOf,
  uint16s,
  unpackCodes
} from '../src/lens/decode';
import { cellAt, colLeft, fitCell, layout, MAX_CELL, rowTop, thinned } from '../src/lens/layout';
import { legendTicks } from '../src/lens/legend';
import { fitText, gridPixels, inkOn, levelRgb } from '../src/lens/paint';
import { rankChart, rankLabel, rankTicks } from '../src/lens/trajectory';
import { contrastRatio } from '../src/lib/contrast';

describe('decoding', () => {
  it('unpacks the 4-bit codes Python packs, high nibble first', () => {
    // prob_codes([0, 1e-9, 0.0624, 0.0625, 0.5, 0.93751, 0.999, 1, 0.3]) in Python
    const packed = new Uint8Array([0x00, 0x01, 0x8f, 0xff, 0x40]);
    expect([...unpackCodes(packed, 9)]).toEqual([0, 0, 0, 1, 8, 15, 15, 15, 4]);
    expect(codeRange(8, 16)).toEqual([0.5, 0.5625]);
    expect(rangeText(15, 16)).toBe('0.94–1.00');
    expect(rangeText(0, 16)).toBe('0.00–0.06');
  });

  it('reads uint16 indices and float32 trajectories at any byte offset', () => {
    const buf = new Uint8Array([9, 0x34, 0x12, 0xff, 0x00]);
    expect([...uint16s(new DataView(buf.buffer, 1, 4))]).toEqual([0x1234, 0x00ff]);
    const f = new Float32Array([0.1, 0.2, 0.9, 43, 39, 0]);
    const t = trajectoryOf(new DataView(f.buffer), 3)!;
    expect([...t.rank]).toEqual([43, 39, 0]);
    expect(t.prob[2]).toBeCloseTo(0.9);
    expect(trajectoryOf(new DataView(new ArrayBuffer(0)), 3)).toBeNull();
  });

  it('gives a column its absolute position', () => {
    expect(positionOf({ position_start: 10, positions: null }, 3)).toBe(13);
    expect(positionOf({ position_start: null, positions: [2, 5, 9] }, 1)).toBe(5);
  });
});

const labels512 = Array.from({ length: 512 }, (_, i) => 6.2 * `${i} 12345`.length);

describe('layout', () => {
  it('fits 33 layers x 512 positions at notebook widths without a scroll', () => {
    for (const width of [1250, 950, 700]) {
      const l = layout({
        width,
        rows: 33,
        cols: 512,
        rowLabelWidth: 30,
        colLabelWidths: labels512,
        line: 14,
        text: false
      });
      expect(l.scroll).toBe(false);
      expect(l.plotWidth).toBeLessThanOrEqual(width);
      expect(l.gridW).toBe(Math.round(l.cellW * 512));
      expect(l.colShown[l.colShown.length - 1]).toBe(511); // the last position keeps its label
      expect(l.colShown[0]).toBe(0);
      expect(l.rowShown).toContain(32); // the last layer
      expect(l.rowShown).toContain(0); // the embeddings
      // rotated labels are spaced at least a line apart along the axis
      const gaps = l.colShown.slice(1).map((c, i) => colLeft(l, c) - colLeft(l, l.colShown[i]));
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(14 / Math.sin(Math.PI / 3));
      // the pointer finds the column painted under it, the last layer on top
      for (const c of [0, 1, 255, 510, 511]) {
        const x = (colLeft(l, c) + colLeft(l, c + 1)) / 2;
        expect(cellAt(l, x, 1)).toEqual([32, c]);
        expect(cellAt(l, x, l.gridH - 1)).toEqual([0, c]);
      }
      expect(cellAt(l, l.gridW, 1)).toBeNull();
    }
  });

  it('scrolls only when a column would get less than a pixel', () => {
    const l = layout({
      width: 900,
      rows: 13,
      cols: 2048,
      rowLabelWidth: 30,
      colLabelWidths: Array(2048).fill(40),
      line: 14,
      text: false
    });
    expect(l.scroll).toBe(true);
    expect(l.cellW).toBe(1);
    expect(fitCell(600, 512)).toBeCloseTo(600 / 512);
    expect(fitCell(3000, 32)).toBe(MAX_CELL);
    expect(fitCell(1000, 32)).toBe(31);
  });

  it('writes tokens in cells only when they are wide enough, in taller rows', () => {
    const at = (width: number) =>
      layout({
        width,
        rows: 3,
        cols: 32,
        rowLabelWidth: 30,
        colLabelWidths: Array(32).fill(30),
        line: 14,
        text: true
      });
    expect(at(1100).text).toBe(true);
    expect(at(1100).cellH).toBeGreaterThanOrEqual(18);
    expect(at(400).text).toBe(false);
    expect(rowTop(at(1100), 2)).toBe(0); // the last layer is the top row
  });

  it('thins labels without dropping the last one', () => {
    expect(thinned(10, 3)).toEqual([0, 3, 6, 9]);
    expect(thinned(11, 3)).toEqual([0, 3, 6, 10]);
    expect(thinned(4, 1)).toEqual([0, 1, 2, 3]);
  });
});

describe('painting', () => {
  const lut = new Uint8Array(16 * 3).map((_, i) => 255 - Math.floor(i / 3) * 16);

  it('paints each cell in its step colour, the embeddings at the bottom, padding grey', () => {
    const l = layout({
      width: 200,
      rows: 2,
      cols: 3,
      rowLabelWidth: 10,
      colLabelWidths: [10, 10, 10],
      line: 14,
      text: false
    });
    const codes = new Uint8Array([0, 5, 15, 9, 3, 1]); // row 0 (embed), then row 1
    const pad = new Uint8Array([0, 0, 1]);
    const px = gridPixels({ codes, lut, pad, padRgb: [170, 170, 170], text: null, font: '' }, l);
    const at = (x: number, y: number): number[] => [
      ...px.slice((y * l.gridW + x) * 4, (y * l.gridW + x) * 4 + 3)
    ];
    const mid = (c: number): number => Math.floor((colLeft(l, c) + colLeft(l, c + 1)) / 2);
    expect(at(mid(0), 1)).toEqual(levelRgb(lut, 9)); // top row = layer 1
    expect(at(mid(1), l.gridH - 1)).toEqual(levelRgb(lut, 5)); // bottom row = embeddings
    expect(at(mid(2), 1)).toEqual([170, 170, 170]);
    expect(px[3]).toBe(255);
  });

  it('writes text that contrasts with its cell, cut to fit', () => {
    for (let code = 0; code < 16; code++) {
      const bg = levelRgb(lut, code);
      expect(contrastRatio(inkOn(bg), bg)).toBeGreaterThanOrEqual(4.5);
    }
    const measure = (s: string): number => s.length * 6;
    expect(fitText('the', 20, measure)).toBe('the');
    expect(fitText('elephant', 20, measure)).toBe('el…');
    expect(fitText('elephant', 12, measure)).toBe('');
  });
});

describe('rank chart and legend', () => {
  it('puts rank 1 on top of a decade log axis', () => {
    expect(rankTicks(0)).toEqual([1, 10]);
    expect(rankTicks(43)).toEqual([1, 10, 100]);
    expect(rankTicks(50256)).toEqual([1, 10, 100, 1000, 10000, 100000]);
    expect([1, 1000, 10000, 1e6].map(rankLabel)).toEqual(['1', '1000', '10k', '1M']);
    const labels = ['embed', 'L0', 'L1'];
    const c = rankChart(labels, new Float32Array([43, 39, 0]), 400, s => s.length * 6);
    expect(c.ticks).toEqual([1, 10, 100]);
    expect(c.y(0)).toBe(c.frame.y0);
    expect(c.y(99)).toBeCloseTo(c.frame.y1);
    expect(c.y(9)).toBeCloseTo((c.frame.y0 + c.frame.y1) / 2);
    expect(c.hit(c.x(1) + 3)).toBe(1);
    expect(c.shown).toEqual([true, true, true]);
    const many = Array.from({ length: 33 }, (_, i) => (i ? `L${i - 1}` : 'embed'));
    const crowded = rankChart(many, new Float32Array(33), 300, s => s.length * 6);
    expect(crowded.shown[32]).toBe(true);
    expect(crowded.shown.filter(Boolean).length).toBeLessThan(33);
  });

  it('ticks the legend on step edges', () => {
    expect(legendTicks(16)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    for (const t of legendTicks(16)) expect((t * 16) % 1).toBe(0);
  });
});
