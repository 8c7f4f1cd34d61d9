/**
 * One notebook's link to its kernel: a comm to the `interp_magics` target that the kernel
 * extension registers. The kernel pushes a snapshot (caches, models, ledger facts) after each
 * cell; the panel never runs code in the kernel except on an explicit user action, or the one
 * silent `user_expressions` request per execution used when this connection cannot open comms.
 *
 * Before opening the comm the link asks whether the target is registered (`PROBE_EXPRESSION`,
 * a silent request). Opening a comm to a kernel without the target fails loudly: the kernel
 * logs "No such comm target registered" and closes it, and the page logs "Comm not found" for
 * the close when the comm was already let go. Asking first opens no comm that can fail.
 *
 * Past 400 lines: the link's states (asking, connecting, connected, restarting, dead) and the
 * messages that move between them are one state machine, kept in one place.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import {
  COMM_TARGET,
  IFreed,
  isSnapshot,
  ISnapshot,
  ITensorEntry,
  PROTOCOL_VERSION
} from './protocol';

export type KernelState =
  | 'no-kernel'
  | 'starting'
  | 'not-python'
  | 'connecting'
  | 'not-loaded'
  | 'ready'
  | 'restarting'
  | 'dead'
  | 'error';

const SNAPSHOT_EXPRESSION = "__import__('interp_magics.jupyter').jupyter.snapshot_display()";

/**
 * Whether the kernel registered the comm target, evaluated as a silent user expression: no cell
 * runs (no execution count, no run-cell events, no history) and nothing is imported that an
 * IPython kernel has not imported already (ipykernel wires the `comm` package at start), so a
 * kernel that never loaded interp-magics answers `False` without loading any of it.
 */
export const PROBE_EXPRESSION = `'${COMM_TARGET}' in getattr(__import__('comm').get_comm_manager(), 'targets', {})`;

/** What the probe learnt: loaded, not loaded, or no answer (a kernel that cannot evaluate it). */
export type ProbeResult = 'loaded' | 'not-loaded' | 'unknown';

/** Return what a `user_expressions` result of PROBE_EXPRESSION says. */
export function probeResult(expr: unknown): ProbeResult {
  const e = expr as { status?: string; data?: Record<string, unknown> } | undefined;
  if (!e || e.status !== 'ok' || !e.data) {
    return 'unknown';
  }
  const text = String(e.data['text/plain'] ?? '').trim();
  return text === 'True' ? 'loaded' : text === 'False' ? 'not-loaded' : 'unknown';
}

export class KernelLink implements IDisposable {
  constructor(sessionContext: ISessionContext) {
    this._context = sessionContext;
    sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    sessionContext.statusChanged.connect(this._onStatus, this);
    sessionContext.iopubMessage.connect(this._onIopub, this);
    void sessionContext.ready.then(() => this._bind());
  }

  /** Emitted whenever state, snapshot or the last reply change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get state(): KernelState {
    return this._state;
  }

  /** Why the link is in its state, in words for the panel. */
  get message(): string {
    return this._message;
  }

  get snapshot(): ISnapshot | null {
    return this._snapshot;
  }

  get lastFreed(): IFreed | null {
    return this._freed;
  }

  /** Whether the kernel restarted since the extension was last seen loaded. */
  get restarted(): boolean {
    return this._restarted;
  }

  /** Whether snapshots come from the silent-request fallback (no comm on this connection). */
  get fallback(): boolean {
    return this._fallback;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Ask the kernel to delete the cache `name` and give its memory back. */
  free(name: string): void {
    if (this._comm && !this._comm.isDisposed) {
      this._freed = null;
      this._comm.send({ v: PROTOCOL_VERSION, type: 'free', name });
    }
  }

  /** Ask for a fresh snapshot. */
  refresh(): void {
    if (this._comm && !this._comm.isDisposed) {
      this._comm.send({ v: PROTOCOL_VERSION, type: 'refresh' });
    } else if (this._fallback) {
      void this._pull();
    }
  }

  /** Run `%load_ext interp_magics` in the kernel (an explicit user action), then connect. */
  async loadExtension(): Promise<void> {
    const kernel = this._context.session?.kernel;
    if (!kernel) {
      return;
    }
    this._set('connecting', 'loading the extension');
    const future = kernel.requestExecute({
      code: '%load_ext interp_magics',
      silent: false,
      store_history: false
    });
    const reply = await future.done;
    if (reply.content.status !== 'ok') {
      const content = reply.content as KernelMessage.IReplyErrorContent;
      this._set(
        'not-loaded',
        `%load_ext interp_magics failed: ${content.ename}: ${content.evalue}. ` +
          'Install interp-magics in the kernel’s environment.'
      );
      return;
    }
    this._restarted = false;
    await this._open();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._closeComm();
    Signal.clearData(this);
  }

  private async _bind(): Promise<void> {
    if (this._disposed) {
      return;
    }
    const generation = ++this._generation;
    this._closeComm();
    this._snapshot = null;
    const kernel = this._context.session?.kernel;
    if (!kernel) {
      this._set('no-kernel', 'no kernel: start one to see its activations');
      return;
    }
    this._set('starting', 'waiting for the kernel');
    let language: string;
    try {
      language = (await kernel.info).language_info.name;
    } catch {
      return; // the kernel went away; a status change binds again
    }
    if (kernel !== this._context.session?.kernel || this._disposed) {
      return;
    }
    if (generation !== this._generation) {
      return; // a later bind (kernel change, restart) took over
    }
    if (language.toLowerCase() !== 'python') {
      this._set(
        'not-python',
        `this notebook’s kernel runs ${language}; interp-magics needs Python`
      );
      return;
    }
    await this._open();
  }

  private async _open(): Promise<void> {
    const kernel = this._context.session?.kernel;
    if (!kernel || this._disposed) {
      return;
    }
    const generation = ++this._generation;
    this._closeComm();
    if (!kernel.handleComms) {
      this._fallback = true;
      await this._pull();
      return;
    }
    this._set('connecting', 'asking the kernel whether the extension is loaded');
    const probe = await this._probe(kernel);
    if (
      generation !== this._generation ||
      this._disposed ||
      kernel !== this._context.session?.kernel
    ) {
      return; // another bind or open started meanwhile: it decides
    }
    if (probe === 'not-loaded') {
      this._fallback = false;
      this._snapshot = null;
      this._set('not-loaded', this._notLoadedMessage());
      return;
    }
    // 'unknown' (a kernel that cannot evaluate the probe): try the comm, as before probing.
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(COMM_TARGET);
    } catch {
      this._fallback = true;
      await this._pull();
      return;
    }
    this._fallback = false;
    this._comm = comm;
    comm.onMsg = msg => this._onData(msg.content.data);
    // The kernel closes a comm whose target it does not know: the extension is not loaded.
    comm.onClose = () => {
      if (this._comm !== comm) {
        return;
      }
      this._comm = null;
      if (this._state !== 'restarting' && this._state !== 'dead') {
        this._snapshot = null;
        this._set('not-loaded', this._notLoadedMessage());
      }
    };
    this._set('connecting', 'connecting to the kernel');
    try {
      comm.open({ v: PROTOCOL_VERSION, type: 'hello' });
    } catch {
      this._comm = null;
      this._set('not-loaded', this._notLoadedMessage());
    }
  }

  /** Ask the kernel, silently, whether the comm target is registered. */
  private async _probe(kernel: Kernel.IKernelConnection): Promise<ProbeResult> {
    try {
      const future = kernel.requestExecute({
        code: '',
        silent: true,
        store_history: false,
        user_expressions: { loaded: PROBE_EXPRESSION }
      });
      this._ownRequests.add(future.msg.header.msg_id);
      try {
        const reply = await future.done;
        return probeResult((reply.content as KernelMessage.IExecuteReply).user_expressions?.loaded);
      } finally {
        this._ownRequests.delete(future.msg.header.msg_id);
      }
    } catch {
      return 'unknown'; // the kernel went away or refused: the comm decides
    }
  }

  private async _pull(): Promise<void> {
    const kernel = this._context.session?.kernel;
    if (!kernel || this._pulling) {
      return;
    }
    this._pulling = true;
    try {
      const future = kernel.requestExecute({
        code: '',
        silent: true,
        store_history: false,
        user_expressions: { im: SNAPSHOT_EXPRESSION }
      });
      this._ownRequests.add(future.msg.header.msg_id);
      const reply = await future.done;
      this._ownRequests.delete(future.msg.header.msg_id);
      const expr = (reply.content as KernelMessage.IExecuteReply).user_expressions?.im as
        { status: string; data?: Record<string, unknown> } | undefined;
      if (!expr || expr.status !== 'ok' || !expr.data) {
        this._set('not-loaded', this._notLoadedMessage());
        return;
      }
      this._onData(parseExpression(expr.data));
    } catch {
      this._set('not-loaded', this._notLoadedMessage());
    } finally {
      this._pulling = false;
    }
  }

  private _onData(data: unknown): void {
    const d = data as { v?: number; type?: string; message?: string } | null;
    if (!d || typeof d !== 'object') {
      return;
    }
    if (d.v !== PROTOCOL_VERSION) {
      this._set(
        'error',
        `the kernel speaks protocol v${String(d.v)} and this panel v${PROTOCOL_VERSION}: ` +
          'install the same interp-magics version in the kernel and the server'
      );
      return;
    }
    if (isSnapshot(d)) {
      if (!withKnownEntries(d, this._snapshot)) {
        this.refresh(); // a push we missed: ask for the whole list
      }
      this._snapshot = d;
      this._restarted = false;
      this._set('ready', '');
    } else if (d.type === 'freed') {
      this._freed = d as IFreed;
      this._changed.emit();
    } else if (d.type === 'not-loaded') {
      this._snapshot = null;
      this._set('not-loaded', this._notLoadedMessage());
    } else if (d.type === 'error') {
      this._message = String(d.message ?? 'error');
      this._changed.emit();
    }
  }

  private _onKernelChanged(
    _: ISessionContext,
    change: { oldValue: Kernel.IKernelConnection | null; newValue: Kernel.IKernelConnection | null }
  ): void {
    // A restart can reconnect the same kernel id: it is still the kernel that restarted.
    if (change.newValue?.id !== change.oldValue?.id) {
      this._restarted = false;
    }
    this._fallback = false;
    void this._context.ready.then(() => this._bind());
  }

  private _onStatus(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting') {
      this._generation += 1; // a probe or open under way belongs to the kernel before
      this._closeComm();
      this._snapshot = null;
      this._restarted = true;
      this._set('restarting', 'the kernel is restarting: its caches and models are gone');
    } else if (status === 'dead') {
      this._generation += 1;
      this._closeComm();
      this._snapshot = null;
      this._set('dead', 'the kernel died: restart it, then load the extension again');
    } else if (
      status === 'idle' &&
      (this._state === 'restarting' || this._state === 'dead' || this._state === 'no-kernel')
    ) {
      void this._bind();
    }
  }

  private _onIopub(_: ISessionContext, msg: KernelMessage.IMessage): void {
    const parent = msg.parent_header as KernelMessage.IHeader | undefined;
    if (!parent || this._ownRequests.has(parent.msg_id)) {
      return;
    }
    if (msg.header.msg_type === 'execute_input') {
      const code = String((msg.content as { code?: string }).code ?? '');
      if (code.includes('interp_magics')) {
        this._retry = true;
      }
      return;
    }
    if (
      msg.header.msg_type === 'status' &&
      parent.msg_type === 'execute_request' &&
      (msg.content as { execution_state?: string }).execution_state === 'idle'
    ) {
      if (this._retry && (this._state === 'not-loaded' || this._state === 'connecting')) {
        this._retry = false;
        void this._open();
      } else if (this._fallback) {
        void this._pull();
      }
    }
  }

  private _notLoadedMessage(): string {
    return this._restarted
      ? 'the kernel restarted, so its caches are gone and the extension must be loaded again'
      : 'the interp_magics extension is not loaded in this kernel';
  }

  private _closeComm(): void {
    const comm = this._comm;
    this._comm = null;
    if (comm && !comm.isDisposed) {
      try {
        comm.close();
      } catch {
        // the kernel connection is already gone
      }
    }
  }

  private _set(state: KernelState, message: string): void {
    this._state = state;
    this._message = message;
    this._changed.emit();
  }

  private _context: ISessionContext;
  private _comm: Kernel.IComm | null = null;
  private _state: KernelState = 'starting';
  private _message = '';
  private _snapshot: ISnapshot | null = null;
  private _freed: IFreed | null = null;
  private _restarted = false;
  private _fallback = false;
  private _pulling = false;
  private _retry = false;
  private _disposed = false;
  /** Counts binds and opens; an await that returns to an older one gives up. */
  private _generation = 0;
  private _ownRequests = new Set<string>();
  private _changed = new Signal<this, void>(this);
}

/** Return the snapshot carried by a `user_expressions` result (its application/json entry). */
export function parseExpression(data: Record<string, unknown>): unknown {
  return data['application/json'] ?? null;
}

/**
 * Fill the `entries: null` of a pushed snapshot from the previous one (same `rev`); return
 * false when some were not there to copy (they are left empty).
 */
export function withKnownEntries(snapshot: ISnapshot, previous: ISnapshot | null): boolean {
  const known = new Map<number, ITensorEntry[]>();
  for (const cache of previous?.caches ?? []) {
    if (cache.entries) {
      known.set(cache.rev, cache.entries);
    }
  }
  let complete = true;
  for (const cache of snapshot.caches) {
    if (cache.entries === null) {
      const entries = known.get(cache.rev);
      complete = complete && entries !== undefined;
      cache.entries = entries ?? [];
    }
  }
  return complete;
}
