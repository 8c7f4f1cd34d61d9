// DOM helpers. Every string that came from data (tokens, labels, module names) goes in through
// textContent, never innerHTML: a token such as <img src=x onerror=...> must show as text.

type Attrs = Record<string, string>;

/** Return a new element with a class, attributes and text content (never parsed as HTML). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  attrs?: Attrs,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Return a token made readable: visible whitespace markers, at most `max` characters. */
export function showToken(token: string, max = 24): string {
  const visible = token.replace(/\n/g, "⏎").replace(/\t/g, "⇥").replace(/^ /, "·");
  return visible.length > max ? visible.slice(0, max - 1) + "…" : visible;
}

/** Format a weight with up to `digits` significant digits. */
export function fmt(value: number, digits = 4): string {
  if (value === 0) return "0";
  if (Math.abs(value) < 1e-4) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}
