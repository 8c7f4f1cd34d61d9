// @vitest-environment jsdom
// The widget's render() against a fake anywidget model: tokens from data are text, never HTML.
import { fakeModel as fake } from './fake-model';
import { describe, expect, it } from 'vitest';
import widget from '../src/attention';

// jsdom has no canvas: the views draw nothing here (painting is covered in lib tests and in Chromium).
HTMLCanvasElement.prototype.getContext = (() => null) as never;

function fakeModel(tokens: string[]) {
  const n = tokens.length;
  const state: Record<string, unknown> = {
    meta: {
      layers: 1,
      heads: 2,
      seq: n,
      batch: 1,
      thumb: n,
      vmax: 1,
      causal: false,
      layer_labels: [0],
      batch_labels: ['x'],
      title: 't',
      notes: []
    },
    tokens,
    pad: new DataView(new Uint8Array(n).buffer),
    thumbs: new DataView(new Uint8Array(2 * n * n).fill(100).buffer),
    thumb_pad: new DataView(new Uint8Array(n).buffer),
    lut: new DataView(new Uint8Array(768).buffer),
    detail: new DataView(new Uint8Array(n * n).fill(255).buffer),
    detail_key: [0, 0, 0],
    detail_scale: 0.5,
    focus_rows: new DataView(new ArrayBuffer(0)),
    focus_key: [],
    selected: [0, 0],
    focus: -1,
    batch_index: 0
  };
  return fake(state);
}

describe('render', () => {
  it('inserts hostile tokens as text and cleans up its listeners', () => {
    const hostile = '<img src=x onerror=alert(1)>';
    const model = fakeModel(['a', hostile, '</script><b>x</b>']);
    const el = document.createElement('div');
    const cleanup = widget.render({ model, el } as never);
    expect(el.querySelector('img')).toBeNull();
    expect(el.querySelector('b')).toBeNull();
    expect(el.textContent).toContain(hostile);
    expect(el.querySelectorAll('.im-attn-token').length).toBe(3);
    cleanup();
    expect(Object.values(model.listeners).every(l => l.length === 0)).toBe(true);
    expect(el.children.length).toBe(0);
  });

  it('keeps two views of one model independent, and both follow model changes', () => {
    const model = fakeModel(['a', 'b', 'c']);
    const one = document.createElement('div');
    const two = document.createElement('div');
    const cleanOne = widget.render({ model, el: one } as never);
    const cleanTwo = widget.render({ model, el: two } as never);
    model.set('selected', [0, 1]);
    model.set('detail_key', [0, 0, 1]);
    model.emit('change:selected');
    model.emit('change:detail_key');
    for (const el of [one, two]) {
      const detail = el.querySelector('canvas[data-role=detail]') as HTMLCanvasElement;
      expect(detail.dataset.head).toBe('1');
    }
    cleanOne();
    expect(two.querySelector('.im-attn')).not.toBeNull(); // closing one view leaves the other
    cleanTwo();
  });

  it('asks the kernel for the exact value once per cell and shows the reply', () => {
    const model = fakeModel(['a', 'b', 'c']);
    const el = document.createElement('div');
    document.body.appendChild(el);
    const cleanup = widget.render({ model, el } as never);
    const detail = el.querySelector('canvas[data-role=detail]') as HTMLCanvasElement;
    detail.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight' }));
    const live = el.querySelector('[data-role=live]') as HTMLElement;
    expect(live.textContent).toContain('≈');
    expect(model.sent).toEqual([{ type: 'value', id: 1, b: 0, l: 0, h: 0, q: 0, k: 1 }]);
    model.emit('msg:custom', {
      type: 'value',
      id: 1,
      b: 0,
      l: 0,
      h: 0,
      q: 0,
      k: 1,
      value: 0.123456789
    });
    expect(live.dataset.exact).toBe('true');
    expect(live.textContent).toContain('0.123457');
    cleanup();
    el.remove();
  });
});

import heatmap from '../src/patching';
import { divergingIndex } from '../src/lib/colors';

describe('patching heatmap', () => {
  it('centres the diverging scale on zero and shows labels as text', () => {
    expect(divergingIndex(0, 2)).toBe(128);
    expect(divergingIndex(-2, 2)).toBe(0);
    expect(divergingIndex(2, 2)).toBe(255);
    expect(divergingIndex(Number.NaN, 2)).toBe(128);
    const values = new Float32Array([0.5, -1, 0.25, 1]);
    const state: Record<string, unknown> = {
      meta: {
        axes: ['layer', 'pos'],
        shape: [2, 2],
        labels: { layer: ['0', '1'], pos: ['<b>x</b>', 'y'] },
        title: 't',
        metric: 'm',
        normalised: true,
        value_name: 'normalised m',
        clean: 1,
        corrupt: 0,
        batch: 1,
        notes: []
      },
      values: new DataView(values.buffer),
      raw: new DataView(values.buffer),
      lut: new DataView(new Uint8Array(768).buffer),
      clean_values: new DataView(new Float32Array([1]).buffer),
      corrupt_values: new DataView(new Float32Array([0]).buffer),
      cell_values: new DataView(new ArrayBuffer(0)),
      selected: [],
      slice_index: 0
    };
    const model = {
      get: (k: string) => state[k],
      set: (k: string, v: unknown) => {
        state[k] = v;
      },
      save_changes: () => undefined,
      on: () => undefined,
      off: () => undefined
    };
    const el = document.createElement('div');
    const cleanup = heatmap.render({ model, el } as never);
    expect(el.querySelector('b')).toBeNull();
    expect(el.textContent).toContain('<b>x</b>');
    expect(el.textContent).toContain('clean baseline 1');
    cleanup();
  });
});
