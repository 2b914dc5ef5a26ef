/**
 * Process and machine figures from /proc (Linux only): a process's RSS and CPU
 * seconds, and a sampler that records them once a second while a run is going.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';

let clkTck = 0;
function ticksPerSecond(): number {
  if (!clkTck) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

export interface ProcSnapshot {
  /** wall clock, ms since the epoch */
  at: number;
  /** user + system CPU seconds the process has used since it started */
  cpuSeconds: number;
  userSeconds: number;
  systemSeconds: number;
  rssKiB: number;
  /** peak RSS */
  hwmKiB: number;
  rssAnonKiB: number;
  threads: number;
  /** main thread (the event loop): seconds on a CPU, and seconds runnable but waiting for one (/proc/<pid>/schedstat) */
  mainRunSeconds: number;
  mainWaitSeconds: number;
}

/** Reads /proc/<pid>/stat and /proc/<pid>/status of one process. Throws if the process is gone. */
function oneProcess(pid: number): ProcSnapshot {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const tck = ticksPerSecond();
  const userSeconds = Number(fields[11]) / tck;
  const systemSeconds = Number(fields[12]) / tck;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status);
    return m ? Number(m[1]) : 0;
  };
  let mainRunSeconds = 0;
  let mainWaitSeconds = 0;
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    mainRunSeconds = (run ?? 0) / 1e9;
    mainWaitSeconds = (wait ?? 0) / 1e9;
  } catch {
    /* no schedstats */
  }
  return {
    at: Date.now(),
    mainRunSeconds,
    mainWaitSeconds,
    cpuSeconds: userSeconds + systemSeconds,
    userSeconds,
    systemSeconds,
    rssKiB: kib('VmRSS'),
    hwmKiB: kib('VmHWM'),
    rssAnonKiB: kib('RssAnon'),
    threads: kib('Threads'),
  };
}

/** The processes below `pid` (children, their children, ...), from the parent ids in /proc/<n>/stat. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length > 0) {
    const next = queue.shift()!;
    out.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return out;
}

/**
 * A server process with everything it started: CPU, RSS and threads summed over the
 * process and its descendants (Kindred's TLS front is a child process doing the TLS work
 * of its TCP listeners, and its memory is part of each TLS session's cost). The main-thread
 * schedstat figures are the process's own. Throws if the process itself is gone.
 */
export function procSnapshot(pid: number): ProcSnapshot {
  const total = oneProcess(pid);
  for (const child of descendants(pid)) {
    let c: ProcSnapshot;
    try {
      c = oneProcess(child);
    } catch {
      continue;
    }
    total.cpuSeconds += c.cpuSeconds;
    total.userSeconds += c.userSeconds;
    total.systemSeconds += c.systemSeconds;
    total.rssKiB += c.rssKiB;
    total.hwmKiB += c.hwmKiB;
    total.rssAnonKiB += c.rssAnonKiB;
    total.threads += c.threads;
  }
  return total;
}

/** Busy and total CPU time of the whole machine, in seconds summed over cores (/proc/stat). */
export function machineCpu(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const tck = ticksPerSecond();
    return { busy: (total - idle) / tck, total: total / tck };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** Cumulative µs during which some runnable task waited for a CPU (/proc/pressure/cpu, PSI). */
export function cpuPressureUs(): number {
  try {
    const m = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export interface Sample {
  /** seconds since the sampler started */
  t: number;
  rssKiB: number;
  /** CPU use over the last interval, in cores (1.0 = one core busy) */
  cpuCores: number;
  /** the load generator's own CPU use over the same interval, in cores */
  loadGenCores: number;
  /** every process on the machine, in cores */
  machineCores: number;
  /** the machine minus the server and the load generator: other tenants of a shared box */
  otherCores: number;
  /** share of the interval during which some runnable task waited for a CPU (PSI "some") */
  cpuPressure: number;
}

export interface SampleSummary {
  serverCores: number;
  loadGenCores: number;
  machineCores: number;
  otherCores: number;
  cpuPressure: number;
  maxRssKiB: number;
}

/** Means over samples (all of them, or those with t in [from, to]). */
export function summarizeSamples(samples: Sample[], from = -Infinity, to = Infinity): SampleSummary {
  const s = samples.filter((x) => x.t >= from && x.t <= to);
  const mean = (f: (x: Sample) => number) => (s.length ? round(s.reduce((a, x) => a + f(x), 0) / s.length, 2) : 0);
  return {
    serverCores: mean((x) => x.cpuCores),
    loadGenCores: mean((x) => x.loadGenCores),
    machineCores: mean((x) => x.machineCores),
    otherCores: mean((x) => x.otherCores),
    cpuPressure: mean((x) => x.cpuPressure),
    maxRssKiB: s.reduce((a, x) => Math.max(a, x.rssKiB), 0),
  };
}

/** Samples a process once per `periodMs` until stopped. */
export class ProcSampler {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private last: ProcSnapshot | undefined;
  private lastSelf = process.cpuUsage();
  private lastMachine = machineCpu();
  private lastPressure = cpuPressureUs();
  private readonly started = Date.now();

  /** CPU seconds last seen for each load-generator worker process */
  private readonly workerCpu = new Map<number, number>();

  /** `loadGenPids`: load-generator worker processes, counted with this one as "load generator" */
  constructor(
    private readonly pid: number,
    private readonly periodMs = 1000,
    private readonly loadGenPids: readonly number[] = [],
  ) {}

  private workersCpuDelta(): number {
    let delta = 0;
    for (const pid of this.loadGenPids) {
      try {
        const cpu = procSnapshot(pid).cpuSeconds;
        delta += cpu - (this.workerCpu.get(pid) ?? cpu);
        this.workerCpu.set(pid, cpu);
      } catch {
        /* worker gone */
      }
    }
    return delta;
  }

  start(): this {
    this.last = procSnapshot(this.pid);
    this.lastSelf = process.cpuUsage();
    this.lastMachine = machineCpu();
    this.lastPressure = cpuPressureUs();
    this.workersCpuDelta();
    this.timer = setInterval(() => this.sample(), this.periodMs);
    this.timer.unref();
    return this;
  }

  private sample(): void {
    let snap: ProcSnapshot;
    try {
      snap = procSnapshot(this.pid);
    } catch {
      this.stop();
      return;
    }
    const self = process.cpuUsage();
    const prev = this.last!;
    const dt = (snap.at - prev.at) / 1000 || 1;
    const selfCpu = (self.user - this.lastSelf.user + self.system - this.lastSelf.system) / 1e6 + this.workersCpuDelta();
    const machine = machineCpu();
    const pressure = cpuPressureUs();
    // (a child that exited takes its CPU seconds out of the sum: never report less than 0)
    const serverCores = Math.max(0, snap.cpuSeconds - prev.cpuSeconds) / dt;
    const machineCores = (machine.busy - this.lastMachine.busy) / dt;
    this.samples.push({
      t: Math.round((snap.at - this.started) / 100) / 10,
      rssKiB: snap.rssKiB,
      cpuCores: round(serverCores, 2),
      loadGenCores: round(selfCpu / dt, 2),
      machineCores: round(machineCores, 2),
      otherCores: round(Math.max(0, machineCores - serverCores - selfCpu / dt), 2),
      cpuPressure: round((pressure - this.lastPressure) / 1e6 / dt, 2),
    });
    this.last = snap;
    this.lastSelf = self;
    this.lastMachine = machine;
    this.lastPressure = pressure;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** CPU seconds (user + system) this process has used so far. */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  node: string;
  kernel: string;
  memTotalMiB: number;
  /** 1, 5 and 15 minute load averages when the run started */
  loadavg: number[];
  /** /proc/pressure/cpu when the run started */
  cpuPressure: string;
  openFilesLimit: string;
}

export function machineInfo(): MachineInfo {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    /* not Linux */
  }
  let openFilesLimit = 'unknown';
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) openFilesLimit = m[1]!;
  } catch {
    /* not Linux */
  }
  return {
    nproc: os.availableParallelism(),
    cpuModel,
    node: process.version,
    kernel: os.release(),
    memTotalMiB: Math.round(os.totalmem() / 1048576),
    loadavg: os.loadavg().map((x) => round(x, 2)),
    cpuPressure: (() => {
      try {
        return readFileSync('/proc/pressure/cpu', 'utf8').split('\n')[0]!;
      } catch {
        return 'n/a';
      }
    })(),
    openFilesLimit,
  };
}

/** Kernel TCP figures for the whole machine (/proc/net/sockstat): sockets in use and buffer memory in KiB. */
export function tcpSockstat(): { inuse: number; memKiB: number } {
  try {
    const m = /^TCP: inuse (\d+).* mem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
    // `mem` is in pages
    return m ? { inuse: Number(m[1]), memKiB: Number(m[2]) * 4 } : { inuse: 0, memKiB: 0 };
  } catch {
    return { inuse: 0, memKiB: 0 };
  }
}
