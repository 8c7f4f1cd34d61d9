// The legend under the chart: every line, band, rule and mark with a swatch drawn the way the
// chart draws it (same colour, dash and marker, in the current theme), and its words.

import { sizeCanvas } from '../lib/canvas';
import { h } from '../lib/dom';
import type { Ink } from '../lib/theme';
import { rule } from './chart';
import { chanceDash, colourOn, drawMarker, lineStyle, withAlpha } from './style';
import type { ProbeData } from './types';

type Paint = (ctx: CanvasRenderingContext2D, ink: Ink) => void;

const SW = 28; // swatch width
const SH = 12;

interface Item {
  label: string;
  paint: Paint | null; // null: the label says it all (e.g. "* significant")
}

function items(d: ProbeData): Item[] {
  const out: Item[] = [];
  if (d.mode === 'layers') {
    for (const s of d.series ?? []) {
      const style = lineStyle(s.role);
      out.push({
        label: s.name,
        paint: (ctx, ink) => {
          const c = colourOn(s.color, ink);
          rule(ctx, 1, SH / 2, SW - 1, SH / 2, c, style.dash, style.width);
          drawMarker(ctx, style.marker, SW / 2, SH / 2, 3.5, c, true, ink.bg);
        }
      });
      if (s.lo && s.hi)
        out.push({
          label: `${s.name} 95% CI`,
          paint: (ctx, ink) => {
            ctx.fillStyle = withAlpha(colourOn(s.color, ink), 0.16);
            ctx.fillRect(1, 1, SW - 2, SH - 2);
          }
        });
    }
  } else {
    out.push({
      label: '95% CI',
      paint: (ctx, ink) => {
        rule(ctx, 3, SH / 2, SW - 3, SH / 2, ink.fg, [], 1.5);
        rule(ctx, 3, 1, 3, SH - 1, ink.fg, [], 1.5);
        rule(ctx, SW - 3, 1, SW - 3, SH - 1, ink.fg, [], 1.5);
      }
    });
  }
  for (const c of d.chance)
    out.push({
      label: `${c.name} ${c.value.toFixed(3)}`,
      paint: (ctx, ink) => rule(ctx, 1, SH / 2, SW - 1, SH / 2, ink.fg, chanceDash(c.role), 1.25)
    });
  if (d.mode === 'layers')
    out.push({
      label: `* and filled marker: significant after ${d.correction ?? 'correction'}; hollow: not`,
      paint: null
    });
  return out;
}

/** Fill `node` with the legend of `d`; return the function that paints its swatches. */
export function buildLegend(node: HTMLElement, d: ProbeData): (ink: Ink) => void {
  const painters: [HTMLCanvasElement, Paint][] = [];
  node.replaceChildren(
    ...items(d).map(item => {
      const key = h('span', 'im-probe-key');
      if (item.paint) {
        const swatch = h('canvas', 'im-probe-swatch', { 'aria-hidden': 'true' });
        painters.push([swatch, item.paint]);
        key.appendChild(swatch);
      }
      key.appendChild(h('span', undefined, undefined, item.label));
      return key;
    })
  );
  return ink => {
    for (const [canvas, paint] of painters) {
      const ctx = sizeCanvas(canvas, SW, SH);
      if (ctx) paint(ctx, ink);
    }
  };
}
