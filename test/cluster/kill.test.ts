/**
 * A cluster node killed with SIGKILL: two nodes in this process and one child process
 * (`src/cli.ts start`, configured through the KINDRED_* environment only), on a real
 * nats-server with JetStream, Cassandra and versitygw. The child owns a's actor and
 * holds b's connection; after the kill, the survivors take its shards once its leases
 * lapse, b reconnects to a survivor and the chat goes on.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../src/log.js';
import { startNode, type KindredNode } from '../../src/node.js';
import { place } from '../../src/cluster/placement.js';
import { ShardMap } from '../../src/actors/shards.js';
import { NativeClient } from '../../src/client/native.js';
import { startNats } from '../helpers/nats.js';
import { startCassandra } from '../helpers/cassandra.js';
import { startS3 } from '../helpers/s3.js';
import { api, registerUser, setProfile, testConfig, type TestUser } from '../helpers/server.js';

t.setTimeout(400_000);
const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const nats = await startNats(t, { jetstream: true });
const cassandra = await startCassandra(t);
const s3 = await startS3();
t.teardown(() => s3.close());
const tokenSecret = randomBytes(32).toString('hex');
const keyspace = `kindred_kill_${process.pid}`;
const cluster = {
  enabled: true,
  natsUrls: [nats.url],
  cassandra: { contactPoints: [cassandra.contactPoint], localDataCenter: 'datacenter1', keyspace },
  s3: s3.options('kindred-kill'),
};

async function inProcess(id: string): Promise<{ node: KindredNode; base: string; wsUrl: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), `kindred-${id}-`));
  const node = await startNode(testConfig(dataDir, { nodeId: id, tokenSecret, cluster } as Parameters<typeof testConfig>[1]), createLogger('silent'));
  t.teardown(async () => {
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { node, base: `http://127.0.0.1:${node.httpPort}`, wsUrl: `ws://127.0.0.1:${node.httpPort}/ws` };
}

async function child(id: string): Promise<{ proc: ChildProcess; base: string; wsUrl: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), `kindred-${id}-`));
  const env = {
    ...process.env,
    KINDRED_CLUSTER: '1',
    KINDRED_NODE_ID: id,
    KINDRED_DATA_DIR: dataDir,
    KINDRED_TOKEN_SECRET: tokenSecret,
    KINDRED_HTTP_PORT: '0',
    KINDRED_TCP_PORT: '0',
    KINDRED_XMPP_PORT: '0',
    KINDRED_XMPP_TLS_PORT: '0',
    KINDRED_LOG_LEVEL: 'warn',
    KINDRED_NATS_URLS: nats.url,
    KINDRED_CASSANDRA_CONTACT_POINTS: cassandra.contactPoint,
    KINDRED_CASSANDRA_KEYSPACE: keyspace,
    KINDRED_S3_ENDPOINT: '127.0.0.1',
    KINDRED_S3_PORT: String(s3.port),
    KINDRED_S3_ACCESS_KEY: s3.accessKey,
    KINDRED_S3_SECRET_KEY: s3.secretKey,
    KINDRED_S3_BUCKET: 'kindred-kill',
    KINDRED_S3_REGION: s3.region,
  };
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const end = Date.now() + 60_000;
  for (;;) {
    const m = /HTTP \+ REST\s+http:\/\/127\.0\.0\.1:(\d+)\/v1/.exec(out);
    if (m) return { proc, base: `http://127.0.0.1:${m[1]}`, wsUrl: `ws://127.0.0.1:${m[1]}/ws` };
    if (proc.exitCode !== null || Date.now() > end) throw new Error(`the child node did not start:\n${out}`);
    await sleep(50);
  }
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

const healthy = async (base: string) => (await fetch(`${base}/healthz`).catch(() => undefined))?.status === 200;

async function connect(wsUrl: string, u: TestUser): Promise<NativeClient> {
  const c = await NativeClient.connectWs(wsUrl);
  await c.request('auth', { token: u.token });
  return c;
}

t.test('SIGKILL of a node: its shards move within 10 s and the chat goes on', async (t) => {
  const x = await inProcess('node-x');
  const y = await inProcess('node-y');
  const c = await child('node-c');
  const bases = [x.base, y.base, c.base];
  const all = (nodes: KindredNode[]) => {
    const counts = new Array(256).fill(0);
    for (const n of nodes) for (const s of n.cluster!.shardManager.held()) counts[s]++;
    return counts;
  };
  await until(
    async () => x.node.cluster!.membership.members().length === 3 && (await Promise.all(bases.map(healthy))).every(Boolean) && all([x.node, y.node]).filter((n) => n === 0).length > 0,
    60_000,
    'three healthy nodes',
  );
  const owners = place(256, ['node-c', 'node-x', 'node-y']);
  const shardMap = new ShardMap(256);

  // a: a user whose actor lives on the child
  let a: TestUser;
  for (;;) {
    a = await registerUser(x.base, 'kla');
    if (owners[shardMap.shardOf(a.userId)] === 'node-c') break;
  }
  const b = await registerUser(y.base, 'klb');
  await setProfile(x.base, a);
  await setProfile(y.base, b);
  await api(x.base, 'POST', '/v1/swipes', { token: a.token, json: { targetId: b.userId, kind: 'like' } });
  t.equal((await api(c.base, 'POST', '/v1/swipes', { token: b.token, json: { targetId: a.userId, kind: 'like' } })).body?.matched, true, 'matched through the child');

  const aWs = await connect(x.wsUrl, a);
  t.teardown(() => aWs.close());
  let bWs = await connect(c.wsUrl, b);
  await bWs.request('message.send', { to: a.userId, body: 'from the child' });
  t.match(await aWs.nextEvent((e) => e.type === 'message'), { message: { body: 'from the child' } });

  const killedAt = Date.now();
  c.proc.kill('SIGKILL');
  await until(() => all([x.node, y.node]).every((n) => n === 1), 15_000, 'the survivors to serve every shard');
  const recoveryMs = Date.now() - killedAt;
  t.ok(recoveryMs < 10_000, `survivors serve all 256 shards ${recoveryMs} ms after SIGKILL`);
  bWs.close();
  bWs = await connect(y.wsUrl, b);
  t.teardown(() => bWs.close());
  await bWs.request('message.send', { to: a.userId, body: 'after the kill' });
  t.match(await aWs.nextEvent((e) => e.type === 'message' && e.message.body === 'after the kill'), { message: { from: b.userId } }, "a's session followed its actor off the dead node");
  await aWs.request('message.send', { to: b.userId, body: 'welcome back' });
  t.match(await bWs.nextEvent((e) => e.type === 'message' && e.message.body === 'welcome back'), { message: { from: a.userId } });
  t.comment(`SIGKILL recovery: ${recoveryMs} ms`);
});
