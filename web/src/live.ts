/**
 * The live connection: the native protocol (docs/protocol.md) over WebSocket at /ws, msgpack
 * frames, authenticated with the session's token. Requests are matched to replies by id;
 * server events are handed to subscribers. When the socket drops it reconnects with backoff
 * and announces `resync`, since events are not replayed (pages then reload what they show).
 * There is no polling anywhere: everything live arrives on this socket.
 */
import { Packr } from 'msgpackr';
import { session, type Session } from './session.js';
import { createStore } from './store.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: 'number' } as ConstructorParameters<typeof Packr>[0]);

export class LiveError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'LiveError';
  }
}

export type LiveEvent = { type: string; [key: string]: unknown };
export type LiveState = 'offline' | 'connecting' | 'online';

/** The connection's state, shown in the header so a person knows when live updates stop. */
export const liveState = createStore<LiveState>('offline');

type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void; timer: ReturnType<typeof setTimeout> };

const listeners = new Set<(e: LiveEvent) => void>();
const resyncListeners = new Set<() => void>();
let socket: WebSocket | undefined;
let ready: Promise<void> | undefined;
let current: Session | null = null;
let nextId = 1;
const pending = new Map<number, Pending>();
let retryMs = 500;
let retryTimer: ReturnType<typeof setTimeout> | undefined;
let everConnected = false;

function wsUrl(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

function write(frame: unknown): void {
  socket?.send(packr.pack(frame));
}

function rawRequest(op: string, args: Record<string, unknown>, timeoutMs = 15_000): Promise<unknown> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      reject(new LiveError('TIMEOUT', 'The server did not answer in time. Try again.'));
    }, timeoutMs);
    pending.set(id, { resolve, reject, timer });
    write({ id, op, args });
  });
}

function onFrame(data: ArrayBuffer): void {
  const frame = packr.unpack(new Uint8Array(data)) as Record<string, unknown>;
  if (typeof frame.ping === 'number') {
    write({ pong: frame.ping });
    return;
  }
  if (frame.event) {
    const event = frame.event as LiveEvent;
    for (const fn of [...listeners]) {
      try {
        fn(event);
      } catch (err) {
        console.error('live event handler failed', err);
      }
    }
    return;
  }
  const error = frame.error as { code: string; message: string } | undefined;
  if (typeof frame.id !== 'number') {
    if (error) console.warn('live connection error', error);
    return;
  }
  const p = pending.get(frame.id);
  if (!p) return;
  pending.delete(frame.id);
  clearTimeout(p.timer);
  if (error) p.reject(new LiveError(error.code, error.message));
  else p.resolve(frame.result);
}

function failPending(reason: string): void {
  for (const p of pending.values()) {
    clearTimeout(p.timer);
    p.reject(new LiveError('CLOSED', reason));
  }
  pending.clear();
}

function connect(s: Session): Promise<void> {
  liveState.set('connecting');
  const ws = new WebSocket(wsUrl());
  ws.binaryType = 'arraybuffer';
  socket = ws;
  return new Promise<void>((resolve, reject) => {
    ws.onopen = () => {
      rawRequest('auth', { token: s.token }).then(
        () => {
          if (socket !== ws) return;
          retryMs = 500;
          liveState.set('online');
          resolve();
          if (everConnected) for (const fn of [...resyncListeners]) fn();
          everConnected = true;
        },
        (err: LiveError) => {
          reject(err);
          if (err.code === 'TOKEN_INVALID' || err.code === 'TOKEN_EXPIRED') session.set(null);
          ws.close();
        },
      );
    };
    ws.onmessage = (m) => onFrame(m.data as ArrayBuffer);
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = undefined;
      ready = undefined;
      failPending('The live connection was lost. Try again.');
      reject(new LiveError('CLOSED', 'Could not open the live connection.'));
      liveState.set('offline');
      // reconnect while still logged in as the same person
      if (current === s) {
        retryTimer = setTimeout(() => {
          if (current === s) ready = connect(s).catch(() => undefined);
        }, retryMs);
        retryMs = Math.min(retryMs * 2, 15_000);
      }
    };
  });
}

function follow(s: Session | null): void {
  if (s?.token === current?.token) return;
  current = s;
  clearTimeout(retryTimer);
  everConnected = false;
  const old = socket;
  socket = undefined;
  ready = undefined;
  old?.close();
  failPending('Logged out.');
  liveState.set('offline');
  if (s) {
    ready = connect(s);
    ready.catch(() => undefined); // reported to whoever awaits it in live()
  }
}

session.subscribe(follow);
follow(session.get());

/** Runs a native op on the live connection (waits for it to be open). */
export async function live<T = Record<string, unknown>>(op: string, args: Record<string, unknown> = {}): Promise<T> {
  if (!current) throw new LiveError('UNAUTHENTICATED', 'Log in first.');
  if (!ready) ready = connect(current);
  await ready;
  return (await rawRequest(op, args)) as T;
}

/** Subscribes to server events; returns the unsubscribe function. */
export function onLiveEvent(fn: (e: LiveEvent) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Called after a reconnect: events may have been missed, reload what is shown. */
export function onResync(fn: () => void): () => void {
  resyncListeners.add(fn);
  return () => resyncListeners.delete(fn);
}
