/**
 * Failover under steady chat load (docs/cluster.md#failover). Three cluster nodes on a
 * real nats-server with JetStream, Cassandra and versitygw: two in this process and one
 * child process (`src/cli.ts start`, configured by KINDRED_* env only) that is killed with
 * SIGKILL while matched pairs chat across the nodes. The killed node hosts some of the
 * users' actors and holds some of their connections.
 *
 * Each user's client keeps an outbox: it sends one message at a time with a clientId,
 * records what the server acknowledged, and on a lost connection reconnects to another
 * node and resends what was not acknowledged, under the same clientId. The test asserts:
 * every acknowledged message is in history read through a survivor, exactly once, and
 * history holds nothing else; every shard is leased by a survivor within 10 s; every user
 * chats again afterwards, with pushes reaching the peer; messages acknowledged by actors
 * on the dead node and resent afterwards get their original ids back (the clientId memory
 * is recovered from storage); the sessions the dead node held are dropped from actors on
 * survivors, so a peer sees that user go offline and what it sends waits as pending.
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
import { NativeClient, NativeError } from '../../src/client/native.js';
import type { KindredEvent } from '../../src/domain/commands.js';
import { startNats } from '../helpers/nats.js';
import { startCassandra } from '../helpers/cassandra.js';
import { startS3 } from '../helpers/s3.js';
import { sleep } from '../helpers/async.js';
import { likeEachOther, registerUser, setProfile, testConfig, type TestUser } from '../helpers/server.js';
import { failOnLingeringHandles } from '../helpers/exit-watch.js';

// first, so its teardown runs last: a socket or timer left after the teardowns fails the file with a report
failOnLingeringHandles(t);

t.setTimeout(300_000);
const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');

/** matched pairs chatting; each of the 2 × PAIRS users sends one message every SEND_EVERY_MS */
const PAIRS = 24;
const SEND_EVERY_MS = 320; // 48 users: ~150 messages/s in total
const CHAT_BEFORE_KILL_MS = 4000;
const CHAT_AFTER_RECOVERY_MS = 4000;

const fileStart = Date.now();
const phases: string[] = [];
const phase = (name: string) => phases.push(`${name} ${((Date.now() - fileStart) / 1000).toFixed(1)} s`);
const nats = await startNats(t, { jetstream: true });
const cassandra = await startCassandra(t);
phase(`Cassandra up`);
const s3 = await startS3();
t.teardown(() => s3.close());
const tokenSecret = randomBytes(32).toString('hex');
const keyspace = `kindred_failover_${process.pid}`;
const cluster = {
  enabled: true,
  natsUrls: [nats.url],
  cassandra: { contactPoints: [cassandra.contactPoint], localDataCenter: 'datacenter1', keyspace },
  s3: s3.options('kindred-failover'),
};

interface NodeHandle {
  id: string;
  base: string;
  wsUrl: string;
}

async function inProcess(id: string): Promise<NodeHandle & { node: KindredNode }> {
  const dataDir = mkdtempSync(join(tmpdir(), `kindred-${id}-`));
  const node = await startNode(testConfig(dataDir, { nodeId: id, tokenSecret, cluster } as Parameters<typeof testConfig>[1]), createLogger('silent'));
  t.teardown(async () => {
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { id, node, base: `http://127.0.0.1:${node.httpPort}`, wsUrl: `ws://127.0.0.1:${node.httpPort}/ws` };
}

async function child(id: string): Promise<NodeHandle & { proc: ChildProcess }> {
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
    KINDRED_S3_BUCKET: 'kindred-failover',
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
    if (m) return { id, proc, base: `http://127.0.0.1:${m[1]}`, wsUrl: `ws://127.0.0.1:${m[1]}/ws` };
    if (proc.exitCode !== null || Date.now() > end) throw new Error(`the child node did not start:\n${out}`);
    await sleep(50);
  }
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
  return Date.now() - start;
}

const healthy = async (base: string) => (await fetch(`${base}/healthz`).catch(() => undefined))?.status === 200;

async function connect(wsUrl: string, u: TestUser): Promise<NativeClient> {
  const c = await NativeClient.connectWs(wsUrl);
  try {
    await c.request('auth', { token: u.token });
  } catch (err) {
    c.close();
    throw err;
  }
  return c;
}

interface Acked {
  clientId: string;
  body: string;
  messageId: string;
  at: number;
}

/**
 * One user's client: sends one message at a time from an outbox, keeps every
 * acknowledgement, and on a lost connection moves on to the next node in its list and
 * resends the unacknowledged head under the same clientId.
 */
class Chatter {
  peer!: Chatter;
  conn: NativeClient | undefined;
  readonly acked = new Map<string, Acked>();
  readonly outbox: Array<{ clientId: string; body: string }> = [];
  readonly received = new Set<string>();
  readonly errors = new Map<string, number>();
  private seq = 0;
  private nodeAt: number;
  producing = true;
  reconnects = 0;

  constructor(
    readonly user: TestUser,
    /** where it connects, in order of preference; it rotates on failures */
    private readonly nodes: NodeHandle[],
    readonly firstNode: string,
  ) {
    this.nodeAt = nodes.findIndex((n) => n.id === firstNode);
  }

  get nodeId(): string {
    return this.nodes[this.nodeAt]!.id;
  }

  private async connection(): Promise<NativeClient> {
    if (this.conn && !this.conn.closed) return this.conn;
    for (;;) {
      const node = this.nodes[this.nodeAt]!;
      try {
        const c = await connect(node.wsUrl, this.user);
        c.on('event', (e: KindredEvent) => {
          if (e.type === 'message' && e.message.from === this.peer.user.userId) this.received.add(e.message.messageId);
        });
        if (this.conn) this.reconnects++;
        this.conn = c;
        return c;
      } catch {
        this.nodeAt = (this.nodeAt + 1) % this.nodes.length;
        await sleep(50);
      }
    }
  }

  async run(): Promise<void> {
    let nextAt = Date.now() + Math.random() * SEND_EVERY_MS;
    for (;;) {
      if (this.producing && Date.now() >= nextAt) {
        const clientId = `${this.user.username}-${++this.seq}`;
        this.outbox.push({ clientId, body: `${clientId} to ${this.peer.user.username}` });
        nextAt += SEND_EVERY_MS;
      }
      const head = this.outbox[0];
      if (!head) {
        if (!this.producing) return;
        await sleep(Math.max(1, nextAt - Date.now()));
        continue;
      }
      const conn = await this.connection();
      try {
        const r = await conn.request('message.send', { to: this.peer.user.userId, body: head.body, clientId: head.clientId }, 15_000);
        const prior = this.acked.get(head.clientId);
        if (prior && prior.messageId !== r.messageId) throw new Error(`${head.clientId} acknowledged twice with different ids`);
        this.acked.set(head.clientId, { ...head, messageId: r.messageId, at: Date.now() });
        this.outbox.shift();
      } catch (err) {
        if (!(err instanceof NativeError)) throw err;
        this.errors.set(err.code, (this.errors.get(err.code) ?? 0) + 1);
        if (err.code === 'CLOSED' || conn.closed) {
          conn.close();
          this.nodeAt = (this.nodeAt + 1) % this.nodes.length;
        } else await sleep(100);
      }
    }
  }

  /** Resends an already acknowledged message under its clientId (a client unsure of the answer). */
  async resend(a: Acked): Promise<string> {
    const conn = await this.connection();
    return (await conn.request('message.send', { to: this.peer.user.userId, body: a.body, clientId: a.clientId })).messageId;
  }
}

t.test('kill -9 of a node under steady chat load: zero acknowledged loss, shards back within 10 s', async (t) => {
  const x = await inProcess('node-x');
  const y = await inProcess('node-y');
  const c = await child('node-c');
  const nodes: NodeHandle[] = [x, y, c];
  const survivors = [x.node, y.node];
  const held = () => {
    const counts = new Array(256).fill(0);
    for (const n of survivors) for (const s of n.cluster!.shardManager.held()) counts[s]++;
    return counts;
  };
  await until(
    async () => x.node.cluster!.membership.members().length === 3 && (await Promise.all(nodes.map((n) => healthy(n.base)))).every(Boolean) && held().some((n) => n === 0),
    60_000,
    'three healthy nodes',
  );
  phase('three nodes healthy');
  const owners = place(256, ['node-c', 'node-x', 'node-y']);
  const shardMap = new ShardMap(256);
  const actorNode = (u: TestUser) => owners[shardMap.shardOf(u.userId)]!;

  // Matched pairs, registered through the in-process nodes (the child hashes passwords at
  // production cost), six pairs at a time; user a of pair p connects to nodes[p % 3], b to
  // nodes[(p + 1) % 3]: a third of the connections are on the child.
  const chatters: Chatter[] = [];
  const pairs: Array<[Chatter, Chatter]> = [];
  const makePair = async (p: number): Promise<[Chatter, Chatter]> => {
    const via = nodes[p % 2]!.base;
    const a = await registerUser(via, `fa${p}x`);
    const b = await registerUser(via, `fb${p}x`);
    await setProfile(via, a);
    await setProfile(via, b);
    await likeEachOther({ base: via }, a, b);
    const ca = new Chatter(a, nodes, nodes[p % 3]!.id);
    const cb = new Chatter(b, nodes, nodes[(p + 1) % 3]!.id);
    ca.peer = cb;
    cb.peer = ca;
    return [ca, cb];
  };
  for (let p = 0; p < PAIRS; p += 6) {
    for (const pair of await Promise.all(Array.from({ length: Math.min(6, PAIRS - p) }, (_, i) => makePair(p + i)))) {
      chatters.push(...pair);
      pairs.push(pair);
    }
  }
  const onDeadActor = chatters.filter((ch) => actorNode(ch.user) === 'node-c');
  const onDeadConn = chatters.filter((ch) => ch.firstNode === 'node-c');
  const affected = chatters.filter((ch) => onDeadActor.includes(ch) || onDeadConn.includes(ch));
  t.ok(onDeadActor.length >= 3, `${onDeadActor.length} of ${chatters.length} users have their actor on the node to be killed`);
  t.ok(onDeadConn.length >= 3, `${onDeadConn.length} users are connected to it`);

  // Presence: p is connected only to the child, q (its match) to node-x; both actors
  // live on survivors, so only the dead node's sessions can keep p "online".
  let p: TestUser;
  let q: TestUser;
  do p = await registerUser(x.base, 'fpx');
  while (actorNode(p) === 'node-c');
  do q = await registerUser(x.base, 'fqx');
  while (actorNode(q) === 'node-c');
  await setProfile(x.base, p);
  await setProfile(x.base, q);
  await likeEachOther(x, p, q);
  const qWs = await connect(x.wsUrl, q);
  t.teardown(() => qWs.close());
  const pWs = await connect(c.wsUrl, p);
  await qWs.nextEvent((e) => e.type === 'presence' && e.userId === p.userId && e.online);

  // Steady load across the three nodes.
  phase('load starts');
  const running = chatters.map((ch) => ch.run());
  t.teardown(() => chatters.forEach((ch) => ch.conn?.close()));
  // at least CHAT_BEFORE_KILL_MS, and until everyone has chatted a little (slow machines)
  const loadStart = Date.now();
  await sleep(CHAT_BEFORE_KILL_MS);
  await until(() => chatters.every((ch) => ch.acked.size >= 3), 30_000, 'every user to chat before the kill');
  const ackedBeforeKill = chatters.reduce((n, ch) => n + ch.acked.size, 0);
  const rateBeforeKill = Math.round((ackedBeforeKill * 1000) / (Date.now() - loadStart));
  const ackedOnDeadActors = onDeadActor.flatMap((ch) => [...ch.acked.values()].slice(0, 2).map((a) => ({ ch, a })));

  const killedAt = Date.now();
  // answers the child sent before it died may still arrive: count acks from when it was reaped
  let diedAt = Infinity;
  c.proc.once('exit', () => (diedAt = Date.now()));
  c.proc.kill('SIGKILL');

  const offline = qWs.nextEvent((e) => e.type === 'presence' && e.userId === p.userId && !e.online, 15_000).then(
    () => Date.now() - killedAt,
    () => undefined,
  );
  await until(() => held().every((n) => n === 1), 10_000, 'the survivors to lease every shard');
  const shardsBackMs = Date.now() - killedAt;
  t.pass(`every shard is leased by exactly one survivor ${shardsBackMs} ms after SIGKILL`);

  const firstAfter = (ch: Chatter) => Math.min(...[...ch.acked.values()].filter((a) => a.at > diedAt).map((a) => a.at));
  await until(() => affected.every((ch) => Number.isFinite(firstAfter(ch))), 20_000, 'every affected user to send again');
  // kill -> first acknowledged send, per group of affected users: [first user, median, last user]
  const spread = (group: Chatter[]) => {
    const ms = group.map((ch) => firstAfter(ch) - killedAt).sort((x, y) => x - y);
    return `${ms[0]} / ${ms[Math.floor(ms.length / 2)]} / ${ms[ms.length - 1]} ms`;
  };
  const actorsBack = spread(onDeadActor);
  const connsBack = spread(onDeadConn);
  const recoveredAt = Date.now();
  await sleep(CHAT_AFTER_RECOVERY_MS);

  // A client that never saw an answer resends under the same clientId: messages stored by
  // actors of the dead node come back with their original ids from the new actors.
  for (const { ch, a } of ackedOnDeadActors) t.equal(await ch.resend(a), a.messageId, `${a.clientId}, stored on the dead node, resent: the same message`);

  // The dead node's sessions are dropped: q sees p offline; a message to p waits as pending.
  const offlineMs = await offline;
  t.ok(offlineMs !== undefined, `q saw p (connected only to the dead node) go offline ${offlineMs} ms after SIGKILL`);
  const presence = await qWs.request('presence.get', { userIds: [p.userId] });
  t.equal(presence.presence[0]?.online, false, 'presence.get: p is offline');
  const toP = await qWs.request('message.send', { to: p.userId, body: 'are you there?' });
  t.ok(pWs.closed, "p's connection died with its node");
  const pAgain = await connect(y.wsUrl, p);
  t.teardown(() => pAgain.close());
  t.match(await pAgain.nextEvent((e) => e.type === 'message' && e.message.messageId === toP.messageId), { offline: true, message: { body: 'are you there?' } }, 'p gets it on reconnecting to a survivor');

  phase('load stops');
  for (const ch of chatters) ch.producing = false;
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(running),
    new Promise((_, reject) => (drainTimer = setTimeout(() => reject(new Error('the outboxes did not drain')), 30_000))),
  ]).finally(() => clearTimeout(drainTimer)); // a pending timer would hold the test process open

  // Zero acknowledged loss, no duplicates: history through a survivor is exactly what was acknowledged.
  const reader = new Map<string, NativeClient>();
  t.teardown(() => reader.forEach((r) => r.close()));
  let acked = 0;
  let lost = 0;
  let duplicated = 0;
  let unexpected = 0;
  for (const [a, b] of pairs) {
    const r = await connect(x.wsUrl, a.user);
    reader.set(a.user.userId, r);
    const history: Array<{ messageId: string; body: string }> = [];
    let before: string | undefined;
    for (;;) {
      const page = await r.request('messages.history', { with: b.user.userId, limit: 200, ...(before ? { before } : {}) });
      history.push(...page.messages);
      if (!page.next) break;
      before = page.next;
    }
    const byId = new Map<string, number>();
    const byBody = new Map<string, number>();
    for (const m of history) {
      byId.set(m.messageId, (byId.get(m.messageId) ?? 0) + 1);
      byBody.set(m.body, (byBody.get(m.body) ?? 0) + 1);
    }
    const want = [...a.acked.values(), ...b.acked.values()];
    acked += want.length;
    for (const m of want) {
      if (!byId.has(m.messageId)) lost++;
    }
    for (const n of byBody.values()) if (n > 1) duplicated += n - 1;
    const wantIds = new Set(want.map((m) => m.messageId));
    for (const m of history) if (!wantIds.has(m.messageId)) unexpected++;
  }
  phase('history checked');
  t.equal(lost, 0, `zero acknowledged messages lost (${acked} acknowledged)`);
  t.equal(duplicated, 0, 'no message stored twice');
  t.equal(unexpected, 0, 'history holds nothing that was not acknowledged');

  // The chat went on: everyone sent after recovery, and those messages reached the peer.
  let pushedLate = 0;
  let late = 0;
  for (const ch of chatters) {
    const after = [...ch.acked.values()].filter((a) => a.at > recoveredAt + 1000);
    t.ok(after.length > 0, `${ch.user.username} chats after the failover`);
    late += after.length;
    pushedLate += after.filter((a) => ch.peer.received.has(a.messageId)).length;
  }
  t.equal(pushedLate, late, `every message acknowledged after recovery was pushed to the peer (${pushedLate}/${late})`);

  const errors = new Map<string, number>();
  for (const ch of chatters) for (const [code, n] of ch.errors) errors.set(code, (errors.get(code) ?? 0) + n);
  const reconnects = chatters.reduce((n, ch) => n + ch.reconnects, 0);
  t.comment(`failover under load: ${chatters.length} users (${onDeadActor.length} actors and ${onDeadConn.length} connections on the killed node), ${acked} messages acknowledged, 0 lost`);
  t.comment(`SIGKILL -> all 256 shards leased by survivors: ${shardsBackMs} ms (the child was reaped after ${diedAt - killedAt} ms)`);
  t.comment(`SIGKILL -> first acknowledged send (first user / median / last user): actor was on the killed node ${actorsBack}; connection was on it ${connsBack}`);
  t.comment(`SIGKILL -> peer sees the dead node's user offline: ${offlineMs} ms`);
  t.comment(`before the kill: ${ackedBeforeKill} messages acknowledged, ${rateBeforeKill} messages/s`);
  t.comment(`timeline from the file's start: ${phases.join(', ')}`);
  t.comment(`client errors during the run: ${JSON.stringify(Object.fromEntries(errors))}; reconnects: ${reconnects}`);
});
