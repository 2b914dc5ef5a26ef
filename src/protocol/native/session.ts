/**
 * One native-protocol connection, independent of its transport (WebSocket or TCP):
 * authentication state, request dispatch into the command layer, replies, events,
 * heartbeats and backpressure. The transport only moves frames (the `Wire`).
 */
import type { CommandGateway, Principal, Transport } from '../../domain/gateway.js';
import type { KindredEvent, PublicCommand } from '../../domain/commands.js';
import { KindredError, toKindredError } from '../../errors.js';
import { decodeMessage } from './codec.js';

export interface Wire {
  /** queues one frame; returns the bytes now buffered for this connection */
  send(frame: unknown): number;
  /** closes the connection, telling the peer why */
  close(reason: string): void;
}

export interface NativeLimits {
  maxSendBufferBytes: number;
  heartbeatSeconds: number;
  /** requests a connection may have in flight before it is told to slow down */
  maxInFlight: number;
  /** a connection that has not authenticated by then is closed */
  authTimeoutSeconds: number;
}

const AUTH_OPS = new Set(['auth', 'login', 'register']);

export interface NativeSessionHooks {
  /** the server closed the connection; `kind` is a low-cardinality label for metrics */
  onServerClose?: (kind: string) => void;
}

export class NativeSession {
  private principal: Principal | undefined;
  private authenticating = false;
  private closed = false;
  private inFlight = 0;
  lastInbound: number;
  lastOutbound: number;
  private readonly openedAt = Date.now();

  constructor(
    readonly connId: string,
    private readonly transport: Transport,
    private readonly gateway: CommandGateway,
    private readonly wire: Wire,
    private readonly limits: NativeLimits,
    private readonly hooks: NativeSessionHooks = {},
  ) {
    this.lastInbound = this.lastOutbound = Date.now();
  }

  get userId(): string | undefined {
    return this.principal?.userId;
  }

  /** One decoded-from-the-wire frame body. Never throws: bad input becomes an error frame. */
  onFrame(bytes: Uint8Array): void {
    if (this.closed) return;
    this.lastInbound = Date.now();
    let frame: unknown;
    try {
      frame = decodeMessage(bytes);
    } catch (err) {
      this.sendError(undefined, err);
      return;
    }
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
      this.sendError(undefined, new KindredError('BAD_REQUEST', 'a frame must be a msgpack map'));
      return;
    }
    const f = frame as Record<string, unknown>;
    if ('pong' in f && !('op' in f)) return; // heartbeat answer
    const id = f.id;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      this.sendError(undefined, new KindredError('BAD_REQUEST', 'a request needs a non-negative integer "id"'));
      return;
    }
    if (typeof f.op !== 'string') {
      this.sendError(id, new KindredError('BAD_REQUEST', 'a request needs a string "op"'));
      return;
    }
    const args = f.args ?? {};
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      this.sendError(id, new KindredError('BAD_REQUEST', '"args" must be a map'));
      return;
    }
    if (this.inFlight >= this.limits.maxInFlight) {
      this.sendError(id, new KindredError('RATE_LIMITED', `at most ${this.limits.maxInFlight} requests in flight per connection`));
      return;
    }
    this.inFlight++;
    const command = { ...(args as Record<string, unknown>), op: f.op };
    const work = AUTH_OPS.has(f.op) ? this.authenticate(command as PublicCommand) : this.execute(command);
    work.then(
      (result) => {
        this.inFlight--;
        this.sendFrame({ id, result });
      },
      (err) => {
        this.inFlight--;
        this.sendError(id, err);
      },
    );
  }

  private async authenticate(cmd: PublicCommand): Promise<unknown> {
    if (this.principal || this.authenticating) throw new KindredError('CONFLICT', 'this connection is already authenticated');
    this.authenticating = true;
    try {
      const { principal, result } = await this.gateway.authenticate(cmd);
      if (this.closed) return result;
      await this.gateway.openSession(principal, { connId: this.connId, transport: this.transport, device: 'native' }, (event) => this.pushEvent(event));
      if (this.closed) {
        this.gateway.closeSession(principal, this.connId);
        return result;
      }
      this.principal = principal;
      return result;
    } finally {
      this.authenticating = false;
    }
  }

  private execute(command: Record<string, unknown>): Promise<unknown> {
    if (!this.principal) return Promise.reject(new KindredError('UNAUTHENTICATED', 'send auth, login or register first'));
    return this.gateway.execute(this.principal, command as never, this.connId);
  }

  /** Event sink for the session hub; false tells the hub this connection is gone. */
  private pushEvent(event: KindredEvent): boolean {
    if (this.closed) return false;
    this.sendFrame({ event });
    return !this.closed;
  }

  /** Heartbeat sweep: ping an idle peer, drop a silent one. */
  tick(now: number): void {
    const beat = this.limits.heartbeatSeconds * 1000;
    if (!this.principal && !this.authenticating && now - this.openedAt > this.limits.authTimeoutSeconds * 1000) {
      this.fail(new KindredError('UNAUTHENTICATED', 'no authentication in time'));
      return;
    }
    if (now - this.lastInbound > 3 * beat) {
      this.close('heartbeat timeout', 'heartbeat');
      return;
    }
    if (now - this.lastOutbound >= beat) this.sendFrame({ ping: now });
  }

  sendFrame(frame: unknown): void {
    if (this.closed) return;
    this.lastOutbound = Date.now();
    const buffered = this.wire.send(frame);
    if (buffered > this.limits.maxSendBufferBytes) this.close('slow consumer: send buffer limit exceeded', 'slow_consumer');
  }

  private sendError(id: number | undefined, err: unknown): void {
    const k = toKindredError(err);
    this.sendFrame(id === undefined ? { error: k.toJSON() } : { id, error: k.toJSON() });
  }

  /** A fatal protocol error: say why, then close. */
  fail(err: KindredError): void {
    this.sendError(undefined, err);
    this.close(err.message, err.code.toLowerCase());
  }

  /** A frame over the size limit whose boundaries are still known (WebSocket): answer it, keep the connection. */
  rejectOversized(bytes: Uint8Array, limit: number): void {
    let id: number | undefined;
    try {
      const f = decodeMessage(bytes) as { id?: unknown };
      if (typeof f?.id === 'number' && Number.isInteger(f.id)) id = f.id;
    } catch {
      /* no id to answer to */
    }
    this.sendError(id, new KindredError('PAYLOAD_TOO_LARGE', `frame of ${bytes.byteLength} bytes exceeds the limit of ${limit}`));
  }

  close(reason: string, kind = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.hooks.onServerClose?.(kind);
    this.wire.close(reason);
    this.onTransportClosed();
  }

  /** The transport saw the connection end (either side). */
  onTransportClosed(): void {
    this.closed = true;
    if (this.principal) {
      const p = this.principal;
      this.principal = undefined;
      this.gateway.closeSession(p, this.connId);
    }
  }
}

/** One timer per listener sweeps every session's heartbeat, instead of a timer per connection. */
export class HeartbeatSweeper {
  private readonly sessions = new Set<NativeSession>();
  private readonly timer: NodeJS.Timeout;

  constructor(periodMs: number) {
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const s of this.sessions) s.tick(now);
    }, periodMs);
    this.timer.unref();
  }

  add(s: NativeSession): void {
    this.sessions.add(s);
  }

  delete(s: NativeSession): void {
    this.sessions.delete(s);
  }

  get size(): number {
    return this.sessions.size;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  all(): NativeSession[] {
    return [...this.sessions];
  }
}
