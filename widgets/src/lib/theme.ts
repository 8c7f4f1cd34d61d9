// The notebook's theme as canvas drawing needs it. A canvas cannot use CSS variables, so the
// colours are read from the widget's computed style at draw time (never before the view is in
// the page, where nothing is inherited yet), made readable on the background, and every view
// redraws when JupyterLab switches themes.

import { css, over, parseAlpha, parseColor, readableOn, type Rgb } from './contrast';

export interface Ink {
  fg: string; // text and axes
  muted: string; // secondary text (still at least 4.5:1 on the background)
  bg: string; // the widget's background
  border: string; // frames and grid lines
  accent: string; // the cursor and highlights
  dark: boolean; // the background is dark
}

const LIGHT = {
  fg: '#1f1f1f',
  muted: '#616161',
  bg: '#ffffff',
  border: '#d0d0d0',
  accent: '#1976d2'
};

/** Return the colour of the CSS custom property `name` on `node` as RGB, or `fallback`; a
 * translucent colour (JupyterLab's secondary text is `rgba(0, 0, 0, 0.54)`) is composited
 * over `under`, the way it shows on the page. */
function read(node: Element, name: string, fallback: string, under?: Rgb): Rgb {
  const value = getComputedStyle(node).getPropertyValue(name).trim();
  const rgb = parseColor(value);
  if (!rgb) return parseColor(fallback)!;
  const alpha = parseAlpha(value);
  return under && alpha < 1 ? over(rgb, alpha, under) : rgb;
}

/** Return the theme's drawing colours as they are on `node` now, text made readable (4.5:1). */
export function themeInk(node: Element): Ink {
  const bg = read(node, '--im-bg', LIGHT.bg);
  const fg = readableOn(read(node, '--im-fg', LIGHT.fg, bg), bg);
  const muted = readableOn(read(node, '--im-muted', LIGHT.muted, bg), bg);
  const border = read(node, '--im-border', LIGHT.border, bg);
  const accent = readableOn(read(node, '--im-cursor', LIGHT.accent, bg), bg, 3);
  const dark = 0.2126 * bg[0] + 0.7152 * bg[1] + 0.0722 * bg[2] < 128;
  return {
    fg: css(fg),
    muted: css(muted),
    bg: css(bg),
    border: css(border),
    accent: css(accent),
    dark
  };
}

/** Call `redraw` whenever the page's theme changes (JupyterLab's theme attributes on <body>, or
 * the system colour scheme elsewhere); return a function that stops listening. */
export function onThemeChange(redraw: () => void): () => void {
  let pending = 0;
  // JupyterLab sets the attributes first and loads the theme's stylesheet after: redraw on the
  // next frames, and once more after the stylesheet has had time to apply.
  const schedule = (): void => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => {
      redraw();
      setTimeout(redraw, 250);
    });
  };
  const observer = new MutationObserver(schedule);
  observer.observe(document.body, {
    attributes: true,
    attributeFilter: [
      'data-jp-theme-light',
      'data-jp-theme-name',
      'class',
      'data-vscode-theme-kind'
    ]
  });
  const media = window.matchMedia?.('(prefers-color-scheme: dark)');
  media?.addEventListener?.('change', schedule);
  return () => {
    observer.disconnect();
    media?.removeEventListener?.('change', schedule);
    cancelAnimationFrame(pending);
  };
}
