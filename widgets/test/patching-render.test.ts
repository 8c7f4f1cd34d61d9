// @vitest-environment jsdom
// The heatmap's render() against a fake anywidget model: axis and legend titles in words, one
// scale across heads, a tooltip with the value and its interval, readouts that follow the state.
import { fakeModel as fake } from './fake-model';
import { describe, expect, it } from 'vitest';
import heatmap from '../src/patching';

// jsdom has no canvas: nothing is painted here (Chromium covers the pixels), the layout runs.
HTMLCanvasElement.prototype.getContext = (() => null) as never;

const f32 = (xs: number[]): DataView => new DataView(new Float32Array(xs).buffer);

function fakeModel() {
  // 2 layers x 2 heads x 3 positions; head 1 is much stronger than head 0
  const values = [0.01, 0.02, -0.03, 0.6, 0.1, 0.9, 0.04, 0.05, 0.06, -0.2, 0.3, 0.16];
  const state: Record<string, unknown> = {
    meta: {
      axes: ['layer', 'head', 'pos'],
      shape: [2, 2, 3],
      labels: { layer: ['0', '1'], head: ['0', '1'], pos: ['<b>x</b>', 'cat→cow', 'mat'] },
      axis_titles: { layer: 'layer', head: 'head', pos: 'position' },
      units: 'normalised m (0 = corrupted run, 1 = clean run)',
      scale: { mode: 'shared', limits: [1, 1], raw_factor: 4, note: 'shared by all heads' },
      title: 't',
      metric: 'm',
      normalised: true,
      value_name: 'normalised m',
      clean: 2,
      corrupt: -2,
      batch: 3,
      notes: [],
      alpha: 0.05,
      correction: 'max-t',
      level: 0.95
    },
    values: f32(values),
    raw: f32(values.map(x => -2 + 4 * x)),
    lut: new DataView(new Uint8Array(768).buffer),
    lut_dark: new DataView(new Uint8Array(768).buffer),
    clean_values: f32([2, 2, 2]),
    corrupt_values: f32([-2, -2, -2]),
    cell_values: new DataView(new ArrayBuffer(0)),
    ci_low: f32(values.map(x => x - 0.1)),
    ci_high: f32(values.map(x => x + 0.1)),
    p_corrected: f32(values.map(x => (Math.abs(x) > 0.25 ? 0.004 : 0.9))),
    significant: new DataView(new Uint8Array(values.map(x => (Math.abs(x) > 0.25 ? 1 : 0))).buffer),
    selected: [],
    slice_index: 0
  };
  return fake(state, true);
}

const text = (el: Element, role: string): string =>
  el.querySelector(`[data-role=${role}]`)?.textContent ?? '';

describe('patching heatmap view', () => {
  it('titles its axes and legend, keeps one scale across heads, reads out the state', () => {
    const model = fakeModel();
    const el = document.createElement('div');
    document.body.appendChild(el);
    const cleanup = heatmap.render({ model, el } as never);
    expect(text(el, 'y-title')).toBe('layer');
    expect(text(el, 'x-title')).toBe('position (head 0)');
    expect(text(el, 'legend-title')).toBe('normalised m (0 = corrupted run, 1 = clean run)');
    expect(text(el, 'scale-note')).toBe('scale ±1, shared by all heads');
    expect(text(el, 'key')).toContain('hatched: not significant (max-t corrected');
    const legend = el.querySelector<HTMLElement>('[data-role=legend]')!;
    const limits = (): string[] => [legend.dataset.lo!, legend.dataset.hi!];
    expect(limits()).toEqual(['-1', '1']);
    const ticks = [...el.querySelectorAll('[data-role=legend-ticks] span')].map(s => s.textContent);
    expect(ticks).toEqual(['−1.0', '−0.5', '0', '0.5', '1.0']);
    expect(el.querySelector('b')).toBeNull(); // a token is text, never markup
    expect(el.textContent).toContain('<b>x</b>');

    // hover layer 1, position 2 (cells are 44 px here: no layout width in jsdom, 640 assumed)
    const canvas = el.querySelector('canvas[data-role=heatmap]')!;
    const hover = (r: number, c: number): void => {
      canvas.dispatchEvent(
        new MouseEvent('mousemove', { clientX: c * 44 + 5, clientY: r * 44 + 5, bubbles: true })
      );
    };
    hover(1, 2);
    const tip = el.querySelector<HTMLElement>('[role=tooltip]')!;
    expect(tip.hidden).toBe(false);
    expect(tip.textContent).toContain('layer 1 · head 0 · position 2 mat');
    expect(tip.textContent).toContain('normalised m 0.06');
    expect(tip.textContent).toContain('95% CI [−0.04, 0.16]'.replace('−', '-'));
    expect(tip.textContent).toContain('not significant at α 0.05');
    const live = el.querySelector<HTMLElement>('[data-role=live]')!;
    expect(Number(live.dataset.value)).toBeCloseTo(0.06);

    // raw and back: the readouts follow (no raw value left behind on the normalised view)
    const raw = [...el.querySelectorAll('button')].find(b => b.textContent === 'Raw metric')!;
    raw.click();
    expect(Number(live.dataset.value)).toBeCloseTo(-2 + 4 * 0.06);
    expect(live.textContent).toContain('raw m');
    expect(limits().map(Number)).toEqual([-2 - 4, -2 + 4]); // the same colours, in metric units
    raw.click();
    expect(Number(live.dataset.value)).toBeCloseTo(0.06);
    expect(live.textContent).not.toContain('raw m');

    // the other head: the tooltip speaks of it, the scale does not move
    model.set('slice_index', 1);
    expect(limits()).toEqual(['-1', '1']);
    expect(text(el, 'x-title')).toBe('position (head 1)');
    expect(Number(live.dataset.value)).toBeCloseTo(0.16);
    hover(0, 0);
    expect(tip.textContent).toContain('layer 0 · head 1 · position 0 <b>x</b>');
    expect(tip.textContent).toContain('normalised m 0.6');
    expect(tip.textContent).toContain('p (max-t corrected) 0.004 · significant at α 0.05');
    canvas.dispatchEvent(new MouseEvent('mouseleave'));
    expect(tip.hidden).toBe(true);

    // the keys move a cursor, and the tooltip follows it
    (canvas as HTMLCanvasElement).focus();
    canvas.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight' }));
    expect(tip.hidden).toBe(false);
    expect(tip.textContent).toContain('layer 0 · head 1 · position 1 cat→cow');
    expect(live.dataset.cell).toBe('0/1');

    // the table puts the longer axis down the page
    const asTable = [...el.querySelectorAll('button')].find(b => b.textContent === 'As table')!;
    asTable.click();
    const t = el.querySelector<HTMLTableElement>('table.im-patch-grid')!;
    expect(t.dataset.transposed).toBe('true');
    expect(t.rows.length).toBe(4); // header + 3 positions
    expect(t.rows[0].cells[0].textContent).toBe('position \\ layer');
    cleanup();
    el.remove();
  });
});
