/**
 * The load generators: `workers` child processes (bench/lib/worker.ts), each holding
 * a contiguous slice of the accounts (pairs never straddle two workers), using its
 * own block of 127.0.0.x source addresses. The fleet connects them, runs open-loop
 * phases at a total rate split evenly between workers, and merges what they report:
 * per-second counts and latency histograms (the timeline) and per-phase totals.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Latency, type LatencySummary } from './hist.js';
import { median } from './stats.js';
import type { Endpoints, Protocol } from './sessions.js';
import type { Account } from './targets/types.js';
import type { FromWorker, PhaseDone, ToWorker } from './worker-protocol.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

export interface TimelinePoint {
  /** seconds since the phase started */
  t: number;
  sentPerSecond: number;
  receivedPerSecond: number;
  p50: number;
  p99: number;
  max: number;
}

export interface ConnectResult {
  ok: number;
  failures: Record<string, number>;
  seconds: number;
  perSecond: number;
  latencyMs: LatencySummary;
}

export interface PhaseResult {
  offeredRate: number;
  warmup: number;
  duration: number;
  pairs: number;
  sent: number;
  sentMeasured: number;
  received: number;
  receivedMeasured: number;
  /** measured messages delivered per second of the measured window */
  deliveredPerSecond: number;
  notReceived: number;
  duplicates: number;
  late: number;
  errors: Record<string, number>;
  closes: Record<string, number>;
  maxSendLagMs: number;
  latencyMs: LatencySummary;
  distribution: Array<[number, number]>;
  /** median over the measured seconds of each second's p99: robust against one bad second on a shared machine */
  medianSecondP99: number;
  timeline: TimelinePoint[];
  loadGenCpuSeconds: number;
}

interface Worker {
  child: ChildProcess;
  accounts: number;
  cpuSeconds: number;
}

export class Fleet {
  private readonly workers: Worker[] = [];
  private readonly listeners = new Set<(w: number, m: FromWorker) => void>();
  private failure: Error | undefined;
  private phaseNo = 0;

  private constructor() {}

  static async start(opts: { workers: number; protocol: Protocol; endpoints: Endpoints; accounts: Account[] }): Promise<Fleet> {
    const fleet = new Fleet();
    const n = Math.max(1, Math.min(opts.workers, Math.floor(opts.accounts.length / 2) || 1));
    // even slice sizes so pairs (2i, 2i+1) stay in one worker
    const per = Math.ceil(opts.accounts.length / 2 / n) * 2;
    for (let w = 0; w < n; w++) {
      const slice = opts.accounts.slice(w * per, (w + 1) * per);
      if (slice.length === 0) break;
      const child = fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      const idx = fleet.workers.length;
      fleet.workers.push({ child, accounts: slice.length, cpuSeconds: 0 });
      child.on('message', (m: FromWorker) => {
        if (m.type === 'failed') fleet.fail(new Error(`load-generator worker ${idx} failed: ${m.message}`));
        for (const l of fleet.listeners) l(idx, m);
      });
      child.on('exit', (code) => {
        if (code !== 0 && code !== null) fleet.fail(new Error(`load-generator worker ${idx} exited with code ${code}`));
      });
      child.send({ type: 'init', protocol: opts.protocol, endpoints: opts.endpoints, accounts: slice, addressOffset: w * per } satisfies ToWorker);
    }
    await fleet.collect('ready', () => undefined);
    return fleet;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.child.pid!).filter(Boolean);
  }

  get size(): number {
    return this.workers.length;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const l of this.listeners) l(-1, { type: 'failed', message: err.message });
  }

  /** Waits until every worker has sent a message of `type`, passing each to `each`. */
  private collect<T extends FromWorker['type']>(type: T, each: (w: number, m: Extract<FromWorker, { type: T }>) => void, onOther?: (w: number, m: FromWorker) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      const seen = new Set<number>();
      const listener = (w: number, m: FromWorker) => {
        if (m.type === 'failed') {
          this.listeners.delete(listener);
          reject(this.failure ?? new Error(m.message));
          return;
        }
        if (m.type !== type) {
          onOther?.(w, m);
          return;
        }
        each(w, m as Extract<FromWorker, { type: T }>);
        seen.add(w);
        if (seen.size === this.workers.length) {
          this.listeners.delete(listener);
          resolve();
        }
      };
      this.listeners.add(listener);
    });
  }

  /** Opens and logs in every session, `concurrency` at a time in total. */
  async connect(concurrency: number): Promise<ConnectResult> {
    const latency = new Latency();
    let ok = 0;
    let seconds = 0;
    const failures: Record<string, number> = {};
    const done = this.collect('connected', (_w, m) => {
      ok += m.ok;
      seconds = Math.max(seconds, m.seconds);
      latency.addEncoded(m.hist);
      for (const [k, v] of Object.entries(m.failures)) failures[k] = (failures[k] ?? 0) + v;
    });
    for (const w of this.workers) w.child.send({ type: 'connect', concurrency: Math.max(1, Math.ceil(concurrency / this.workers.length)) } satisfies ToWorker);
    await done;
    return { ok, failures, seconds, perSecond: Math.round(ok / seconds), latencyMs: latency.summary() };
  }

  /** One open-loop phase at `rate` msgs/s in total. `onSecond` sees the merged timeline as it grows. */
  async phase(spec: { rate: number; warmup: number; duration: number; body: number; drainMs: number }, onSecond?: (p: TimelinePoint) => void): Promise<PhaseResult> {
    const phase = this.phaseNo++;
    const n = this.workers.length;
    const t0 = Date.now() + 300;
    const secs = new Map<number, { count: number; sent: number; received: number; h: Latency }>();
    const timeline: TimelinePoint[] = [];
    const emit = (sec: number, s: { sent: number; received: number; h: Latency }) => {
      const l = s.h.summary();
      const p: TimelinePoint = { t: sec + 1, sentPerSecond: s.sent, receivedPerSecond: s.received, p50: l.p50, p99: l.p99, max: l.max };
      timeline.push(p);
      onSecond?.(p);
    };
    const byWorker = new Map<number, PhaseDone>();
    const finished = this.collect(
      'phaseDone',
      (w, m) => void byWorker.set(w, m),
      (_w, m) => {
        if (m.type !== 'tick' || m.phase !== phase) return;
        let s = secs.get(m.sec);
        if (!s) secs.set(m.sec, (s = { count: 0, sent: 0, received: 0, h: new Latency() }));
        s.count++;
        s.sent += m.sent;
        s.received += m.received;
        s.h.addEncoded(m.hist);
        if (s.count === n) {
          secs.delete(m.sec);
          emit(m.sec, s);
        }
      },
    );
    for (const w of this.workers) w.child.send({ type: 'phase', spec: { phase, rate: spec.rate / n, t0, warmup: spec.warmup, duration: spec.duration, body: spec.body, drainMs: spec.drainMs } } satisfies ToWorker);
    await finished;
    const dones = this.workers.map((_, i) => byWorker.get(i)!);
    // seconds that not every worker reported (their drains ended at different times)
    for (const [sec, s] of [...secs.entries()].sort((a, b) => a[0] - b[0])) emit(sec, s);
    timeline.sort((a, b) => a.t - b.t);
    const all = new Latency();
    const sum = (f: (d: PhaseDone) => number) => dones.reduce((a, d) => a + f(d), 0);
    const merge = (f: (d: PhaseDone) => Record<string, number>) => {
      const out: Record<string, number> = {};
      for (const d of dones) for (const [k, v] of Object.entries(f(d))) out[k] = (out[k] ?? 0) + v;
      return out;
    };
    for (const d of dones) all.addEncoded(d.hist);
    let cpu = 0;
    dones.forEach((d, i) => {
      const w = this.workers[i]!;
      cpu += d.cpuSeconds - w.cpuSeconds;
      w.cpuSeconds = d.cpuSeconds;
    });
    const measured = timeline.filter((p) => p.t > spec.warmup + 1 && p.t <= spec.warmup + spec.duration && p.receivedPerSecond > 0);
    const receivedMeasured = sum((d) => d.receivedMeasured);
    return {
      offeredRate: spec.rate,
      warmup: spec.warmup,
      duration: spec.duration,
      pairs: sum((d) => d.pairs),
      sent: sum((d) => d.sent),
      sentMeasured: sum((d) => d.sentMeasured),
      received: sum((d) => d.received),
      receivedMeasured,
      deliveredPerSecond: Math.round(receivedMeasured / spec.duration),
      notReceived: sum((d) => d.notReceived),
      duplicates: sum((d) => d.duplicates),
      late: sum((d) => d.late),
      errors: merge((d) => d.errors),
      closes: merge((d) => d.closes),
      maxSendLagMs: Math.max(...dones.map((d) => d.maxSendLagMs)),
      latencyMs: all.summary(),
      distribution: all.distribution(),
      medianSecondP99: measured.length ? median(measured.map((p) => p.p99)) : all.summary().p99,
      timeline,
      loadGenCpuSeconds: Math.round(cpu * 100) / 100,
    };
  }

  async close(): Promise<void> {
    const closed = this.collect('closed', () => undefined).catch(() => undefined);
    for (const w of this.workers) if (w.child.connected) w.child.send({ type: 'close' } satisfies ToWorker);
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
    for (const w of this.workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  }
}
