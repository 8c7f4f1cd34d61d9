// Theme-aware colours for the attention maps. The Python side sends one sequential colour table
// (the static PNG uses the same one). On a light page it is used as sent. On a dark page a map
// whose zero is near-white would paint every unattended cell as a white block, so the table is
// composed again here: ordered from dark to bright and started at the page's own background, so
// zero attention is the background and more attention is brighter.

import { contrastRatio, luminance, parseColor, type Rgb } from '../lib/contrast';
import { themeInk, type Ink } from '../lib/theme';

export interface Palette {
  ink: Ink; // the theme's text, background, border and accent colours
  lut: Uint8Array; // 256 x RGB: the colour of each weight code (row 0 = zero)
  pad: Rgb; // padding positions: a grey between the background and the text
  key: string; // what the palette was built from, to rebuild it only when that changes
}

/** Over how many codes (of 255) the dark map fades in from the background. */
const FADE = 40;

/** Return the colour table for a dark background `bg` from the light-theme table `base`. */
export function darkLut(base: Uint8Array, bg: Rgb): Uint8Array {
  const row = (i: number): Rgb => [base[i * 3], base[i * 3 + 1], base[i * 3 + 2]];
  // A map that gets darker with weight (Blues, Greys, ...) is turned round: bright = strong.
  const reverse = luminance(row(0)) > luminance(row(255));
  const out = new Uint8Array(768);
  for (let i = 0; i < 256; i++) {
    const c = row(reverse ? 255 - i : i);
    const t = Math.min(1, i / FADE); // zero is exactly the background, then the map fades in
    for (let j = 0; j < 3; j++) out[i * 3 + j] = Math.round(bg[j] + (c[j] - bg[j]) * t);
  }
  return out;
}

/** Return `a` mixed with `b` by `t` (0: a, 1: b). */
export function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return a.map((c, i) => Math.round(c + (b[i] - c) * t)) as Rgb;
}

/** Return black or white, whichever has the higher contrast on `rgb` (at least 4.58:1). */
export function chipInk(rgb: Rgb): string {
  return contrastRatio([0, 0, 0], rgb) >= contrastRatio([255, 255, 255], rgb) ? '#000' : '#fff';
}

/** Return the colours of `root`'s theme now, reusing `previous` when nothing changed. */
export function themedPalette(root: Element, base: Uint8Array, previous: Palette | null): Palette {
  const ink = themeInk(root);
  let sum = 0;
  for (let i = 0; i < base.length; i += 7) sum = (sum * 31 + base[i]) >>> 0;
  const key = `${ink.bg}|${ink.fg}|${ink.border}|${ink.accent}|${base.length}|${sum}`;
  if (previous && previous.key === key) return previous;
  const bg = parseColor(ink.bg) ?? [255, 255, 255];
  const fg = parseColor(ink.fg) ?? [0, 0, 0];
  const table = base.length === 768 ? base : new Uint8Array(768);
  return {
    ink,
    lut: ink.dark ? darkLut(table, bg) : table,
    pad: mix(bg, fg, 0.33),
    key
  };
}
