// A floating tooltip next to the pointer (role="tooltip"), kept inside the widget: the full value,
// its interval when there is one, and the labels of what is under the pointer.

import { h } from './dom';

export class Tooltip {
  readonly node: HTMLDivElement;
  private readonly root: HTMLElement;

  /** Create the tooltip inside `root` (which becomes its positioning context), hidden. */
  constructor(root: HTMLElement, id: string) {
    this.root = root;
    if (getComputedStyle(root).position === 'static') root.style.position = 'relative';
    this.node = h('div', 'im-tooltip', { role: 'tooltip', id, hidden: '' });
    root.appendChild(this.node);
  }

  /** Show `lines` (the first in bold) next to the client point (x, y), flipped to stay inside. */
  show(lines: string[], clientX: number, clientY: number): void {
    this.node.replaceChildren(
      ...lines.map((line, i) => h('div', i === 0 ? 'im-tooltip-head' : undefined, undefined, line))
    );
    this.node.hidden = false;
    const box = this.root.getBoundingClientRect();
    const w = this.node.offsetWidth;
    const hgt = this.node.offsetHeight;
    let x = clientX - box.left + 14;
    let y = clientY - box.top + 14;
    const width = Math.max(this.root.clientWidth, w);
    if (x + w > width) x = Math.max(0, clientX - box.left - w - 14);
    if (y + hgt > this.root.scrollHeight) y = Math.max(0, clientY - box.top - hgt - 14);
    this.node.style.left = `${x + this.root.scrollLeft}px`;
    this.node.style.top = `${y + this.root.scrollTop}px`;
  }

  /** Hide the tooltip. */
  hide(): void {
    this.node.hidden = true;
  }

  /** Return whether the tooltip is showing. */
  get visible(): boolean {
    return !this.node.hidden;
  }
}
