// Re-laying out when the output area's width changes, without a feedback loop: a relayout that
// toggles the page's scrollbar changes the width back, which would relayout again, and so on.

export const FALLBACK_WIDTH = 640; // px, before the view is laid out (and in tests without layout)

/** Return a function that reports the width to lay out at, damping a resize feedback loop (a
 * relayout that toggles the page's scrollbar, which changes the width back, and so on). */
export function widthTracker(root: HTMLElement): () => number {
  const recent: { width: number; at: number }[] = [];
  return () => {
    const measured = root.clientWidth || FALLBACK_WIDTH;
    const now = performance.now();
    const last = recent[recent.length - 1];
    const before = recent[recent.length - 2];
    // Bouncing between two widths within a second: settle on the narrower one, which fits both.
    const bouncing =
      last &&
      before &&
      before.width === measured &&
      last.width !== measured &&
      now - before.at < 1000;
    recent.push({ width: measured, at: now });
    if (recent.length > 4) recent.shift();
    return bouncing ? Math.min(measured, last.width) : measured;
  };
}

/** Stands in for ResizeObserver where there is none (old front ends, tests): no relayout. */
export class NoResize {
  observe(): void {}
  disconnect(): void {}
}
