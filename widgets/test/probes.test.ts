// @vitest-environment jsdom
// The probe panel's parts without a browser: layout of both charts, the ink every label is drawn
// in (dark theme included), tables that fit, and render() on a fake model (verdict first, data
// as text, listeners cleaned up).
import { describe, expect, it } from 'vitest';
import widget from '../src/probes';
import { contrastRatio, parseColor } from '../src/lib/contrast';
import type { Ink } from '../src/lib/theme';
import { barsChart } from '../src/probes/bars';
import { thinned } from '../src/probes/labels';
import { layersChart } from '../src/probes/layers';
import { colourOn } from '../src/probes/style';
import { fitTables } from '../src/probes/table';
import type { ProbeData } from '../src/probes/types';
import { keepTogether } from '../src/probes/view';

const HOSTILE = '<img src=x onerror=alert(1)>';
const measure = (t: string): number => t.length * 7;
const blue = { light: '#0072B2', dark: '#56B4E9' };
const orange = { light: '#D55E00', dark: '#E69F00' };
const chance: ProbeData['chance'] = [
  { name: 'majority baseline', role: 'majority', value: 0.5 },
  { name: 'frequency guess', role: 'frequency', value: 0.5 }
];

function single(): ProbeData {
  const bar = (name: string, role: 'probe' | 'shuffled', value: number, row: number) => ({
    ...{ name, role, value, row, lo: value - 0.05, hi: value + 0.05 },
    color: role === 'probe' ? blue : orange,
    tip: [name, `held-out accuracy ${value.toFixed(3)}`]
  });
  return {
    mode: 'single',
    verdict: {
      headline: 'Above chance and above controls, p = 0.0099',
      detail: 'd',
      level: 'above'
    },
    title: 'Probe',
    value_title: 'held-out accuracy',
    chance,
    bars: [bar('probe', 'probe', 0.93, 0), bar(HOSTILE, 'shuffled', 0.52, 2)],
    columns: [
      { key: 'measure', label: 'measure' },
      { key: 'accuracy', label: 'accuracy' }
    ],
    rows: [
      ['probe', '0.930'],
      ['probe (balanced)', '0.925'],
      [HOSTILE, '0.520']
    ],
    key_columns: 2,
    notes: ['a note']
  };
}

function layers(n = 6): ProbeData {
  const names = Array.from({ length: n }, (_, i) => `resid_post.${i}`);
  const values = names.map((_, i) => 0.6 + (0.4 * i) / n);
  return {
    mode: 'layers',
    verdict: {
      headline: 'Above chance at layers 2-5, corrected p < 0.01',
      detail: 'd',
      level: 'above'
    },
    title: 'Probes by layer',
    value_title: 'held-out accuracy',
    chance,
    layers: names,
    ticks: names.map((_, i) => String(i)),
    x_title: 'layer (resid_post.*)',
    series: [
      {
        name: 'probe',
        role: 'probe',
        color: blue,
        values,
        lo: values.map(v => v - 0.1),
        hi: values
      },
      { name: 'shuffled labels', role: 'shuffled', color: orange, values: values.map(() => 0.5) }
    ],
    significant: names.map((_, i) => i >= 2),
    correction: 'fdr_bh',
    tips: names.map((l, i) => [l, `probe ${values[i].toFixed(3)}`, 'p corrected = 0.005']),
    columns: ['layer', 'accuracy', 'ci', 'p_corrected', 'significant', 'p_raw'].map(key => ({
      key,
      label: key
    })),
    rows: names.map((l, i) => [l, values[i].toFixed(3), '', '0.005', 'yes', '0.005']),
    key_columns: 5,
    notes: []
  };
}

const DARK: Ink = {
  fg: 'rgb(230, 230, 230)',
  muted: 'rgb(170, 170, 170)',
  bg: 'rgb(17, 17, 17)',
  border: 'rgb(66, 66, 66)',
  accent: 'rgb(66, 165, 245)',
  dark: true
};

/** A 2-D context that records the fill colour of every text it is asked to draw. */
function recorder(): { ctx: CanvasRenderingContext2D; texts: [string, string][] } {
  const texts: [string, string][] = [];
  const state: Record<string, unknown> = { font: '12px sans-serif', fillStyle: '#000' };
  const ctx = new Proxy(state, {
    get: (s, k: string) =>
      k in s
        ? s[k]
        : k === 'fillText'
          ? (t: string) => texts.push([t, String(s.fillStyle)])
          : k === 'measureText'
            ? (t: string) => ({ width: measure(t) })
            : () => undefined,
    set: (s, k: string, v) => {
      s[k] = v;
      return true;
    }
  });
  return { ctx: ctx as unknown as CanvasRenderingContext2D, texts };
}

describe('probe charts', () => {
  it('fit the width they are given, bars row by row', () => {
    for (const width of [360, 600, 968]) {
      const chart = barsChart(single(), width, measure);
      expect(chart.frame.x1).toBeLessThanOrEqual(width);
      expect(chart.hit(100, chart.frame.y0 + 3)).toBe(0);
      expect(chart.hit(100, chart.frame.y0 + 30)).toBe(1);
      expect(chart.hit(100, chart.frame.y1 + 1)).toBeNull();
      const [x] = chart.anchor(0);
      expect(x).toBeCloseTo(chart.frame.x0 + 0.93 * (chart.frame.x1 - chart.frame.x0));
    }
  });

  it('keep the significance stars in a strip above the frame and hit the nearest layer', () => {
    const chart = layersChart(layers(), 600, measure);
    const { ctx, texts } = recorder();
    chart.draw(ctx, DARK, null);
    expect(texts.filter(([t]) => t === '*').length).toBe(4);
    expect(chart.frame.y0).toBeGreaterThanOrEqual(22);
    expect(chart.frame.x1).toBeLessThanOrEqual(600);
    const [x2] = chart.anchor(2);
    const [x3] = chart.anchor(3);
    expect(chart.hit(x2 + 0.4 * (x3 - x2), 100)).toBe(2);
    expect(chart.hit(x2 + 0.6 * (x3 - x2), 100)).toBe(3);
    expect(chart.hit(-50, 100)).toBeNull();
  });

  it('draw every label in ink readable on a dark background (the 31/255 regression)', () => {
    for (const chart of [barsChart(single(), 600, measure), layersChart(layers(), 600, measure)]) {
      const { ctx, texts } = recorder();
      chart.draw(ctx, DARK, 1);
      expect(texts.length).toBeGreaterThan(5);
      for (const [, colour] of texts)
        expect(contrastRatio(parseColor(colour)!, parseColor(DARK.bg)!)).toBeGreaterThanOrEqual(
          4.5
        );
    }
  });

  it('pick the dark variant of a series colour in a dark theme, at 3:1 or more', () => {
    const c = parseColor(colourOn({ light: '#0072B2', dark: '#0a0a30' }, DARK))!;
    expect(contrastRatio(c, parseColor(DARK.bg)!)).toBeGreaterThanOrEqual(3);
    expect(colourOn(blue, DARK)).toBe('rgb(86, 180, 233)');
  });

  it('thin layer labels that would overlap, keeping the last when it has room', () => {
    expect(thinned(5, 50, 20)).toEqual([true, true, true, true, true]);
    // every third (28 px a label in 10 px steps); the last shown, the 21st giving way to it
    expect(thinned(24, 10, 20)).toEqual(
      Array.from({ length: 24 }, (_, i) => (i % 3 === 0 && i !== 21) || i === 23)
    );
    expect(thinned(25, 10, 20).filter(Boolean).length).toBe(9);
    expect(thinned(2, 10, 20)).toEqual([true, false]);
  });

  it('keep "p < 0.01" on one line', () => {
    expect(keepTogether('layers 2-4, corrected p < 0.01')).toBe(
      'layers 2-4, corrected p\u00a0<\u00a00.01'
    );
  });
});

describe('probe tables', () => {
  it('move the columns that do not fit into a further table, decisive ones first', () => {
    const box = document.createElement('div');
    Object.defineProperty(box, 'clientWidth', { value: 300 });
    const proto = HTMLTableElement.prototype;
    const before = Object.getOwnPropertyDescriptor(HTMLElement.prototype, 'offsetWidth');
    Object.defineProperty(proto, 'offsetWidth', {
      configurable: true,
      get(this: HTMLTableElement) {
        return this.rows[0].cells.length * 70; // 70 px a column
      }
    });
    try {
      const d = layers(3);
      fitTables(box, d.columns, d.rows, d.key_columns);
      const tables = [...box.querySelectorAll('table')];
      const heads = tables.map(t => [...t.querySelectorAll('th')].map(th => th.dataset.column));
      // the first keeps the decisive five (wrapped: they do not fit in 300 px), the rest follow
      expect(heads[0]).toEqual(['layer', 'accuracy', 'ci', 'p_corrected', 'significant']);
      expect(tables[0].classList.contains('im-probe-grid-wrap')).toBe(true);
      expect(heads[1]).toEqual(['layer', 'p_raw']);
    } finally {
      delete (proto as unknown as Record<string, unknown>).offsetWidth;
      if (before) Object.defineProperty(HTMLElement.prototype, 'offsetWidth', before);
    }
  });
});

describe('probe panel render', () => {
  HTMLCanvasElement.prototype.getContext = (() => null) as never;

  function fakeModel(data: ProbeData) {
    const listeners: Record<string, (() => void)[]> = {};
    return {
      get: () => data,
      on: (e: string, cb: () => void) => (listeners[e] ??= []).push(cb),
      off: (e: string, cb: () => void) => {
        listeners[e] = (listeners[e] ?? []).filter(x => x !== cb);
      },
      listeners
    };
  }

  it('leads with the verdict, shows data as text, and reads out the cursor', () => {
    for (const d of [single(), layers()]) {
      const model = fakeModel(d);
      const el = document.createElement('div');
      document.body.appendChild(el);
      const cleanup = widget.render({ model, el } as never);
      const root = el.querySelector('.im-probe')!;
      expect(root.firstElementChild!.getAttribute('data-role')).toBe('verdict');
      expect(root.firstElementChild!.textContent).toContain(d.verdict.headline.split(',')[0]);
      expect(el.querySelector('img')).toBeNull();
      expect(el.querySelector('[data-role=x-title]')!.textContent).toBe(
        d.mode === 'single' ? 'held-out accuracy' : 'layer (resid_post.*)'
      );
      const y = el.querySelector('[data-role=y-title]') as HTMLElement;
      expect(y.hidden).toBe(d.mode === 'single');
      const canvas = el.querySelector('canvas[data-role=chart]')!;
      canvas.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight' }));
      const live = el.querySelector('[data-role=live]') as HTMLElement;
      const tip = el.querySelector('[role=tooltip]') as HTMLElement;
      expect(tip.hidden).toBe(false);
      expect(tip.textContent).toContain(
        d.mode === 'single' ? 'held-out accuracy 0.930' : 'probe 0.600'
      );
      expect(Number(live.dataset.value)).toBeCloseTo(d.mode === 'single' ? 0.93 : 0.6);
      expect(el.querySelector('tr.im-probe-row-hover')!.getAttribute('data-index')).toBe('0');
      canvas.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown' }));
      // the second bar stands for table row 2 (row 1 is the balanced accuracy)
      const row = d.mode === 'single' ? '2' : '1';
      expect(el.querySelector('tr.im-probe-row-hover')!.getAttribute('data-index')).toBe(row);
      if (d.mode === 'single') expect(tip.textContent).toContain(HOSTILE);
      canvas.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape' }));
      expect(tip.hidden).toBe(true);
      cleanup();
      expect(Object.values(model.listeners).every(l => l.length === 0)).toBe(true);
      expect(el.children.length).toBe(0);
      el.remove();
    }
  });
});
