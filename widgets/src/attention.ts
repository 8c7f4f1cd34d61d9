// The attention viewer: a layers x heads overview of thumbnails, one head in detail (query x key
// with token labels and hover values), and a focus-token mode that shows where every head sends
// the attention of one query, over the text. Weights arrive as uint8 codes in binary traits.
// The parts live in attention/; this module keeps the view in step with the model, the theme
// (colours are read at draw time, so a theme switch redraws) and the output area's width.

import type { AnyWidget, RenderProps } from '@anywidget/types';
import './attention.css';
import { bytes } from './lib/buffers';
import { setPressed } from './lib/dom';
import { onThemeChange } from './lib/theme';
import { Tooltip } from './lib/tooltip';
import { drawDetail } from './attention/detail';
import { buildDom } from './attention/dom';
import { redraw } from './attention/draw';
import { attachInput } from './attention/input';
import { drawGrid } from './attention/overview';
import { drawText } from './attention/text';
import { onValueReply, refreshReadout } from './attention/values';
import { createView, headKey, type AttentionTraits, type View } from './attention/view';

/** Keep the head the kernel sent last, so going back to it needs no round trip. */
function storeDetail(v: View): void {
  const k = v.model.get('detail_key');
  const data = bytes(v.model.get('detail'));
  if (!k || k.length !== 3 || data.length === 0) return;
  const codes = data.slice();
  v.details.set(headKey(k[0], k[1], k[2]), { codes, scale: v.model.get('detail_scale') });
}

/** Keep the focus rows the kernel sent last. */
function storeFocus(v: View): void {
  const k = v.model.get('focus_key');
  const data = bytes(v.model.get('focus_rows'));
  if (!k || k.length !== 2 || data.length === 0) return;
  v.focusCache.set(`${k[0]}/${k[1]}`, data.slice());
}

/** Return the model events the view follows, each with what it redraws. */
function traitHandlers(v: View): [string, () => void][] {
  const onDetail = (): void => {
    storeDetail(v);
    drawDetail(v);
    refreshReadout(v); // a cell that said "loading" now has its weight
  };
  const onFocusRows = (): void => {
    storeFocus(v);
    drawGrid(v);
    drawText(v);
    refreshReadout(v);
  };
  const onBatch = (): void => {
    v.details.clear();
    v.target = null; // a cell of the previous sequence is not what the reader points at now
    storeDetail(v);
    redraw(v);
  };
  const onAny = (): void => redraw(v);
  return [
    ['change:detail', onDetail],
    ['change:detail_key', onDetail],
    ['change:focus_rows', onFocusRows],
    ['change:thumbs', onBatch],
    ['change:selected', onAny],
    ['change:meta', onAny]
  ];
}

let views = 0; // numbers each view's tooltip id (two views of one model share a page)

/** Redraw `v` whenever its width changes (the sidebars open or close, the window resizes).
 * The view's width comes from the output area, never from its content, so redrawing at a new
 * width cannot change that width again: no resize feedback loop. */
function followWidth(v: View): () => void {
  if (typeof ResizeObserver === 'undefined') return () => undefined;
  let width = v.dom.root.clientWidth;
  let frame = 0;
  const observer = new ResizeObserver(() => {
    const now = v.dom.root.clientWidth;
    if (now === width || now === 0) return;
    width = now;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => redraw(v));
  });
  observer.observe(v.dom.root);
  return () => {
    observer.disconnect();
    cancelAnimationFrame(frame);
  };
}

function render({ model, el }: RenderProps<AttentionTraits>): () => void {
  const dom = buildDom(el);
  const v = createView(model, dom, new Tooltip(dom.root, `im-attn-tip-${++views}`));
  attachInput(v);
  const handlers = traitHandlers(v);
  const onMessage = (msg: unknown): void => onValueReply(v, msg);
  for (const [event, cb] of handlers) model.on(event, cb);
  model.on('msg:custom', onMessage);

  storeDetail(v);
  storeFocus(v);
  if (model.get('focus') >= 0) {
    v.mode = 'focus';
    setPressed(v.dom.modeButton, true);
  }
  redraw(v);
  const stopTheme = onThemeChange(() => redraw(v));
  const stopWidth = followWidth(v);

  return () => {
    for (const [event, cb] of handlers) model.off(event, cb);
    model.off('msg:custom', onMessage);
    stopTheme();
    stopWidth();
    v.dom.root.remove();
  };
}

export default { render } satisfies AnyWidget<AttentionTraits>;
