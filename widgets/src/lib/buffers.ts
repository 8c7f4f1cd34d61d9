// Reading binary traits. anywidget hands bytes traits over as DataView (or ArrayBuffer); a view
// may be a slice of a larger buffer, so byteOffset and byteLength must always be honoured.

export type Binary = DataView | ArrayBuffer | Uint8Array | null | undefined;

/** Return the bytes of a binary trait as a Uint8Array over the same memory (no copy). */
export function bytes(value: Binary): Uint8Array {
  if (!value) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** Return the weight a uint8 code stands for: code / 255 * scale. */
export function decode(code: number, scale: number): number {
  return (code / 255) * scale;
}

/** Return the largest error of a decoded weight at this scale. */
export function maxError(scale: number): number {
  return scale / 510;
}
