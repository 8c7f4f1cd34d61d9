// Canvas set-up shared by the widgets: sharp drawing on high-density screens, theme colours
// (a canvas cannot read CSS variables itself) and the colour bar of a legend.

import { h } from './dom';

/** Return the 2-D context of `canvas` sized to width x height CSS pixels, cleared, or null. */
export function sizeCanvas(
  canvas: HTMLCanvasElement,
  width: number,
  height: number
): CanvasRenderingContext2D | null {
  // Backing store at the device's pixel ratio, drawn in CSS pixels through the transform.
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext('2d');
  if (ctx) {
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
  }
  return ctx;
}

/** Return the value of the CSS custom property `name` on `node`, or `fallback` when unset. */
export function themeColor(node: Element, name: string, fallback: string): string {
  return getComputedStyle(node).getPropertyValue(name).trim() || fallback;
}

/** Return a 256 x 1 canvas of a lookup table's colours, row `index[i]` at i (or row i). */
export function colorBar(cls: string, lut: Uint8Array, index?: Uint8Array): HTMLCanvasElement {
  const bar = h('canvas', cls, { 'aria-hidden': 'true' });
  bar.width = 256;
  bar.height = 1;
  const ctx = bar.getContext('2d');
  if (ctx) {
    const px = new Uint8ClampedArray(256 * 4);
    for (let i = 0; i < 256; i++) {
      const li = (index ? index[i] : i) * 3;
      px.set([lut[li], lut[li + 1], lut[li + 2], 255], i * 4);
    }
    ctx.putImageData(new ImageData(px, 256, 1), 0, 0);
  }
  return bar;
}
