// The attention viewer's elements: a header of controls, the overview grid and the detail of one
// head side by side, then the tokens as text, the live readout and the notes.

import { h, toggleButton, widgetHeader } from '../lib/dom';

export interface AttentionDom {
  root: HTMLDivElement;
  title: HTMLDivElement;
  batchSelect: HTMLSelectElement;
  modeButton: HTMLButtonElement;
  contrastButton: HTMLButtonElement;
  tableButton: HTMLButtonElement;
  gridCaption: HTMLDivElement;
  gridCanvas: HTMLCanvasElement;
  detailCaption: HTMLDivElement;
  detailWrap: HTMLDivElement;
  keyLabels: HTMLDivElement;
  queryLabels: HTMLDivElement;
  detailCanvas: HTMLCanvasElement;
  legend: HTMLDivElement;
  table: HTMLDivElement;
  text: HTMLDivElement;
  live: HTMLDivElement;
  notes: HTMLDivElement;
}

// data-lm-suppress-shortcuts: while a canvas has focus, arrow keys and Enter drive the viewer,
// not the notebook's command-mode shortcuts (moving between cells).
const KEYS = { tabindex: '0', role: 'application', 'data-lm-suppress-shortcuts': 'true' };

/** Return the viewer's elements, built and appended to `el`. */
export function buildDom(el: HTMLElement): AttentionDom {
  const root = h('div', 'im-attn');
  el.appendChild(root);
  const batchSelect = h('select', 'im-attn-batch', { 'aria-label': 'Sequence in the batch' });
  const modeButton = toggleButton('im-attn-button', 'Focus token');
  const contrastButton = toggleButton('im-attn-button', '√ contrast');
  const tableButton = toggleButton('im-attn-button', 'As table');
  const controls = [batchSelect, modeButton, contrastButton, tableButton];
  const { header, title } = widgetHeader('im-attn', controls);

  const body = h('div', 'im-attn-body');
  const gridPanel = h('div', 'im-attn-panel');
  const gridCaption = h('div', 'im-attn-caption');
  const gridCanvas = h('canvas', 'im-attn-grid', { ...KEYS, 'data-role': 'grid' });
  gridPanel.append(gridCaption, gridCanvas);

  const detailPanel = h('div', 'im-attn-panel im-attn-detail-panel');
  const detailCaption = h('div', 'im-attn-caption');
  const detailWrap = h('div', 'im-attn-detail-wrap');
  const keyLabels = h('div', 'im-attn-keys');
  const queryLabels = h('div', 'im-attn-queries');
  const detailCanvas = h('canvas', 'im-attn-detail', { ...KEYS, 'data-role': 'detail' });
  detailWrap.append(keyLabels, queryLabels, detailCanvas);
  const legend = h('div', 'im-attn-legend');
  const table = h('div', 'im-attn-table');
  detailPanel.append(detailCaption, detailWrap, legend, table);
  body.append(gridPanel, detailPanel);

  const text = h('div', 'im-attn-text', { 'data-role': 'tokens' });
  const live = h('div', 'im-attn-live', { 'aria-live': 'polite', 'data-role': 'live' });
  const notes = h('div', 'im-attn-notes');
  root.append(header, body, text, live, notes);
  return {
    root,
    title,
    batchSelect,
    modeButton,
    contrastButton,
    tableButton,
    gridCaption,
    gridCanvas,
    detailCaption,
    detailWrap,
    keyLabels,
    queryLabels,
    detailCanvas,
    legend,
    table,
    text,
    live,
    notes
  };
}
