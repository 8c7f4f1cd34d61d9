// Colour lookup: the Python side sends one 256 x RGB table (from a matplotlib colormap), so the
// live view and the static PNG use the same colours.

export type Contrast = 'linear' | 'sqrt';

/** Return the lookup-table index for a code (0..255 of the colour range) under a contrast. */
export function lutIndex(code: number, contrast: Contrast): number {
  if (contrast === 'sqrt') return Math.round(Math.sqrt(code / 255) * 255);
  return code;
}

/** Return a 256-entry table mapping codes straight to LUT rows, for one contrast setting. */
export function indexTable(contrast: Contrast): Uint8Array {
  const table = new Uint8Array(256);
  for (let c = 0; c < 256; c++) table[c] = lutIndex(c, contrast);
  return table;
}

/** Return the CSS colour of a lookup-table row. */
export function cssColor(lut: Uint8Array, index: number): string {
  const i = Math.max(0, Math.min(255, index)) * 3;
  return `rgb(${lut[i]}, ${lut[i + 1]}, ${lut[i + 2]})`;
}

/** Return black or white, whichever reads better on a lookup-table colour. */
export function inkFor(lut: Uint8Array, index: number): string {
  const i = Math.max(0, Math.min(255, index)) * 3;
  const luminance = 0.2126 * lut[i] + 0.7152 * lut[i + 1] + 0.0722 * lut[i + 2];
  return luminance > 140 ? '#111' : '#fff';
}

/** Return the LUT row of a signed value on a diverging scale centred on 0 over [-vmax, vmax]. */
export function divergingIndex(value: number, vmax: number): number {
  if (!Number.isFinite(value)) return 128;
  const t = vmax > 0 ? value / vmax : 0;
  return Math.max(0, Math.min(255, Math.round(((t + 1) / 2) * 255)));
}
