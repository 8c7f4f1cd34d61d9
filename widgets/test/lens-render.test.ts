// @vitest-environment jsdom
// The lens view's render() against a fake anywidget model: titles in words, a tooltip that
// gives the step at once and the top-k once the kernel answers (one request per column), the
// keys and a click pick cells, the example selector shows only for a batch.
import { describe, expect, it } from 'vitest';
import lensView from '../src/lens';
import { fakeModel } from './fake-model';

// jsdom has no canvas: nothing is painted here (Chromium covers the pixels), the layout runs.
HTMLCanvasElement.prototype.getContext = (() => null) as never;

const view = (buf: ArrayBufferLike, offset = 0, length?: number): DataView =>
  new DataView(buf, offset, length);

function state(examples: number): Record<string, unknown> {
  // 3 layers x 4 positions; codes row-major, embeddings first: [0 1 2 3] [4 5 6 7] [15 14 13 12]
  const codes = new Uint8Array([0x01, 0x23, 0x45, 0x67, 0xfe, 0xdc]);
  const top1 = new Uint16Array([0, 1, 0, 1, 1, 0, 1, 0, 2, 2, 2, 3]);
  const traj = new Float32Array([0.01, 0.2, 0.9, 43, 5, 0]);
  return {
    meta: {
      title: 'logit lens of Toy',
      method: 'logit lens',
      model: 'Toy',
      layer_labels: ['embed', 'L0', 'L1'],
      rows: 3,
      cols: 4,
      examples,
      k: 2,
      levels: 16,
      text: true,
      has_answer: true,
      position_start: 0,
      positions: null,
      notes: ['a note']
    },
    example: 0,
    tokens: ['<b>x</b>', 'cat', 'sat', 'on'],
    pad: view(new ArrayBuffer(0)),
    codes: view(codes.buffer),
    top1: view(top1.buffer),
    top1_vocab: ['a', 'b', 'mat', '<i>'],
    lut: view(new Uint8Array(48).buffer),
    lut_dark: view(new Uint8Array(48).buffer),
    answer: 'mat',
    trajectory: view(traj.buffer),
    trajectory_col: 3,
    selected: []
  };
}

const text = (el: Element, role: string): string =>
  el.querySelector(`[data-role=${role}]`)?.textContent ?? '';

describe('lens view', () => {
  it('titles its axes, legend and chart, and reads cells out', async () => {
    const model = fakeModel(state(1), true);
    const el = document.createElement('div');
    document.body.appendChild(el);
    const cleanup = lensView.render({ model, el } as never);
    expect(text(el, 'y-title')).toBe('layer');
    expect(text(el, 'x-title')).toBe('position');
    expect(text(el, 'legend-title')).toBe('top-1 probability');
    const ticks = [...el.querySelectorAll('[data-role=legend-ticks] span')].map(s => s.textContent);
    expect(ticks).toEqual(['0', '0.25', '0.5', '0.75', '1']);
    expect(text(el, 'trajectory-title')).toBe(
      'Rank of the answer “mat” by layer at position 3 “on” (log scale)'
    );
    expect(text(el, 'trajectory-y-title')).toBe('answer rank (1 = top)');
    expect(text(el, 'trajectory-x-title')).toBe('layer');
    expect(el.querySelector<HTMLSelectElement>('select')!.hidden).toBe(true);
    expect(el.querySelector('b')).toBeNull(); // a token is text, never markup
    expect(el.textContent).toContain('<b>x</b>');
    const rows = [...el.querySelectorAll('[data-role=row-labels] span')].map(s => s.textContent);
    expect(rows).toEqual(['embed', 'L0', 'L1']);

    // no width in jsdom: 640 px assumed, so the 4 columns are MAX_CELL wide, rows 22 px
    const canvas = el.querySelector('canvas[data-role=grid]')!;
    const hover = (x: number, y: number): void => {
      canvas.dispatchEvent(new MouseEvent('mousemove', { clientX: x, clientY: y, bubbles: true }));
    };
    hover(56 * 2 + 5, 5); // the top row (L1), position 2
    const tip = el.querySelector<HTMLElement>('[role=tooltip]')!;
    expect(tip.hidden).toBe(false);
    expect(tip.textContent).toContain('L1 · position 2 “sat”');
    expect(tip.textContent).toContain('top-1 “mat” · p 0.81–0.88'); // code 13, from the bytes
    expect(model.sent).toEqual([{ type: 'column', id: 1, example: 0, col: 2 }]);
    hover(56 * 2 + 9, 30); // the same column: no second request
    hover(56 * 3 + 5, 30); // another column waits for the first reply
    expect(model.sent.length).toBe(1);

    model.emit('msg:custom', {
      type: 'column',
      id: 1,
      example: 0,
      col: 2,
      tokens: [
        ['x', 'y'],
        ['q', 'r'],
        ['mat', 'cat']
      ],
      probs: [
        [0.3, 0.1],
        [0.5, 0.2],
        [0.8421, 0.01]
      ],
      answer_prob: [0.001, 0.2, 0.8421],
      answer_rank: [40, 1, 0]
    });
    expect(model.sent).toEqual([
      { type: 'column', id: 1, example: 0, col: 2 },
      { type: 'column', id: 2, example: 0, col: 3 } // the waiting column, asked now
    ]);
    hover(56 * 2 + 5, 5);
    expect(tip.textContent).toContain('1. “mat” 0.842');
    expect(tip.textContent).toContain('2. “cat” 0.01');
    expect(tip.textContent).toContain('answer “mat”: rank 1 (top) · p 0.842');
    const live = el.querySelector<HTMLElement>('[data-role=live]')!;
    expect(live.dataset.token).toBe('mat');
    expect(Number(live.dataset.prob)).toBeCloseTo(0.8421);
    expect(live.dataset.cell).toBe('2/2');

    // the keys: up is a higher layer (drawn above), and the tooltip follows the cursor
    (canvas as HTMLCanvasElement).focus();
    canvas.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowUp' }));
    expect(live.dataset.cell).toBe('1/0');
    canvas.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight' }));
    expect(live.dataset.cell).toBe('1/1');
    canvas.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    expect(model.get('selected')).toEqual([1, 1]);
    canvas.dispatchEvent(new MouseEvent('click', { clientX: 5, clientY: 60, bubbles: true }));
    expect(model.get('selected')).toEqual([0, 0]); // the bottom row is the embeddings
    canvas.dispatchEvent(new MouseEvent('mouseleave'));
    expect(tip.hidden).toBe(true);

    // the table of the trajectory's column, once the kernel has it
    const asTable = [...el.querySelectorAll('button')].find(b => b.textContent === 'As table')!;
    asTable.click();
    expect(text(el, 'table')).toContain('loading…');
    model.emit('msg:custom', {
      type: 'column',
      id: 2,
      example: 0,
      col: 3,
      tokens: [
        ['a', 'b'],
        ['c', 'd'],
        ['mat', 'e']
      ],
      probs: [
        [0.5, 0.1],
        [0.4, 0.3],
        [0.9, 0.05]
      ],
      answer_prob: [0.01, 0.2, 0.9],
      answer_rank: [43, 5, 0]
    });
    const table = el.querySelector<HTMLTableElement>('table.im-lens-grid')!;
    expect([...table.rows[0].cells].map(c => c.textContent)).toEqual([
      'layer',
      'top 1',
      'top 2',
      'answer rank',
      'answer p'
    ]);
    expect([...table.rows[1].cells].map(c => c.textContent)).toEqual([
      'L1',
      'mat 0.9',
      'e 0.05',
      '1',
      '0.9'
    ]);
    cleanup();
    el.remove();
  });

  it('shows the example selector for a batch and asks Python for another example', () => {
    const model = fakeModel(state(3), true);
    const el = document.createElement('div');
    document.body.appendChild(el);
    const cleanup = lensView.render({ model, el } as never);
    const select = el.querySelector<HTMLSelectElement>('select')!;
    expect(select.hidden).toBe(false);
    expect([...select.options].map(o => o.textContent)).toEqual([
      'example 0',
      'example 1',
      'example 2'
    ]);
    select.value = '2';
    select.dispatchEvent(new Event('change'));
    expect(model.get('example')).toBe(2);
    cleanup();
    el.remove();
  });
});
