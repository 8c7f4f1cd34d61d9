// Painting square matrices of uint8 codes into RGBA pixel buffers (for ImageData), with pad and
// causal masking. Pure functions over typed arrays, so they are tested without a browser.

export interface PaintOptions {
  lut: Uint8Array; // 256 x RGB
  index: Uint8Array; // code -> LUT row (contrast)
  codeScale?: number; // multiply codes before lookup (detail codes use their own scale)
  pad?: Uint8Array; // 1 where a position is padding (greyed)
  causal?: boolean; // k > q is not a possible attention: leave transparent
}

export const PAD_RGB: [number, number, number] = [170, 170, 170];

/** Write the colour at `rgb[at..at+2]`, opaque, into the pixel at byte `p` of `out`. */
function putRgb(out: Uint8ClampedArray, p: number, rgb: ArrayLike<number>, at: number): void {
  out[p] = rgb[at];
  out[p + 1] = rgb[at + 1];
  out[p + 2] = rgb[at + 2];
  out[p + 3] = 255;
}

/** Return RGBA pixels for an n x n matrix of codes (row = query, column = key). */
export function paintMatrix(
  codes: Uint8Array,
  n: number,
  opts: PaintOptions
): Uint8ClampedArray<ArrayBuffer> {
  const out = new Uint8ClampedArray(n * n * 4);
  const scale = opts.codeScale ?? 1;
  for (let q = 0; q < n; q++) {
    const padQ = opts.pad ? opts.pad[q] === 1 : false;
    for (let k = 0; k < n; k++) {
      const p = (q * n + k) * 4;
      if (opts.causal && k > q) continue; // transparent
      if (padQ || (opts.pad && opts.pad[k] === 1)) {
        putRgb(out, p, PAD_RGB, 0);
        continue;
      }
      const code = Math.min(255, Math.round(codes[q * n + k] * scale));
      putRgb(out, p, opts.lut, opts.index[code] * 3);
    }
  }
  return out;
}

/** Return RGBA pixels for a 1 x n strip of codes (one attention row). */
export function paintStrip(codes: Uint8Array, opts: PaintOptions): Uint8ClampedArray<ArrayBuffer> {
  const n = codes.length;
  const out = new Uint8ClampedArray(n * 4);
  for (let k = 0; k < n; k++) {
    const p = k * 4;
    if (opts.pad && opts.pad[k] === 1) {
      putRgb(out, p, PAD_RGB, 0);
      continue;
    }
    putRgb(out, p, opts.lut, opts.index[codes[k]] * 3);
  }
  return out;
}

/** Return `bins` block maxima of `codes` (or `codes` itself when it is no longer than `bins`).

Downsampling by maxima keeps a single strong weight visible; nearest-neighbour scaling would
drop it whenever it falls between sampled pixels. */
export function poolMax(codes: Uint8Array, bins: number): Uint8Array {
  const n = codes.length;
  if (n <= bins) return codes;
  const out = new Uint8Array(bins);
  for (let b = 0; b < bins; b++) {
    const start = Math.floor((b * n) / bins);
    const end = Math.max(start + 1, Math.floor(((b + 1) * n) / bins));
    let m = 0;
    for (let i = start; i < end; i++) if (codes[i] > m) m = codes[i];
    out[b] = m;
  }
  return out;
}

/** Return `bins` flags: a bin is padding when every position in it is (no real token pools in). */
export function poolPad(pad: Uint8Array, bins: number): Uint8Array {
  if (pad.length <= bins) return pad;
  const real = poolMax(
    pad.map(p => (p === 1 ? 0 : 1)),
    bins
  );
  return real.map(r => (r === 0 ? 1 : 0));
}

/** Return true when any painted pixel differs from fully transparent. */
export function anyInk(rgba: Uint8ClampedArray): boolean {
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 0) return true;
  return false;
}
