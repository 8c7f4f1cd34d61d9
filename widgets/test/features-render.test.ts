// @vitest-environment jsdom
// The feature dashboard's render() against a fake anywidget model with 16,000 features: only
// the rows in view exist in the DOM, the search and the sort buttons reorder them, the first
// view's feature is drawn at once (tokens highlighted, tooltip with the activation, titled
// histogram, logit tables), a click or an arrow key selects another feature and asks the kernel
// for it once (the reply is kept), and strings from data never become markup.
import { describe, expect, it } from 'vitest';
import featureView from '../src/features';
import { decodeDetail } from '../src/features/decode';
import { fakeModel } from './fake-model';

// jsdom has no canvas: nothing is painted here (Chromium covers the pixels), the layout runs.
HTMLCanvasElement.prototype.getContext = (() => null) as never;

const pad8 = (n: number): number => n + ((8 - (n % 8)) % 8);

/** Pack a detail as interp_magics/widgets/features.py pack_detail does. */
function pack(
  feature: number,
  tokens: string[][],
  acts: number[][],
  scale: number,
  indexBytes = 2
): Uint8Array {
  const window = Math.max(0, ...acts.map(r => r.length));
  const vocab: string[] = [];
  const where = new Map<string, number>();
  for (const row of tokens) for (const t of row) if (!where.has(t)) where.set(t, vocab.push(t) - 1);
  const bins = 3;
  const head = new TextEncoder().encode(
    JSON.stringify({
      feature,
      label: `label ${feature}`,
      k: tokens.length,
      window,
      lengths: tokens.map(r => r.length),
      scale,
      index_bytes: indexBytes,
      bins,
      vocab,
      promoted: [['<up>', 1.25]],
      suppressed: [['down', -0.5]],
      density: 0.01
    })
  );
  const cells = tokens.length * window;
  const size = 8 + pad8(head.length) + pad8(cells) + pad8(cells * indexBytes) + 8 * (2 * bins + 1);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, head.length, true);
  view.setUint32(4, 1, true);
  out.set(head, 8);
  let at = 8 + pad8(head.length);
  acts.forEach((row, e) =>
    row.forEach((a, j) => (out[at + e * window + j] = Math.round((a / scale) * 255)))
  );
  at += pad8(cells);
  tokens.forEach((row, e) =>
    row.forEach((t, j) => {
      const i = e * window + j;
      if (indexBytes === 4) view.setUint32(at + 4 * i, where.get(t)!, true);
      else view.setUint16(at + 2 * i, where.get(t)!, true);
    })
  );
  at += pad8(cells * indexBytes);
  [5, 12, 3, 0, scale / 3, (2 * scale) / 3, scale].forEach((v, i) =>
    view.setFloat64(at + 8 * i, v, true)
  );
  return out;
}

const N = 16000;

function state(): Record<string, unknown> {
  const enc = new TextEncoder();
  const labels = Array.from({ length: N }, (_, i) =>
    i === 3 ? '<b>bold</b>' : `tok${(i * 7) % 1000}`
  );
  const parts = labels.map(s => enc.encode(s));
  const data = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  const offsets = new Uint32Array(N + 1);
  parts.forEach((p, i) => {
    data.set(p, offsets[i]);
    offsets[i + 1] = offsets[i] + p.length;
  });
  const density = Float32Array.from({ length: N }, (_, i) => ((i * 37) % 1000) / 1e5);
  const max = Float32Array.from({ length: N }, (_, i) => ((i * 13) % 997) / 100);
  max[42] = 20; // the strongest: the first view's feature, at the top of the list
  const first = pack(
    42,
    [
      [' the', ' cat', '<img src=x>'],
      [' sat', '\n'],
      ['', ' up'] // padding first, as a window centred on an early token has
    ],
    [
      [0, 10, 20],
      [5, 0],
      [0, 2]
    ],
    20
  );
  return {
    meta: {
      title: 'Features of sae:resid_post.1',
      site: 'sae:resid_post.1',
      n_features: N,
      highlight: { light: '#d27d00', dark: '#a05a00' },
      colours: { light: ['#b2182b', '#2166ac'], dark: ['#f4a582', '#92c5de'] }
    },
    density: new DataView(density.buffer),
    max_activation: new DataView(max.buffer),
    labels: new DataView(data.buffer),
    label_offsets: new DataView(offsets.buffer),
    detail: new DataView(first.buffer),
    selected: 42,
    sort: 'max_activation',
    query: ''
  };
}

const byRole = (el: Element, role: string): HTMLElement =>
  el.querySelector<HTMLElement>(`[data-role=${role}]`)!;
const rows = (el: Element): HTMLElement[] => [
  ...el.querySelectorAll<HTMLElement>('.im-feat-row:not([hidden])')
];

describe('feature dashboard', () => {
  it('lists 16,000 features with a few rows in the DOM, and shows the first feature', () => {
    const model = fakeModel(state(), true);
    const el = document.createElement('div');
    document.body.appendChild(el);
    const cleanup = featureView.render({ model, el } as never);
    expect(el.querySelector('.im-feat-title')!.textContent).toBe('Features of sae:resid_post.1');
    expect(byRole(el, 'subtitle').textContent).toBe(
      'sae:resid_post.1 · 16,000 features · sorted by max activation, largest first'
    );
    const shown = rows(el);
    expect(shown.length).toBeLessThan(40);
    expect(byRole(el, 'list').querySelector<HTMLElement>('.im-feat-spacer')!.style.height).toBe(
      `${N * 24}px`
    );
    // the strongest first, marked as selected
    const top = shown[0];
    expect(top.dataset.feature).toBe('42');
    expect(top.getAttribute('aria-selected')).toBe('true');
    expect([...top.children].map(c => c.textContent)).toEqual(['42', 'tok294', '0.554%', '20']);
    expect(byRole(el, 'count').textContent).toBe('16,000 features');

    // the first view's detail: no request, tokens highlighted by their codes
    expect(model.sent).toEqual([]);
    expect(byRole(el, 'detail-title').textContent).toBe('Feature 42 · “tok294”');
    const examples = el.querySelectorAll('.im-feat-example');
    expect(examples.length).toBe(3);
    const padded = examples[2].querySelectorAll<HTMLElement>('.im-feat-tok');
    expect([...padded].map(t => t.classList.contains('im-feat-pad'))).toEqual([true, false]);
    const toks = [...examples[0].querySelectorAll<HTMLElement>('.im-feat-tok')];
    expect(toks.map(t => t.textContent)).toEqual([' the', ' cat', '<img src=x>']);
    expect(el.querySelector('img')).toBeNull(); // a token is text, never markup
    expect(toks.map(t => t.dataset.code)).toEqual([undefined, '128', '255']);
    expect(toks[2].style.background).toBe('rgb(210, 125, 0)');
    expect(toks[2].classList.contains('im-feat-peak')).toBe(true);
    expect(examples[1].querySelectorAll('.im-feat-tok')[1].textContent).toBe('⏎');
    expect(byRole(el, 'hist-x-title').textContent).toBe('activation');
    expect(byRole(el, 'hist-y-title').textContent).toBe('count');
    expect(byRole(el, 'promoted').textContent).toContain('<up>');
    expect(byRole(el, 'promoted').textContent).toContain('+1.25');
    expect(byRole(el, 'suppressed').textContent).toContain('−0.5');

    // the tooltip of a token: its activation from its code
    toks[1].dispatchEvent(new MouseEvent('mousemove', { clientX: 5, clientY: 5, bubbles: true }));
    const tip = el.querySelector<HTMLElement>('[role=tooltip]')!;
    expect(tip.hidden).toBe(false);
    expect(tip.textContent).toContain('“·cat”');
    expect(tip.textContent).toContain('activation 10.04 (50% of max 20)'); // code 128 of 255;
    cleanup();
  });

  it('searches, sorts, and selects by click and keys, asking the kernel once a feature', () => {
    const model = fakeModel(state(), true);
    const el = document.createElement('div');
    document.body.appendChild(el);
    const cleanup = featureView.render({ model, el } as never);
    const search = byRole(el, 'search') as HTMLInputElement;
    search.value = '12';
    search.dispatchEvent(new Event('input'));
    expect(model.get('query')).toBe('12');
    const shown = rows(el);
    expect(shown.length).toBeGreaterThan(10);
    for (const r of shown) {
      const [idx, label] = [...r.children].map(c => c.textContent!);
      expect(idx.includes('12') || label.includes('12')).toBe(true);
    }
    expect(byRole(el, 'count').textContent).toMatch(/^[\d,]+ of 16,000 features match “12”$/);
    el.querySelector<HTMLButtonElement>('[data-sort=index]')!.click();
    expect(model.get('sort')).toBe('index');
    expect(
      rows(el)
        .map(r => r.dataset.feature)
        .slice(0, 4)
    ).toEqual(['12', '16', '18', '112']); // tok84, tok112, tok126
    expect(el.querySelector('[data-sort=index]')!.getAttribute('aria-pressed')).toBe('true');

    // a click selects: Python hears of it and the kernel is asked for the detail
    rows(el)[0].click();
    expect(model.get('selected')).toBe(12);
    expect(model.sent).toEqual([{ type: 'detail', id: 1, feature: 12 }]);
    expect(byRole(el, 'detail-status').textContent).toBe('Loading feature 12…');
    expect(rows(el)[0].getAttribute('aria-selected')).toBe('true');
    const reply = pack(12, [['x', ' y']], [[3, 1]], 3);
    model.emit('msg:custom', { type: 'detail', id: 1, feature: 12 }, [new DataView(reply.buffer)]);
    expect(byRole(el, 'detail-status').textContent).toBe('');
    expect(byRole(el, 'detail-title').textContent).toBe('Feature 12 · “tok84”');
    expect([...el.querySelectorAll('.im-feat-tok')].map(t => t.textContent)).toEqual(['x', ' y']);

    // the keys walk the list as shown; while a request is out only the latest waits
    search.value = '';
    search.dispatchEvent(new Event('input'));
    const list = byRole(el, 'list');
    const key = (k: string): void => {
      list.dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true }));
    };
    key('ArrowDown');
    key('ArrowDown');
    expect(model.get('selected')).toBe(14);
    expect(model.sent.slice(1)).toEqual([{ type: 'detail', id: 2, feature: 13 }]);
    const thirteen = pack(13, [['a']], [[1]], 1);
    model.emit('msg:custom', { type: 'detail', id: 2, feature: 13 }, [
      new DataView(thirteen.buffer)
    ]);
    expect(model.sent.slice(2)).toEqual([{ type: 'detail', id: 3, feature: 14 }]);
    model.emit('msg:custom', { type: 'detail', id: 3, feature: 14, error: 'no data here' }, []);
    expect(byRole(el, 'detail-status').textContent).toBe('Could not load feature 14: no data here');

    // kept replies are not asked for again, from a click or from Python
    key('ArrowUp');
    expect(model.get('selected')).toBe(13);
    model.set('selected', 42);
    expect(byRole(el, 'detail-title').textContent).toBe('Feature 42 · “tok294”');
    model.set('selected', 12);
    expect(model.sent.length).toBe(3);
    expect(el.querySelector('[data-role=detail]')!.textContent).toContain('x');

    // Python sets the search: the box and the list follow
    model.set('query', 'bold');
    expect(search.value).toBe('bold');
    expect(rows(el).map(r => r.dataset.feature)).toEqual(['3']);
    expect(rows(el)[0].children[1].textContent).toBe('<b>bold</b>');
    expect(el.querySelector('b')).toBeNull();
    cleanup();
  });

  it('reads uint32 token indices (more than 65,536 distinct tokens in a detail)', () => {
    const d = decodeDetail(pack(5, [['p', 'q', 'p']], [[0, 2, 4]], 4, 4));
    expect(d.index).toBeInstanceOf(Uint32Array);
    expect([...d.index]).toEqual([0, 1, 0]);
    expect(d.vocab).toEqual(['p', 'q']);
  });
});
