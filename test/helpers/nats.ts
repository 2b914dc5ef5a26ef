/**
 * A real nats-server for a test: loopback only, a free port, its own store dir,
 * killed in teardown. `restart()` stops it and starts it again on the same port
 * (for outage tests). Needs the Debian `nats-server` (scripts/test-deps.sh).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServer {
  port: number;
  url: string;
  /** kills the server (SIGTERM, then SIGKILL) and waits for it to exit */
  stop(): Promise<void>;
  /** starts it again on the same port and store dir */
  start(): Promise<void>;
  /** stop() then start() */
  restart(): Promise<void>;
  /** what the server printed (for diagnostics) */
  output(): string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Servers of this process. A test process that dies without its teardown (a crash, the
 * runner's timeout) would leave them running: they are killed when it exits.
 */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves when something on the port sends a NATS INFO line. */
function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tcpConnect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('data', (b) => done(b.toString('latin1').startsWith('INFO ')));
    sock.once('error', () => done(false));
  });
}

export async function startNats(t: { teardown(fn: () => unknown): void }, opts: { jetstream?: boolean } = {}): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-nats-'));
  let proc: ChildProcess | undefined;
  let log = '';
  let port = 0;

  const spawnOn = async (p: number): Promise<boolean> => {
    const args = ['-a', '127.0.0.1', '-p', String(p), '-sd', dir];
    if (opts.jetstream) args.push('-js');
    const child = spawn('nats-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = child;
    running.add(child);
    child.on('exit', () => running.delete(child));
    let exited = false;
    let spawnError: Error | undefined;
    child.on('error', (err) => (spawnError = err));
    child.on('exit', () => (exited = true));
    let own = '';
    const append = (b: Buffer) => {
      own += b.toString();
      log += b.toString();
      if (log.length > 64_000) log = log.slice(-32_000);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      if (spawnError) throw new Error(`cannot run nats-server (run scripts/test-deps.sh): ${spawnError.message}`);
      if (exited) return false;
      // Ready only when THIS process says so (another one may hold the port) and answers.
      if (own.includes('Server is ready') && (await probe(p)) && !exited) return true;
      await sleep(20);
    }
    child.kill('SIGKILL');
    throw new Error(`nats-server did not accept connections on 127.0.0.1:${p} within 10 s:\n${log}`);
  };

  const stop = async (): Promise<void> => {
    const child = proc;
    proc = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const killed = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)]);
    if (!killed) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  let started = false;
  const start = async (): Promise<void> => {
    if (proc) throw new Error('nats-server is already running');
    for (let attempt = 0; attempt < 5; attempt++) {
      // First start: a port that was free when checked (another process may take it
      // first, then try another). Restarts: the same port, which must come back.
      if (!started) port = await freePort();
      if (await spawnOn(port)) {
        started = true;
        return;
      }
      proc = undefined;
      if (started) await sleep(200);
    }
    throw new Error(`nats-server exited at start on 127.0.0.1:${port}:\n${log}`);
  };

  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });

  await start();
  return {
    get port() {
      return port;
    },
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    stop,
    start,
    restart: async () => {
      await stop();
      await start();
    },
    output: () => log,
  };
}
