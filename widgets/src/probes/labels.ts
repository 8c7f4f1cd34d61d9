// Layer names made short enough for an axis.

/** Return the labels without their common dotted prefix ("resid_post.3" -> "3"), and the prefix. */
export function shorten(labels: string[]): { prefix: string; short: string[] } {
  if (labels.length < 2) return { prefix: '', short: labels };
  let prefix = labels[0];
  for (const l of labels) while (!l.startsWith(prefix)) prefix = prefix.slice(0, -1);
  prefix = prefix.slice(0, prefix.lastIndexOf('.') + 1);
  return { prefix, short: labels.map(l => l.slice(prefix.length) || l) };
}

/** Return which of `n` evenly spaced labels to show so that none overlaps its neighbour:
 * every k-th from the first, and always the last (the one before it gives way). */
export function thinned(n: number, spacing: number, widest: number, gap = 8): boolean[] {
  const every = spacing > 0 ? Math.max(1, Math.ceil((widest + gap) / spacing)) : n;
  const shown = Array.from({ length: n }, (_, i) => i % every === 0);
  const lastShown = Math.floor((n - 1) / every) * every;
  if (n > 1 && lastShown !== n - 1) {
    shown[n - 1] = true;
    if (lastShown > 0) shown[lastShown] = false;
    else if ((n - 1) * spacing < widest + gap) shown[n - 1] = false;
  }
  return shown;
}
