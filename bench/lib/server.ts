/**
 * Runs the Kindred server under test as a separate child process (`kindred start`)
 * in a fresh temporary data dir, with a config file that lifts the per-user rate
 * limits and makes password hashing cheap (setup speed only: no scenario measures
 * login). The load generator never hosts the server.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * Overrides merged into the server's config file (same keys as src/config.ts).
 * Password hashing is made nearly free because setup registers up to 10,000 users
 * and no scenario measures login: on the 2-core bench box registration ran at
 * ~140/s with scryptN 1024 + 4096 SCRAM iterations and ~640/s with 16 + 1.
 * Connections authenticate with the token (an HMAC check), not the password.
 */
export const BENCH_CONFIG = {
  logLevel: 'warn',
  auth: { scryptN: 16, scramIterations: 1, registration: true },
  limits: {
    messagesPerSecond: 1_000_000,
    messagesBurst: 1_000_000,
    likesPerMinute: 100_000_000,
    likesBurst: 1_000_000,
  },
};

export interface ServerHandle {
  pid: number;
  httpPort: number;
  tcpPort: number;
  /** XMPP c2s (STARTTLS) */
  xmppPort: number;
  /** XMPP domain */
  domain: string;
  /** http://127.0.0.1:<port> */
  base: string;
  wsUrl: string;
  dataDir: string;
  logFile: string;
  entry: string;
  config: unknown;
  /** the V8 inspector's WebSocket URL when started with `inspect: true` */
  inspectorUrl?: string;
  /** pino lines at level warn (40) or above seen on the server's stdout, and anything on stderr */
  problems(): { warnings: number; errors: number; stderr: string; last: string[] };
  /** true once the process has exited (e.g. crashed) */
  exited(): boolean;
  exitInfo(): { code: number | null; signal: string | null } | undefined;
  stop(): Promise<void>;
}

/** `patch` merged into `base`, objects key by key (arrays and other values replace). */
export function deepMerge(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    const cur = out[k];
    out[k] = cur && typeof cur === 'object' && !Array.isArray(cur) && v && typeof v === 'object' && !Array.isArray(v) ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, name.name);
    if (name.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (name.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Which server to run: `dist/cli.js` (built with `npm run build`) by default, or any
 * entry given with --server-entry (a `.ts` entry such as `src/cli.ts` runs under tsx).
 * A fresh clone has no dist/: the default entry is then built once, here, so that one
 * `npm run bench -- …` after `npm ci` is enough (a stale dist/ only gets a warning: rebuilding
 * under a run someone started on purpose would change what they measure).
 */
export function resolveEntry(entry: string | undefined): { entry: string; warning?: string } {
  const path = resolve(REPO_ROOT, entry ?? 'dist/cli.js');
  if (!entry && !existsSync(path)) {
    console.error('[bench] no dist/cli.js yet: running `npm run build` once (TypeScript, the TLS front, the web front end)');
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  if (!existsSync(path)) throw new Error(`server entry ${path} not found: run \`npm run build\` first, or pass --server-entry src/cli.ts`);
  if (!entry) {
    const src = newestMtime(join(REPO_ROOT, 'src'));
    if (statSync(path).mtimeMs < src) return { entry: path, warning: 'dist/ is older than src/: run `npm run build` to bench the current code' };
  }
  return { entry: path };
}

export async function startServer(
  opts: { entry?: string; config?: Record<string, unknown>; nodeArgs?: string[]; keepData?: boolean; inspect?: boolean } = {},
): Promise<ServerHandle> {
  const { entry } = resolveEntry(opts.entry);
  const dir = mkdtempSync(join(tmpdir(), 'kindred-bench-'));
  const dataDir = join(dir, 'data');
  const config = deepMerge(BENCH_CONFIG, opts.config ?? {});
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const logFile = join(dir, 'server.log');
  const log = createWriteStream(logFile);

  // BENCH_SERVER_NODE_ARGS adds node flags to the server only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = [...(opts.nodeArgs ?? []), ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  if (entry.endsWith('.ts')) nodeArgs.unshift('--import', 'tsx');
  if (opts.inspect) nodeArgs.unshift('--inspect=127.0.0.1:0');
  let inspectorUrl: string | undefined;
  const child: ChildProcess = spawn(
    process.execPath,
    [...nodeArgs, entry, 'start', '--config', configFile, '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--tcp-port', '0', '--xmpp-port', '0', '--xmpp-tls-port', '0'],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KINDRED_CONFIG: '' } },
  );
  let warnings = 0;
  let errors = 0;
  let stderr = '';
  const last: string[] = [];
  let exit: { code: number | null; signal: string | null } | undefined;
  const exited = new Promise<void>((r) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      r();
    }),
  );

  let stdoutBuf = '';
  const ready = new Promise<{ httpPort: number; tcpPort: number; xmppPort: number; domain: string; secure: boolean }>((resolveReady, rejectReady) => {
    let httpPort = 0;
    let secure = false;
    let tcpPort = 0;
    const timer = setTimeout(() => rejectReady(new Error(`server did not start within 30 s; see ${logFile}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      log.write(chunk);
      stdoutBuf += chunk.toString('utf8');
      let nl: number;
      while ((nl = stdoutBuf.indexOf('\n')) >= 0) {
        const line = stdoutBuf.slice(0, nl);
        stdoutBuf = stdoutBuf.slice(nl + 1);
        const http = /HTTP \+ REST\s+(https?):\/\/[^:]+:(\d+)/.exec(line);
        if (http) {
          // https when the config has `tls` (uWS.SSLApp): REST, /ws and /xmpp-websocket are then TLS
          secure = http[1] === 'https';
          httpPort = Number(http[2]);
        }
        const tcp = /native TCP\s+[^:]+:(\d+)/.exec(line);
        if (tcp) tcpPort = Number(tcp[1]);
        // the XMPP line is printed last, once every listener is up
        const xmpp = /XMPP c2s\s+[^:]+:(\d+) \(STARTTLS\).*domain (\S+)/.exec(line);
        if (xmpp) {
          clearTimeout(timer);
          resolveReady({ httpPort, tcpPort, xmppPort: Number(xmpp[1]), domain: xmpp[2]!, secure });
        }
        if (line.startsWith('{')) {
          try {
            const level = (JSON.parse(line) as { level?: number }).level ?? 0;
            if (level >= 50) errors++;
            else if (level >= 40) warnings++;
            if (level >= 40) {
              last.push(line.slice(0, 500));
              if (last.length > 20) last.shift();
            }
          } catch {
            /* not a log line */
          }
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      log.write(chunk);
      let text = chunk.toString('utf8');
      const m = /Debugger listening on (ws:\/\/\S+)/.exec(text);
      if (m) inspectorUrl = m[1];
      // the inspector's own notices are not problems
      text = text.replace(/^(Debugger listening on|For help, see:|Debugger attached|Debugger ending|Waiting for the debugger).*\n?/gm, '');
      if (stderr.length < 20_000) stderr += text;
    });
    void exited.then(() => {
      clearTimeout(timer);
      rejectReady(new Error(`server exited during startup (${JSON.stringify(exit)}): ${stderr.slice(0, 2000)}`));
    });
  });

  let ports: { httpPort: number; tcpPort: number; xmppPort: number; domain: string; secure: boolean };
  try {
    ports = await ready;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }

  const handle: ServerHandle = {
    pid: child.pid!,
    ...ports,
    base: `${ports.secure ? 'https' : 'http'}://127.0.0.1:${ports.httpPort}`,
    wsUrl: `${ports.secure ? 'wss' : 'ws'}://127.0.0.1:${ports.httpPort}/ws`,
    dataDir,
    logFile,
    entry,
    config,
    inspectorUrl,
    problems: () => ({ warnings, errors, stderr, last: [...last] }),
    exited: () => exit !== undefined,
    exitInfo: () => exit,
    async stop() {
      if (!exit) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(killer);
      }
      log.end();
      if (!opts.keepData) rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

/** Scrapes a few gauges/counters from the server's Prometheus endpoint (`/metrics`). */
export async function scrapeMetrics(base: string): Promise<Record<string, number>> {
  const res = await fetch(`${base}/metrics`);
  const text = await res.text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (!m) continue;
    const name = m[1]!;
    if (
      /^kindred_(connections|actors_active|mailbox_depth|messages_total|events_pushed_total|disconnects_total)/.test(name) ||
      /^kindred_process_nodejs_(heap_size_used_bytes|heap_size_total_bytes|external_memory_bytes|eventloop_lag_p99_seconds|eventloop_lag_max_seconds)/.test(name) ||
      /^kindred_process_(resident_memory_bytes)/.test(name) ||
      /^kindred_command_duration_seconds_count/.test(name)
    ) {
      out[name] = Number(m[2]);
    }
  }
  return out;
}

/** The commit under test and whether src/ had uncommitted changes (recorded in every result). */
export function gitInfo(): { commit: string; srcDirty: string[] } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: REPO_ROOT, encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((l) => l.trim());
    return { commit, srcDirty: dirty };
  } catch {
    return { commit: 'unknown', srcDirty: [] };
  }
}

/** For a post-mortem: the last lines of the server log. */
export function tailLog(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
