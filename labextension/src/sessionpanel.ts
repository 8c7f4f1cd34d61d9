/**
 * What both sidebar panels share: they follow the notebook in focus, re-render when its
 * session changes, skip rendering while hidden (rendering again when shown), and lay out the
 * same frame (a header with the panel's title, a body naming the notebook).
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { Child, h, wrappable } from './dom';
import { NotebookSession, Sessions } from './sessions';

export interface IPanelOptions {
  id: string;
  className: string;
  label: string;
  caption: string;
}

export abstract class SessionPanel extends Widget {
  constructor(options: IPanelOptions) {
    super();
    this.id = options.id;
    this.addClass('im-panel');
    this.addClass(options.className);
    this.title.label = options.label;
    this.title.caption = options.caption;
  }

  dispose(): void {
    this._session?.changed.disconnect(this.render, this);
    super.dispose();
  }

  /**
   * Start following the notebook in focus. Subclasses call it last in their constructor, once
   * their own fields exist (it renders at once).
   */
  protected follow(sessions: Sessions): void {
    sessions.currentChanged.connect(this._follow, this);
    this._follow(sessions, sessions.current);
  }

  /** Called when the panel starts showing another notebook, before it renders. */
  protected onSessionChanged(): void {
    // nothing by default
  }

  /** Rebuild the panel's content from the current session. */
  protected abstract render(): void;

  /**
   * Replace the panel's content: a header (the panel's title, then `extra`) over a body. The
   * body names the notebook in focus, then holds `content`; with no notebook (`content` null)
   * it holds `noNotebook`, saying what opening one would show.
   */
  protected fill(title: string, extra: Child[], content: Node[] | null, noNotebook: string): void {
    const header = h(
      'header',
      { className: 'im-panel-header' },
      h('span', { className: 'im-panel-title' }, title),
      ...extra
    );
    const body = h('div', { className: 'im-panel-body' });
    if (!this._session || !content) {
      body.append(h('p', { className: 'im-state', 'data-state': 'no-notebook' }, noNotebook));
    } else {
      body.append(
        h('p', { className: 'im-notebook' }, wrappable(this._session.panel.context.path)),
        ...content
      );
    }
    this.node.replaceChildren(header, body);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.render();
  }

  private _follow(_: Sessions, session: NotebookSession | null): void {
    this._session?.changed.disconnect(this.render, this);
    this._session = session;
    this.onSessionChanged();
    session?.changed.connect(this.render, this);
    this.render();
  }

  protected _session: NotebookSession | null = null;
}
