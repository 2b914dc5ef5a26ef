/**
 * A real single-node Cassandra 5.0 for a test file: installed on first use with
 * deploy/cassandra/install.sh (Maven Central, cached in ~/.cache/kindred), started with
 * deploy/cassandra/start.sh in a fresh temp dir on free loopback ports, stopped (SIGKILL:
 * the data is thrown away) and removed in teardown. Fails loudly, never skips, when Java 17
 * or Maven is missing. For outage tests, `kill()` ends the server (SIGKILL: what a crash leaves,
 * the commitlog is replayed at the next start) and `start()` starts it again on the same data
 * dir and ports.
 *
 * The node runs with -Dcassandra.unsafesystem=true (schema changes skip flushing the system
 * keyspace), which makes creating a keyspace per test several times faster. Tests only, and
 * not with `kill()`: after a crash such a node forgets the keyspaces created since its start
 * (the schema rows come back from the commitlog, the schema itself does not, and the commitlog
 * entries of the unknown tables are dropped). Outage tests pass `{ unsafeSystem: false }`.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TestCassandra {
  /** `127.0.0.1:PORT`, for contactPoints. */
  contactPoint: string;
  port: number;
  dir: string;
  /** the running server's pid (a new one after `start()`) */
  readonly pid: number;
  /** Seconds from start.sh to CQL accepting connections (the latest start). */
  readonly startSeconds: number;
  /** SIGKILL, keeping the data dir: a crash. Waits until the process is gone. */
  kill(): Promise<void>;
  /** Starts the killed server again on the same dir and ports; resolves once CQL accepts connections. */
  start(): Promise<void>;
  /** Kills the server and removes its dir (teardown). */
  stop(): Promise<void>;
}

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DEPLOY = path.join(REPO, 'deploy', 'cassandra');

function javaMajor(java: string): string | undefined {
  const r = spawnSync(java, ['-XshowSettings:properties', '-version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  return /java\.specification\.version = (\S+)/.exec(r.stderr)?.[1];
}

/** A Java 17 binary: CASSANDRA_JAVA, `java` on PATH, or Debian's OpenJDK 17. */
function findJava17(): string {
  const candidates = [process.env.CASSANDRA_JAVA, 'java', '/usr/lib/jvm/java-17-openjdk-amd64/bin/java', '/usr/lib/jvm/java-17-openjdk-arm64/bin/java'];
  const seen: string[] = [];
  for (const c of candidates) {
    if (!c) continue;
    const v = javaMajor(c);
    if (v === '17') return c;
    seen.push(`${c}: ${v ?? 'not found'}`);
  }
  throw new Error(
    `Cassandra 5.0 needs Java 17 and none was found (${seen.join('; ')}). Install it: apt-get install -y openjdk-17-jdk-headless maven`,
  );
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(args[0] ?? cmd)} failed: ${err.message}\n${stderr.slice(-4000)}`));
      else resolve({ stdout, stderr });
    });
  });
}

/**
 * The server runs in its own session (start.sh uses setsid), so it would outlive a test
 * process that dies without its teardown (a runner timeout, Ctrl-C): kill it then too.
 */
function killOnExit(pid: number): void {
  const kill = () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', kill);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = () => {
      kill();
      // Raise it again without this listener, so whoever else handles it (or the default action) ends the process.
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** A port nobody listens on right now (the OS's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * One Cassandra shared by the test files of a tap run that don't need a node of their own:
 * starting Cassandra costs ~30 CPU-seconds, and most files only need a fresh keyspace (they
 * name theirs uniquely). The first file to ask starts it under a lock and records it here;
 * the files after it reuse it. scripts/stop-shared-test-services.mjs (tap's `before` and
 * `after` programs) stops the run's node after the run, and any left by a run that died.
 * Outside tap (no runner to stop it) every file gets its own node.
 */
// Keyed by the tap runner (every test file's parent), so concurrent tap runs in one checkout
// each get their own node and never stop each other's.
const SHARED_STATE = path.join(REPO, '.tap', `shared-cassandra-${process.ppid}.json`);
const SHARED_LOCK = `${SHARED_STATE}.lock`;

interface SharedState {
  contactPoint: string;
  port: number;
  dir: string;
  pid: number;
  startSeconds: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** mkdir is atomic: whoever creates the lock directory starts the shared node; a dead holder's lock is taken over. */
async function withSharedLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(path.dirname(SHARED_LOCK), { recursive: true });
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      mkdirSync(SHARED_LOCK);
      writeFileSync(path.join(SHARED_LOCK, 'pid'), String(process.pid));
      break;
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(path.join(SHARED_LOCK, 'pid'), 'utf8'));
      } catch {
        // the holder is between mkdir and writing its pid
      }
      if (holder && !alive(holder)) rmSync(SHARED_LOCK, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${SHARED_LOCK}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(SHARED_LOCK, { recursive: true, force: true });
  }
}

async function sharedCassandra(): Promise<TestCassandra> {
  const state = await withSharedLock(async () => {
    if (existsSync(SHARED_STATE)) {
      const known = JSON.parse(readFileSync(SHARED_STATE, 'utf8')) as SharedState;
      if (alive(known.pid) && (await accepts(known.port))) return known;
    }
    const env = await prepare();
    const dir = mkdtempSync(path.join(tmpdir(), 'kindred-cassandra-shared-'));
    const [port, storagePort] = await twoPorts();
    const { pid, startSeconds } = await launchCassandra(env, dir, port, storagePort, true);
    const started: SharedState = { contactPoint: `127.0.0.1:${port}`, port, dir, pid, startSeconds };
    writeFileSync(SHARED_STATE, JSON.stringify(started));
    return started;
  });
  const refuse = async (): Promise<void> => {
    throw new Error('the shared test Cassandra cannot be stopped or restarted: use startCassandra(t, { own: true })');
  };
  // stop() is a no-op: the node outlives this file and is stopped after the whole run.
  return { ...state, kill: refuse, start: refuse, stop: async () => undefined };
}

async function prepare(): Promise<NodeJS.ProcessEnv> {
  const java = findJava17();
  const env = { ...process.env, CASSANDRA_JAVA: java, PATH: `${path.dirname(java)}:${process.env.PATH ?? ''}` };
  const home = process.env.KINDRED_CACHE ?? path.join(process.env.HOME ?? tmpdir(), '.cache', 'kindred');
  if (!existsSync(path.join(home, 'cassandra-5.0', 'VERSION'))) {
    if (spawnSync('mvn', ['-v'], { encoding: 'utf8' }).status !== 0) {
      throw new Error('Cassandra is not installed yet and Maven is missing to install it: apt-get install -y maven');
    }
  }
  await run('bash', [path.join(DEPLOY, 'install.sh')], env, 15 * 60_000);
  return env;
}

async function twoPorts(): Promise<[number, number]> {
  for (;;) {
    const port = await freePort();
    const storagePort = await freePort();
    if (port !== storagePort) return [port, storagePort];
  }
}

async function launchCassandra(env: NodeJS.ProcessEnv, dir: string, port: number, storagePort: number, unsafeSystem: boolean): Promise<{ pid: number; startSeconds: number }> {
  const started = performance.now();
  const { stdout } = await run(
    'bash',
    [path.join(DEPLOY, 'start.sh'), dir, String(port)],
    { ...env, CASSANDRA_STORAGE_PORT: String(storagePort), CASSANDRA_JVM_EXTRA: unsafeSystem ? '-Dcassandra.unsafesystem=true' : '' },
    240_000,
  );
  const pid = Number(stdout.trim().split('\n').pop());
  if (!Number.isInteger(pid)) throw new Error(`start.sh printed no pid: ${stdout}`);
  return { pid, startSeconds: (performance.now() - started) / 1000 };
}

/**
 * A Cassandra for a test file. By default the run's shared node (see above); `own: true`
 * (or `unsafeSystem: false`, or KINDRED_TEST_OWN_CASSANDRA=1) starts one for this file
 * alone, which kill()/start() can take down and bring back (outage tests).
 */
export async function startCassandra(
  t: { teardown(fn: () => unknown): void },
  opts: { unsafeSystem?: boolean; own?: boolean } = {},
): Promise<TestCassandra> {
  const own = opts.own === true || opts.unsafeSystem === false || process.env.KINDRED_TEST_OWN_CASSANDRA === '1' || process.env.TAP !== '1';
  if (!own) return sharedCassandra();
  const env = await prepare();
  const dir = mkdtempSync(path.join(tmpdir(), 'kindred-cassandra-'));
  const [port, storagePort] = await twoPorts();
  let pid = 0;
  let startSeconds = 0;
  const launch = async (): Promise<void> => {
    ({ pid, startSeconds } = await launchCassandra(env, dir, port, storagePort, opts.unsafeSystem !== false));
    killOnExit(pid);
  };
  try {
    await launch();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped: Promise<void> | undefined;
  const node: TestCassandra = {
    contactPoint: `127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return pid;
    },
    get startSeconds() {
      return startSeconds;
    },
    kill: async () => {
      await run('bash', [path.join(DEPLOY, 'stop.sh'), dir, '--now'], env, 60_000);
    },
    start: async () => {
      if (stopped) throw new Error('this Cassandra was stopped for good');
      await launch();
    },
    stop: () =>
      (stopped ??= (async () => {
        try {
          await run('bash', [path.join(DEPLOY, 'stop.sh'), dir, '--now'], env, 60_000);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      })()),
  };
  t.teardown(() => node.stop());
  return node;
}

/**
 * SIGSTOPs a server and waits until every thread of it is really stopped (state T): kill()
 * only queues the signal, and on a loaded machine a request sent right after it can still be
 * served by a thread that had not been scheduled to stop yet.
 */
export async function freeze(pid: number, timeoutMs = 5_000): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const stopped = () =>
    readdirSync(`/proc/${pid}/task`).every((tid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
    });
  const deadline = performance.now() + timeoutMs;
  while (!stopped()) {
    if (performance.now() > deadline) throw new Error(`pid ${pid} not stopped ${timeoutMs} ms after SIGSTOP`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
