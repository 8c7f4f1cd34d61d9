/**
 * The notebooks the panels follow: one session (kernel link + rigor link) per open notebook,
 * and which one is in focus.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import { KernelLink } from './kernel';
import { RigorLink } from './rigor';

export class NotebookSession {
  constructor(app: JupyterFrontEnd, panel: NotebookPanel) {
    this.panel = panel;
    this.kernel = new KernelLink(panel.sessionContext);
    this.rigor = new RigorLink(app, panel, this.kernel, app.serviceManager.serverSettings);
    this.kernel.changed.connect(() => this._changed.emit(), this);
    this.rigor.changed.connect(() => this._changed.emit(), this);
  }

  readonly panel: NotebookPanel;
  readonly kernel: KernelLink;
  readonly rigor: RigorLink;

  /** Emitted when anything the panels show for this notebook changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  dispose(): void {
    this.kernel.dispose();
    this.rigor.dispose();
    Signal.clearData(this);
  }

  private _changed = new Signal<this, void>(this);
}

export class Sessions {
  constructor(app: JupyterFrontEnd, tracker: INotebookTracker | null) {
    this._app = app;
    if (tracker) {
      tracker.currentChanged.connect((_, panel) => this._bind(panel), this);
      // Notebook 7 emits currentChanged once, early, possibly before this plugin connects.
      this._bind(tracker.currentWidget);
    }
  }

  get current(): NotebookSession | null {
    return this._current;
  }

  get currentChanged(): ISignal<this, NotebookSession | null> {
    return this._currentChanged;
  }

  private _bind(panel: NotebookPanel | null): void {
    let session: NotebookSession | null = null;
    if (panel) {
      session = this._sessions.get(panel.id) ?? null;
      if (!session) {
        const created = new NotebookSession(this._app, panel);
        this._sessions.set(panel.id, created);
        panel.disposed.connect(() => {
          this._sessions.delete(panel.id);
          created.dispose();
          if (this._current === created) {
            this._current = null;
            this._currentChanged.emit(null);
          }
        });
        session = created;
      }
    }
    if (session !== this._current) {
      this._current = session;
      this._currentChanged.emit(session);
    }
  }

  private _app: JupyterFrontEnd;
  private _current: NotebookSession | null = null;
  private _sessions = new Map<string, NotebookSession>();
  private _currentChanged = new Signal<this, NotebookSession | null>(this);
}
