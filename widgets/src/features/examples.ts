// A feature's top-activating examples: each a row of its tokens, every token on the highlight
// colour laid over the theme's background with opacity = its activation / the feature's max,
// its text dark or light (whichever reads at 4.5:1 on that colour, readableOn), the strongest
// token of each example underlined. Each example shows the tokens that fit one line around its
// strongest (an ellipsis marks a cut; nothing is clipped or scrolled), or, with "whole
// windows" on, every token, wrapped. Hovering a token shows its activation in the tooltip.

import { css, over, parseColor, readableOn, type Rgb } from '../lib/contrast';
import { h, showToken } from '../lib/dom';
import type { Ink } from '../lib/theme';
import { fmtResolved } from '../lib/ticks';
import { activationOf, exampleTokens, peakOf } from './decode';
import type { Detail, View } from './view';

// The contrast asked of a token's text: above WCAG's 4.5 so that anti-aliased glyphs still
// read at 4.5 on screen (readableOn stops at the first step that reaches its ratio; where none
// does, it gives black or white, whichever the background allows).
const TEXT_RATIO = 5.5;

/** Return the background and text colour of a token at `fraction` of its feature's max. */
export function tokenColours(
  fraction: number,
  highlight: Rgb,
  background: Rgb,
  text: Rgb
): { bg: Rgb; fg: Rgb } {
  const bg = over(highlight, Math.max(0, Math.min(1, fraction)), background);
  return { bg, fg: readableOn(text, bg, TEXT_RATIO) };
}

const TOKEN_MAX = 32; // characters of a token drawn (the tooltip has it whole)

/** Return a token as drawn in an example: whitespace kept, line breaks and tabs made visible,
 * at most TOKEN_MAX characters. */
export function tokenText(token: string): string {
  const t = token.replace(/\n/g, '⏎').replace(/\t/g, '⇥').replace(/\r/g, '␍');
  return t.length > TOKEN_MAX ? t.slice(0, TOKEN_MAX - 1) + '…' : t;
}

/** Return the tokens `[start, end)` around `peak` whose widths fit in `room` px (the peak
 * always), growing one token to each side in turn; `mark` px are kept for each cut side. */
export function fitAround(
  widths: number[],
  peak: number,
  room: number,
  mark: number
): [number, number] {
  let start = peak;
  let end = peak + 1;
  let used = widths[peak] ?? 0;
  const cost = (s: number, e: number): number =>
    used + (s > 0 ? mark : 0) + (e < widths.length ? mark : 0);
  for (let grew = true; grew;) {
    grew = false;
    if (end < widths.length && cost(start, end + 1) + widths[end] <= room) {
      used += widths[end++];
      grew = true;
    }
    if (start > 0 && cost(start - 1, end) + widths[start - 1] <= room) {
      used += widths[--start];
      grew = true;
    }
  }
  return [start, end];
}

/** Return the tooltip's lines for one token of an example. */
export function tokenLines(d: Detail, example: number, pos: number): string[] {
  const token = exampleTokens(d, example)[pos] ?? '';
  const value = activationOf(d, example, pos);
  const share = d.scale > 0 ? Math.round((value / d.scale) * 100) : 0;
  return [
    `“${showToken(token, 40)}”`,
    `activation ${fmtResolved(value, d.scale / 255, 4)} (${share}% of max ${fmtResolved(d.scale, 0, 4)})`,
    `example ${example + 1} · token ${pos + 1} of ${d.lengths[example]}`
  ];
}

/** Return what the themes give to paint with: the highlight, the background, the text. */
function palette(highlight: string, ink: Ink): { hl: Rgb; bg: Rgb; fg: Rgb } {
  return {
    hl: parseColor(highlight) ?? [230, 159, 0],
    bg: parseColor(ink.bg) ?? [255, 255, 255],
    fg: parseColor(ink.fg) ?? [31, 31, 31]
  };
}

/** Draw the examples of `d` (and the legend of their colours) in the theme's ink. */
export function drawExamples(v: View, d: Detail, highlight: string, ink: Ink): void {
  const { examples, legend } = v.dom;
  const p = palette(highlight, ink);
  const rows: HTMLElement[] = [];
  for (let e = 0; e < d.k; e++) {
    const tokens = exampleTokens(d, e);
    const peak = peakOf(d, e);
    const row = h('div', 'im-feat-example', { 'data-example': String(e) });
    const top = activationOf(d, e, peak);
    const value = h('span', 'im-feat-exmax', undefined, fmtResolved(top, d.scale / 255, 3));
    const line = h('span', 'im-feat-tokens');
    tokens.forEach((t, j) => {
      const code = d.codes[e * d.window + j];
      const span = h('span', 'im-feat-tok', { 'data-pos': String(j) }, tokenText(t));
      // an empty token is padding (a window that runs past its text's start or end): no box
      if (t === '') span.classList.add('im-feat-pad');
      if (code > 0) {
        const c = tokenColours(code / 255, p.hl, p.bg, p.fg);
        span.style.background = css(c.bg);
        span.style.color = css(c.fg);
        span.dataset.code = String(code);
      }
      if (j === peak && code > 0) span.classList.add('im-feat-peak');
      line.appendChild(span);
    });
    line.dataset.peak = String(peak);
    row.setAttribute(
      'aria-label',
      `example ${e + 1}, max activation ${value.textContent}: ${tokens.join('')}`
    );
    row.append(value, line);
    rows.push(row);
  }
  if (!d.k)
    rows.push(
      h('div', 'im-feat-empty', undefined, 'No examples: the feature never fired on the data.')
    );
  examples.replaceChildren(...rows);
  drawLegend(legend, d, p, ink);
}

const MARK_W = 14; // px of a cut's ellipsis

/** Show in each example the tokens that fit one line around its strongest (or all of them,
 * wrapped, when `whole`). Reads every width first, then writes: one layout in all. */
export function fitExamples(examples: HTMLElement, whole: boolean): void {
  examples.classList.toggle('im-feat-wrap', whole);
  const lines = [...examples.querySelectorAll<HTMLElement>('.im-feat-tokens')];
  for (const line of lines) {
    line.querySelectorAll('.im-feat-cut').forEach(c => c.remove());
    line.querySelectorAll<HTMLElement>('.im-feat-tok[hidden]').forEach(t => (t.hidden = false));
  }
  if (whole) return;
  const plans = lines.map(line => {
    const toks = [...line.querySelectorAll<HTMLElement>('.im-feat-tok')];
    const room = line.clientWidth - 2;
    if (room <= 0) return null; // not laid out: every token stays
    const widths = toks.map(t => t.getBoundingClientRect().width);
    return { toks, range: fitAround(widths, Number(line.dataset.peak), room, MARK_W) };
  });
  plans.forEach((plan, i) => {
    if (!plan) return;
    const [start, end] = plan.range;
    plan.toks.forEach((t, j) => (t.hidden = j < start || j >= end));
    const mark = (): HTMLSpanElement =>
      h(
        'span',
        'im-feat-cut',
        { 'aria-hidden': 'true', title: 'whole windows: the button above' },
        '…'
      );
    if (start > 0) lines[i].insertBefore(mark(), plan.toks[start]);
    if (end < plan.toks.length) lines[i].appendChild(mark());
  });
}

/** The key of the colours: the background at 0 to the full highlight at the feature's max. */
function drawLegend(legend: HTMLDivElement, d: Detail, p: { hl: Rgb; bg: Rgb }, ink: Ink): void {
  const bar = h('span', 'im-feat-legend-bar', { 'aria-hidden': 'true' });
  bar.style.background = `linear-gradient(to right, ${css(p.bg)}, ${css(p.hl)})`;
  bar.style.boxShadow = `0 0 0 1px ${ink.border}`;
  legend.replaceChildren(
    h('span', 'im-feat-legend-title', { 'data-role': 'legend-title' }, 'activation'),
    h('span', 'im-feat-legend-tick', undefined, '0'),
    bar,
    h('span', 'im-feat-legend-tick', undefined, `${fmtResolved(d.scale, 0, 4)} (max)`)
  );
}

/** Show the tooltip of the token under the pointer (or hide it). */
export function wireExamples(v: View, current: () => Detail | null): void {
  const { examples } = v.dom;
  const point = (ev: MouseEvent): void => {
    const d = current();
    const tok = (ev.target as Element | null)?.closest?.('.im-feat-tok') as HTMLElement | null;
    const row = tok?.closest('.im-feat-example') as HTMLElement | null;
    if (!d || !tok || !row) {
      v.tooltip.hide();
      return;
    }
    const lines = tokenLines(d, Number(row.dataset.example), Number(tok.dataset.pos));
    v.tooltip.show(lines, ev.clientX, ev.clientY);
  };
  examples.addEventListener('mousemove', point);
  examples.addEventListener('mouseleave', () => v.tooltip.hide());
}
