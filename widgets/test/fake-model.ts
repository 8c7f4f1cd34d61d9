// A fake anywidget model for render() tests in jsdom: state by key, listeners by event, messages
// sent to the kernel kept in `sent`, and `emit` to play the kernel's events.

type Listener = (...a: unknown[]) => void;

export interface FakeModel {
  sent: unknown[];
  listeners: Record<string, Listener[]>;
  get(k: string): unknown;
  set(k: string, v: unknown): void;
  save_changes(): void;
  on(e: string, cb: Listener): void;
  off(e: string, cb?: Listener): void;
  send(c: unknown): void;
  emit(e: string, ...a: unknown[]): void;
}

/** Return a model over `state`; with `echo`, `set` fires `change:<key>` as Backbone does. */
export function fakeModel(state: Record<string, unknown>, echo = false): FakeModel {
  const listeners: Record<string, Listener[]> = {};
  const sent: unknown[] = [];
  const emit = (e: string, ...a: unknown[]): void => (listeners[e] ?? []).forEach(cb => cb(...a));
  return {
    sent,
    listeners,
    get: k => state[k],
    set: (k, v) => {
      state[k] = v;
      if (echo) emit(`change:${k}`);
    },
    save_changes: () => undefined,
    on: (e, cb) => {
      (listeners[e] ??= []).push(cb);
    },
    off: (e, cb) => {
      listeners[e] = (listeners[e] ?? []).filter(x => x !== cb);
    },
    send: c => {
      sent.push(c);
    },
    emit
  };
}
