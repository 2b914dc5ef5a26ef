/**
 * deploy/local/up.sh and down.sh for real: a two-node local cluster (nats-server with
 * JetStream, Cassandra 5.0, versitygw, two `dist/cli.js start --cluster` nodes) in a temp
 * state dir on ports below the ephemeral range, so it collides neither with other runs nor
 * with outgoing connections' local ports. Needs `npm run build` first (up.sh starts dist/cli.js).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cassandra from 'cassandra-driver';

t.setTimeout(300_000);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const UP = path.join(ROOT, 'deploy/local/up.sh');
const DOWN = path.join(ROOT, 'deploy/local/down.sh');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

function run(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, seconds: (performance.now() - started) / 1000 }));
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A block of ports for a two-node cluster: B nats, B+1 S3, B+2..3 HTTP, B+4..5 TCP, B+6..9 XMPP,
 * B+10 CQL and B+10010 Cassandra's storage port (up.sh uses CQL+10000). All below 32768.
 */
async function portBlock(): Promise<Record<string, number>> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const b = 10_000 + Math.floor(Math.random() * 1200) * 10;
    const all = [...Array(11).keys()].map((i) => b + i).concat(b + 10_010);
    if ((await Promise.all(all.map(portFree))).every(Boolean)) {
      return { nats: b, s3: b + 1, http: b + 2, tcp: b + 4, xmpp: b + 6, cql: b + 10 };
    }
  }
  throw new Error('no free block of ports found');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function http(base: string, method: string, route: string, body?: unknown, token?: string) {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

const ports = await portBlock();
const dir = mkdtempSync(path.join(tmpdir(), 'kindred-local-cluster-'));
const env: NodeJS.ProcessEnv = {
  ...process.env,
  KINDRED_CLUSTER_DIR: dir,
  KINDRED_LOCAL_NATS_PORT: String(ports.nats),
  KINDRED_LOCAL_S3_PORT: String(ports.s3),
  KINDRED_LOCAL_HTTP_PORT: String(ports.http),
  KINDRED_LOCAL_TCP_PORT: String(ports.tcp),
  KINDRED_LOCAL_XMPP_PORT: String(ports.xmpp),
  KINDRED_LOCAL_CQL_PORT: String(ports.cql),
  KINDRED_LOCAL_LOG_LEVEL: 'warn',
  // schema changes skip flushing the system keyspace: test data only
  CASSANDRA_JVM_EXTRA: '-Dcassandra.unsafesystem=true',
};
// Whatever happens, leave nothing running.
t.teardown(async () => {
  if (existsSync(dir)) await run(DOWN, ['--wipe'], env);
  rmSync(dir, { recursive: true, force: true });
});

const node1 = `http://127.0.0.1:${ports.http}`;
const node2 = `http://127.0.0.1:${ports.http + 1}`;
const pidFiles = ['nats.pid', 'cassandra/cassandra.pid', 's3/versitygw.pid', 'node-1.pid', 'node-2.pid'];
const pids = () => pidFiles.map((f) => Number(readFileSync(path.join(dir, f), 'utf8').trim()));

t.test('bad arguments are refused before anything starts', async (t) => {
  const res = await run(UP, ['three'], env);
  t.equal(res.code, 2);
  t.match(res.stderr, /N must be a number/);
  const down = await run(DOWN, ['--now'], env);
  t.equal(down.code, 2);
  t.match(down.stderr, /usage: down\.sh/);
});

t.test('a taken port fails with a clear message', async (t) => {
  const other = mkdtempSync(path.join(tmpdir(), 'kindred-local-busy-'));
  t.teardown(() => rmSync(other, { recursive: true, force: true }));
  const blocker = net.createServer().listen(ports.nats, '127.0.0.1');
  await new Promise((r) => blocker.once('listening', r));
  t.teardown(() => blocker.close());
  const res = await run(UP, ['1'], { ...env, KINDRED_CLUSTER_DIR: other });
  t.equal(res.code, 3, res.stderr);
  t.match(res.stderr, new RegExp(`ports already in use on 127\\.0\\.0\\.1: nats=${ports.nats}`));
});

t.test('up.sh 2 starts a working two-node cluster', async (t) => {
  const up = await run(UP, ['2'], env);
  t.equal(up.code, 0, up.stderr);
  t.match(up.stdout, /kindred local cluster ready in \d+\.\ds \(2 nodes/);
  t.match(up.stdout, `node-1      http://127.0.0.1:${ports.http}/v1`);
  t.match(up.stdout, `node-2      http://127.0.0.1:${ports.http + 1}/v1`);
  t.comment(`cold start (caches warm, machine shared): ${up.seconds.toFixed(1)} s`);

  for (const base of [node1, node2]) {
    const h = await http(base, 'GET', '/healthz');
    t.equal(h.status, 200, `${base}/healthz`);
    t.same(h.json, { status: 'ok' });
  }

  // One account, created on node 1, used on node 2: shared Cassandra and token secret.
  const username = `deploy${process.pid}`;
  const reg = await http(node1, 'POST', '/v1/register', { username, password: 'correct horse battery' });
  t.equal(reg.status, 201);
  const login = await http(node2, 'POST', '/v1/login', { username, password: 'correct horse battery' });
  t.equal(login.status, 200, JSON.stringify(login.json));
  t.equal(login.json?.userId, reg.json?.userId, 'node 2 logs in the user registered on node 1');
  const wrong = await http(node2, 'POST', '/v1/login', { username, password: 'not the password' });
  t.equal(wrong.status, 401, 'a wrong password is still refused');
  const matches = await http(node2, 'GET', '/v1/matches', undefined, reg.json?.token as string);
  t.equal(matches.status, 200, "node 1's token is accepted by node 2");

  // Kindred created the keyspace with the replication it was configured with (one node here).
  const client = new cassandra.Client({ contactPoints: [`127.0.0.1:${ports.cql}`], localDataCenter: 'datacenter1' });
  t.teardown(() => client.shutdown());
  const ks = await client.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'kindred'");
  t.match(ks.first()?.replication, { class: /NetworkTopologyStrategy/, datacenter1: '1' });
});

t.test('up.sh again starts nothing new', async (t) => {
  const before = pids();
  t.ok(before.every(alive), 'everything runs');
  const again = await run(UP, ['2'], env);
  t.equal(again.code, 0, again.stderr);
  t.notMatch(again.stderr, /starting/, 'nothing was started');
  t.same(pids(), before, 'the same processes');
});

t.test('down.sh --wipe stops every process and deletes the state', async (t) => {
  const before = pids();
  const down = await run(DOWN, ['--wipe'], env);
  t.equal(down.code, 0, down.stderr);
  t.same(before.filter(alive), [], 'no process left');
  t.notOk(existsSync(dir), 'state dir removed');
  t.ok(await portFree(ports.http), 'HTTP port free again');
  const twice = await run(DOWN, ['--wipe'], env);
  t.equal(twice.code, 0, 'stopping a stopped cluster is fine');
});
