/**
 * A lean native-protocol connection (WebSocket or TCP) for load generation.
 *
 * Why not src/client/native.ts (NativeClient)? Three things matter at load:
 * NativeClient keeps every event nobody awaited in a backlog (unbounded growth
 * when you only listen), starts a 15 s timer per request (150k live timers at
 * 10k requests/s), and cannot pick a source address (needed to open more than
 * ~28k sockets to one port). This one uses the same codec and frame formats,
 * calls back instead of allocating promises on the hot path, and leaves
 * timeouts to the scenario. Heartbeat pings are answered like NativeClient does.
 */
import net from 'node:net';
import WebSocket from 'ws';
import { wsTls } from './loopback-tls.js';
import { FrameDecoder, decodeMessage, encodeLengthPrefixed, encodeMessage } from '../../src/protocol/native/codec.js';

export type Protocol = 'ws' | 'tcp';

export interface Target {
  protocol: Protocol;
  /** ws://127.0.0.1:<port>/ws, or wss:// against a server with `tls` (the certificate is not checked) */
  wsUrl: string;
  host: string;
  tcpPort: number;
}

export interface WireError {
  code: string;
  message: string;
}

export type Reply = (err: WireError | null, result: any) => void;

/** 127.0.0.2 .. 127.0.0.9 (loopback aliases on Linux), to spread client ports over 8 source addresses. */
export function sourceAddress(i: number): string {
  return `127.0.0.${2 + (i % 8)}`;
}

export class BenchConn {
  private nextId = 1;
  private readonly pending = new Map<number, Reply>();
  /** every pushed event (`{type, ...}`) */
  onEvent: (event: any) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;
  /** connection-level error frames (no request id) */
  readonly errors: WireError[] = [];
  closed = false;
  closeReason = '';
  private write!: (frame: unknown) => void;
  private end!: () => void;

  static connect(target: Target, localAddress?: string): Promise<BenchConn> {
    return target.protocol === 'tcp' ? BenchConn.connectTcp(target.host, target.tcpPort, localAddress) : BenchConn.connectWs(target.wsUrl, localAddress);
  }

  static connectWs(url: string, localAddress?: string): Promise<BenchConn> {
    return new Promise((resolve, reject) => {
      const c = new BenchConn();
      const ws = new WebSocket(url, { localAddress, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024, ...wsTls(url) });
      ws.binaryType = 'nodebuffer';
      c.write = (f) => ws.send(encodeMessage(f), { binary: true });
      c.end = () => ws.close();
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
      ws.on('error', () => undefined);
      ws.on('message', (data: Buffer) => c.onFrame(data));
      ws.on('close', (code, reason) => c.onClosed(`ws close ${code} ${reason.toString()}`));
    });
  }

  static connectTcp(host: string, port: number, localAddress?: string): Promise<BenchConn> {
    return new Promise((resolve, reject) => {
      const c = new BenchConn();
      const socket = net.connect({ host, port, localAddress });
      const decoder = new FrameDecoder(16 * 1024 * 1024);
      socket.setNoDelay(true);
      c.write = (f) => socket.write(encodeLengthPrefixed(f));
      c.end = () => socket.end();
      socket.once('connect', () => resolve(c));
      socket.once('error', reject);
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        for (const frame of decoder.push(chunk)) c.onFrame(frame);
      });
      socket.on('close', () => c.onClosed('tcp socket closed'));
    });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Sends a request; `reply` is called once with the error frame or the result. */
  call(op: string, args: Record<string, unknown>, reply: Reply): void {
    if (this.closed) {
      reply({ code: 'CLOSED', message: `connection closed: ${this.closeReason}` }, undefined);
      return;
    }
    const id = this.nextId++;
    this.pending.set(id, reply);
    this.write({ id, op, args });
  }

  request(op: string, args: Record<string, unknown> = {}): Promise<any> {
    return new Promise((resolve, reject) =>
      this.call(op, args, (err, result) => {
        if (err) reject(Object.assign(new Error(`${op}: ${err.code} ${err.message}`), { code: err.code }));
        else resolve(result);
      }),
    );
  }

  close(): void {
    this.end();
  }

  private onFrame(bytes: Uint8Array): void {
    const frame = decodeMessage(bytes) as Record<string, unknown>;
    if (typeof frame.ping === 'number') {
      this.write({ pong: frame.ping });
      return;
    }
    if (frame.event) {
      this.onEvent(frame.event);
      return;
    }
    const id = frame.id as number | undefined;
    const err = frame.error as WireError | undefined;
    if (id === undefined) {
      if (err) this.errors.push(err);
      return;
    }
    const reply = this.pending.get(id);
    if (!reply) return;
    this.pending.delete(id);
    if (err) reply(err, undefined);
    else reply(null, frame.result);
  }

  private onClosed(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const reply of pending) reply({ code: 'CLOSED', message: `connection closed: ${reason}` }, undefined);
    this.onClose(reason);
  }
}

/** Opens and authenticates one connection per token, `concurrency` at a time. */
export async function connectAll(
  target: Target,
  tokens: readonly string[],
  opts: { concurrency?: number; onEach?: (ms: number) => void } = {},
): Promise<BenchConn[]> {
  const conns = new Array<BenchConn>(tokens.length);
  let next = 0;
  const worker = async () => {
    while (next < tokens.length) {
      const i = next++;
      const t0 = performance.now();
      const c = await BenchConn.connect(target, sourceAddress(i));
      await c.request('auth', { token: tokens[i] });
      opts.onEach?.(performance.now() - t0);
      conns[i] = c;
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 100, tokens.length) }, worker));
  return conns;
}
