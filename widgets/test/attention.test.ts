// @vitest-environment jsdom
// The attention viewer's parts: theme-aware colours, thinned labels, the layout that fits its
// width, block-maximum pooling, and the tooltip / readout / table of a rendered view.
import { fakeModel as fake } from './fake-model';
import { describe, expect, it } from 'vitest';
import widget from '../src/attention';
import { every, slantedSpacing, thinning, TICK_LINE } from '../src/attention/axes';
import { computeLayout, detailWidth } from '../src/attention/layout';
import { chipInk, darkLut } from '../src/attention/palette';
import { poolSquare } from '../src/attention/pixels';
import { contrastRatio, luminance, parseColor, type Rgb } from '../src/lib/contrast';

HTMLCanvasElement.prototype.getContext = (() => null) as never;

/** Matplotlib's Blues, sampled coarsely: near-white at 0, dark blue at 1 (what Python sends). */
function blues(): Uint8Array {
  const stops: Rgb[] = [
    [247, 251, 255],
    [198, 219, 239],
    [107, 174, 214],
    [33, 113, 181],
    [8, 48, 107]
  ];
  const out = new Uint8Array(768);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1);
    const a = Math.min(stops.length - 2, Math.floor(t));
    const f = t - a;
    for (let j = 0; j < 3; j++)
      out[i * 3 + j] = Math.round(stops[a][j] + (stops[a + 1][j] - stops[a][j]) * f);
  }
  return out;
}
const row = (lut: Uint8Array, i: number): Rgb => [lut[i * 3], lut[i * 3 + 1], lut[i * 3 + 2]];

describe('dark colour table', () => {
  const bg: Rgb = [33, 33, 33]; // JupyterLab Dark's --jp-layout-color1
  const dark = darkLut(blues(), bg);
  it('paints zero attention as the background itself', () => {
    expect(row(dark, 0)).toEqual(bg);
  });
  it('gets brighter with weight, so the strongest weight is the brightest colour', () => {
    let before = luminance(row(dark, 0));
    for (let i = 1; i < 256; i++) {
      const now = luminance(row(dark, i));
      expect(now).toBeGreaterThanOrEqual(before - 1e-3);
      before = now;
    }
    expect(contrastRatio(row(dark, 255), bg)).toBeGreaterThan(10);
  });
  it('keeps a map that already starts dark the same way round', () => {
    const rising = new Uint8Array(768);
    for (let i = 0; i < 256; i++) rising.set([i, i, 0], i * 3);
    const out = darkLut(rising, bg);
    expect(row(out, 255)).toEqual([255, 255, 0]);
    expect(row(out, 0)).toEqual(bg);
  });
  it('writes chip text that reads at 4.5:1 or better on every colour of the table', () => {
    for (const lut of [dark, blues()]) {
      for (let i = 0; i < 256; i++) {
        const ink = parseColor(chipInk(row(lut, i)))!;
        expect(contrastRatio(ink, row(lut, i))).toBeGreaterThanOrEqual(4.5);
      }
    }
  });
});

describe('axis labels', () => {
  it('thins to the smallest step at which neighbours do not overlap', () => {
    for (const cell of [1, 2, 3, 4.8, 7, 13, 14, 16, 40]) {
      for (const spacing of [TICK_LINE, slantedSpacing()]) {
        const k = thinning(cell, spacing);
        expect(k * cell).toBeGreaterThanOrEqual(spacing - 1e-9);
        if (k > 1) expect((k - 1) * cell).toBeLessThan(spacing);
      }
    }
  });
  it('never drops every label: 100 and 2000 tokens keep theirs, thinned', () => {
    expect(every(100, thinning(4, TICK_LINE))).toEqual(every(100, 4));
    expect(every(2000, thinning(1, TICK_LINE)).length).toBe(Math.ceil(2000 / 14));
  });
});

describe('layout', () => {
  it('fits the overview and the detail into the width it is given', () => {
    for (const width of [320, 500, 700, 900, 1100, 1400]) {
      for (const [heads, n] of [
        [12, 13],
        [12, 100],
        [32, 512],
        [4, 3]
      ]) {
        const L = computeLayout(width, heads, n);
        expect(L.overviewWidth).toBeLessThanOrEqual(width);
        expect(L.detailRoom).toBeLessThanOrEqual(width);
        // the matrix fits its room, or it is at one pixel a token and scrolls inside its plot
        if (detailWidth(n, L.cell) > L.detailRoom) expect(L.cell).toBe(1);
        if (L.beside) expect(L.overviewWidth + 16 + L.detailRoom).toBeLessThanOrEqual(width);
      }
    }
  });
  it('puts the detail beside the overview when wide and below it when narrow', () => {
    expect(computeLayout(1100, 12, 13).beside).toBe(true);
    expect(computeLayout(700, 12, 13).beside).toBe(false);
    expect(computeLayout(700, 12, 13).cell).toBe(28); // capped: 13 tokens need no more
  });
  it('shrinks thumbnails before the overview sticks out', () => {
    const L = computeLayout(400, 32, 10);
    expect(L.step).toBeLessThan(43);
    expect(L.step).toBeGreaterThanOrEqual(15);
  });
});

describe('pooling', () => {
  it('keeps a single strong weight when a thumbnail shrinks', () => {
    const t = 40;
    const codes = new Uint8Array(t * t);
    codes[17 * t + 23] = 200;
    const pooled = poolSquare(codes, t, 13);
    expect(Math.max(...pooled)).toBe(200);
    expect(pooled.filter(c => c > 0).length).toBe(1);
  });
});

function fakeModel(tokens: string[], detailCodes?: Uint8Array, scale = 0.5) {
  const n = tokens.length;
  const state: Record<string, unknown> = {
    meta: {
      layers: 2,
      heads: 3,
      seq: n,
      batch: 1,
      thumb: Math.min(n, 40),
      vmax: 1,
      causal: false,
      layer_labels: [4, 5],
      batch_labels: ['x'],
      title: 't',
      notes: []
    },
    tokens,
    pad: new DataView(new Uint8Array(n).buffer),
    thumbs: new DataView(new Uint8Array(6 * Math.min(n, 40) ** 2).fill(100).buffer),
    thumb_pad: new DataView(new Uint8Array(Math.min(n, 40)).buffer),
    lut: new DataView(blues().buffer),
    detail: new DataView((detailCodes ?? new Uint8Array(n * n).fill(255)).buffer),
    detail_key: [0, 0, 0],
    detail_scale: scale,
    focus_rows: new DataView(new ArrayBuffer(0)),
    focus_key: [],
    selected: [0, 0],
    focus: -1,
    batch_index: 0
  };
  return fake(state);
}

function mount(model: ReturnType<typeof fakeModel>) {
  const el = document.createElement('div');
  document.body.appendChild(el);
  const cleanup = widget.render({ model, el } as never);
  return {
    el,
    q: <T extends Element = HTMLElement>(s: string) => el.querySelector(s) as T,
    all: (s: string) => Array.from(el.querySelectorAll<HTMLElement>(s)),
    done: () => {
      cleanup();
      el.remove();
    }
  };
}

describe('rendered view', () => {
  it('titles its axes and labels the thumbnails by layer and head', () => {
    const v = mount(fakeModel(['a', 'b', 'c']));
    const titles = (plot: string) =>
      v.all(`[data-plot=${plot}] .im-attn-axis-title`).map(e => e.textContent);
    expect(titles('overview')).toEqual(['head', 'layer']);
    expect(titles('detail')).toEqual(['key', 'query']);
    const ticks = (plot: string, band: string) =>
      v.all(`[data-plot=${plot}] .${band} .im-attn-tick`).map(e => e.textContent);
    expect(ticks('overview', 'im-attn-ylabels')).toEqual(['L4', 'L5']);
    expect(ticks('overview', 'im-attn-xlabels')).toEqual(['H0', 'H1', 'H2']);
    expect(ticks('detail', 'im-attn-ylabels')).toEqual(['a', 'b', 'c']);
    v.done();
  });

  it('keeps labels for 100 tokens, thinned to every k-th', () => {
    const toks = Array.from({ length: 100 }, (_, i) => `w${i}`);
    const v = mount(fakeModel(toks));
    const rows = v.all('[data-plot=detail] .im-attn-ylabels .im-attn-tick');
    const cols = v.all('[data-plot=detail] .im-attn-xlabels .im-attn-tick');
    expect(rows.length).toBeGreaterThanOrEqual(10);
    expect(cols.length).toBeGreaterThanOrEqual(8);
    const k = Number(rows[1].dataset.index);
    rows.forEach((r, i) => expect(r.textContent).toBe(`w${i * k}`));
    v.done();
  });

  it('shows a hovered weight in a tooltip to the precision of its byte code', () => {
    // code 1 at scale 1 is 1/255 = 0.00392...: stored to 1/255, it prints as 0.004
    const codes = new Uint8Array(9).fill(1);
    const v = mount(fakeModel(['a', 'b', 'c'], codes, 1));
    const detail = v.q<HTMLCanvasElement>('canvas[data-role=detail]');
    const cell = Number(detail.dataset.cell);
    detail.dispatchEvent(
      new MouseEvent('mousemove', { clientX: cell * 1.5, clientY: cell * 0.5, bubbles: true })
    );
    const tip = v.q('[role=tooltip]');
    expect(tip.hidden).toBe(false);
    expect(tip.textContent).toContain('weight 0.004');
    expect(tip.textContent).toContain('query 0 “a” → key 1 “b”');
    expect(tip.textContent).toContain('L4 H0');
    expect(v.el.textContent).not.toContain('0.00392');
    // the row and the column are highlighted, with their labels
    expect(v.q('.im-attn-hl-row').hidden).toBe(false);
    expect(v.q('.im-attn-hl-col').style.left).toBe(`${cell}px`);
    const hl = (band: string) =>
      v.all(`[data-plot=detail] .${band} .im-attn-tick-hl`).map(e => e.textContent);
    expect(hl('im-attn-ylabels')).toEqual(['a']); // query 0
    expect(hl('im-attn-xlabels')).toEqual(['b']); // key 1
    detail.dispatchEvent(new MouseEvent('mouseleave'));
    expect(tip.hidden).toBe(true);
    expect(v.q('.im-attn-hl-row').hidden).toBe(true);
    v.done();
  });

  it('prints the table to the stored precision', () => {
    const codes = new Uint8Array(9).fill(1);
    const v = mount(fakeModel(['a', 'b', 'c'], codes, 1));
    const button = v.all('.im-attn-button').find(b => b.textContent === 'As table')!;
    button.click();
    const text = v.q('.im-attn-table').textContent ?? '';
    expect(text).toContain('0.004');
    expect(text).not.toContain('0.0039');
    v.done();
  });

  it('keeps the readout true to the current state', () => {
    const model = fakeModel(['a', 'b', 'c']);
    const v = mount(model);
    const live = v.q('[data-role=live]');
    expect(live.textContent).toContain('Showing L4 H0 in detail');
    const grid = v.q('canvas[data-role=grid]');
    grid.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight' }));
    expect(live.textContent).toContain('L4 H1');
    expect(live.textContent).toContain('Enter to open');
    grid.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    // the head the cursor is on is now the one in detail: the readout says so, not "Enter"
    expect(model.get('selected')).toEqual([0, 1]);
    expect(live.textContent).not.toContain('Enter to open');
    expect(live.textContent).toContain('L4 H1');
    // another head chosen elsewhere (from Python): the readout follows
    model.set('selected', [1, 2]);
    model.emit('change:selected');
    grid.dispatchEvent(new FocusEvent('blur'));
    expect(live.textContent).toContain('Showing L5 H2 in detail');
    v.done();
  });
});
