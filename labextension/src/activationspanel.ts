/**
 * The Activations sidebar panel: the models and activation caches that the kernel of the
 * notebook in focus holds, with their sizes, and a button that frees a cache in the kernel.
 */

import { h, setTabData, wrappable } from './dom';
import { KernelLink } from './kernel';
import {
  describePlacement,
  formatBytes,
  ICacheSummary,
  IModelSummary,
  IStoreSummary
} from './protocol';
import { SessionPanel } from './sessionpanel';
import { Sessions } from './sessions';

export const ACTIVATIONS_PANEL_ID = 'interp-magics-activations';

const STATE_TEXT: Record<string, string> = {
  'no-kernel': 'This notebook has no kernel. Start one to see its activations.',
  starting: 'Waiting for the kernel…',
  connecting: 'Connecting to the kernel…'
};

export class ActivationsPanel extends SessionPanel {
  constructor(sessions: Sessions) {
    super({
      id: ACTIVATIONS_PANEL_ID,
      className: 'im-activations-panel',
      label: 'Activations',
      caption: 'Activations in the kernel'
    });
    this.follow(sessions);
  }

  protected render(): void {
    const session = this._session;
    const link = session?.kernel;
    const snapshot = link?.state === 'ready' ? link.snapshot : null;
    setTabData(this, 'im-bytes', snapshot ? String(snapshot.total_bytes) : '');
    if (!this.isVisible && this.node.childElementCount) {
      return;
    }
    const total = snapshot
      ? h(
          'span',
          { className: 'im-total', 'data-bytes': snapshot.total_bytes },
          formatBytes(snapshot.total_bytes)
        )
      : null;
    const content = link ? (snapshot ? this._contents(link) : [this._state(link)]) : null;
    this.fill('Activations', [total], content, 'Open a notebook to see its kernel’s activations.');
  }

  private _state(link: KernelLink): HTMLElement {
    const box = h('div', { className: 'im-state', 'data-state': link.state });
    const text = STATE_TEXT[link.state] ?? link.message;
    box.append(
      h(
        'p',
        {},
        text.charAt(0).toUpperCase() +
          text.slice(1) +
          (text.endsWith('.') || text.endsWith('…') ? '' : '.')
      )
    );
    if (link.state === 'not-loaded') {
      box.append(
        h(
          'button',
          {
            className: 'im-button im-load',
            type: 'button',
            onclick: () => void link.loadExtension()
          },
          'Run %load_ext interp_magics'
        )
      );
    }
    return box;
  }

  private _contents(link: KernelLink): HTMLElement[] {
    const snapshot = link.snapshot!;
    const out: HTMLElement[] = [];
    const freed = link.lastFreed;
    if (freed) {
      out.push(
        h(
          'p',
          {
            className: `im-freed${freed.ok ? '' : ' im-warn'}`,
            role: 'status',
            'data-name': freed.name
          },
          freed.message
        )
      );
    }
    if (link.fallback) {
      out.push(
        h(
          'p',
          { className: 'im-note' },
          'Another view of this kernel holds its live link; this list refreshes after each cell.'
        )
      );
    }
    out.push(h('h3', { className: 'im-section' }, `Caches (${snapshot.caches.length})`));
    if (!snapshot.caches.length) {
      out.push(
        h(
          'p',
          { className: 'im-empty' },
          'No activation caches yet: capture some with %%activations.'
        )
      );
    }
    for (const cache of snapshot.caches) {
      out.push(this._cache(link, cache, snapshot.busy));
    }
    out.push(
      h(
        'p',
        { className: 'im-grand-total', 'data-bytes': snapshot.total_bytes },
        `Total: ${formatBytes(snapshot.total_bytes)} in ${snapshot.caches.length} cache${snapshot.caches.length === 1 ? '' : 's'}`
      )
    );
    const stores = snapshot.stores ?? [];
    if (stores.length) {
      out.push(h('h3', { className: 'im-section' }, `Stores on disk (${stores.length})`));
      for (const store of stores) {
        out.push(this._store(store));
      }
    }
    out.push(h('h3', { className: 'im-section' }, `Models (${snapshot.models.length})`));
    for (const model of snapshot.models) {
      out.push(this._model(model));
    }
    return out;
  }

  private _cache(link: KernelLink, cache: ICacheSummary, busy: boolean): HTMLElement {
    const entries = cache.entries ?? [];
    const rows = entries.map(e =>
      h(
        'tr',
        {},
        h('td', { className: 'im-key' }, wrappable(e.key)),
        h('td', {}, `[${e.shape.join(', ')}]`),
        h('td', {}, e.dtype),
        h('td', { className: 'im-num' }, formatBytes(e.bytes))
      )
    );
    const details = h(
      'details',
      { className: 'im-cache', 'data-name': cache.name, 'data-bytes': cache.bytes },
      h(
        'summary',
        {},
        h('span', { className: 'im-name' }, wrappable(cache.name)),
        h(
          'span',
          { className: 'im-meta' },
          wrappable(
            `${cache.tensors} tensors · ${cache.dtypes.join(', ')} · ${cache.devices.join(', ')}`
          )
        ),
        h('span', { className: 'im-bytes' }, formatBytes(cache.bytes)),
        h(
          'button',
          {
            className: 'im-button im-free',
            type: 'button',
            title: busy
              ? 'A cell is running'
              : `Delete ${cache.name} in the kernel and give its memory back`,
            disabled: busy || link.fallback,
            onclick: (event: Event) => {
              event.preventDefault();
              link.free(cache.name);
            }
          },
          'Free'
        )
      ),
      h(
        'table',
        { className: 'im-entries' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'tensor'),
            h('th', {}, 'shape'),
            h('th', {}, 'dtype'),
            h('th', {}, 'bytes')
          )
        ),
        h('tbody', {}, ...rows)
      ),
      cache.truncated
        ? h('p', { className: 'im-note' }, `first ${entries.length} of ${cache.tensors} tensors`)
        : null
    );
    if (this._open.has(cache.name)) {
      details.setAttribute('open', '');
    }
    details.addEventListener('toggle', () => {
      if ((details as HTMLDetailsElement).open) {
        this._open.add(cache.name);
      } else {
        this._open.delete(cache.name);
      }
    });
    return details;
  }

  private _store(store: IStoreSummary): HTMLElement {
    const state = store.complete ? '' : ' · incomplete (harvest again to resume)';
    return h(
      'div',
      { className: 'im-model im-store', 'data-name': store.name, 'data-bytes': store.bytes },
      h('span', { className: 'im-name' }, wrappable(store.name)),
      h(
        'span',
        { className: 'im-meta' },
        wrappable(`${store.tensors} tensors · ${store.examples.toLocaleString()} examples${state}`)
      ),
      h('span', { className: 'im-bytes' }, `${formatBytes(store.bytes)} on disk`),
      h('span', { className: 'im-meta im-placement' }, wrappable(store.path))
    );
  }

  private _model(model: IModelSummary): HTMLElement {
    return h(
      'div',
      { className: 'im-model', 'data-name': model.name },
      h('span', { className: 'im-name' }, wrappable(model.name)),
      h(
        'span',
        { className: 'im-meta' },
        wrappable(
          `${model.class} · ${model.parameters.toLocaleString()} parameters · ${model.dtype} · ${model.device}`
        )
      ),
      h('span', { className: 'im-bytes' }, formatBytes(model.bytes)),
      ...(model.placement
        ? [
            h(
              'span',
              { className: 'im-meta im-placement' },
              wrappable(describePlacement(model.placement))
            )
          ]
        : [])
    );
  }

  private _open = new Set<string>();
}
