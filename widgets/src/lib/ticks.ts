// Axis and legend numbers: round tick values and numbers printed to the precision they have.

/** Return a "nice" step (1, 2 or 5 times a power of ten) near `span / count`. */
export function niceStep(span: number, count: number): number {
  if (!(span > 0) || count < 1) return 1;
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * power;
}

/** Return round tick values inside [lo, hi], about `count` of them, 0 included when in range. */
export function niceTicks(lo: number, hi: number, count = 4): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || hi <= lo) return [lo];
  const step = niceStep(hi - lo, count);
  const out: number[] = [];
  // Multiples of the step, not repeated additions: 0 must come out as 0, not -5.6e-17.
  const first = Math.ceil(lo / step - 1e-9);
  const last = Math.floor(hi / step + 1e-9);
  for (let k = first; k <= last; k++) out.push(k === 0 ? 0 : Number((k * step).toPrecision(12)));
  return out;
}

/** Return the symmetric scale limit for values up to `vmax`: the next round number at or above. */
export function niceLimit(vmax: number): number {
  if (!(vmax > 0)) return 1;
  const step = niceStep(vmax, 4);
  return Number((Math.ceil(vmax / step - 1e-9) * step).toPrecision(12));
}

/** Return `value` written with as many decimals as `step` needs (a tick label). */
export function tickLabel(value: number, step: number): string {
  if (value === 0) return '0';
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  if (Math.abs(value) >= 1e5 || Math.abs(value) < 1e-4) return value.toExponential(1);
  return value.toFixed(decimals).replace(/^-/, '−');
}

/** Return `value` rounded to the resolution `quantum` it was stored with, then printed with at
 * most `digits` significant digits (so 1/255 steps of an 8-bit code print as 0.004, not 0.00392). */
export function fmtResolved(value: number, quantum: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value);
  if (quantum > 0) {
    const decimals = Math.max(0, Math.ceil(-Math.log10(quantum)));
    const rounded = Number(value.toFixed(decimals));
    if (rounded === 0) return value === 0 ? '0' : `<${Number(quantum.toPrecision(1))}`;
    return Number(rounded.toPrecision(digits)).toString();
  }
  return Number(value.toPrecision(digits)).toString();
}
