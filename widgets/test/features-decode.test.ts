// The feature dashboard's pure parts: reading the bytes FeatureDashboard sends (a detail packed
// by interp_magics/widgets/features.py, pinned here as bytes), the list's order and search, the
// rows to draw for a viewport, the token colours (text contrast at least 4.5:1 on every
// highlight, light and dark) and the histogram's axes.
import { describe, expect, it } from 'vitest';
import {
  activationOf,
  decodeDetail,
  decodeList,
  exampleTokens,
  peakOf,
  splitUtf8,
  uint32s
} from '../src/features/decode';
import { fitAround, tokenColours, tokenLines, tokenText } from '../src/features/examples';
import { histChart } from '../src/features/histogram';
import {
  countText,
  filterOrder,
  fitLabel,
  fmtDensity,
  ROW_H,
  rowRange,
  sortOrder
} from '../src/features/list';
import { fmtSigned } from '../src/features/logits';
import type { FeatureList } from '../src/features/view';
import { contrastRatio, type Rgb } from '../src/lib/contrast';

// pack_detail(feature 3, tokens [["a", " b", "<c>"], ["é"]], activations [[0, 1.5, 3], [2, 0, 0]],
// histogram ([1, 2], [0, 1, 2.5]), promoted [("up", 1)], suppressed [("dn", -0.5)],
// density 0.01, max_activation=3, label="lab") in Python
const PACKED =
  'wQAAAAEAAAB7ImZlYXR1cmUiOjMsImxhYmVsIjoibGFiIiwiayI6Miwid2luZG93IjozLCJsZW5ndGhzIjpbMywxXSwic2NhbGUiOjMuMCwiaW5kZXhfYnl0ZXMiOjIsImJpbnMiOjIsInZvY2FiIjpbImEiLCIgYiIsIjxjPiIsIsOpIl0sInByb21vdGVkIjpbWyJ1cCIsMS4wXV0sInN1cHByZXNzZWQiOltbImRuIiwtMC41XV0sImRlbnNpdHkiOjAuMDF9AAAAAAAAAACA/6oAAAAAAAABAAIAAwAAAAAAAAAAAAAAAAAAAPA/AAAAAAAAAEAAAAAAAAAAAAAAAAAAAPA/AAAAAAAABEA=';

const fromBase64 = (s: string): Uint8Array => Uint8Array.from(atob(s), c => c.charCodeAt(0));

function list(labels: string[], density: number[], max: number[]): FeatureList {
  return {
    n: labels.length,
    labels,
    lower: labels.map(s => s.toLowerCase()),
    density: Float32Array.from(density),
    max: Float32Array.from(max)
  };
}

describe('decoding', () => {
  it('reads the detail Python packs', () => {
    const d = decodeDetail(fromBase64(PACKED));
    expect([d.feature, d.label, d.k, d.window, d.scale]).toEqual([3, 'lab', 2, 3, 3]);
    expect(d.lengths).toEqual([3, 1]);
    expect(d.vocab).toEqual(['a', ' b', '<c>', 'é']);
    expect(exampleTokens(d, 0)).toEqual(['a', ' b', '<c>']);
    expect(exampleTokens(d, 1)).toEqual(['é']); // the padding is left out
    expect([...d.codes]).toEqual([0, 128, 255, 170, 0, 0]);
    expect(activationOf(d, 0, 2)).toBe(3);
    expect(Math.abs(activationOf(d, 0, 1) - 1.5)).toBeLessThanOrEqual(3 / 510);
    expect(Math.abs(activationOf(d, 1, 0) - 2)).toBeLessThanOrEqual(3 / 510);
    expect(peakOf(d, 0)).toBe(2);
    expect([...d.counts]).toEqual([1, 2]);
    expect([...d.edges]).toEqual([0, 1, 2.5]);
    expect(d.promoted).toEqual([['up', 1]]);
    expect(d.suppressed).toEqual([['dn', -0.5]]);
    expect(d.density).toBe(0.01);
  });

  it('reads it at any byte offset, and refuses what is not a detail', () => {
    const bytes = fromBase64(PACKED);
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const d = decodeDetail(new DataView(shifted.buffer, 3, bytes.length));
    expect(exampleTokens(d, 0)).toEqual(['a', ' b', '<c>']);
    expect([...d.edges]).toEqual([0, 1, 2.5]);
    const wrong = bytes.slice();
    wrong[4] = 9;
    expect(() => decodeDetail(wrong)).toThrow('packed detail version 9');
    expect(() => decodeDetail(bytes.slice(0, 200))).toThrow('cut short');
    expect(() => decodeDetail(bytes.slice(0, 260))).toThrow('cut short');
    expect(() => decodeDetail(new Uint8Array(3))).toThrow('at least 8 bytes');
  });

  it('splits joined UTF-8 labels by their byte offsets', () => {
    const enc = new TextEncoder();
    const labels = ['cat', '', 'é<b>', '日本', 'x'];
    const parts = labels.map(s => enc.encode(s));
    const data = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    const offsets = new Uint32Array(labels.length + 1);
    parts.forEach((p, i) => {
      data.set(p, offsets[i]);
      offsets[i + 1] = offsets[i] + p.length;
    });
    expect(splitUtf8(data, offsets)).toEqual(labels);
    expect(splitUtf8(enc.encode('abcd'), new Uint32Array([0, 1, 1, 4]))).toEqual(['a', '', 'bcd']);
    const raw = new Uint8Array([7, 1, 0, 0, 0, 5, 0, 0, 0]);
    expect([...uint32s(new DataView(raw.buffer, 1, 8))]).toEqual([1, 5]);
    const l = decodeList(name => {
      if (name === 'labels') return data;
      if (name === 'label_offsets') return new Uint8Array(offsets.buffer);
      return new Uint8Array(new Float32Array([0.5, 0.25, 0, 1, 2]).buffer);
    });
    expect(l.n).toBe(5);
    expect(l.lower[2]).toBe('é<b>');
    expect([...l.max]).toEqual([0.5, 0.25, 0, 1, 2]);
  });
});

describe('the list', () => {
  const l = list(
    ['alpha', 'x12y', 'Beta', 'gamma', '', 'cat'],
    [0.1, 0.3, NaN, 0.3, 0.001, 0.2],
    [2, 5, 1, 5, NaN, 9]
  );

  it('sorts by the values, largest first, NaN last and ties by index', () => {
    expect([...sortOrder(l, 'max_activation')]).toEqual([5, 1, 3, 0, 2, 4]);
    expect([...sortOrder(l, 'density')]).toEqual([1, 3, 5, 0, 4, 2]);
    expect([...sortOrder(l, 'index')]).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('keeps the features whose index or label holds the search text, in order', () => {
    const big = list(
      Array.from({ length: 200 }, (_, i) => (i === 7 ? 'has 12 inside' : `f${i * 3}`)),
      new Array(200).fill(0.1),
      Array.from({ length: 200 }, (_, i) => i)
    );
    const order = sortOrder(big, 'max_activation');
    const shown = [...filterOrder(order, big, '12')];
    const want = [...order].filter(i => String(i).includes('12') || big.labels[i].includes('12'));
    expect(shown).toEqual(want);
    expect(shown).toContain(7); // by its label
    expect(shown).toContain(4); // "f12"
    expect(shown).toContain(112); // by its index
    expect(shown.every(i => String(i).includes('12') || big.labels[i].includes('12'))).toBe(true);
    expect([...filterOrder(sortOrder(l, 'index'), l, ' BETA ')]).toEqual([2]);
    expect(filterOrder(order, big, '  ')).toBe(order);
    expect(filterOrder(order, big, 'no such label').length).toBe(0);
  });

  it('draws only the rows in view, a few beyond', () => {
    expect(rowRange(0, 480, 16000)).toEqual([0, 26]);
    expect(rowRange(ROW_H * 1000, 480, 16000)).toEqual([994, 1026]);
    expect(rowRange(ROW_H * 15990, 480, 16000)).toEqual([15984, 16000]);
    expect(rowRange(0, 480, 3)).toEqual([0, 3]);
  });

  it('cuts a label to its column with an ellipsis, never past it', () => {
    const measure = (s: string): number => s.length * 10;
    expect(fitLabel('abcdefghij', 100, measure)).toBe('abcdefghij');
    expect(fitLabel('abcdefghij', 99, measure)).toBe('abcdefgh…');
    expect(fitLabel('abcdefghij', 50, measure)).toBe('abcd…');
    expect(fitLabel('abc', 0, measure)).toBe('abc'); // not laid out yet: whole
  });

  it('writes densities, counts and signed values in words', () => {
    expect(fmtDensity(0.0123)).toBe('1.23%');
    expect(fmtDensity(1.234e-5)).toBe('0.00123%');
    expect(fmtDensity(0)).toBe('0%');
    expect(countText(16000, 16000, '')).toBe('16,000 features');
    expect(countText(1134, 16000, ' 12')).toBe('1,134 of 16,000 features match “12”');
    expect(fmtSigned(0.53219)).toBe('+0.532');
    expect(fmtSigned(-0.1)).toBe('−0.1');
  });
});

describe('token colours', () => {
  // JupyterLab's light and dark backgrounds and text, with the highlights Python sends
  const themes: [string, Rgb, Rgb, Rgb][] = [
    ['light', [255, 255, 255], [33, 33, 33], [210, 125, 0]],
    ['dark', [17, 17, 17], [224, 224, 224], [160, 90, 0]],
    ['dark grey', [33, 33, 33], [224, 224, 224], [160, 90, 0]]
  ];
  it.each(themes)('keep text above 5:1 on every highlight (%s)', (_, bg, fg, hl) => {
    let worst = 21;
    for (let code = 0; code <= 255; code++) {
      const c = tokenColours(code / 255, hl, bg, fg);
      worst = Math.min(worst, contrastRatio(c.fg, c.bg));
    }
    expect(worst).toBeGreaterThanOrEqual(5);
    expect(tokenColours(0, hl, bg, fg).bg).toEqual(bg); // no activation: the background
    expect(tokenColours(1, hl, bg, fg).bg).toEqual(hl); // the max: the full colour
    expect(contrastRatio(hl, bg)).toBeGreaterThanOrEqual(3); // the max stands off the page
  });

  it('fit one line of an example around its strongest token', () => {
    const w = [10, 10, 10, 10, 10];
    expect(fitAround(w, 2, 50, 5)).toEqual([0, 5]); // all fit: no cut marks needed
    expect(fitAround(w, 2, 30, 0)).toEqual([1, 4]);
    expect(fitAround(w, 2, 30, 5)).toEqual([2, 4]); // room kept for the ellipses
    expect(fitAround(w, 4, 25, 5)).toEqual([3, 5]);
    expect(fitAround([80, 10], 0, 20, 5)).toEqual([0, 1]); // the peak always shows
    expect(tokenText('x'.repeat(40))).toBe('x'.repeat(31) + '…');
  });

  it('say a token and its activation in the tooltip', () => {
    const d = decodeDetail(fromBase64(PACKED));
    expect(tokenLines(d, 0, 1)).toEqual([
      '“·b”',
      'activation 1.51 (50% of max 3)',
      'example 1 · token 2 of 3'
    ]);
    expect(tokenText('a\nb\tc')).toBe('a⏎b⇥c');
  });
});

describe('the histogram', () => {
  it('has round ticks on both axes and finds the bin under the pointer', () => {
    const counts = new Float64Array([10, 480, 30, 0]);
    const edges = new Float64Array([0, 0.5, 1, 1.5, 2]);
    const c = histChart(counts, edges, 400, s => s.length * 7);
    expect(c.yTicks).toEqual([0, 200, 400]);
    expect(c.xTicks).toEqual([0, 0.5, 1, 1.5, 2]);
    expect(c.x(0)).toBe(c.frame.x0);
    expect(c.x(2)).toBe(c.frame.x1);
    expect(c.y(0)).toBe(c.frame.y1);
    expect(c.hit(c.x(0.7))).toBe(1);
    expect(c.hit(c.x(1.9))).toBe(3);
    expect(c.hit(c.frame.x0 - 5)).toBeNull();
    expect(c.frame.x1).toBeLessThanOrEqual(400);
  });
});
