// Edges as curves: a cubic Bézier from the sender's out point up to the receiver's port,
// leaving and arriving vertically, and hit-testing against the curves as the pointer moves (the
// nearest shown edge within a few pixels of its stroke; on a tie, the stronger edge, which is
// drawn on top). Pure geometry, tested without a browser.

import type { Point } from './layout';

export type Curve = [Point, Point, Point, Point];

/** Samples per curve for hit-testing: within a fraction of a pixel of the drawn stroke for the
 * lengths a notebook shows. */
export const SAMPLES = 24;
/** Pointer slack beyond half the stroke's width, px. */
export const HIT_SLACK = 3;

/** How far the control points reach, as a fraction of the rise: enough to leave and arrive
 * vertically, little enough that an edge's middle runs along its own diagonal (with 0.5, every
 * edge between two rows would run flat along the same middle line, where none could be told
 * from another). */
export const BEND = 0.35;
/** Pixels the control points reach at least (short rises, e.g. a head into its layer's MLP). */
export const MIN_BEND = 10;
/** Within this many pixels of the nearest, a stronger edge wins the pointer. */
export const TIE_PX = 0.5;

/** Return the curve from `from` (a sender, below) to `to` (a port, above). */
export function curve(from: Point, to: Point): Curve {
  const dy = Math.max(MIN_BEND, (from.y - to.y) * BEND);
  return [from, { x: from.x, y: from.y - dy }, { x: to.x, y: to.y + dy }, to];
}

/** Return the point at `t` (0..1) of a curve. */
export function pointAt([a, b, c, d]: Curve, t: number): Point {
  const u = 1 - t;
  const w = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t];
  return {
    x: w[0] * a.x + w[1] * b.x + w[2] * c.x + w[3] * d.x,
    y: w[0] * a.y + w[1] * b.y + w[2] * c.y + w[3] * d.y
  };
}

/** A curve sampled for hit-testing, with its bounding box. */
export interface Path {
  xy: Float32Array; // x0, y0, x1, y1, ...
  box: [number, number, number, number]; // min x, min y, max x, max y
}

/** Return `c` sampled at SAMPLES + 1 points. */
export function sample(c: Curve): Path {
  const xy = new Float32Array(2 * (SAMPLES + 1));
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (let i = 0; i <= SAMPLES; i++) {
    const p = pointAt(c, i / SAMPLES);
    xy[2 * i] = p.x;
    xy[2 * i + 1] = p.y;
    [x0, y0, x1, y1] = [Math.min(x0, p.x), Math.min(y0, p.y), Math.max(x1, p.x), Math.max(y1, p.y)];
  }
  return { xy, box: [x0, y0, x1, y1] };
}

/** Return the distance from (x, y) to a sampled path. */
export function distance(path: Path, x: number, y: number): number {
  const p = path.xy;
  let best = Infinity;
  for (let i = 0; i + 3 < p.length; i += 2) {
    const [ax, ay, bx, by] = [p[i], p[i + 1], p[i + 2], p[i + 3]];
    const dx = bx - ax;
    const dy = by - ay;
    const len = dx * dx + dy * dy;
    const t = len > 0 ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / len)) : 0;
    best = Math.min(best, Math.hypot(x - ax - t * dx, y - ay - t * dy));
  }
  return best;
}

/** Return the edge (one of `order`, strongest first) whose stroke is nearest (x, y) and within
 * reach (half its width plus HIT_SLACK, at least 4 px), or null; of edges nearly as near
 * (TIE_PX), the stronger, which is drawn over the weaker. */
export function edgeAt(
  order: number[],
  paths: Map<number, Path>,
  width: (edge: number) => number,
  x: number,
  y: number
): number | null {
  let best: number | null = null;
  let bestD = Infinity;
  for (const edge of order) {
    const path = paths.get(edge);
    if (!path) continue;
    const reach = Math.max(4, width(edge) / 2 + HIT_SLACK);
    const [x0, y0, x1, y1] = path.box;
    if (x < x0 - reach || x > x1 + reach || y < y0 - reach || y > y1 + reach) continue;
    const d = distance(path, x, y);
    if (d <= reach && d < bestD - TIE_PX) {
      best = edge;
      bestD = d;
    }
  }
  return best;
}
