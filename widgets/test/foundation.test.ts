// @vitest-environment jsdom
import { describe, expect, it } from 'vitest';
import {
  contrastRatio,
  over,
  parseAlpha,
  parseColor,
  readableOn,
  type Rgb
} from '../src/lib/contrast';
import { fmtResolved, niceLimit, niceTicks, tickLabel } from '../src/lib/ticks';
import { Tooltip } from '../src/lib/tooltip';

describe('contrast', () => {
  it('parses the colour forms browsers report', () => {
    expect(parseColor('#fff')).toEqual([255, 255, 255]);
    expect(parseColor(' #1976d2 ')).toEqual([25, 118, 210]);
    expect(parseColor('rgb(1, 2, 3)')).toEqual([1, 2, 3]);
    expect(parseColor('rgba(4 5 6 / 50%)')).toEqual([4, 5, 6]);
    expect(parseColor('var(--x)')).toBeNull();
  });
  it('reads alpha and composites translucent ink over its background', () => {
    expect(parseAlpha('rgba(0, 0, 0, 0.54)')).toBeCloseTo(0.54, 6);
    expect(parseAlpha('rgb(0 0 0 / 50%)')).toBeCloseTo(0.5, 6);
    expect(parseAlpha('#00000080')).toBeCloseTo(128 / 255, 6);
    expect(parseAlpha('rgb(1, 2, 3)')).toBe(1);
    expect(parseAlpha('#123456')).toBe(1);
    // JupyterLab's secondary text on white: a mid grey, still readable
    const grey = over([0, 0, 0], 0.54, [255, 255, 255]);
    expect(grey).toEqual([117, 117, 117]);
    expect(
      contrastRatio(readableOn(grey, [255, 255, 255]), [255, 255, 255])
    ).toBeGreaterThanOrEqual(4.5);
  });
  it('gives the WCAG ratios of known pairs', () => {
    expect(contrastRatio([0, 0, 0], [255, 255, 255])).toBeCloseTo(21, 6);
    expect(contrastRatio([119, 119, 119], [255, 255, 255])).toBeCloseTo(4.48, 2);
  });
  it('moves unreadable ink until it reaches 4.5:1, and leaves readable ink alone', () => {
    const darkBg: Rgb = [17, 17, 17];
    const nearBlack: Rgb = [31, 31, 31]; // the probe chart's labels on a dark theme
    const fixed = readableOn(nearBlack, darkBg);
    expect(contrastRatio(fixed, darkBg)).toBeGreaterThanOrEqual(4.5);
    expect(fixed[0]).toBeGreaterThan(100);
    expect(readableOn([0, 0, 0], [255, 255, 255])).toEqual([0, 0, 0]);
    const grey = readableOn([150, 150, 150], [255, 255, 255]);
    expect(contrastRatio(grey, [255, 255, 255])).toBeGreaterThanOrEqual(4.5);
  });
});

describe('ticks', () => {
  it('chooses round ticks and limits', () => {
    expect(niceTicks(-1, 1, 4)).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(niceTicks(-2.95, 2.95, 4)).toEqual([-2, -1, 0, 1, 2]);
    expect(niceTicks(-0.6, 0.6, 4)).toEqual([-0.6, -0.4, -0.2, 0, 0.2, 0.4, 0.6]);
    expect(Object.is(niceTicks(-0.6, 0.6, 4)[3], 0)).toBe(true);
    expect(niceLimit(2.95)).toBe(3);
    expect(niceLimit(0.546)).toBe(0.6);
    expect(niceLimit(0)).toBe(1);
  });
  it('prints ticks with the decimals their step needs', () => {
    expect(tickLabel(0.5, 0.5)).toBe('0.5');
    expect(tickLabel(-1, 0.5)).toBe('−1.0');
    expect(tickLabel(2, 1)).toBe('2');
    expect(tickLabel(0, 0.1)).toBe('0');
  });
  it('prints values to the resolution they were stored with', () => {
    expect(fmtResolved(1 / 255, 1 / 255)).toBe('0.004');
    expect(fmtResolved(0.5019607843, 1 / 255)).toBe('0.502');
    expect(fmtResolved(0.0001, 1 / 255)).toBe('<0.004');
    expect(fmtResolved(0, 1 / 255)).toBe('0');
    expect(fmtResolved(-3.0612e-5, 0)).toBe('-0.0000306');
  });
});

describe('tooltip', () => {
  it('shows lines as text (never HTML) and hides', () => {
    const root = document.createElement('div');
    document.body.appendChild(root);
    const tip = new Tooltip(root, 'tip-1');
    expect(tip.node.getAttribute('role')).toBe('tooltip');
    expect(tip.visible).toBe(false);
    tip.show(['<img src=x>', 'value 0.5'], 10, 10);
    expect(tip.visible).toBe(true);
    expect(tip.node.querySelector('img')).toBeNull();
    expect(tip.node.textContent).toBe('<img src=x>value 0.5');
    tip.hide();
    expect(tip.visible).toBe(false);
  });
});
