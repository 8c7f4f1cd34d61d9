import { describe, expect, it } from 'vitest';
import { bytes, decode, maxError } from '../src/lib/buffers';
import { indexTable, lutIndex } from '../src/lib/colors';
import { cellAt, matrixCell, moveCursor } from '../src/lib/geometry';
import { anyInk, paintMatrix, paintStrip, PAD_RGB, poolMax, poolPad } from '../src/lib/paint';
import { fmt, showToken } from '../src/lib/dom';

const grey = new Uint8Array(768).map((_, i) => Math.floor(i / 3)); // LUT row r = (r, r, r)

describe('buffers', () => {
  it('honours the byte offset of a DataView slice', () => {
    const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
    const view = new DataView(backing.buffer, 2, 3);
    expect(Array.from(bytes(view))).toEqual([1, 2, 3]);
    expect(bytes(null).length).toBe(0);
  });
  it('decodes codes within the stated error', () => {
    const scale = 0.8;
    for (const w of [0, 0.001, 0.3141, 0.8]) {
      const code = Math.round((w / scale) * 255);
      expect(Math.abs(decode(code, scale) - w)).toBeLessThanOrEqual(maxError(scale) + 1e-12);
    }
  });
});

describe('colours', () => {
  it('maps codes linearly or through a square root', () => {
    expect(lutIndex(64, 'linear')).toBe(64);
    expect(lutIndex(64, 'sqrt')).toBe(Math.round(Math.sqrt(64 / 255) * 255));
    expect(Array.from(indexTable('linear').slice(0, 3))).toEqual([0, 1, 2]);
    expect(indexTable('sqrt')[255]).toBe(255);
  });
});

describe('painting', () => {
  const index = indexTable('linear');
  it('colours each cell from the lookup table', () => {
    const px = paintMatrix(new Uint8Array([0, 255, 128, 7]), 2, { lut: grey, index });
    expect(Array.from(px.slice(0, 4))).toEqual([0, 0, 0, 255]);
    expect(Array.from(px.slice(4, 8))).toEqual([255, 255, 255, 255]);
    expect(px[8]).toBe(128);
  });
  it('leaves the causal upper triangle transparent and greys padding', () => {
    const px = paintMatrix(new Uint8Array(9).fill(200), 3, {
      lut: grey,
      index,
      causal: true,
      pad: new Uint8Array([0, 0, 1])
    });
    const alpha = (q: number, k: number) => px[(q * 3 + k) * 4 + 3];
    expect(alpha(0, 1)).toBe(0);
    expect(alpha(1, 0)).toBe(255);
    expect(Array.from(px.slice((2 * 3 + 0) * 4, (2 * 3 + 0) * 4 + 3))).toEqual(PAD_RGB);
    expect(anyInk(px)).toBe(true);
    expect(anyInk(new Uint8ClampedArray(8))).toBe(false);
  });
  it('rescales detail codes to the shared colour range', () => {
    const px = paintMatrix(new Uint8Array([255]), 1, { lut: grey, index, codeScale: 0.5 });
    expect(px[0]).toBe(128);
  });
  it('pools a long row by maxima so a single peak survives', () => {
    const row = new Uint8Array(512);
    row[301] = 250;
    const pooled = poolMax(row, 40);
    expect(pooled.length).toBe(40);
    expect(Math.max(...pooled)).toBe(250);
    expect(poolMax(new Uint8Array([1, 2]), 40).length).toBe(2);
    const pad = new Uint8Array(512);
    pad.fill(1, 400);
    const pp = poolPad(pad, 40);
    expect(pp[39]).toBe(1);
    expect(pp[0]).toBe(0);
  });
  it('paints one attention row as a strip', () => {
    const px = paintStrip(new Uint8Array([10, 20]), {
      lut: grey,
      index,
      pad: new Uint8Array([0, 1])
    });
    expect(px[0]).toBe(10);
    expect(px[4]).toBe(PAD_RGB[0]);
  });
});

describe('geometry', () => {
  const grid = { rows: 2, cols: 3, cell: 43, gap: 3 };
  it('finds the cell under the pointer and ignores gaps', () => {
    expect(cellAt(grid, 0, 0)).toEqual([0, 0]);
    expect(cellAt(grid, 43 + 5, 43 + 5)).toEqual([1, 1]);
    expect(cellAt(grid, 41, 5)).toBeNull(); // in the gap after column 0
    expect(cellAt(grid, 3 * 43 + 1, 0)).toBeNull();
    expect(cellAt(grid, -1, 0)).toBeNull();
  });
  it('sizes matrix cells and moves a clamped cursor', () => {
    expect(matrixCell(512, 480)).toBe(1);
    expect(matrixCell(11, 480)).toBe(43);
    expect(moveCursor([0, 0], 'ArrowUp', 3, 3)).toEqual([0, 0]);
    expect(moveCursor([0, 0], 'ArrowDown', 3, 3)).toEqual([1, 0]);
    expect(moveCursor([1, 1], 'End', 3, 4)).toEqual([1, 3]);
    expect(moveCursor([1, 1], 'x', 3, 3)).toBeNull();
  });
});

describe('text', () => {
  it('shows whitespace and truncates long tokens', () => {
    expect(showToken(' the')).toBe('·the');
    expect(showToken('a\nb')).toBe('a⏎b');
    expect(showToken('x'.repeat(30), 10)).toBe('x'.repeat(9) + '…');
  });
  it('formats weights', () => {
    expect(fmt(0)).toBe('0');
    expect(fmt(0.123456)).toBe('0.1235');
    expect(fmt(0.00001234)).toBe('1.23e-5');
  });
});

import { shorten } from '../src/probes';

describe('layer labels', () => {
  it('drop their common dotted prefix', () => {
    expect(shorten(['resid_post.0', 'resid_post.1', 'resid_post.10'])).toEqual({
      prefix: 'resid_post.',
      short: ['0', '1', '10']
    });
    expect(shorten(['a.x', 'b.y'])).toEqual({ prefix: '', short: ['a.x', 'b.y'] });
    expect(shorten(['only']).short).toEqual(['only']);
  });
});
