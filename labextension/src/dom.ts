import { Widget } from '@lumino/widgets';

/**
 * A tiny element builder. Every string goes in as text (never as HTML), since findings, cache
 * names and module paths come from notebooks and kernels.
 */

export type Child = Node | string | number | null | undefined | false;

export interface IAttrs {
  [name: string]: string | number | boolean | undefined | ((event: Event) => void);
}

/** Return a new element with attributes (`on*` functions become listeners) and children. */
export function h(tag: string, attrs: IAttrs = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) {
      continue;
    }
    if (typeof value === 'function') {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'className') {
      el.className = String(value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/**
 * Set one `data-*` attribute of a widget's side tab, keeping the others.
 *
 * JupyterLab keeps its own entries (`id`, `jptablabel`) in `title.dataset`, and tests and
 * styles find the tab by them, so the dataset is merged, never replaced. Unchanged values are
 * not set again: every change re-renders the tab bar.
 */
export function setTabData(widget: Widget, key: string, value: string): void {
  const dataset = widget.title.dataset;
  if (dataset[key] !== value) {
    widget.title.dataset = { ...dataset, [key]: value };
  }
}
