// Asking the kernel for a feature's detail: a custom message `{type: 'detail', id, feature}`,
// answered with the packed detail as one binary buffer (or an error), kept by the view for the
// next time the feature is selected. One request is in flight at a time; while it is, only the
// latest feature asked for waits its turn (the arrow keys can run through many features).

import { decodeDetail } from './decode';
import type { View } from './view';

/** A kernel reply to a `detail` request. */
interface DetailReply {
  type: 'detail';
  id: number;
  feature?: number;
  error?: string;
}

/** Ask the kernel for `feature`'s detail (unless it is at hand or already asked for). */
export function requestDetail(v: View, feature: number): void {
  if (v.details.has(feature) || v.errors.has(feature)) return;
  const q = v.request;
  if (q.inFlight !== null) {
    q.pending = feature;
    return;
  }
  q.inFlight = ++q.lastId;
  v.model.send({ type: 'detail', id: q.inFlight, feature });
}

function isReply(msg: unknown): msg is DetailReply {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'detail';
}

/** Keep a kernel reply, call `refresh` with the feature it concerns, then send the waiting
 * request. */
export function onDetailReply(
  v: View,
  msg: unknown,
  buffers: unknown,
  refresh: (feature: number) => void
): void {
  if (!isReply(msg)) return;
  const q = v.request;
  if (msg.id === q.inFlight) q.inFlight = null;
  const feature = msg.feature;
  const data = Array.isArray(buffers) ? buffers[0] : undefined;
  if (typeof feature === 'number') {
    if (msg.error || !data) v.errors.set(feature, msg.error ?? 'the kernel sent no data');
    else {
      try {
        v.details.set(feature, decodeDetail(data));
      } catch (err) {
        v.errors.set(feature, String(err));
      }
    }
    refresh(feature);
  }
  if (q.pending !== null) {
    const next = q.pending;
    q.pending = null;
    requestDetail(v, next);
  }
}
