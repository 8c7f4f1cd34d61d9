// DOM helpers. Every string that came from data (tokens, labels, module names) goes in through
// textContent, never innerHTML: a token such as <img src=x onerror=...> must show as text.

type Attrs = Record<string, string>;

/** Return a new element with a class, attributes and text content (never parsed as HTML). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  attrs?: Attrs,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Return a token made readable: visible whitespace markers, at most `max` characters. */
export function showToken(token: string, max = 24): string {
  const visible = token.replace(/\n/g, '⏎').replace(/\t/g, '⇥').replace(/^ /, '·');
  return visible.length > max ? visible.slice(0, max - 1) + '…' : visible;
}

/** Format a weight with up to `digits` significant digits. */
export function fmt(value: number, digits = 4): string {
  if (value === 0) return '0';
  if (Math.abs(value) < 1e-4) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

/** Return a toggle button (aria-pressed, initially off) with a class and a label. */
export function toggleButton(cls: string, label: string): HTMLButtonElement {
  return h('button', cls, { type: 'button', 'aria-pressed': 'false' }, label);
}

/** Set whether a toggle button is pressed. */
export function setPressed(button: HTMLButtonElement, on: boolean): void {
  button.setAttribute('aria-pressed', String(on));
}

/** Return one class-less `tag` element per text, in order. */
export function texts<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  values: string[]
): HTMLElementTagNameMap[K][] {
  return values.map(v => h(tag, undefined, undefined, v));
}

/** Return a table: a header row of `head`, then `rows` (a row header first when `rowHeaders`). */
export function table(
  cls: string,
  head: string[],
  rows: string[][],
  rowHeaders = false
): HTMLTableElement {
  const t = h('table', cls);
  const top = h('tr');
  top.append(...texts('th', head));
  t.appendChild(top);
  for (const cells of rows) {
    const tr = h('tr');
    cells.forEach((c, i) =>
      tr.appendChild(h(rowHeaders && i === 0 ? 'th' : 'td', undefined, undefined, c))
    );
    t.appendChild(tr);
  }
  return t;
}

/** Return an axis label `span` placed on row `i` of `cell`-pixel rows (the stylesheet makes it absolute). */
export function placeRow<T extends HTMLElement>(span: T, i: number, cell: number): T {
  span.style.top = `${i * cell}px`;
  span.style.height = `${cell}px`;
  span.style.lineHeight = `${cell}px`;
  return span;
}

/** Return an axis label `span` anchored at the centre of column `i` of `cell`-pixel columns. */
export function placeColumn<T extends HTMLElement>(span: T, i: number, cell: number): T {
  span.style.left = `${i * cell + cell / 2}px`;
  return span;
}

/** Return a widget's header (class `${prefix}-header`): its title, then its controls. */
export function widgetHeader(
  prefix: string,
  controls: HTMLElement[]
): { header: HTMLDivElement; title: HTMLDivElement } {
  const header = h('div', `${prefix}-header`);
  const title = h('div', `${prefix}-title`);
  const box = h('div', `${prefix}-controls`);
  box.append(...controls);
  header.append(title, box);
  return { header, title };
}
