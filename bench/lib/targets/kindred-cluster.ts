/**
 * Kindred in cluster mode as a target: `deploy/local/up.sh N` (default 2 nodes) in a fresh
 * state dir on free loopback ports, with the bench config passed to every node through
 * KINDRED_CONFIG (the nodes inherit up.sh's environment), and `deploy/local/down.sh --wipe`
 * at the end. NATS, Cassandra and versitygw run as up.sh starts them. Accounts are made over
 * node 1's REST API; all sessions connect to node 1 (so a message crosses the NATS bus only
 * when a user's actor is placed on another node), and node 1's process is the one sampled.
 * up.sh runs `dist/cli.js`: --server-entry does not apply.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_CONFIG, REPO_ROOT, scrapeMetrics } from '../server.js';
import { matchedPairs, registerUsers } from '../setup.js';
import { KINDRED_XMPP_LIMITS } from './kindred.js';
import { BENCH_PASSWORD, type Account, type TargetHandle } from './types.js';

function run(script: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [join(REPO_ROOT, script), ...args], { cwd: REPO_ROOT, env, timeout: timeoutMs, maxBuffer: 8 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${script} failed: ${err.message}\n${stderr.slice(-2000)}`));
      else resolve(stdout);
    });
  });
}

/** A run of `count` consecutive free ports (node I uses base + I - 1, XMPP base + 2(I - 1) + 1). */
async function freeRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    // below the ephemeral range (32768+), where outgoing connections could take a port between the probe and the bind
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const probes = await Promise.all(Array.from({ length: count }, (_, i) => isFree(base + i)));
    if (probes.every(Boolean)) return base;
  }
  throw new Error('no run of free ports found');
}

function isFree(port: number): Promise<boolean> {
  return import('node:net').then(
    ({ default: net }) =>
      new Promise<boolean>((resolve) => {
        const srv = net.createServer();
        srv.once('error', () => resolve(false));
        srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
      }),
  );
}

export async function startKindredCluster(opts: { nodes?: number; config?: Record<string, unknown>; keepData?: boolean }): Promise<TargetHandle & { base: string }> {
  const nodes = opts.nodes ?? 2;
  const dir = mkdtempSync(join(tmpdir(), 'kindred-bench-cluster-'));
  const configFile = join(dir, 'bench-config.json');
  const config = { ...BENCH_CONFIG, ...KINDRED_XMPP_LIMITS, ...(opts.config ?? {}) };
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  let cql = await freeRange(1);
  while (!(await isFree(cql + 10_000))) cql = await freeRange(1); // Cassandra's storage port
  const ports = {
    KINDRED_LOCAL_NATS_PORT: await freeRange(1),
    KINDRED_LOCAL_CQL_PORT: cql,
    KINDRED_LOCAL_S3_PORT: await freeRange(1),
    KINDRED_LOCAL_HTTP_PORT: await freeRange(nodes),
    KINDRED_LOCAL_TCP_PORT: await freeRange(nodes),
    KINDRED_LOCAL_XMPP_PORT: await freeRange(2 * nodes),
  };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    KINDRED_CLUSTER_DIR: join(dir, 'state'),
    KINDRED_CONFIG: configFile,
    KINDRED_LOCAL_LOG_LEVEL: 'warn',
  };
  try {
    await run('deploy/local/up.sh', [String(nodes)], env, 600_000);
  } catch (err) {
    await run('deploy/local/down.sh', opts.keepData ? [] : ['--wipe'], env, 120_000).catch(() => undefined);
    if (!opts.keepData) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const pid = Number(readFileSync(join(dir, 'state', 'node-1.pid'), 'utf8').trim());
  const base = `http://127.0.0.1:${ports.KINDRED_LOCAL_HTTP_PORT}`;
  const domain = 'localhost';
  const toAccount = (u: { username: string; userId: string; token: string }): Account => ({ username: u.username, password: BENCH_PASSWORD, jid: `${u.username}@${domain}`, userId: u.userId, token: u.token });
  return {
    name: 'kindred-cluster',
    version: `Kindred cluster (${nodes} nodes, dist/cli.js)`,
    pid,
    /** node 1's REST base */
    base,
    xmppTcp: { transport: 'tcp', host: '127.0.0.1', port: ports.KINDRED_LOCAL_XMPP_PORT, wsUrl: '', domain },
    xmppWs: { transport: 'ws', host: '127.0.0.1', port: 0, wsUrl: `ws://127.0.0.1:${ports.KINDRED_LOCAL_HTTP_PORT}/xmpp-websocket`, domain },
    native: { wsUrl: `ws://127.0.0.1:${ports.KINDRED_LOCAL_HTTP_PORT}/ws`, host: '127.0.0.1', tcpPort: ports.KINDRED_LOCAL_TCP_PORT },
    config: { nodes, ports, config },
    logFile: join(dir, 'state', 'node-1.log'),
    async createAccounts(count, o) {
      const t0 = performance.now();
      const users = o.pairs
        ? (await matchedPairs(base, Math.ceil(count / 2), o.concurrency)).pairs.flatMap(([a, b]) => [a, b]).slice(0, count)
        : (await registerUsers(base, count, { prefix: o.prefix, concurrency: o.concurrency })).users;
      return { accounts: users.map(toAccount), seconds: (performance.now() - t0) / 1000 };
    },
    async backlog() {
      return (await scrapeMetrics(base).catch(() => ({}) as Record<string, number>))['kindred_mailbox_depth'];
    },
    problems: () => ({ warnings: 0, errors: 0, last: [] }),
    async stop() {
      await run('deploy/local/down.sh', opts.keepData ? [] : ['--wipe'], env, 180_000);
      if (!opts.keepData) rmSync(dir, { recursive: true, force: true });
    },
  };
}
