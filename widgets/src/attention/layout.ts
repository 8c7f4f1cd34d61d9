// Sizes of the overview and the detail for the width the output area gives the view: the
// thumbnails shrink (to a minimum) before the overview would stick out, the detail sits beside
// the overview when it still gets a useful size there and below it otherwise, and a matrix
// too big for its room scrolls inside its plot while its axes stay in place.

import { meta, type View } from './view';

export const GAP = 3; // CSS pixels between thumbnails
export const STEP_MAX = 43; // thumbnail (40 px, what Python pools to) plus the gap
export const STEP_MIN = 15;
export const TITLE_W = 18; // the band of a vertical axis title ("layer", "query")
export const LAYER_W = 34; // the overview's layer labels (L0, L11)
export const HEAD_H = 18; // the overview's head labels (H0, H11)
export const QUERY_W = 92; // the detail's query labels
export const KEYS_H = 76; // the detail's key labels, rotated by 60 degrees
// A key label is at most this wide: slanted by 60 degrees it rises 0.87 x 76 + 7 = 73 px (inside
// KEYS_H) and reaches 0.5 x 76 = 38 px right of its column, inside the overhang kept for it.
export const KEY_LABEL_PX = 76;
export const KEYS_OVERHANG = 42;
export const DETAIL_PX = 480; // the detail's matrix is at most about this wide
export const DETAIL_MIN = 200; // beside the overview only when the matrix gets this much room
export const CELL_MAX = 28; // few tokens: big enough to read, small enough to fit a screen
export const BODY_GAP = 16; // between the overview and the detail

export interface Layout {
  width: number; // the view's width these sizes are for
  step: number; // overview: CSS pixels per head, gap included
  thumb: number; // overview: CSS pixels of a thumbnail
  overviewWidth: number; // the overview plot's width, at most the view's width
  cell: number; // detail: CSS pixels per token
  detailRoom: number; // the detail plot's room (its scroll box is no wider)
  beside: boolean; // the detail sits beside the overview
}

/** Return the overview plot's full width (titles and labels included) for `step`. */
function overviewWidth(heads: number, step: number): number {
  return TITLE_W + LAYER_W + heads * step - GAP + 2;
}

/** Return the detail plot's full width for `n` tokens of `cell` pixels. */
export function detailWidth(n: number, cell: number): number {
  return TITLE_W + QUERY_W + n * cell + KEYS_OVERHANG;
}

/** Return the sizes for a view `width` CSS pixels wide showing `heads` x `n` tokens. */
export function computeLayout(width: number, heads: number, n: number): Layout {
  const fixedGrid = overviewWidth(heads, 0);
  let step = STEP_MAX;
  if (fixedGrid + heads * step > width) {
    step = Math.max(STEP_MIN, Math.floor((width - fixedGrid) / Math.max(1, heads)));
  }
  const ow = Math.min(width, overviewWidth(heads, step));
  const fixedDetail = detailWidth(n, 0);
  const side = width - ow - BODY_GAP;
  const beside = side - fixedDetail >= Math.min(DETAIL_MIN, n * CELL_MAX);
  const room = beside ? side : width;
  const matrix = Math.min(DETAIL_PX, room - fixedDetail);
  const cell = Math.max(1, Math.min(CELL_MAX, Math.floor(matrix / Math.max(1, n))));
  return {
    width,
    step,
    thumb: step - GAP,
    overviewWidth: ow,
    cell,
    detailRoom: room,
    beside
  };
}

/** Return the view's width now (a default before it is in the page, where it has none). */
export function viewWidth(v: View): number {
  const w = v.dom.root.clientWidth;
  return w > 0 ? w : 900;
}

/** Return the layout for the view's width now (cheap: computed at every draw), kept on the view. */
export function layout(v: View): Layout {
  const m = meta(v);
  v.layout = computeLayout(viewWidth(v), m.heads, m.seq);
  return v.layout;
}
