// The feature dashboard's elements: header, the list (search, sort buttons on the rows' grid,
// the virtualised viewport, the count) beside the detail (title, numbers, the examples and
// their legend, the histogram with its axis titles, the logit tables), and the live region.

import { h, toggleButton, widgetHeader } from '../lib/dom';
import type { FeatureDom, SortKey } from './view';

/** The list's orders: key, button text, what it does. */
export const SORTS: [SortKey, string, string][] = [
  ['index', '#', 'Sort by index'],
  ['max_activation', 'max act.', 'Sort by max activation, largest first'],
  ['density', 'density', 'Sort by density, largest first']
];

/** Return the elements of view `id`, its root appended to `el`. */
export function buildDom(el: HTMLElement, id: number): FeatureDom {
  const root = h('div', 'im-feat');
  el.appendChild(root);
  const { header, title } = widgetHeader('im-feat', []);
  const subtitle = h('div', 'im-feat-subtitle', { 'data-role': 'subtitle' });
  const body = h('div', 'im-feat-body');
  const listBox = h('div', 'im-feat-list');
  const search = h('input', 'im-feat-search', {
    type: 'search',
    placeholder: 'search index or label',
    'aria-label': 'Search features by index or label',
    'data-role': 'search',
    spellcheck: 'false'
  });
  const head = h('div', 'im-feat-head im-feat-grid', { 'data-role': 'list-head' });
  const sortButtons = SORTS.map(([key, text, label]) =>
    h('button', 'im-feat-sort', { type: 'button', 'data-sort': key, title: label }, text)
  );
  const [byIndex, byMax, byDensity] = sortButtons;
  head.append(byIndex, h('span', 'im-feat-head-label', undefined, 'label'), byDensity, byMax);
  const scroll = h('div', 'im-feat-scroll', {
    role: 'listbox',
    tabindex: '0',
    'aria-label': 'Features',
    'data-role': 'list',
    'data-lm-suppress-shortcuts': 'true'
  });
  const spacer = h('div', 'im-feat-spacer');
  scroll.appendChild(spacer);
  const count = h('div', 'im-feat-count', { 'data-role': 'count' });
  listBox.append(search, head, scroll, count);
  const detail = h('div', 'im-feat-detail', { 'data-role': 'detail' });
  const detailTitle = h('div', 'im-feat-dtitle', { 'data-role': 'detail-title' });
  const detailStats = h('div', 'im-feat-dstats', { 'data-role': 'detail-stats' });
  const status = h('div', 'im-feat-status', { 'data-role': 'detail-status' });
  const exHead = h('div', 'im-feat-exhead');
  const legend = h('div', 'im-feat-legend', { 'data-role': 'legend' });
  const wrapButton = toggleButton('im-feat-button', 'Whole windows');
  wrapButton.dataset.role = 'whole';
  wrapButton.title = 'Show every token of each example (wrapped), not one line around its peak';
  exHead.append(
    h('div', 'im-feat-section', undefined, 'Top activating examples'),
    legend,
    wrapButton
  );
  const examples = h('div', 'im-feat-examples', { 'data-role': 'examples' });
  const charts = h('div', 'im-feat-charts');
  const histBox = h('div', 'im-feat-hist', { 'data-role': 'histogram-box' });
  const histPlot = h('div', 'im-feat-hist-plot');
  const histCanvas = h('canvas', 'im-feat-hist-canvas', { role: 'img', 'data-role': 'histogram' });
  const histYTitle = h('div', 'im-feat-hist-ytitle', { 'data-role': 'hist-y-title' }, 'count');
  const histXTitle = h('div', 'im-feat-hist-xtitle', { 'data-role': 'hist-x-title' }, 'activation');
  histPlot.append(histYTitle, histCanvas, histXTitle);
  histBox.append(
    h('div', 'im-feat-section', undefined, 'Histogram of nonzero activations'),
    histPlot
  );
  const logits = h('div', 'im-feat-logits', { 'data-role': 'logits' });
  charts.append(histBox, logits);
  detail.append(detailTitle, detailStats, status, exHead, examples, charts);
  body.append(listBox, detail);
  const live = h('div', 'im-feat-live', { 'aria-live': 'polite', 'data-role': 'live' });
  root.append(header, subtitle, body, live);
  root.dataset.view = String(id);
  return {
    root,
    title,
    subtitle,
    body,
    search,
    head,
    sortButtons,
    scroll,
    spacer,
    count,
    detail,
    detailTitle,
    detailStats,
    status,
    legend,
    wrapButton,
    examples,
    histBox,
    histPlot,
    histCanvas,
    histYTitle,
    histXTitle,
    logits,
    live
  };
}
