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

/** Return a float32 binary trait as a Float32Array (copied when the view is not 4-byte aligned). */
export function floats(value: Binary): Float32Array {
  const b = bytes(value);
  if (b.byteOffset % 4 === 0)
    return new Float32Array(b.buffer, b.byteOffset, Math.floor(b.byteLength / 4));
  const copy = b.slice();
  return new Float32Array(copy.buffer, 0, Math.floor(copy.byteLength / 4));
}
