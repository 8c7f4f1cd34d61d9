/**
 * One notebook's rigor findings. The live notebook model (cell ids, sources, metadata; no
 * outputs) and the kernel's last ledger go to the server's `/interp-magics/rigor`, which runs
 * the same `rigor.check` as `%rigor` and `interp-rigor`: no analysis happens in the browser.
 * The server checks in a worker process with a time limit: a check that ran past it comes back
 * as "timed-out" (no findings to show), and a busy server (503) is asked again shortly.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { Debouncer } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { KernelLink } from './kernel';
import { IFinding, IRigorResponse } from './protocol';

export type RigorState = 'checking' | 'ready' | 'timed-out' | 'busy' | 'no-server' | 'error';

/** How many times in a row a check the server could not run now (busy, superseded) is retried. */
const RETRIES = 5;

/** The cell metadata key under which suppressions are stored. */
export const METADATA_KEY = 'interp_magics';

interface IIgnore {
  rule: string;
  reason: string;
}

export class RigorLink implements IDisposable {
  constructor(
    app: JupyterFrontEnd,
    panel: NotebookPanel,
    kernel: KernelLink,
    settings: ServerConnection.ISettings
  ) {
    this._app = app;
    this._panel = panel;
    this._kernel = kernel;
    this._settings = settings;
    this._debouncer = new Debouncer(() => this.check(), 600);
    void panel.context.ready.then(() => {
      if (this._disposed) {
        return;
      }
      panel.context.model.contentChanged.connect(this._schedule, this);
      panel.context.saveState.connect((_, state) => {
        if (state === 'completed') {
          void this.check();
        }
      }, this);
      void this.check();
    });
    NotebookActions.executed.connect((_, args) => {
      if (args.notebook === panel.content) {
        this._schedule();
      }
    }, this);
    // A new snapshot carries new ledger entries: check again when its sequence number moves.
    kernel.changed.connect(() => {
      const seq = kernel.snapshot?.seq ?? -1;
      if (seq !== this._ledgerSeq) {
        this._ledgerSeq = seq;
        this._schedule();
      }
    }, this);
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get state(): RigorState {
    return this._state;
  }

  get message(): string {
    return this._message;
  }

  get findings(): IFinding[] {
    return this._findings;
  }

  /** Return the number of findings that are not suppressed. */
  get openCount(): number {
    return this._findings.filter(f => !f.suppressed).length;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Run the check now (cancelling a pending debounced one); resolves when it is shown. */
  async check(): Promise<void> {
    this._retries = 0;
    return this._check();
  }

  private async _check(): Promise<void> {
    const model = this._panel.context.model;
    if (this._disposed || !model) {
      return;
    }
    this._cancelRetry();
    const seq = ++this._seq;
    this._state = 'checking';
    this._changed.emit();
    const body = {
      path: this._panel.context.path,
      notebook: notebookPayload(this._panel),
      ledger: this._kernel.snapshot?.ledger ?? null
    };
    const url = URLExt.join(this._settings.baseUrl, 'interp-magics', 'rigor');
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(
        url,
        { method: 'POST', body: JSON.stringify(body) },
        this._settings
      );
    } catch (error) {
      if (seq === this._seq) {
        this._fail('error', `could not reach the server: ${String(error)}`);
      }
      return;
    }
    if (seq !== this._seq || this._disposed) {
      return; // a newer check is under way
    }
    if (response.status === 404) {
      this._fail(
        'no-server',
        'the interp_magics server extension is not enabled: run ' +
          '“jupyter server extension enable interp_magics” and restart Jupyter'
      );
      return;
    }
    let data: Partial<IRigorResponse>;
    try {
      data = await response.json();
    } catch {
      this._fail('error', `the server answered ${response.status} without JSON`);
      return;
    }
    if (seq === this._seq && !this._disposed) {
      this._show(response, data);
    }
  }

  /** Show the server's answer: findings, or why there are none. */
  private _show(response: Response, data: Partial<IRigorResponse>): void {
    const message = data.message ?? `the server answered ${response.status}`;
    if (response.ok) {
      this._findings = Array.isArray(data.findings) ? data.findings : [];
      this._summary = data.summary ?? '';
      this._state = 'ready';
      this._message = '';
      this._changed.emit();
    } else if (data.status === 'timed-out') {
      // The server stopped the check: no findings hold for this version of the notebook.
      this._findings = [];
      this._summary = '';
      this._fail('timed-out', message);
    } else if (data.status === 'busy' || data.status === 'superseded') {
      // Busy: the server runs as many checks as it allows. Superseded: a check of this
      // notebook from another window replaced ours. Either way, ask again a few times, waiting
      // twice as long each time (1, 2, 4, 8, 16 s after a `retry_after` of 1).
      const why =
        data.status === 'busy'
          ? 'the server is busy with as many rigor checks as it allows'
          : 'a check of this notebook from another window replaced this one';
      const wait = Math.max(1, Number(data.retry_after) || 1) * 2 ** this._retries;
      if (this._retries < RETRIES) {
        this._retries += 1;
        this._retry = window.setTimeout(() => {
          this._retry = null;
          void this._check();
        }, wait * 1000);
        this._fail('busy', `${why}; trying again in ${wait} s`);
      } else {
        this._fail('busy', `${why}; the check runs again when the notebook changes`);
      }
    } else {
      this._fail('error', message);
    }
  }

  private _cancelRetry(): void {
    if (this._retry !== null) {
      window.clearTimeout(this._retry);
      this._retry = null;
    }
  }

  get summary(): string {
    return this._summary;
  }

  /** Activate the notebook, scroll to the finding's cell, select it and put the cursor on its line. */
  async jump(finding: IFinding): Promise<boolean> {
    const notebook = this._panel.content;
    const index = notebook.widgets.findIndex(c => c.model.id === finding.cell_id);
    if (index < 0) {
      this._message = `cell ${finding.cell_index} (id ${finding.cell_id}) is no longer in the notebook`;
      this._changed.emit();
      return false;
    }
    this._app.shell.activateById(this._panel.id);
    const cell = notebook.widgets[index];
    // scrollToCell works with windowed notebooks (cells off screen are not in the DOM).
    await notebook.scrollToCell(cell, 'center');
    notebook.activeCellIndex = index;
    if (cell.model.type === 'code') {
      await cell.ready;
      const editor = cell.editor;
      if (editor) {
        const line = Math.max(0, Math.min(finding.line - 1, editor.lineCount - 1));
        notebook.mode = 'edit';
        editor.setCursorPosition({ line, column: 0 });
        editor.focus();
      }
    }
    return true;
  }

  /** Suppress `finding` in its cell's metadata with `reason` (the notebook becomes dirty). */
  ignore(finding: IFinding, reason: string): boolean {
    const found = this._metadata(finding);
    const why = reason.trim();
    if (!found || !why) {
      return false;
    }
    const { cell, current } = found;
    const ignore = ignoreList(current).filter(i => i.rule !== finding.rule);
    ignore.push({ rule: finding.rule, reason: why });
    cell.setMetadata(METADATA_KEY, { ...current, ignore });
    void this.check();
    return true;
  }

  /** Remove the cell-metadata suppression of `finding`'s rule in its cell. */
  unignore(finding: IFinding): boolean {
    const found = this._metadata(finding);
    if (!found) {
      return false;
    }
    const { cell, current } = found;
    const ignore = ignoreList(current).filter(i => i.rule !== finding.rule);
    const rest = { ...current };
    delete rest.ignore;
    if (ignore.length) {
      rest.ignore = ignore;
    }
    if (Object.keys(rest).length) {
      cell.setMetadata(METADATA_KEY, rest);
    } else {
      cell.deleteMetadata(METADATA_KEY);
    }
    void this.check();
    return true;
  }

  /** Whether `finding` is suppressed by this cell's metadata (so the panel can un-ignore it). */
  ignoredInMetadata(finding: IFinding): boolean {
    const found = this._metadata(finding);
    return !!found && ignoreList(found.current).some(i => i.rule === finding.rule);
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._cancelRetry();
    this._debouncer.dispose();
    Signal.clearData(this);
  }

  /** Return the finding's cell with its interp_magics metadata, or null when the cell is gone. */
  private _metadata(finding: IFinding) {
    for (const cell of this._panel.context.model.cells) {
      if (cell.id === finding.cell_id) {
        return { cell, current: (cell.getMetadata(METADATA_KEY) ?? {}) as Record<string, unknown> };
      }
    }
    return null;
  }

  private _schedule(): void {
    if (!this._disposed) {
      void this._debouncer.invoke();
    }
  }

  private _fail(state: RigorState, message: string): void {
    this._state = state;
    this._message = message;
    this._changed.emit();
  }

  private _app: JupyterFrontEnd;
  private _panel: NotebookPanel;
  private _kernel: KernelLink;
  private _settings: ServerConnection.ISettings;
  private _debouncer: Debouncer;
  private _findings: IFinding[] = [];
  private _summary = '';
  private _state: RigorState = 'checking';
  private _message = '';
  private _seq = 0;
  private _retries = 0;
  private _retry: number | null = null;
  private _ledgerSeq = -1;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}

function ignoreList(metadata: Record<string, unknown>): IIgnore[] {
  const list = metadata.ignore;
  return Array.isArray(list)
    ? (list.filter(i => i && typeof i === 'object' && typeof i.rule === 'string') as IIgnore[])
    : [];
}

/** Return the live notebook as the server expects it: ids, sources, metadata, no outputs. */
export function notebookPayload(panel: NotebookPanel): Record<string, unknown> {
  const model = panel.context.model;
  const cells = [];
  for (const cell of model.cells) {
    // Per cell: the notebook-level toJSON drops ids for nbformat 4.4 files, the cells keep them.
    const json = cell.toJSON() as unknown as Record<string, unknown>;
    cells.push({
      id: cell.id,
      cell_type: json.cell_type,
      source: json.source,
      metadata: json.metadata ?? {},
      execution_count: json.execution_count ?? null
    });
  }
  return {
    nbformat: 4,
    nbformat_minor: Math.max(5, model.nbformatMinor),
    metadata: model.metadata,
    cells
  };
}
