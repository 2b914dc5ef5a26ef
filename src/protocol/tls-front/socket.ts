/**
 * FrontSocket: one client connection of kindred-tls-front, as the transports see it. It has
 * the part of net.Socket the TCP transports use (ByteSocket), so they keep their logic
 * whether TLS is terminated by node:tls or by the front.
 */
import { EventEmitter } from 'node:events';
import { WINDOW_BYTES } from './frames.js';

/** What the native TCP and XMPP TCP transports need of a socket; net.Socket has it too. */
export interface ByteSocket {
  readonly remoteAddress?: string | undefined;
  readonly writableLength: number;
  readonly destroyed: boolean;
  write(data: string | Uint8Array): boolean;
  end(): unknown;
  destroy(): unknown;
  pause(): unknown;
  resume(): unknown;
  setNoDelay(noDelay?: boolean): unknown;
  setKeepAlive(enable?: boolean, initialDelay?: number): unknown;
  on(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  removeAllListeners(event?: string): unknown;
}

/** What a FrontSocket asks of its link (src/protocol/tls-front/link.ts). */
export interface FrontSocketLink {
  data(id: number, data: string | Uint8Array): void;
  end(id: number): void;
  abort(id: number): void;
  startTls(id: number): void;
  ackRead(id: number, bytes: number): void;
  pauseRead(id: number): void;
  resumeRead(id: number): void;
}

export class FrontSocket extends EventEmitter implements ByteSocket {
  /** bytes sent to the front and not yet acknowledged as written to the client */
  private unacked = 0;
  /** data held while WINDOW_BYTES are unacknowledged (a slow client) */
  private held: Array<string | Uint8Array> | null = null;
  private heldBytes = 0;
  private readPaused = false;
  /** bytes of client data emitted here and not yet acknowledged to the front */
  private readUnacked = 0;
  private ended = false;
  private closed = false;
  private tlsWaiter: { onSecure: () => void; resolve: () => void; reject: (err: Error) => void } | null = null;

  constructor(
    readonly id: number,
    private readonly link: FrontSocketLink,
    readonly remoteAddress: string,
    readonly remotePort: number,
  ) {
    super();
  }

  get destroyed(): boolean {
    return this.closed;
  }

  /** bytes held here because the front is still writing earlier ones to a slow client */
  get writableLength(): number {
    return this.heldBytes;
  }

  write(data: string | Uint8Array): boolean {
    if (this.ended || this.closed) return false;
    const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    if (this.held || this.unacked >= WINDOW_BYTES) {
      (this.held ??= []).push(data);
      this.heldBytes += bytes;
      return false;
    }
    this.unacked += bytes;
    this.link.data(this.id, data);
    return true;
  }

  /** After what was written: close (with TLS close_notify). */
  end(): this {
    if (this.ended || this.closed) return this;
    this.ended = true;
    if (!this.held) this.link.end(this.id);
    return this;
  }

  destroy(): this {
    if (this.closed) return this;
    this.ended = true;
    this.held = null;
    this.heldBytes = 0;
    this.link.abort(this.id);
    return this;
  }

  pause(): this {
    if (!this.readPaused && !this.closed) {
      this.readPaused = true;
      this.link.pauseRead(this.id);
    }
    return this;
  }

  resume(): this {
    if (this.readPaused && !this.closed) {
      this.readPaused = false;
      this.link.resumeRead(this.id);
    }
    return this;
  }

  // the front sets these on the real TCP connection
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }

  /**
   * XMPP STARTTLS: `<proceed/>` was written; the front now hand-shakes with the client.
   * `onSecure` runs synchronously when TLS is up, before the first decrypted bytes are
   * emitted (a client may send them in the same packet as its Finished: a promise callback
   * would run too late); the promise resolves after it.
   */
  startTls(onSecure: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    if (this.tlsWaiter) return Promise.reject(new Error('STARTTLS already requested'));
    return new Promise((resolve, reject) => {
      this.tlsWaiter = { onSecure, resolve, reject };
      this.link.startTls(this.id);
    });
  }

  // ── called by the link ──

  onData(chunk: Buffer): void {
    if (this.closed) return;
    this.emit('data', chunk);
    this.readUnacked += chunk.length;
    if (this.readUnacked >= WINDOW_BYTES / 2 && !this.closed) {
      this.link.ackRead(this.id, this.readUnacked);
      this.readUnacked = 0;
    }
  }

  onTlsUp(): void {
    const w = this.tlsWaiter;
    this.tlsWaiter = null;
    w?.onSecure();
    w?.resolve();
  }

  /** the front wrote `bytes` more to the client: send what was held, up to the window */
  onAck(bytes: number): void {
    this.unacked = Math.max(0, this.unacked - bytes);
    if (!this.held || this.closed) return;
    while (this.held.length > 0 && this.unacked < WINDOW_BYTES) {
      const d = this.held.shift()!;
      const n = typeof d === 'string' ? Buffer.byteLength(d) : d.byteLength;
      this.heldBytes -= n;
      this.unacked += n;
      this.link.data(this.id, d);
    }
    if (this.held.length > 0) return;
    this.held = null;
    if (this.ended) this.link.end(this.id);
    this.emit('drain');
  }

  /** the connection is gone (the client, us, or the front itself) */
  onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.ended = true;
    this.held = null;
    this.heldBytes = 0;
    const w = this.tlsWaiter;
    this.tlsWaiter = null;
    w?.reject(new Error('connection closed during the TLS handshake'));
    this.emit('close', false);
  }
}
