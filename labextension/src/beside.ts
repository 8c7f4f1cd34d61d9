/**
 * Companion notebooks. A notebook whose metadata holds
 *
 *     "interp_magics": {"open_beside": "examples/flawed_analysis.ipynb", "show": "rigor"}
 *
 * opens that notebook in a split to its right when it is opened in JupyterLab, focused, and
 * brings the named panel forward: tutorial 05 reviews the flawed example beside itself, with
 * the Rigor panel showing the example's findings. JupyterLab only (Notebook 7 has no splits;
 * there the tutorial's markdown link opens the example).
 *
 * The metadata comes from a file, so it is checked: the path is relative to the notebook's
 * folder, stays inside it, and names a notebook. Opening a notebook runs none of its code.
 * Nothing happens when the companion is already open (a restored layout keeps its places).
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

/** The notebook metadata key that holds the companion's path and the panel to show. */
export const METADATA_KEY = 'interp_magics';

/**
 * Return the server path of the companion that `value` names, relative to the folder of the
 * notebook at `notebookPath`, or null when `value` is not a path to a notebook inside it.
 */
export function companionPath(notebookPath: string, value: unknown): string | null {
  if (typeof value !== 'string' || !value.endsWith('.ipynb') || value.length > 1024) {
    return null;
  }
  if (value.startsWith('/') || value.includes('\\') || value.includes(':')) {
    return null; // absolute, Windows-style or a URL: not a path beside this notebook
  }
  if (value.split('/').some(part => part === '..')) {
    return null;
  }
  const folder = PathExt.dirname(notebookPath);
  const path = PathExt.normalize(PathExt.join(folder, value));
  return path && path !== notebookPath ? path : null;
}

export class Companions {
  /** `panels` maps the names `show` may use to the ids of the panels they bring forward. */
  constructor(app: JupyterFrontEnd, tracker: INotebookTracker, panels: Record<string, string>) {
    this._app = app;
    this._tracker = tracker;
    this._panels = new Map(Object.entries(panels));
    tracker.widgetAdded.connect((_, panel) => void this._opened(panel), this);
  }

  private async _opened(panel: NotebookPanel): Promise<void> {
    // After the restored layout is in place: a split made earlier would be replaced by it.
    await Promise.all([this._app.restored, panel.context.ready]);
    if (panel.isDisposed || !panel.model) {
      return;
    }
    const meta = panel.model.getMetadata(METADATA_KEY) as Record<string, unknown> | undefined;
    if (!meta || typeof meta !== 'object') {
      return;
    }
    const path = companionPath(panel.context.path, meta.open_beside);
    if (!path || this._tracker.find(p => p.context.path === path)) {
      return;
    }
    try {
      await this._app.commands.execute('docmanager:open', {
        path,
        options: { ref: panel.id, mode: 'split-right' }
      });
    } catch (error) {
      console.warn(`interp-magics: could not open ${path} beside ${panel.context.path}`, error);
      return;
    }
    const show = typeof meta.show === 'string' ? this._panels.get(meta.show) : undefined;
    if (show) {
      this._app.shell.activateById(show);
    }
  }

  private _app: JupyterFrontEnd;
  private _tracker: INotebookTracker;
  private _panels: Map<string, string>;
}
