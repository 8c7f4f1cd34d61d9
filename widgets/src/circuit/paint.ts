// Painting the graph on a canvas: the shown edges, weakest first so the strongest lie on top
// (edges away from a clicked node faded), then the node boxes over their ends, the grouped
// key/value bars and the ports (with q, k, v written over them when the boxes have room). The
// hover marks (the edge drawn again over everything with a halo, its endpoints and the hovered
// node outlined in the accent colour) are painted over a copy of this base.

import type { Ink } from '../lib/theme';
import type { Edges } from './data';
import { curve, type Curve } from './curves';
import type { GraphLayout, NodeBox } from './layout';
import { strokeAlpha, strokeColour, strokeWidth, type EdgeStyle } from './style';

export const FADED = 0.12; // opacity factor of edges away from the clicked node
export const PORT_R = 2;
export const LETTER_FONT_PX = 10;

/** Return the curve of edge row `k`. */
export function edgeCurve(l: GraphLayout, e: Edges, k: number): Curve {
  return curve(l.out[e.sender[k]], l.port[e.receiver[k]]);
}

function strokeCurve(ctx: CanvasRenderingContext2D, [a, b, c, d]: Curve): void {
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.bezierCurveTo(b.x, b.y, c.x, c.y, d.x, d.y);
  ctx.stroke();
}

/** Draw one edge in its style (opacity times `fade`). */
export function paintEdge(
  ctx: CanvasRenderingContext2D,
  l: GraphLayout,
  e: Edges,
  k: number,
  s: EdgeStyle,
  fade = 1
): void {
  const score = e.score[k];
  ctx.globalAlpha = strokeAlpha(score, s.limit) * fade;
  ctx.strokeStyle = strokeColour(score, s);
  ctx.lineWidth = strokeWidth(score, s.limit);
  ctx.lineCap = 'round';
  strokeCurve(ctx, edgeCurve(l, e, k));
  ctx.globalAlpha = 1;
}

function box(ctx: CanvasRenderingContext2D, n: NodeBox): void {
  ctx.beginPath();
  const r = Math.min(4, n.w / 4, n.h / 4);
  ctx.roundRect(n.x + 0.5, n.y + 0.5, Math.max(0, n.w - 1), Math.max(0, n.h - 1), r);
}

/** Paint the base: edges (`touching`: rows to keep bright when a node is clicked), then nodes;
 * port letters in `fontFamily`. */
export function paintBase(
  ctx: CanvasRenderingContext2D,
  l: GraphLayout,
  e: Edges,
  shown: number[],
  s: EdgeStyle,
  ink: Ink,
  touching: Set<number> | null,
  fontFamily: string
): void {
  // weakest first; a clicked node's edges after every other, so they lie on top
  const weakestFirst = [...shown].reverse();
  for (const k of weakestFirst)
    if (!touching?.has(k)) paintEdge(ctx, l, e, k, s, touching ? FADED : 1);
  if (touching) for (const k of weakestFirst) if (touching.has(k)) paintEdge(ctx, l, e, k, s);
  const used = new Set<number>();
  for (const k of shown) {
    used.add(e.sender[k]);
    for (const n of l.readers[e.receiver[k]]) used.add(n);
  }
  ctx.lineWidth = 1;
  l.nodes.forEach((n, i) => {
    box(ctx, n);
    ctx.fillStyle = ink.bg;
    ctx.fill();
    // boxes with a drawn edge have the text colour's frame; the others the quiet border
    ctx.strokeStyle = used.has(i) ? ink.fg : ink.border;
    ctx.stroke();
  });
  ctx.fillStyle = ink.muted;
  for (const b of l.bars) ctx.fillRect(b.x, b.y, b.w, b.h);
  ctx.fillStyle = ink.fg;
  for (const p of l.port) {
    ctx.beginPath();
    ctx.arc(p.x, p.y, PORT_R, 0, 2 * Math.PI);
    ctx.fill();
  }
  if (l.portLetters) {
    ctx.font = `${LETTER_FONT_PX}px ${fontFamily}`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    l.port.forEach((p, r) => {
      const kind = l.portKind[r];
      if (kind === 'q' || kind === 'k' || kind === 'v') ctx.fillText(kind, p.x, p.y - 2);
    });
  }
}

/** Paint the hover marks: edge `edge` (or none) with a halo, and `nodes` outlined. */
export function paintMarks(
  ctx: CanvasRenderingContext2D,
  l: GraphLayout,
  e: Edges,
  s: EdgeStyle,
  ink: Ink,
  marks: { edge: number | null; nodes: number[]; selected: number | null }
): void {
  if (marks.edge !== null) {
    const c = edgeCurve(l, e, marks.edge);
    ctx.globalAlpha = 0.9;
    ctx.strokeStyle = ink.bg;
    ctx.lineWidth = strokeWidth(e.score[marks.edge], s.limit) + 4;
    strokeCurve(ctx, c);
    ctx.globalAlpha = 1;
    ctx.strokeStyle = strokeColour(e.score[marks.edge], s);
    ctx.lineWidth = Math.max(2, strokeWidth(e.score[marks.edge], s.limit));
    strokeCurve(ctx, c);
  }
  const outline = (i: number, width: number): void => {
    const n = l.nodes[i];
    ctx.lineWidth = width;
    ctx.strokeStyle = ink.accent;
    ctx.beginPath();
    ctx.roundRect(n.x - 1, n.y - 1, n.w + 2, n.h + 2, 4);
    ctx.stroke();
  };
  if (marks.selected !== null) outline(marks.selected, 3);
  for (const i of marks.nodes) outline(i, 2);
}
