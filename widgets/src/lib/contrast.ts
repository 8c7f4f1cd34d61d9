// Text contrast (WCAG 2.1): relative luminance, contrast ratios, and the nearest colour that
// reaches a ratio on a given background, so canvas text stays readable in any theme.

export type Rgb = [number, number, number];

/** Return [r, g, b] (0..255) of a CSS colour in `#rgb`, `#rrggbb` or `rgb()/rgba()` form, or null. */
export function parseColor(css: string): Rgb | null {
  const s = css.trim().toLowerCase();
  let m = /^#([0-9a-f]{3})$/.exec(s);
  if (m) return [0, 1, 2].map(i => parseInt(m![1][i] + m![1][i], 16)) as Rgb;
  m = /^#([0-9a-f]{6})(?:[0-9a-f]{2})?$/.exec(s);
  if (m) return [0, 2, 4].map(i => parseInt(m![1].slice(i, i + 2), 16)) as Rgb;
  m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/.exec(s);
  if (m) return [Number(m[1]), Number(m[2]), Number(m[3])];
  return null;
}

/** Return the alpha (0..1) of a CSS colour: `rgba()`/`rgb(r g b / a)` or `#rrggbbaa`; 1 otherwise. */
export function parseAlpha(css: string): number {
  const s = css.trim().toLowerCase();
  const hex = /^#[0-9a-f]{6}([0-9a-f]{2})$/.exec(s);
  if (hex) return parseInt(hex[1], 16) / 255;
  const inner = /^rgba?\(([^)]*)\)$/.exec(s);
  if (!inner) return 1;
  const parts = inner[1].split(/[\s,/]+/).filter(Boolean);
  if (parts.length < 4) return 1;
  const a = parts[3];
  return a.endsWith('%') ? Number(a.slice(0, -1)) / 100 : Number(a);
}

/** Return `ink` drawn with opacity `alpha` over `background`, as the eye sees it. */
export function over(ink: Rgb, alpha: number, background: Rgb): Rgb {
  return ink.map((c, i) => Math.round(c * alpha + background[i] * (1 - alpha))) as Rgb;
}

/** Return the WCAG relative luminance (0 black .. 1 white) of an sRGB colour. */
export function luminance([r, g, b]: Rgb): number {
  const lin = (c: number): number => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** Return the WCAG contrast ratio (1 .. 21) of two colours. */
export function contrastRatio(a: Rgb, b: Rgb): number {
  const [la, lb] = [luminance(a), luminance(b)];
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}

/** Return `ink` moved toward black or white (whichever the background allows) until its
 * contrast with `background` is at least `ratio` (4.5: WCAG AA for body text). */
export function readableOn(ink: Rgb, background: Rgb, ratio = 4.5): Rgb {
  if (contrastRatio(ink, background) >= ratio) return ink;
  const target: Rgb = luminance(background) > 0.18 ? [0, 0, 0] : [255, 255, 255];
  for (let step = 1; step <= 20; step++) {
    const t = step / 20;
    const mixed = ink.map((c, i) => Math.round(c + (target[i] - c) * t)) as Rgb;
    if (contrastRatio(mixed, background) >= ratio) return mixed;
  }
  return target;
}

/** Return a CSS `rgb()` string of a colour. */
export function css([r, g, b]: Rgb): string {
  return `rgb(${r}, ${g}, ${b})`;
}
