/**
 * What both sidebar panels share: they follow the notebook in focus, re-render when its
 * session changes, and skip rendering while hidden (rendering again when shown).
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

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
