/**
 * What every Kindred-only scenario does around its own load: the common flags, starting the
 * server under test (with the stale-build warning), opening one native session per user,
 * closing everything at the end, the server-cost figures and rows of the report, and the
 * result file's envelope. The scenarios differ in their load and their figures, not in these.
 */
import type { Options } from './args.js';
import { connectAll, type BenchConn, type Protocol, type Target } from './conn.js';
import { machineInfo, procSnapshot, round, selfCpuSeconds, type MachineInfo, type ProcSnapshot, type Sample, type SampleSummary } from './proc.js';
import { fmt, log, ms, writeResult, type Row } from './report.js';
import { deepMerge, gitInfo, resolveEntry, startServer, type ServerHandle } from './server.js';
import { registerUsers, type BenchUser, type SetupTiming } from './setup.js';

/** The flags every Kindred-only scenario takes besides its own. */
export interface ScenarioFlags {
  /** --server-entry (default dist/cli.js) */
  entry?: string;
  keepData: boolean;
  /** REST calls in flight during setup (--setup-concurrency, 50) */
  setupConcurrency: number;
  /** where the JSON result goes (--out-dir, default bench/results) */
  outDir?: string;
  /** --server-config JSON, merged over the bench config and the scenario's own config */
  serverConfig: Record<string, unknown>;
}

/** Reads the common flags; call before `o.checkUnknown()`. */
export function scenarioFlags(o: Options): ScenarioFlags {
  return {
    setupConcurrency: o.num('setup-concurrency', 50),
    entry: o.str('server-entry', '') || undefined,
    keepData: o.bool('keep-data'),
    outDir: o.str('out-dir', '') || undefined,
    serverConfig: o.serverConfig(),
  };
}

/** Logs a warning when the default server entry (dist/) is older than src/. */
export function warnIfStale(entry: string | undefined): void {
  const { warning } = resolveEntry(entry);
  if (warning) log(`warning: ${warning}`);
}

export interface ScenarioContext {
  server: ServerHandle;
  /** the machine when the run started */
  machine: MachineInfo;
  /** sessions opened by the scenario: closed, with the server stopped, when the body ends */
  conns: BenchConn[];
}

/**
 * Starts Kindred as a child process with the scenario's `config` (under --server-config),
 * runs `body`, then closes the sessions it opened and stops the server, whatever happened.
 */
export async function withScenarioServer<T>(
  f: ScenarioFlags,
  opts: { config?: Record<string, unknown>; inspect?: boolean },
  body: (ctx: ScenarioContext) => Promise<T>,
): Promise<T> {
  const machine = machineInfo();
  warnIfStale(f.entry);
  const server = await startServer({ entry: f.entry, keepData: f.keepData, inspect: opts.inspect, config: deepMerge(opts.config ?? {}, f.serverConfig) });
  log(`server pid ${server.pid} on http ${server.httpPort}, tcp ${server.tcpPort} (${server.entry})`);
  const conns: BenchConn[] = [];
  try {
    return await body({ server, machine, conns });
  } finally {
    for (const c of conns) c.close();
    await server.stop();
  }
}

export function nativeTarget(server: { wsUrl: string; tcpPort: number }, protocol: Protocol): Target {
  return { protocol, wsUrl: server.wsUrl, host: '127.0.0.1', tcpPort: server.tcpPort };
}

/** One authenticated native session per token (100 connecting at a time), added to `into`. */
export async function openSessions(target: Target, tokens: readonly string[], into: BenchConn[]): Promise<{ conns: BenchConn[]; seconds: number }> {
  const started = performance.now();
  const conns = await connectAll(target, tokens, { concurrency: 100 });
  into.push(...conns);
  return { conns, seconds: (performance.now() - started) / 1000 };
}

/**
 * `count` users named `<prefix>-user-<i>` with profiles that fit each other (one city, wide
 * preferences, so they meet in each other's decks), registered over REST, each online with
 * one native session (added to `into`).
 */
export async function onlineProfiles(
  base: string,
  native: { wsUrl: string; tcpPort: number },
  into: BenchConn[],
  o: { count: number; prefix: string; protocol: Protocol; setupConcurrency: number },
): Promise<{ users: BenchUser[]; conns: BenchConn[]; register: SetupTiming; profile: SetupTiming; connectSeconds: number }> {
  log(`setup: ${o.count} users with profiles over REST`);
  const { users, register, profile } = await registerUsers(base, o.count, { prefix: o.prefix, concurrency: o.setupConcurrency, profiles: true });
  const { conns, seconds } = await openSessions(nativeTarget(native, o.protocol), users.map((u) => u.token), into);
  return { users, conns, register, profile: profile!, connectSeconds: seconds };
}

/**
 * Server and load-generator CPU over a measured window: a snapshot of the server process
 * (/proc) and of this process when the window opens and when it closes. Only the first
 * `open()` and the first `close()` count, so they can be called from a loop.
 */
export class CostWindow {
  private from?: { snap: ProcSnapshot; self: number };
  private to?: { snap: ProcSnapshot; self: number };

  constructor(private readonly pid: number) {}

  get opened(): boolean {
    return this.from !== undefined;
  }

  get closed(): boolean {
    return this.to !== undefined;
  }

  open(): void {
    this.from ??= { snap: procSnapshot(this.pid), self: selfCpuSeconds() };
  }

  close(): void {
    this.to ??= { snap: procSnapshot(this.pid), self: selfCpuSeconds() };
  }

  /** CPU seconds of the server over the window */
  serverCpuSeconds(): number {
    this.close();
    return this.to!.snap.cpuSeconds - this.from!.snap.cpuSeconds;
  }

  /** server CPU, its main thread's running/waiting shares of wall time, and the load generator's CPU over the window */
  figures(measuredSeconds: number): WindowCost {
    const serverCpu = this.serverCpuSeconds();
    const from = this.from!;
    const to = this.to!;
    const wallSeconds = (to.snap.at - from.snap.at) / 1000;
    return {
      serverCpuSeconds: round(serverCpu, 2),
      serverMainThread: {
        running: round((to.snap.mainRunSeconds - from.snap.mainRunSeconds) / wallSeconds, 2),
        waitingForCpu: round((to.snap.mainWaitSeconds - from.snap.mainWaitSeconds) / wallSeconds, 2),
      },
      serverCpuCores: round(serverCpu / measuredSeconds, 2),
      loadGenCpuSeconds: round(to.self - from.self, 2),
    };
  }
}

export interface WindowCost {
  serverCpuSeconds: number;
  serverMainThread: {
    /** share of wall time the server's main thread ran on a CPU */
    running: number;
    /** share of wall time it was runnable but waiting for a CPU (taken by other processes) */
    waitingForCpu: number;
  };
  serverCpuCores: number;
  loadGenCpuSeconds: number;
}

export interface ServerCostInput {
  /** operations done in the window (messages delivered, swipes answered…) */
  ops: number;
  measuredSeconds: number;
  loadGenLoopDelayMs: { p50: number; p99: number; max: number };
  contention: SampleSummary;
  serverLog: ReturnType<ServerHandle['problems']>;
  serverMetrics: unknown;
}

/**
 * The server-cost part of a result, in the order the scenarios have always written it:
 * CPU seconds, main thread, cores, `<perOpKey>` (ops per server CPU-second), load
 * generator, RSS at the end, contention, the server's log problems and its metrics.
 */
export function serverCost<K extends string>(w: CostWindow, pid: number, perOpKey: K, i: ServerCostInput) {
  const c = w.figures(i.measuredSeconds);
  return {
    serverCpuSeconds: c.serverCpuSeconds,
    serverMainThread: c.serverMainThread,
    serverCpuCores: c.serverCpuCores,
    ...({ [perOpKey]: Math.round(i.ops / w.serverCpuSeconds()) } as Record<K, number>),
    loadGenCpuSeconds: c.loadGenCpuSeconds,
    loadGenLoopDelayMs: i.loadGenLoopDelayMs,
    serverRssKiBEnd: procSnapshot(pid).rssKiB,
    contention: i.contention,
    serverLog: i.serverLog,
    serverMetrics: i.serverMetrics,
  };
}

/** The report rows for `serverCost(...)`: CPU, ops per CPU-second, main thread, load generator, then `contextRows`. */
export function serverCostRows(
  c: WindowCost & { loadGenLoopDelayMs: { p99: number }; contention: SampleSummary; serverLog: { warnings: number; errors: number } },
  perOp: { label: string; value: number },
  machine: MachineInfo,
): Row[] {
  return [
    ['server CPU', `${c.serverCpuSeconds} s (${c.serverCpuCores} cores)`],
    [perOp.label, fmt(perOp.value)],
    ['server main thread running / waiting for CPU', `${Math.round(c.serverMainThread.running * 100)}% / ${Math.round(c.serverMainThread.waitingForCpu * 100)}% of wall time`],
    ['load generator CPU / loop delay p99', `${c.loadGenCpuSeconds} s / ${ms(c.loadGenLoopDelayMs.p99)}`],
    ...contextRows(c.serverLog, c.contention, machine),
  ];
}

/** What a figure must be read with: the server's warnings and errors, the other tenants' CPU, the load average. */
export function contextRows(serverLog: { warnings: number; errors: number }, contention: SampleSummary, machine: MachineInfo): Row[] {
  return [
    ['server warnings / errors', `${serverLog.warnings} / ${serverLog.errors}`],
    ['other tenants (mean cores) / CPU pressure', `${contention.otherCores} / ${Math.round(contention.cpuPressure * 100)}%`],
    ['machine load avg at start', machine.loadavg.join(' ')],
  ];
}

export interface ScenarioRecord {
  /** epoch ms */
  startedAt: number;
  params: unknown;
  machine: MachineInfo;
  server: { entry: string; config: unknown };
  setup?: unknown;
  results: unknown;
  samples: Sample[];
  [more: string]: unknown;
}

/**
 * The result document every Kindred-only scenario writes: scenario, start time, argv, params,
 * machine, the server under test (entry, config, git commit), setup figures, results, the
 * once-a-second samples, then anything else given.
 */
export function scenarioEnvelope(scenario: string, r: ScenarioRecord): Record<string, unknown> {
  const { startedAt, params, machine, server, setup, results, samples, ...more } = r;
  return {
    scenario,
    startedAt: new Date(startedAt).toISOString(),
    argv: process.argv.slice(2),
    params,
    machine,
    server: { entry: server.entry, config: server.config, git: gitInfo() },
    ...(setup === undefined ? {} : { setup }),
    results,
    samples,
    ...more,
  };
}

/** Writes bench/results/<scenario>-<timestamp>.json (or into --out-dir) with `scenarioEnvelope`. */
export function writeScenarioResult(scenario: string, f: Pick<ScenarioFlags, 'outDir'>, r: ScenarioRecord): string {
  const file = writeResult(scenario, scenarioEnvelope(scenario, r), f.outDir);
  log(`wrote ${file}`);
  return file;
}
