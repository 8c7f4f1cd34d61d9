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

/** Characters after which a long token may wrap: dots and underscores of names, slashes of paths. */
const BREAK_AFTER = /([._/,(=])/;

/** Tokens at least this long get break opportunities; shorter ones ("e.g.", "0.93") stay whole. */
const LONG_TOKEN = 12;

/**
 * Return `text` as text nodes with a `<wbr>` after each `.`, `_`, `/`, `,`, `(` or `=` inside
 * tokens of 12 characters or more, so that module paths, cache keys and code in a fix wrap at
 * those boundaries (`resid_` / `post.0`, never `resid_po` / `st.0`) in a narrow sidebar. Words
 * still wrap at spaces; `<wbr>` adds no characters, so the element's text is `text` unchanged.
 */
export function wrappable(text: string): DocumentFragment {
  const fragment = document.createDocumentFragment();
  for (const part of text.split(/(\s+)/)) {
    if (part.length < LONG_TOKEN || /^\s+$/.test(part)) {
      fragment.append(document.createTextNode(part));
      continue;
    }
    const pieces = part.split(BREAK_AFTER);
    // split with a capture group alternates piece, separator, piece, ...: break after each
    // separator, except where a line would end in a lone `(` or start with a short tail, so
    // `resid_post.0` wraps as `resid_` / `post.0`, keeping the layer index with its site
    let run = '';
    let done = 0;
    for (let i = 0; i < pieces.length; i += 2) {
      run += pieces[i] + (pieces[i + 1] ?? '');
      if (run.length >= 3 && part.length - done - run.length >= 3) {
        fragment.append(document.createTextNode(run), document.createElement('wbr'));
        done += run.length;
        run = '';
      }
    }
    if (run) {
      fragment.append(document.createTextNode(run));
    }
  }
  return fragment;
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
