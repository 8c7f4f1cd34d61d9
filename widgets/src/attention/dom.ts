// The attention viewer's elements: a header of controls, the live readout right under it (where
// it is seen whatever the scroll position), the overview and the detail of one head side by side
// (or one above the other when narrow), then the tokens as text and the notes.
//
// Each plot is a frame: its axis titles outside a scroll box, and inside the box a grid of the
// label bands (sticky, so they stay in place when a big matrix scrolls) around the canvas.

import { h, toggleButton, widgetHeader } from '../lib/dom';

export interface PlotFrame {
  frame: HTMLDivElement; // the axis titles and the scroll box
  xTitle: HTMLDivElement;
  yTitle: HTMLDivElement;
  scroll: HTMLDivElement; // scrolls when the plot is wider (or taller) than its room
  plot: HTMLDivElement; // grid: corner, column labels, row labels, body
  xLabels: HTMLDivElement;
  yLabels: HTMLDivElement;
  body: HTMLDivElement; // the canvas and its highlights
}

export interface AttentionDom {
  root: HTMLDivElement;
  title: HTMLDivElement;
  batchSelect: HTMLSelectElement;
  modeButton: HTMLButtonElement;
  contrastButton: HTMLButtonElement;
  tableButton: HTMLButtonElement;
  live: HTMLDivElement;
  gridCaption: HTMLDivElement;
  overview: PlotFrame;
  gridCanvas: HTMLCanvasElement;
  detailCaption: HTMLDivElement;
  detailPlot: PlotFrame;
  detailCanvas: HTMLCanvasElement;
  hlRow: HTMLDivElement; // highlights of the hovered cell's row, column and the cell itself
  hlCol: HTMLDivElement;
  hlCell: HTMLDivElement;
  legend: HTMLDivElement;
  table: HTMLDivElement;
  text: HTMLDivElement;
  notes: HTMLDivElement;
}

// data-lm-suppress-shortcuts: while a canvas has focus, arrow keys and Enter drive the viewer,
// not the notebook's command-mode shortcuts (moving between cells).
const KEYS = { tabindex: '0', role: 'application', 'data-lm-suppress-shortcuts': 'true' };

/** Return a plot frame with axis titles `x` (above) and `y` (left, vertical). */
function plotFrame(role: string, x: string, y: string): PlotFrame {
  const frame = h('div', 'im-attn-frame', { 'data-plot': role });
  const xTitle = h('div', 'im-attn-axis-title im-attn-x-title', { 'data-axis': 'x' }, x);
  const yTitle = h('div', 'im-attn-axis-title im-attn-y-title', { 'data-axis': 'y' }, y);
  const scroll = h('div', 'im-attn-scroll');
  const plot = h('div', 'im-attn-plot');
  const corner = h('div', 'im-attn-corner');
  const xLabels = h('div', 'im-attn-xlabels', { 'aria-hidden': 'true' });
  const yLabels = h('div', 'im-attn-ylabels', { 'aria-hidden': 'true' });
  const body = h('div', 'im-attn-plot-body');
  plot.append(corner, xLabels, yLabels, body);
  scroll.appendChild(plot);
  frame.append(h('div', 'im-attn-corner-title'), xTitle, yTitle, scroll);
  return { frame, xTitle, yTitle, scroll, plot, xLabels, yLabels, body };
}

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
  const live = h('div', 'im-attn-live', { 'aria-live': 'polite', 'data-role': 'live' });

  const body = h('div', 'im-attn-body');
  const gridPanel = h('div', 'im-attn-panel', { 'data-role': 'overview' });
  const gridCaption = h('div', 'im-attn-caption');
  const overview = plotFrame('overview', 'head', 'layer');
  const gridCanvas = h('canvas', 'im-attn-grid', { ...KEYS, 'data-role': 'grid' });
  overview.body.appendChild(gridCanvas);
  gridPanel.append(gridCaption, overview.frame);

  const detailPanel = h('div', 'im-attn-panel im-attn-detail-panel');
  const detailCaption = h('div', 'im-attn-caption');
  const detailPlot = plotFrame('detail', 'key', 'query');
  const detailCanvas = h('canvas', 'im-attn-detail', { ...KEYS, 'data-role': 'detail' });
  const hlRow = h('div', 'im-attn-hl im-attn-hl-row', { hidden: '' });
  const hlCol = h('div', 'im-attn-hl im-attn-hl-col', { hidden: '' });
  const hlCell = h('div', 'im-attn-hl im-attn-hl-cell', { hidden: '' });
  detailPlot.body.append(detailCanvas, hlRow, hlCol, hlCell);
  const legend = h('div', 'im-attn-legend', { 'data-role': 'legend' });
  const table = h('div', 'im-attn-table');
  detailPanel.append(detailCaption, detailPlot.frame, legend, table);
  body.append(gridPanel, detailPanel);

  const text = h('div', 'im-attn-text', { 'data-role': 'tokens' });
  const notes = h('div', 'im-attn-notes');
  root.append(header, live, body, text, notes);
  return {
    root,
    title,
    batchSelect,
    modeButton,
    contrastButton,
    tableButton,
    live,
    gridCaption,
    overview,
    gridCanvas,
    detailCaption,
    detailPlot,
    detailCanvas,
    hlRow,
    hlCol,
    hlCell,
    legend,
    table,
    text,
    notes
  };
}
