// The feature dashboard: one SAE (or transcoder) site's features in a searchable, sortable,
// virtualised list (index, label, density, max activation) beside the selected feature's detail:
// its top-activating examples with every token highlighted by its activation (hover for the
// value), the histogram of its nonzero activations with titled axes, and the logits it promotes
// and suppresses. Another feature's detail is asked of the kernel when it is selected and kept.
// It fits the output area (the list goes above the detail when narrow) and redraws in the
// theme's colours. The parts: features/decode.ts (the bytes), list.ts, examples.ts,
// histogram.ts, logits.ts, request.ts, dom.ts (the elements), view.ts (the state).

import type { AnyWidget, RenderProps } from '@anywidget/types';
import './features.css';
import { sizeCanvas } from './lib/canvas';
import { setPressed } from './lib/dom';
import { pointerAt } from './lib/grid';
import { onThemeChange, themeInk, type Ink } from './lib/theme';
import { fmtResolved } from './lib/ticks';
import { Tooltip } from './lib/tooltip';
import { decodeDetail, decodeList } from './features/decode';
import { buildDom, SORTS } from './features/dom';
import { drawExamples, fitExamples, wireExamples } from './features/examples';
import { drawHistogram, histChart, measurer, type HistChart } from './features/histogram';
import {
  countText,
  drawRows,
  filterOrder,
  fmtDensity,
  positionOf,
  ROW_H,
  scrollToPosition,
  sortOrder
} from './features/list';
import { drawLogits } from './features/logits';
import { onDetailReply, requestDetail } from './features/request';
import { meta, type Detail, type FeatureTraits, type SortKey, type View } from './features/view';

let views = 0;
const FALLBACK_WIDTH = 640; // px, before the view is laid out
const NARROW = 720; // px of output area under which the list goes above the detail
const LIST_W = 340; // px of the list beside the detail
const GAP = 16; // px between them
const Y_TITLE = 18; // px left of the histogram for its rotated title
const HIST_MAX = 440; // px
const HIST_MIN = 240; // px: narrower, the histogram goes above the logit tables
const LOGITS_W = 336; // px of the two logit tables side by side (features.css)
const CHART_GAP = 24; // px between the histogram and the tables (features.css)

interface Drawn {
  ink: Ink;
  chart: HistChart | null;
  hover: number | null;
}
const drawn = new WeakMap<View, Drawn>();

/** Return the detail on show, when it is at hand. */
function current(v: View): Detail | null {
  return v.details.get(v.model.get('selected')) ?? null;
}

/** Recompute the list's order and filter from the traits, then draw it. */
function relist(v: View): void {
  const query = v.model.get('query') ?? '';
  const sort = v.model.get('sort') ?? 'max_activation';
  if (!v.sorted.has(sort)) v.sorted.set(sort, sortOrder(v.list, sort));
  v.order = filterOrder(v.sorted.get(sort)!, v.list, query);
  for (const b of v.dom.sortButtons) {
    const on = b.dataset.sort === sort;
    setPressed(b, on);
    b.textContent = `${SORTS.find(s => s[0] === b.dataset.sort)![1]}${on && sort !== 'index' ? ' ↓' : ''}`;
  }
  if (v.dom.search.value !== query && document.activeElement !== v.dom.search)
    v.dom.search.value = query;
  v.dom.count.textContent = countText(v.order.length, v.list.n, query);
  const m = meta(v);
  const by = SORTS.find(s => s[0] === sort)![2].replace('Sort by ', 'sorted by ');
  v.dom.subtitle.textContent = `${m.site} · ${v.list.n.toLocaleString('en-US')} features · ${by}`;
  drawRows(v);
}

/** Draw the selected feature's detail (or say that it is on its way). */
function drawDetail(v: View): void {
  const f = v.model.get('selected');
  const { detailTitle, detailStats, status, detail } = v.dom;
  const d = current(v);
  const label = v.list.labels[f] ?? '';
  detailTitle.textContent = `Feature ${f}${label ? ` · “${label}”` : ''}`;
  const max = v.list.max[f];
  detailStats.textContent =
    `density ${fmtDensity(v.list.density[f])} of tokens · max activation ${fmtResolved(max, 0, 4)}` +
    (d ? ` · top ${d.k} example${d.k === 1 ? '' : 's'}` : '');
  const error = v.errors.get(f);
  detail.classList.toggle('im-feat-waiting', !d);
  if (!d) {
    status.textContent = error ? `Could not load feature ${f}: ${error}` : `Loading feature ${f}…`;
    requestDetail(v, f);
    return;
  }
  status.textContent = '';
  const ink = themeInk(v.dom.root);
  drawExamples(v, d, meta(v).highlight[ink.dark ? 'dark' : 'light'], ink);
  fitExamples(v.dom.examples, v.wrap);
  drawLogits(v.dom.logits, d, meta(v).colours[ink.dark ? 'dark' : 'light']);
  drawn.set(v, { ink, chart: null, hover: null });
  layoutHistogram(v);
  v.dom.live.textContent =
    `feature ${f}${label ? ` “${label}”` : ''}: density ${fmtDensity(v.list.density[f])}, ` +
    `max activation ${fmtResolved(max, 0, 4)}, ${d.k} examples`;
  markPainted(v);
}

/** Size and draw the histogram for the detail's width. */
function layoutHistogram(v: View): void {
  const d = current(v);
  const state = drawn.get(v);
  if (!d || !state) return;
  const detailW = v.width < NARROW ? v.width : v.width - LIST_W - GAP;
  // beside the logit tables when at least HIST_MIN px are left for it, else above them
  const beside = detailW - LOGITS_W - CHART_GAP - Y_TITLE - 4;
  const alone = detailW - Y_TITLE - 4;
  const w = Math.max(120, Math.min(HIST_MAX, beside >= HIST_MIN ? beside : alone));
  const chart = histChart(d.counts, d.edges, w, measurer(v.dom.root));
  state.chart = chart;
  const { histPlot, histCanvas, histYTitle, histXTitle } = v.dom;
  histPlot.style.height = `${chart.height + 18}px`;
  histPlot.style.width = `${Y_TITLE + w}px`;
  histCanvas.style.left = `${Y_TITLE}px`;
  histYTitle.style.top = `${chart.height / 2}px`;
  Object.assign(histXTitle.style, {
    left: `${Y_TITLE + chart.frame.x0}px`,
    width: `${chart.frame.x1 - chart.frame.x0}px`,
    top: `${chart.height}px`
  });
  const total = Array.from(d.counts).reduce((a, b) => a + b, 0);
  histCanvas.setAttribute(
    'aria-label',
    `Histogram of feature ${d.feature}'s nonzero activations: ${total} in ${d.counts.length} bins` +
      (d.edges.length
        ? ` from ${fmtResolved(d.edges[0], 0, 3)} to ${fmtResolved(d.edges[d.edges.length - 1], 0, 3)}`
        : '')
  );
  paintHistogram(v);
}

function paintHistogram(v: View): void {
  const d = current(v);
  const state = drawn.get(v);
  if (!d || !state?.chart) return;
  const ctx = sizeCanvas(v.dom.histCanvas, state.chart.width, state.chart.height);
  if (!ctx) return;
  ctx.font = `11px ${getComputedStyle(v.dom.root).fontFamily || 'sans-serif'}`;
  const bar = meta(v).colours[state.ink.dark ? 'dark' : 'light'][1];
  drawHistogram(ctx, state.chart, d.counts, d.edges, state.ink, bar, state.hover);
}

function markPainted(v: View): void {
  const root = v.dom.root;
  if (root.dataset.firstPaintMs || root.clientWidth === 0) return;
  if (!v.dom.spacer.querySelector('.im-feat-row:not([hidden])') && v.order.length) return;
  root.dataset.firstPaintMs = (performance.now() - v.started).toFixed(1);
}

/** Select feature `f`: Python hears of it; the model's change event (which fires for local
 * changes too) marks it in the list and draws its detail. */
function select(v: View, f: number): void {
  if (f === v.model.get('selected')) return;
  v.model.set('selected', f);
  v.model.save_changes();
}

function showSelected(v: View): void {
  drawRows(v);
  drawDetail(v);
}

function wireList(v: View): void {
  const { scroll, search, sortButtons } = v.dom;
  let frame = 0;
  scroll.addEventListener('scroll', () => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => drawRows(v));
  });
  scroll.addEventListener('click', ev => {
    const row = (ev.target as Element).closest('.im-feat-row') as HTMLElement | null;
    if (row?.dataset.feature) select(v, Number(row.dataset.feature));
  });
  scroll.addEventListener('keydown', ev => {
    const page = Math.max(1, Math.floor((scroll.clientHeight || 480) / ROW_H) - 1);
    const at = positionOf(v, v.model.get('selected'));
    const moves: Record<string, number> = {
      ArrowDown: at + 1,
      ArrowUp: at < 0 ? 0 : at - 1,
      PageDown: at + page,
      PageUp: Math.max(0, at - page),
      Home: 0,
      End: v.order.length - 1
    };
    if (!(ev.key in moves) || !v.order.length) return;
    ev.preventDefault();
    const pos = Math.max(0, Math.min(v.order.length - 1, moves[ev.key]));
    scrollToPosition(v, pos);
    select(v, v.order[pos]);
    drawRows(v);
  });
  search.addEventListener('input', () => {
    v.model.set('query', search.value);
    v.model.save_changes();
    v.dom.scroll.scrollTop = 0;
    relist(v);
  });
  v.dom.wrapButton.addEventListener('click', () => {
    v.wrap = !v.wrap;
    setPressed(v.dom.wrapButton, v.wrap);
    fitExamples(v.dom.examples, v.wrap);
  });
  for (const b of sortButtons) {
    b.addEventListener('click', () => {
      v.model.set('sort', b.dataset.sort as SortKey);
      v.model.save_changes();
      relist(v);
    });
  }
}

function wireHistogram(v: View): void {
  const canvas = v.dom.histCanvas;
  const show = (ev: MouseEvent | null): void => {
    const d = current(v);
    const state = drawn.get(v);
    if (!d || !state?.chart) return;
    const bin = ev ? state.chart.hit(pointerAt(ev, canvas)[0]) : null;
    if (bin !== state.hover) {
      state.hover = bin;
      paintHistogram(v);
    }
    if (bin === null || !ev) {
      v.tooltip.hide();
      return;
    }
    const lo = fmtResolved(d.edges[bin], 0, 4);
    const hi = fmtResolved(d.edges[bin + 1], 0, 4);
    v.tooltip.show(
      [`activation ${lo} – ${hi}`, `count ${d.counts[bin].toLocaleString('en-US')}`],
      ev.clientX,
      ev.clientY
    );
  };
  canvas.addEventListener('mousemove', show);
  canvas.addEventListener('mouseleave', () => show(null));
}

/** Decode the first view's detail into the view's cache (a bad one is reported, not thrown). */
function keepFirstDetail(v: View): void {
  try {
    const d = decodeDetail(v.model.get('detail'));
    v.details.set(d.feature, d);
  } catch (err) {
    v.errors.set(v.model.get('selected'), String(err));
  }
}

function render({ model, el }: RenderProps<FeatureTraits>): () => void {
  const started = performance.now();
  const id = ++views;
  const dom = buildDom(el, id);
  const v: View = {
    model,
    dom,
    tooltip: new Tooltip(dom.root, `im-feat-tip-${id}`),
    id,
    started,
    list: decodeList(k => model.get(k)),
    order: new Uint32Array(0),
    sorted: new Map(),
    rows: [],
    details: new Map(),
    errors: new Map(),
    request: { inFlight: null, lastId: 0, pending: null },
    width: 0,
    labelWidth: 0,
    measureLabel: s => s.length * 8,
    wrap: false
  };
  keepFirstDetail(v);
  dom.title.textContent = meta(v).title;
  const redraw = (): void => {
    v.width = dom.root.clientWidth || FALLBACK_WIDTH;
    dom.root.classList.toggle('im-feat-narrow', v.width < NARROW);
    // the label column as laid out now (the header shares the rows' grid), less a little
    // slack for the selected row's bold
    const column = dom.head.querySelector<HTMLElement>('.im-feat-head-label')!.clientWidth;
    v.labelWidth = Math.max(0, column - 2);
    v.measureLabel = measurer(dom.root, 13, '600');
    relist(v);
    drawDetail(v);
  };
  wireList(v);
  wireExamples(v, () => current(v));
  wireHistogram(v);
  const onList = (): void => {
    v.list = decodeList(k => model.get(k));
    v.sorted.clear();
    dom.title.textContent = meta(v).title;
    relist(v);
  };
  const onDetail = (): void => {
    keepFirstDetail(v);
    drawDetail(v);
  };
  const onSelected = (): void => {
    const pos = positionOf(v, model.get('selected'));
    if (pos >= 0) scrollToPosition(v, pos);
    showSelected(v);
  };
  const onOrder = (): void => relist(v);
  const onQuery = (): void => {
    if (document.activeElement !== dom.search) dom.scroll.scrollTop = 0; // Python searched
    relist(v);
  };
  const onMessage = (msg: unknown, buffers: unknown): void =>
    onDetailReply(v, msg, buffers, f => {
      if (f === model.get('selected')) drawDetail(v);
    });
  const listEvents = ['meta', 'density', 'max_activation', 'labels', 'label_offsets'];
  const handlers: [string, () => void][] = [
    ...listEvents.map(n => [`change:${n}`, onList] as [string, () => void]),
    ['change:detail', onDetail],
    ['change:selected', onSelected],
    ['change:sort', onOrder],
    ['change:query', onQuery]
  ];
  for (const [e, cb] of handlers) model.on(e, cb);
  model.on('msg:custom', onMessage);
  // A view not yet in the page has no width: the resize observer's first report draws it.
  if (dom.root.clientWidth > 0 || !globalThis.ResizeObserver) redraw();
  let frame = 0;
  let placed = false; // the first report comes once the view is in the page: draw for real then
  const resized = new (globalThis.ResizeObserver ?? NoResize)(() => {
    if ((dom.root.clientWidth || FALLBACK_WIDTH) === v.width && placed) return; // height only
    placed = true;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(redraw);
  });
  resized.observe(dom.root);
  const stopTheme = onThemeChange(redraw);
  return () => {
    for (const [e, cb] of handlers) model.off(e, cb);
    model.off('msg:custom', onMessage);
    resized.disconnect();
    stopTheme();
    cancelAnimationFrame(frame);
    dom.root.remove();
  };
}

/** Stands in for ResizeObserver where there is none (old front ends, tests): no relayout. */
class NoResize {
  observe(): void {}
  disconnect(): void {}
}

export default { render } satisfies AnyWidget<FeatureTraits>;
