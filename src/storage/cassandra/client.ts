/**
 * The one Cassandra session every store shares, and the small layer every query goes
 * through: prepared statements, LOCAL_QUORUM (LOCAL_SERIAL for lightweight
 * transactions), error mapping onto the error registry, paging, and the bookkeeping
 * that lets close() wait for in-flight writes.
 */
import cassandra from 'cassandra-driver';
import { KindredError } from '../../errors.js';
import { DriverWorkarounds } from './driver-workarounds.js';

const { Client, errors, types } = cassandra;

export type CqlParams = unknown[];
export type Row = cassandra.types.Row;
export type ResultSet = cassandra.types.ResultSet;

export const consistencies = {
  localQuorum: types.consistencies.localQuorum,
  localSerial: types.consistencies.localSerial,
} as const;

export interface SessionOptions {
  contactPoints: string[];
  localDataCenter: string;
  /** Per-request timeout on the client (default 5000 ms); server-side timeouts are below it. */
  readTimeoutMs?: number;
  /** TCP connect timeout per node (default 5000 ms). */
  connectTimeoutMs?: number;
  /**
   * Requests in flight at once from this process (default 512); more wait in a local queue.
   * Keeps a burst (thousands of appends in one tick) from piling up in the server's queues
   * and the driver's per-connection limit, where they would time out instead of waiting.
   */
  maxConcurrentRequests?: number;
  /** How long a request may wait in that queue before it fails with UNAVAILABLE (default 2 x readTimeoutMs). */
  queueTimeoutMs?: number;
}

export interface ExecOptions {
  /** Safe for the driver to retry on another node after a socket error (reads, plain upserts). */
  idempotent?: boolean;
  /** SERIAL read: sees the outcome of every lightweight transaction that has completed or is in progress. */
  serial?: boolean;
  fetchSize?: number;
  /** Send as a plain (unprepared) statement: DDL, which runs once. Default: prepared. */
  unprepared?: boolean;
  /** Overrides the session's client-side timeout (schema changes take longer than queries). */
  readTimeoutMs?: number;
}

/** How many times a lightweight transaction is retried after contention or an unknown outcome. */
export const CAS_ATTEMPTS = 8;

/**
 * A Cassandra session bound to one keyspace (statements name their tables unqualified
 * after `use()`), with every request mapped to KindredError on failure.
 */
export class Session {
  readonly client: cassandra.Client;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly limiter: Limiter;
  private lastNudge = 0;
  private workarounds: DriverWorkarounds | undefined;

  constructor(opts: SessionOptions) {
    const readTimeout = opts.readTimeoutMs ?? 5000;
    this.limiter = new Limiter(opts.maxConcurrentRequests ?? 512, opts.queueTimeoutMs ?? 2 * readTimeout);
    this.client = new Client({
      contactPoints: opts.contactPoints,
      localDataCenter: opts.localDataCenter,
      socketOptions: { connectTimeout: opts.connectTimeoutMs ?? 5000, readTimeout, keepAlive: true, tcpNoDelay: true },
      queryOptions: {
        consistency: consistencies.localQuorum,
        serialConsistency: consistencies.localSerial,
        prepare: true,
        captureStackTrace: false,
      },
      pooling: { heartBeatInterval: 10_000, warmup: true },
      // A node that went down is retried after 0.25 s, backing off to 2 s (a refused TCP connect is
      // cheap): requests go to the others meanwhile, and once every node was down (a restart of a
      // small cluster) service resumes within ~2 s of the first node accepting connections again.
      policies: {
        reconnection: new cassandra.policies.reconnection.ExponentialReconnectionPolicy(250, 2_000, false),
      },
      protocolOptions: { maxSchemaAgreementWaitSeconds: 20 },
    });
  }

  async connect(): Promise<void> {
    // cassandra-driver 4.x after an outage: pools left reconnecting forever, a crash (see the file)
    this.workarounds = new DriverWorkarounds(this.client);
    try {
      await this.client.connect();
    } catch (err) {
      await this.client.shutdown().catch(() => {});
      throw cassandraError(err);
    }
  }

  /** Runs one prepared statement (LOCAL_QUORUM; LWTs use LOCAL_SERIAL for their Paxos phase). */
  execute(query: string, params: CqlParams = [], opts: ExecOptions = {}): Promise<ResultSet> {
    if (this.closed) return Promise.reject(new KindredError('UNAVAILABLE', 'storage is closed'));
    const p = this.limiter.run(() =>
      this.client.execute(query, params, {
        prepare: !opts.unprepared,
        isIdempotent: opts.idempotent ?? false,
        consistency: opts.serial ? consistencies.localSerial : consistencies.localQuorum,
        fetchSize: opts.fetchSize,
        readTimeout: opts.readTimeoutMs,
      }),
    );
    return this.track(p.catch((err: unknown) => {
      this.nudge(err);
      throw withCause(cassandraError(err), err);
    }));
  }

  /** Runs statements as one batch (logged unless `logged: false`, e.g. several rows of one partition). */
  batch(
    queries: Array<{ query: string; params: CqlParams }>,
    opts: { logged?: boolean; idempotent?: boolean } = {},
  ): Promise<ResultSet> {
    if (this.closed) return Promise.reject(new KindredError('UNAVAILABLE', 'storage is closed'));
    const p = this.limiter.run(() =>
      this.client.batch(queries, {
        prepare: true,
        logged: opts.logged ?? true,
        isIdempotent: opts.idempotent ?? false,
        consistency: consistencies.localQuorum,
      }),
    );
    return this.track(p.catch((err: unknown) => {
      this.nudge(err);
      throw withCause(cassandraError(err), err);
    }));
  }

  /** The rows of a query page by page (fetchSize rows per round trip), for scans too large to hold at once. */
  async *pages(query: string, params: CqlParams = [], fetchSize = 1000): AsyncIterable<Row[]> {
    let pageState: string | undefined;
    do {
      if (this.closed) throw new KindredError('UNAVAILABLE', 'storage is closed');
      const state = pageState;
      const p = this.limiter.run(() =>
        this.client.execute(query, params, { prepare: true, isIdempotent: true, consistency: consistencies.localQuorum, fetchSize, pageState: state }),
      );
      const rs = await this.track(p.catch((err: unknown) => {
        this.nudge(err);
      throw withCause(cassandraError(err), err);
      }));
      if (rs.rows.length > 0) yield rs.rows;
      pageState = rs.pageState ?? undefined;
    } while (pageState);
  }

  /** Every row of a query, following the driver's paging (fetchSize rows per round trip). */
  async all(query: string, params: CqlParams = [], opts: ExecOptions = {}): Promise<Row[]> {
    const fetchSize = opts.fetchSize ?? 1000;
    const rows: Row[] = [];
    let pageState: string | undefined;
    do {
      if (this.closed) throw new KindredError('UNAVAILABLE', 'storage is closed');
      const state = pageState;
      const p = this.limiter.run(() =>
        this.client.execute(query, params, {
          prepare: true,
          isIdempotent: true,
          consistency: opts.serial ? consistencies.localSerial : consistencies.localQuorum,
          fetchSize,
          pageState: state,
        }),
      );
      const rs = await this.track(p.catch((err: unknown) => {
        this.nudge(err);
      throw withCause(cassandraError(err), err);
      }));
      rows.push(...rs.rows);
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    return rows;
  }

  /**
   * With every node marked down (e.g. the restart of a one-node cluster) the driver retries each
   * on its reconnection schedule; a request that finds no node up also asks for an attempt now
   * (at most once a second), so service resumes as soon as a node accepts connections again.
   */
  private nudge(err: unknown): void {
    if (!(err instanceof errors.NoHostAvailableError) || this.closed) return;
    const now = Date.now();
    if (now - this.lastNudge < 1000) return;
    this.lastNudge = now;
    for (const host of this.client.hosts.values()) {
      // Host#checkIsUp: the driver's own "try this host now" (what a gossip UP event triggers); not in its typings
      if (!host.isUp()) (host as unknown as { checkIsUp?: () => void }).checkIsUp?.();
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  /** Refuses new requests, waits for the ones in flight, then closes the connections. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
      this.workarounds?.beginClose();
      await this.client.shutdown();
      this.workarounds?.afterShutdown();
    })();
    return this.closing;
  }
}

/**
 * A counting semaphore with a bounded wait: at most `max` tasks run; the rest queue, in order,
 * for up to `timeoutMs`. Load shedding: when Cassandra falls behind, a request that would
 * wait past (three quarters of) that timeout anyway is refused at once with OVERLOADED (the client retries
 * later) instead of queueing and answering TIMEOUT seconds later. The expected wait is the
 * queue length over the rate at which requests completed while others were queued (that is
 * Cassandra's capacity; the rate of an idle spell says nothing about it). With no such
 * completion in the last second (a burst just began, or an outage) only the hard bound
 * `maxQueued` applies.
 */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<{ start: () => void; timer: NodeJS.Timeout }> = [];
  /** completions per second while saturated, smoothed over ~1 s of 250 ms windows */
  private rate = 0;
  private windowStart = 0;
  private windowDone = 0;
  private lastSaturatedDone = -Infinity;

  constructor(
    private readonly max: number,
    private readonly timeoutMs: number,
    private readonly maxQueued = 8 * max,
  ) {}

  /** The wait a request queued now should expect (ms), or undefined with no recent saturated completions. */
  expectedWaitMs(): number | undefined {
    if (performance.now() - this.lastSaturatedDone > 1000 || this.rate <= 0) return undefined;
    return ((this.waiting.length + 1) / this.rate) * 1000;
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.max) return this.start(task);
    const wait = this.expectedWaitMs();
    // (with a margin: the estimate is a smoothed rate, and one that barely fits tends not to)
    if (this.waiting.length >= this.maxQueued || (wait !== undefined && wait > 0.75 * this.timeoutMs)) {
      const why = wait !== undefined ? `a new request would wait ~${Math.round(wait)} ms` : `${this.waiting.length} requests queued`;
      return Promise.reject(new KindredError('OVERLOADED', `cassandra is behind (${why}); retry shortly`));
    }
    return new Promise<T>((resolve, reject) => {
      const entry = {
        start: () => {
          clearTimeout(entry.timer);
          this.start(task).then(resolve, reject);
        },
        timer: setTimeout(() => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new KindredError('UNAVAILABLE', `cassandra: ${this.max} requests in flight, none finished within ${this.timeoutMs} ms`));
        }, this.timeoutMs),
      };
      this.waiting.push(entry);
    });
  }

  private completed(): void {
    const now = performance.now();
    if (this.waiting.length === 0) {
      // not saturated: this completion says nothing about capacity; the next saturated spell starts a fresh window
      this.windowDone = 0;
      this.windowStart = 0;
      return;
    }
    this.lastSaturatedDone = now;
    if (this.windowStart === 0) this.windowStart = now;
    this.windowDone++;
    const elapsed = now - this.windowStart;
    if (elapsed >= 250) {
      const current = (this.windowDone / elapsed) * 1000;
      // the first window sets the rate; later ones move it a quarter of the way (~1 s memory)
      this.rate = this.rate === 0 ? current : 0.75 * this.rate + 0.25 * current;
      this.windowStart = now;
      this.windowDone = 0;
    }
  }

  private start<T>(task: () => Promise<T>): Promise<T> {
    this.running++;
    let p: Promise<T>;
    try {
      p = task();
    } catch (err) {
      p = Promise.reject(err);
    }
    const done = () => {
      this.running--;
      this.completed();
      this.waiting.shift()?.start();
    };
    p.then(done, done);
    return p;
  }
}

function withCause(mapped: unknown, cause: unknown): unknown {
  if (mapped instanceof KindredError && mapped !== cause && (mapped as { cause?: unknown }).cause === undefined) {
    Object.defineProperty(mapped, 'cause', { value: cause, enumerable: false });
  }
  return mapped;
}

const codes = types.responseErrorCodes;
/** Server answers that mean "not now": retryable at the edge. */
const UNAVAILABLE_RESPONSES = new Set<number>([
  codes.unavailableException,
  codes.overloaded,
  codes.isBootstrapping,
  codes.truncateError,
  codes.writeTimeout,
  codes.readTimeout,
  codes.readFailure,
  codes.writeFailure,
  codes.serverError,
]);

/**
 * Maps driver errors onto the error registry: an unreachable, overloaded or timing-out
 * cluster is UNAVAILABLE (retryable at the edge); anything else (a bad statement) is
 * a bug and propagates unchanged.
 */
export function cassandraError(err: unknown): unknown {
  if (err instanceof KindredError) return err;
  if (err instanceof errors.NoHostAvailableError) {
    return new KindredError('UNAVAILABLE', `cassandra: no host available (${summarize(err)})`);
  }
  if (err instanceof errors.OperationTimedOutError) return new KindredError('UNAVAILABLE', 'cassandra: request timed out');
  if (err instanceof errors.BusyConnectionError) return new KindredError('UNAVAILABLE', 'cassandra: connections busy');
  if (err instanceof errors.ResponseError && UNAVAILABLE_RESPONSES.has(err.code)) {
    return new KindredError('UNAVAILABLE', `cassandra: ${err.message}`);
  }
  if (err instanceof errors.DriverError && /shutdown|shut down|closed/i.test(err.message)) {
    return new KindredError('UNAVAILABLE', 'storage is closed');
  }
  return err;
}

function summarize(err: cassandra.errors.NoHostAvailableError): string {
  const inner = Object.entries(err.innerErrors ?? {}).map(([host, e]) => `${host}: ${(e as Error)?.message ?? String(e)}`);
  return inner.length > 0 ? inner.join('; ').slice(0, 300) : err.message;
}

/**
 * True when a write may or may not have been applied: a timeout or failure after the
 * request reached the cluster. A lightweight transaction in that state is resolved by
 * reading its key back with SERIAL consistency.
 */
export function isUnknownOutcome(err: unknown): boolean {
  const cause = err instanceof KindredError ? (err as { cause?: unknown }).cause : err;
  if (cause instanceof errors.OperationTimedOutError) return true;
  if (cause instanceof errors.ResponseError) {
    return cause.code === codes.writeTimeout || cause.code === codes.writeFailure || cause.code === codes.readTimeout;
  }
  return false;
}

/** Retryable without an unknown outcome: the request certainly did not apply (e.g. not enough replicas alive). */
export function isRetryable(err: unknown): boolean {
  const cause = err instanceof KindredError ? (err as { cause?: unknown }).cause : err;
  return cause instanceof errors.ResponseError && (cause.code === codes.unavailableException || cause.code === codes.overloaded);
}

/** bigint columns come back as driver Longs. */
export function toNum(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v !== null && typeof v === 'object' && typeof (v as { toNumber?: unknown }).toNumber === 'function') {
    return (v as { toNumber(): number }).toNumber();
  }
  return Number(v);
}

export function toNumOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : toNum(v);
}

/** Short random pause before retrying a contended lightweight transaction. */
export function backoff(attempt: number): Promise<void> {
  const ms = Math.min(200, 5 * 2 ** attempt) * (0.5 + Math.random());
  return new Promise((resolve) => setTimeout(resolve, ms));
}
