/**
 * The cluster bus: the Bus contract of bus.ts over core NATS (the `nats` npm client,
 * tested against nats-server 2.9).
 *
 * - Every payload is msgpack (the shared `packr`), handed over or not (bus.ts); replies use the shared
 *   ReplyEnvelope, so KindredError codes survive the wire exactly as on LocalBus.
 * - `subscribe` handlers run as messages arrive (one callback per message, in the
 *   order the server delivers them); a throwing or rejecting handler is reported
 *   through `onError` and never affects other messages.
 * - `request` fails fast: no responder → UNAVAILABLE (NATS 503 status), no reply in
 *   time → TIMEOUT, and while the connection is down it is not sent at all and
 *   rejects at once with UNAVAILABLE (a request sent into an outage could only time
 *   out: the client discards its outbound buffer on every reconnect attempt).
 * - `publish` never throws. While disconnected, publishes are kept in a bounded
 *   buffer of our own (the nats.js 2.x client drops what was written while
 *   disconnected) and sent, in order, once the connection is back. Core NATS is
 *   at-most-once: subscribers that are themselves reconnecting may still miss them.
 * - The connection reconnects forever, with a delay that grows with the length of
 *   the outage; status changes are reported through `onStatus`.
 * - `close()` drains: stops receiving, lets handlers already running send their
 *   replies, flushes, then closes (bounded by `drainTimeoutMs`).
 *
 * Subjects are chosen by the callers (actors: `kindred.actor.<kind>.<shard>`).
 * NATS delivers a request to EVERY plain subscriber of its subject (first reply
 * wins): give request subjects one subscriber, or use a queue group.
 */
import { connect, DebugEvents, Events, type ConnectionOptions, type Msg, type NatsConnection, type Subscription as NatsSubscription } from 'nats';
import { KindredError } from '../errors.js';
import { decodeReply, encodeError, packr, unwrapHandOver, type Bus, type Handler, type ReplyEnvelope, type Subscription } from './bus.js';

export type NatsBusStatus =
  | { type: 'connected'; server: string }
  | { type: 'disconnect'; server: string }
  | { type: 'reconnecting'; server: string }
  | { type: 'reconnect'; server: string; outageMs: number; buffered: number }
  | { type: 'stale' }
  | { type: 'ldm'; server: string }
  | { type: 'update'; data: unknown }
  | { type: 'error'; message: string }
  | { type: 'buffer-full'; dropped: number }
  | { type: 'closed'; error?: string };

export interface NatsBusErrorContext {
  op: 'handler' | 'reply' | 'decode' | 'publish' | 'subscription';
  subject: string;
}

export interface NatsBusOptions {
  servers: string[];
  /** connection name, shown by the server (e.g. the node id) */
  name: string;
  onStatus?: (status: NatsBusStatus) => void;
  /** handler failures, undecodable messages, publishes the client refused */
  onError?: (err: unknown, ctx: NatsBusErrorContext) => void;
  /** first reconnect delay (ms); later ones grow with the outage, up to reconnectMaxWaitMs. Default 250. */
  reconnectWaitMs?: number;
  /** Default 5000. */
  reconnectMaxWaitMs?: number;
  /** bytes of publishes kept while disconnected; beyond that they are dropped (reported once per outage). Default 8 MiB; 0 disables. */
  reconnectBufferBytes?: number;
  /** dial timeout per attempt (ms). Default 5000. */
  connectTimeoutMs?: number;
  /** keep trying when no server is reachable at connect(), instead of rejecting. Default false. */
  waitOnFirstConnect?: boolean;
  /** heartbeat: a silent connection is declared stale after pingIntervalMs * maxPingOut. Defaults 10000 and 2. */
  pingIntervalMs?: number;
  maxPingOut?: number;
  /** upper bound for close() to drain before it closes hard. Default 5000. */
  drainTimeoutMs?: number;
  /** anything else for the nats client (credentials, TLS, ...); the options above win. */
  connection?: Partial<ConnectionOptions>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Maps a nats client error (or anything) to a KindredError for the subject. */
export function mapNatsError(err: unknown, subject: string, timeoutMs?: number): KindredError {
  if (err instanceof KindredError) return err;
  const code = String((err as { code?: unknown } | undefined)?.code ?? '');
  switch (code) {
    case '503': // NoResponders (also JetStreamNotEnabled, same status)
      return new KindredError('UNAVAILABLE', `no responder for ${subject}`);
    case 'TIMEOUT':
      return new KindredError('TIMEOUT', `no reply from ${subject} in ${timeoutMs ?? '?'} ms`);
    case 'CONNECTION_CLOSED':
    case 'CONNECTION_DRAINING':
    case 'CONNECTION_REFUSED':
    case 'CONNECTION_TIMEOUT':
    case 'DISCONNECT':
    case 'CANCELLED':
    case 'SUB_CLOSED':
    case 'SUB_DRAINING':
      return new KindredError('UNAVAILABLE', `NATS connection unavailable for ${subject} (${code})`);
    case 'MAX_PAYLOAD_EXCEEDED':
      return new KindredError('PAYLOAD_TOO_LARGE', `message to ${subject} exceeds the NATS max_payload`);
    case 'BAD_SUBJECT':
      return badSubject(subject);
    case 'PERMISSIONS_VIOLATION':
      return new KindredError('FORBIDDEN', `NATS permissions deny ${subject}`);
    default:
      return new KindredError('INTERNAL', `NATS error on ${subject}`);
  }
}

/**
 * Whether NATS can carry the subject. The client does not check this itself, and a
 * subject with whitespace is a protocol error that makes the server drop the whole
 * connection (with everything in flight on it). Wildcards only where subscribing.
 */
export function isValidSubject(subject: string, wildcards: boolean): boolean {
  if (typeof subject !== 'string' || subject.length === 0 || /[\s\0]/.test(subject)) return false;
  const tokens = subject.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    if (tok === '') return false;
    if (tok === '*' || tok === '>') {
      if (!wildcards || (tok === '>' && i !== tokens.length - 1)) return false;
    }
  }
  return true;
}

function badSubject(subject: string): KindredError {
  return new KindredError('BAD_REQUEST', `invalid NATS subject ${JSON.stringify(subject)}`);
}

export class NatsBus implements Bus {
  private connected = true;
  private closing = false;
  private closePromise: Promise<void> | undefined;
  private outageStart: number | undefined;
  private readonly subs = new Set<NatsSubscription>();
  private readonly inflight = new Set<Promise<unknown>>();
  private buffer: Array<{ subject: string; data: Uint8Array }> = [];
  private bufferedBytes = 0;
  private droppedThisOutage = 0;

  private constructor(
    readonly nc: NatsConnection,
    private readonly opts: NatsBusOptions,
    private readonly resetBackoff: () => void,
  ) {}

  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    const base = opts.reconnectWaitMs ?? 250;
    const max = Math.max(base, opts.reconnectMaxWaitMs ?? 5000);
    // The dial loop calls this on every turn (also while it waits), so the delay is
    // a function of how long we have been trying, not of a call count: it grows by
    // about half each attempt (250, 250, 250, 500, 750, 1125, ... ms) up to max.
    const backoff = { since: undefined as number | undefined };
    const delay = () => {
      const now = Date.now();
      const since = (backoff.since ??= now);
      const wait = Math.min(max, Math.max(base, (now - since) / 2));
      return Math.round(wait * (0.9 + Math.random() * 0.2));
    };
    const nc = await connect({
      // nats.js records a stack per request for its own errors; ours are mapped anyway
      noAsyncTraces: true,
      ...opts.connection,
      servers: opts.servers,
      name: opts.name,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectDelayHandler: delay,
      waitOnFirstConnect: opts.waitOnFirstConnect ?? false,
      timeout: opts.connectTimeoutMs ?? 5000,
      pingInterval: opts.pingIntervalMs ?? 10_000,
      maxPingOut: opts.maxPingOut ?? 2,
    });
    backoff.since = undefined;
    const bus = new NatsBus(nc, opts, () => (backoff.since = undefined));
    bus.watch();
    opts.onStatus?.({ type: 'connected', server: nc.getServer() });
    return bus;
  }

  /** Whether the connection is up (requests are only sent while it is). */
  get isConnected(): boolean {
    return this.connected && !this.closing && !this.nc.isClosed();
  }

  publish(subject: string, payload: unknown): void {
    if (this.closing || this.nc.isClosed()) return;
    if (!isValidSubject(subject, false)) {
      this.report(badSubject(subject), { op: 'publish', subject });
      return;
    }
    let data: Uint8Array;
    try {
      data = packr.pack(unwrapHandOver(payload));
    } catch (err) {
      this.report(err, { op: 'publish', subject });
      return;
    }
    // Keep per-publisher FIFO: once anything is buffered, later messages queue behind it.
    if (!this.connected || this.buffer.length > 0) {
      this.hold(subject, data);
      return;
    }
    this.send(subject, data);
  }

  async request(subject: string, payload: unknown, timeoutMs: number): Promise<unknown> {
    if (this.closing || this.nc.isClosed()) throw new KindredError('UNAVAILABLE', `bus closed: not sent to ${subject}`);
    if (!isValidSubject(subject, false)) throw badSubject(subject);
    if (!this.connected) throw new KindredError('UNAVAILABLE', `NATS disconnected: not sent to ${subject}`);
    const data = packr.pack(unwrapHandOver(payload));
    const timeout = Math.max(1, Math.ceil(timeoutMs));
    let msg: Msg;
    let guard: NodeJS.Timeout | undefined;
    try {
      // The client has its own timer; the guard only makes "never past the timeout" local.
      msg = await Promise.race([
        this.nc.request(subject, data, { timeout }),
        new Promise<never>((_, reject) => {
          guard = setTimeout(() => reject(mapNatsError({ code: 'TIMEOUT' }, subject, timeoutMs)), timeout + 50);
        }),
      ]);
    } catch (err) {
      throw mapNatsError(err, subject, timeoutMs);
    } finally {
      clearTimeout(guard);
    }
    let envelope: ReplyEnvelope;
    try {
      envelope = packr.unpack(msg.data) as ReplyEnvelope;
    } catch {
      throw new KindredError('INTERNAL', `undecodable reply from ${subject}`);
    }
    if (!envelope || typeof envelope !== 'object' || !('ok' in envelope || 'err' in envelope)) {
      throw new KindredError('INTERNAL', `malformed reply from ${subject}`);
    }
    return decodeReply(envelope);
  }

  subscribe(subject: string, handler: Handler, opts: { queue?: string } = {}): Subscription {
    if (!isValidSubject(subject, true) || (opts.queue !== undefined && !isValidSubject(opts.queue, false))) {
      throw new KindredError('BAD_REQUEST', `invalid NATS subject or queue: ${JSON.stringify([subject, opts.queue])}`);
    }
    if (this.closing || this.nc.isClosed()) return { unsubscribe: () => undefined };
    const sub = this.nc.subscribe(subject, {
      queue: opts.queue,
      callback: (err, msg) => {
        if (err) {
          this.report(err, { op: 'subscription', subject });
          return;
        }
        this.dispatch(handler, msg);
      },
    });
    this.subs.add(sub);
    return {
      unsubscribe: () => {
        this.subs.delete(sub);
        try {
          sub.unsubscribe();
        } catch {
          /* already closed */
        }
      },
    };
  }

  /**
   * Resolves once the server has processed everything sent so far (subscriptions
   * included): after `subscribe(); await flush()` other connections' messages reach
   * the new subscriber. Rejects with UNAVAILABLE while disconnected.
   */
  async flush(): Promise<void> {
    if (!this.isConnected) throw new KindredError('UNAVAILABLE', 'NATS disconnected');
    try {
      await this.nc.flush();
    } catch (err) {
      throw mapNatsError(err, '(flush)');
    }
  }

  close(): Promise<void> {
    this.closePromise ??= this.shutdown();
    return this.closePromise;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    const limit = this.opts.drainTimeoutMs ?? 5000;
    const within = (p: Promise<unknown>, ms: number) => Promise.race([p.catch(() => undefined), sleep(ms)]);
    const deadline = Date.now() + limit;
    const left = () => Math.max(0, deadline - Date.now());
    if (this.connected && !this.nc.isClosed()) {
      // 1. stop receiving; messages already delivered are still handled
      await within(Promise.allSettled([...this.subs].map((s) => s.drain())), left());
      // 2. handlers already running send their replies
      await within(Promise.allSettled([...this.inflight]), left());
      // 3. flush and close (nats drain: remaining subscriptions, outbound, close)
      if (!this.nc.isClosed() && !this.nc.isDraining()) await within(this.nc.drain(), left());
    }
    this.subs.clear();
    this.buffer = [];
    this.bufferedBytes = 0;
    // Disconnected or drain not finished in time: close hard (the client's drain
    // would otherwise wait for a pong that never comes and keep reconnecting).
    if (!this.nc.isClosed()) await this.nc.close().catch(() => undefined);
  }

  private dispatch(handler: Handler, msg: Msg): void {
    const subject = msg.subject;
    let payload: unknown;
    try {
      payload = packr.unpack(msg.data);
    } catch (err) {
      this.report(err, { op: 'decode', subject });
      if (msg.reply) this.respond(msg, encodeError(new KindredError('BAD_REQUEST', `undecodable message on ${subject}`)));
      return;
    }
    let result: unknown;
    try {
      result = handler(payload, subject);
    } catch (err) {
      if (msg.reply) this.respond(msg, encodeError(err));
      else this.report(err, { op: 'handler', subject });
      return;
    }
    if (!(result instanceof Promise)) {
      if (msg.reply) this.respond(msg, { ok: unwrapHandOver(result) });
      return;
    }
    const settled = result.then(
      (value) => {
        if (msg.reply) this.respond(msg, { ok: unwrapHandOver(value) });
      },
      (err) => {
        if (msg.reply) this.respond(msg, encodeError(err));
        else this.report(err, { op: 'handler', subject });
      },
    );
    this.inflight.add(settled);
    void settled.finally(() => this.inflight.delete(settled));
  }

  private respond(msg: Msg, envelope: ReplyEnvelope): void {
    let data: Uint8Array;
    try {
      data = packr.pack(envelope);
    } catch (err) {
      this.report(err, { op: 'reply', subject: msg.subject });
      data = packr.pack(encodeError(new KindredError('INTERNAL', 'reply could not be encoded')));
    }
    try {
      msg.respond(data);
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? '');
      if (code === 'MAX_PAYLOAD_EXCEEDED') {
        try {
          msg.respond(packr.pack(encodeError(mapNatsError(err, msg.subject))));
          return;
        } catch {
          /* fall through */
        }
      }
      this.report(err, { op: 'reply', subject: msg.subject });
    }
  }

  private send(subject: string, data: Uint8Array): void {
    try {
      this.nc.publish(subject, data);
    } catch (err) {
      this.report(mapNatsError(err, subject), { op: 'publish', subject });
    }
  }

  private hold(subject: string, data: Uint8Array): void {
    const cap = this.opts.reconnectBufferBytes ?? 8 * 1024 * 1024;
    if (this.bufferedBytes + data.length > cap) {
      if (this.droppedThisOutage++ === 0) this.opts.onStatus?.({ type: 'buffer-full', dropped: 1 });
      return;
    }
    this.buffer.push({ subject, data });
    this.bufferedBytes += data.length;
  }

  private flushBuffer(): number {
    const pending = this.buffer;
    this.buffer = [];
    this.bufferedBytes = 0;
    for (const m of pending) this.send(m.subject, m.data);
    return pending.length;
  }

  private watch(): void {
    void (async () => {
      for await (const s of this.nc.status()) {
        const server = String(s.data ?? '');
        switch (s.type) {
          case Events.Disconnect:
            this.connected = false;
            this.outageStart ??= Date.now();
            this.droppedThisOutage = 0;
            this.opts.onStatus?.({ type: 'disconnect', server });
            break;
          case Events.Reconnect: {
            const outageMs = this.outageStart === undefined ? 0 : Date.now() - this.outageStart;
            this.outageStart = undefined;
            this.resetBackoff();
            this.connected = true;
            const buffered = this.closing ? 0 : this.flushBuffer();
            if (this.droppedThisOutage > 1) this.opts.onStatus?.({ type: 'buffer-full', dropped: this.droppedThisOutage });
            this.opts.onStatus?.({ type: 'reconnect', server, outageMs, buffered });
            break;
          }
          case DebugEvents.Reconnecting:
            this.opts.onStatus?.({ type: 'reconnecting', server });
            break;
          case DebugEvents.StaleConnection:
            this.opts.onStatus?.({ type: 'stale' });
            break;
          case Events.LDM:
            this.opts.onStatus?.({ type: 'ldm', server });
            break;
          case Events.Update:
            this.opts.onStatus?.({ type: 'update', data: s.data });
            break;
          case Events.Error:
            this.opts.onStatus?.({ type: 'error', message: server });
            break;
          default:
            break; // ping timer and other debug noise
        }
      }
    })().catch(() => undefined);
    void this.nc.closed().then((err) => {
      this.connected = false;
      this.buffer = [];
      this.bufferedBytes = 0;
      this.opts.onStatus?.({ type: 'closed', error: err instanceof Error ? err.message : undefined });
    });
  }

  private report(err: unknown, ctx: NatsBusErrorContext): void {
    try {
      this.opts.onError?.(err, ctx);
    } catch {
      /* a logging failure must not break delivery */
    }
  }
}
