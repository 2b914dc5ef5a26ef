/**
 * A small client for the native protocol (docs/protocol.md) over TCP or WebSocket.
 * Used by the tests, the bench harness and the README tour; also a reference for
 * writing clients in other languages.
 */
import net from 'node:net';
import tls from 'node:tls';
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { FrameDecoder, decodeMessage, encodeLengthPrefixed, encodeMessage } from '../protocol/native/codec.js';
import type { CommandResults, KindredEvent } from '../domain/commands.js';

export class NativeError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'NativeError';
  }
}

type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void };

interface Link {
  write(frame: unknown): void;
  close(): void;
}

export class NativeClient extends EventEmitter {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly backlog: KindredEvent[] = [];
  private readonly waiters: Array<{ match: (e: KindredEvent) => boolean; resolve: (e: KindredEvent) => void; timer: NodeJS.Timeout }> = [];
  /** connection-level error frames (no request id) */
  readonly errors: Array<{ code: string; message: string }> = [];
  closed = false;
  closeReason = '';
  private link!: Link;

  static connectTcp(host: string, port: number, opts: { tls?: boolean; maxFrameBytes?: number } = {}): Promise<NativeClient> {
    return new Promise((resolve, reject) => {
      const client = new NativeClient();
      const socket = opts.tls ? tls.connect({ host, port, rejectUnauthorized: false }) : net.connect({ host, port });
      const decoder = new FrameDecoder(opts.maxFrameBytes ?? 16 * 1024 * 1024);
      socket.setNoDelay(true);
      client.link = { write: (f) => socket.write(encodeLengthPrefixed(f)), close: () => socket.end() };
      socket.once(opts.tls ? 'secureConnect' : 'connect', () => resolve(client));
      socket.once('error', reject);
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        for (const frame of decoder.push(chunk)) client.onFrame(frame);
      });
      socket.on('close', () => client.onClose('socket closed'));
      client.rawSocket = socket;
    });
  }

  static connectWs(url: string): Promise<NativeClient> {
    return new Promise((resolve, reject) => {
      const client = new NativeClient();
      const ws = new WebSocket(url);
      ws.binaryType = 'nodebuffer';
      client.link = { write: (f) => ws.send(encodeMessage(f)), close: () => ws.close() };
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.on('error', () => undefined);
      ws.on('message', (data: Buffer) => client.onFrame(data));
      ws.on('close', (code, reason) => client.onClose(`${code} ${reason.toString()}`));
      client.rawWs = ws;
    });
  }

  /** The underlying socket, for tests that need to misbehave on purpose. */
  rawSocket?: net.Socket;
  rawWs?: WebSocket;

  request<Op extends keyof CommandResults>(op: Op, args: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<CommandResults[Op]> {
    if (this.closed) return Promise.reject(new NativeError('CLOSED', `connection closed: ${this.closeReason}`));
    const id = this.nextId++;
    return new Promise<CommandResults[Op]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new NativeError('TIMEOUT', `no reply to ${op} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v as CommandResults[Op])),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.link.write({ id, op, args });
    });
  }

  /** Sends any value as a frame, bypassing the request helper (for tests of bad input). */
  sendRaw(frame: unknown): void {
    this.link.write(frame);
  }

  /** Resolves with the next event (already received or future) that matches. */
  nextEvent(match: (e: KindredEvent) => boolean = () => true, timeoutMs = 10_000): Promise<KindredEvent> {
    const i = this.backlog.findIndex(match);
    if (i >= 0) return Promise.resolve(this.backlog.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const w = this.waiters.findIndex((x) => x.timer === timer);
        if (w >= 0) this.waiters.splice(w, 1);
        reject(new NativeError('TIMEOUT', 'no matching event'));
      }, timeoutMs);
      this.waiters.push({ match, resolve, timer });
    });
  }

  /** Events received and not yet taken by nextEvent. */
  drainEvents(): KindredEvent[] {
    return this.backlog.splice(0);
  }

  close(): void {
    this.link.close();
  }

  private onFrame(bytes: Uint8Array): void {
    const frame = decodeMessage(bytes) as Record<string, unknown>;
    if (typeof frame.ping === 'number') {
      this.link.write({ pong: frame.ping });
      return;
    }
    if (frame.event) {
      const event = frame.event as KindredEvent;
      this.emit('event', event);
      const w = this.waiters.findIndex((x) => x.match(event));
      if (w >= 0) {
        const [waiter] = this.waiters.splice(w, 1);
        clearTimeout(waiter!.timer);
        waiter!.resolve(event);
      } else this.backlog.push(event);
      return;
    }
    const id = frame.id as number | undefined;
    const err = frame.error as { code: string; message: string } | undefined;
    if (id === undefined) {
      if (err) {
        this.errors.push(err);
        this.emit('protocol-error', err);
      }
      return;
    }
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (err) p.reject(new NativeError(err.code, err.message));
    else p.resolve(frame.result);
  }

  private onClose(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    for (const p of this.pending.values()) p.reject(new NativeError('CLOSED', `connection closed: ${reason}`));
    this.pending.clear();
    this.emit('close', reason);
  }
}
