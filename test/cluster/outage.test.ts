/**
 * Outages of the services a cluster stands on, with two Kindred nodes (in this process) and
 * two native clients chatting across them the whole time:
 *
 *  1. nats-server restarts (stopped, started again a few seconds later on the same port and
 *     JetStream store): sends during the outage get an error frame at once (UNAVAILABLE or
 *     TIMEOUT, never a hang), the nodes reconnect by themselves, take their shard leases back,
 *     and chat resumes;
 *  2. Cassandra hangs (SIGSTOP, then SIGCONT 8 s later): requests end within the storage
 *     timeout with UNAVAILABLE/TIMEOUT, and service resumes once it answers again;
 *  3. Cassandra is killed (SIGKILL: what a crash leaves) and started again on the same data
 *     dir and ports: requests during the outage get UNAVAILABLE/TIMEOUT promptly (REST 503 with
 *     a reason, error frames on the WebSocket), nothing crashes, the driver reconnects and
 *     service resumes without restarting Kindred.
 *
 * Throughout, every message whose send was acknowledged is in the history at the end
 * (Cassandra's commitlog is `group`: an ack follows an fsync).
 */
import t from 'tap';
import { createLogger } from '../../src/log.js';
import { NativeClient, NativeError } from '../../src/client/native.js';
import { freeze } from '../helpers/cassandra.js';
import { covered, startClusterNode, startClusterServices, waitFor, type ClusterNode } from '../helpers/cluster.js';
import { api, likeEachOther, usersWithProfiles, type TestUser } from '../helpers/server.js';
import { xml, xmppLogin, type XClient } from '../xmpp/helpers.js';
import { failOnLingeringHandles } from '../helpers/exit-watch.js';

// first, so its teardown runs last: a socket or timer left after the teardowns fails the file with a report
failOnLingeringHandles(t);

// generous: a Cassandra (re)start takes ~15 s on a quiet machine and over a minute on a loaded one
t.setTimeout(480_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// a schema that survives the kill (see the helper)
const svc = await startClusterServices(t, 'outage', { cassandra: { unsafeSystem: false } });
const { nats, cassandra } = svc;

type OutageNode = ClusterNode & { natsStatus: string[] };

/** A cluster node whose logger records NATS status changes (silent otherwise), which the test reads. */
async function startWatchedNode(id: string): Promise<OutageNode> {
  const natsStatus: string[] = [];
  const log = createLogger('silent');
  const watched = Object.assign(Object.create(log), {
    info(obj: unknown, ...rest: unknown[]) {
      const s = (obj as { nats?: { type?: string } } | undefined)?.nats;
      if (s?.type) natsStatus.push(s.type);
      return (log.info as (...a: unknown[]) => void)(obj, ...rest);
    },
  }) as typeof log;
  return Object.assign(await startClusterNode(t, svc, id, { log: watched }), { natsStatus });
}

const started = Date.now();
// one after the other: the first creates the keyspace, the second finds it
const nodes = [await startWatchedNode('o1')];
t.comment(`first node up (keyspace created) ${Date.now() - started} ms after starting it`);
nodes.push(await startWatchedNode('o2'));
const [n1, n2] = nodes as [OutageNode, OutageNode];
await waitFor(() => nodes.every((n) => n.node.cluster!.membership.members().length === 2) && covered(nodes), 30_000, 'two nodes splitting the shards');
t.comment(`two nodes up ${Date.now() - started} ms after starting them`);

const [alice, bob] = (await usersWithProfiles(n1, 'oa', 'ob')) as [TestUser, TestUser];
await likeEachOther(n2, alice, bob);

async function connect(n: ClusterNode, u: TestUser): Promise<NativeClient> {
  const c = await NativeClient.connectWs(n.wsUrl);
  await c.request('auth', { token: u.token });
  t.teardown(() => c.close());
  return c;
}
const a = await connect(n1, alice);
const b = await connect(n2, bob);
// Alice also has an XMPP session on o1: what an XMPP client is told during an outage
const ax = await xmppLogin({ service: `xmpp://127.0.0.1:${n1.node.xmppPort}`, domain: 'localhost', username: alice.username, resource: 'outage' });
t.teardown(() => ax.stop());

/** An XMPP chat message during an outage: refused with a stanza error of type `wait`. */
async function xmppRefusal(c: XClient, id: string): Promise<{ condition: string | undefined; type: string | undefined; ms: number }> {
  const t0 = Date.now();
  const errored = c.waitFor((el) => el.is('message') && el.attrs.type === 'error' && el.attrs.id === id, HANG_MS, `an error for ${id}`);
  await c.xmpp.send(xml('message', { type: 'chat', to: `${bob.username}@localhost`, id }, xml('body', {}, `xmpp ${id}`)));
  const err = (await errored).getChild('error');
  return { condition: err?.getChildElements().find((e: any) => e.name !== 'text')?.name, type: err?.attrs.type, ms: Date.now() - t0 };
}

/** Every answer the server gave a send: what was acknowledged, which errors, how long each took. */
interface Outcome {
  body: string;
  ok: boolean;
  code?: string;
  message?: string;
  ms: number;
  at: number;
}
const outcomes: Outcome[] = [];
const acked = new Map<string, string>(); // messageId → body
let seq = 0;
/** client-side limit: an answer later than this is a hang */
const HANG_MS = 15_000;

async function send(from: NativeClient, to: TestUser, label: string): Promise<Outcome> {
  const body = `${label} #${++seq}`;
  const t0 = Date.now();
  try {
    const { messageId } = await from.request('message.send', { to: to.userId, body, clientId: `c${seq}` }, HANG_MS);
    acked.set(messageId, body);
    const o = { body, ok: true, ms: Date.now() - t0, at: t0 };
    outcomes.push(o);
    return o;
  } catch (err) {
    if (!(err instanceof NativeError)) throw err;
    // NativeError('TIMEOUT', 'no reply to …') is the client giving up: the server hung
    const code = err.message.startsWith('no reply to') ? 'HANG' : err.code;
    const o = { body, ok: false, code, message: err.message, ms: Date.now() - t0, at: t0 };
    outcomes.push(o);
    return o;
  }
}

/**
 * Both clients send, alternately, every `everyMs` until stopped: the chat going on during an
 * outage. Stopped at the end of the subtest `t` in any case: a subtest that fails before its
 * stop() would otherwise leave the loop sending forever, and the process would never exit.
 */
function chatter(t: { teardown(fn: () => unknown): void }, label: string, everyMs = 50): { stop: () => Promise<Outcome[]> } {
  let running = true;
  const mine: Outcome[] = [];
  const loop = (async () => {
    let turn = 0;
    while (running) {
      const [from, to] = turn++ % 2 === 0 ? [a, bob] : [b, alice];
      mine.push(await send(from, to, label));
      await sleep(everyMs);
    }
  })();
  const stop = async () => {
    running = false;
    await loop;
    return mine;
  };
  t.teardown(stop);
  return { stop };
}

/** Sends until a message goes through and reaches the peer on the other node. */
async function chatResumes(from: NativeClient, peer: NativeClient, to: TestUser, label: string, ms: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const o = await send(from, to, label);
    if (o.ok) {
      await peer.nextEvent((e) => e.type === 'message' && e.message.body === o.body, 10_000);
      return Date.now() - t0;
    }
    if (Date.now() - t0 > ms) throw new Error(`chat did not resume within ${ms} ms (last: ${o.code} ${o.message})`);
    await sleep(200);
  }
}

const summary = (os: Outcome[]) => {
  const codes = new Map<string, number>();
  for (const o of os) codes.set(o.ok ? 'ok' : o.code!, (codes.get(o.ok ? 'ok' : o.code!) ?? 0) + 1);
  return `${os.length} sends: ${[...codes].map(([k, v]) => `${k}=${v}`).join(' ')}, slowest answer ${Math.max(0, ...os.map((o) => o.ms))} ms`;
};

t.test('chat works before the outages', async (t) => {
  const o = await send(a, bob, 'before');
  t.ok(o.ok, 'a message from o1 is acknowledged');
  t.match(await b.nextEvent((e) => e.type === 'message'), { message: { from: alice.userId, body: o.body } }, 'and reaches o2');
});

t.test('a NATS restart', async (t) => {
  const chat = chatter(t, 'nats');
  await sleep(400);
  const downAt = Date.now();
  await nats.stop();
  t.comment(`nats-server stopped`);

  // during the outage: prompt, clear errors
  await sleep(300);
  const during = await send(a, bob, 'nats-down');
  t.notOk(during.ok, 'a send while NATS is down is refused');
  t.ok(during.code === 'UNAVAILABLE' || during.code === 'TIMEOUT', `with UNAVAILABLE or TIMEOUT (got ${during.code})`);
  t.ok(during.ms < 1000, `at once (${during.ms} ms)`);
  const rest = await api(n2.base, 'POST', '/v1/messages', { token: bob.token, json: { to: alice.userId, body: 'over REST while NATS is down' } });
  t.equal(rest.status, 503, 'REST answers 503');
  t.equal(rest.body?.error?.code, 'UNAVAILABLE');
  t.match(rest.body?.error?.message, /NATS|bus|responder/i, `with a reason: ${rest.body?.error?.message}`);
  const history = await api(n1.base, 'GET', `/v1/conversations/${bob.userId}/messages`, { token: alice.token });
  t.equal(history.status, 200, 'reads that need no actor still work (history from Cassandra)');
  const x = await xmppRefusal(ax, 'x-nats');
  t.same([x.condition, x.type], ['service-unavailable', 'wait'], `an XMPP message gets <service-unavailable/> type wait (${x.ms} ms)`);

  await sleep(2500);
  await nats.start();
  const upAt = Date.now();
  t.comment(`nats-server back after ${upAt - downAt} ms`);
  const reconnectMs = await waitFor(() => nodes.every((n) => n.natsStatus.includes('reconnect')), 15_000, 'both nodes to reconnect');
  t.pass(`both nodes reconnected by themselves ${reconnectMs} ms after the server came back`);
  const leasesMs = await waitFor(() => nodes.every((n) => n.node.cluster!.membership.members().length === 2) && covered(nodes), 20_000, 'every shard leased again');
  t.pass(`every shard is leased and hosted again ${leasesMs} ms after the server came back`);
  const resumeMs = await chatResumes(a, b, bob, 'nats-after', 15_000);
  t.pass(`chat resumes o1 → o2 (${resumeMs} ms)`);
  t.ok((await chatResumes(b, a, alice, 'nats-after', 15_000)) >= 0, 'and o2 → o1');
  const os = await chat.stop();
  t.comment(`while NATS restarted: ${summary(os)}`);
  t.notOk(os.some((o) => o.code === 'HANG'), 'no send hung');
  t.ok(os.every((o) => o.ok || o.code === 'UNAVAILABLE' || o.code === 'TIMEOUT'), 'every refusal is UNAVAILABLE or TIMEOUT');
  t.ok(os.some((o) => !o.ok), 'the outage was seen by the clients');
});

/** Whether every thread of `pid` is stopped (state T in /proc/<pid>/task/<tid>/stat). */
t.test('a Cassandra that hangs (SIGSTOP for 8 s, then SIGCONT)', async (t) => {
  const pid = cassandra.pid;
  const resume = () => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  };
  t.teardown(resume);
  const stoppedAt = Date.now();
  await freeze(pid);
  const during = await send(a, bob, 'cassandra-hung');
  t.notOk(during.ok, 'a send while Cassandra does not answer is refused');
  t.ok(during.code === 'UNAVAILABLE' || during.code === 'TIMEOUT', `with UNAVAILABLE or TIMEOUT (got ${during.code}: ${during.message})`);
  t.ok(during.ms < 8000, `within the storage timeout, not a hang (${during.ms} ms)`);
  const rest = await api(n2.base, 'GET', `/v1/conversations/${alice.userId}/messages`, { token: bob.token });
  t.ok(rest.status === 503 || rest.status === 504, `REST answers ${rest.status}: ${rest.body?.error?.message}`);
  await sleep(Math.max(0, 8000 - (Date.now() - stoppedAt)));
  resume();
  const resumeMs = await chatResumes(a, b, bob, 'cassandra-continued', 30_000);
  t.pass(`chat resumes ${resumeMs} ms after SIGCONT`);
});

t.test('a Cassandra outage (killed, started again on the same data)', async (t) => {
  const chat = chatter(t, 'cassandra');
  await sleep(400);
  const downAt = Date.now();
  await cassandra.kill();
  t.comment('Cassandra killed');

  await sleep(500);
  const during = await send(a, bob, 'cassandra-down');
  t.notOk(during.ok, 'a send while Cassandra is down is refused');
  t.ok(during.code === 'UNAVAILABLE' || during.code === 'TIMEOUT', `with UNAVAILABLE or TIMEOUT (got ${during.code})`);
  t.ok(during.ms < 6000, `promptly (${during.ms} ms)`);
  const rest = await api(n2.base, 'GET', `/v1/conversations/${alice.userId}/messages`, { token: bob.token });
  t.ok(rest.status === 503 || rest.status === 504, `REST answers ${rest.status}`);
  t.match(rest.body?.error?.message, /cassandra|storage|timed out/i, `with a reason: ${rest.body?.error?.message}`);
  const x = await xmppRefusal(ax, 'x-cassandra');
  t.same([x.condition, x.type], ['service-unavailable', 'wait'], `an XMPP message gets <service-unavailable/> type wait (${x.ms} ms)`);
  const reg = await api(n1.base, 'POST', '/v1/register', { json: { username: `late${process.pid}`, password: 'correct horse battery' } });
  t.ok(reg.status === 503 || reg.status === 504, `a registration is refused with ${reg.status}, not lost in a hang`);
  const health = await fetch(`${n1.base}/healthz`);
  t.ok(health.status === 200 || health.status === 503, `the node still serves HTTP (healthz ${health.status})`);

  await cassandra.start();
  const upAt = Date.now();
  t.comment(`Cassandra back after ${upAt - downAt} ms (its restart took ${cassandra.startSeconds.toFixed(1)} s)`);
  const resumeMs = await chatResumes(a, b, bob, 'cassandra-after', 60_000);
  t.pass(`chat resumes without restarting Kindred, ${resumeMs} ms after Cassandra accepted connections again`);
  await chatResumes(b, a, alice, 'cassandra-after', 15_000);
  // Registration is a lightweight transaction (Paxos), whose first rounds after the restart
  // can still be refused with 503 while the node settles: a clear error, then success.
  const regStatuses: number[] = [];
  const regMs = await waitFor(
    async () => {
      // a new name each time: a refused attempt may still have landed
      const reg = await api(n1.base, 'POST', '/v1/register', { json: { username: `late${process.pid}x${regStatuses.length}`, password: 'correct horse battery' } });
      regStatuses.push(reg.status);
      return reg.status === 201;
    },
    20_000,
    'a registration to succeed again',
    250,
  );
  t.ok(regStatuses.every((s) => s === 201 || s === 503), `registration works again after ${regMs} ms (answers: ${regStatuses.join(', ')})`);
  const os = await chat.stop();
  t.comment(`while Cassandra was down: ${summary(os)}`);
  t.notOk(os.some((o) => o.code === 'HANG'), 'no send hung');
  t.ok(os.every((o) => o.ok || o.code === 'UNAVAILABLE' || o.code === 'TIMEOUT'), 'every refusal is UNAVAILABLE or TIMEOUT');
  t.ok(os.some((o) => !o.ok), 'the outage was seen by the clients');
});

t.test('nothing acknowledged was lost', async (t) => {
  const stored = new Map<string, string>();
  let before: string | undefined;
  for (;;) {
    const q = before ? `?limit=100&before=${before}` : '?limit=100';
    // (right after an outage a node may still answer 503 for a moment, until its driver has
    // reconnected: this is about durability, so a refused read is asked again, for up to 15 s)
    let page = await api(n2.base, 'GET', `/v1/conversations/${alice.userId}/messages${q}`, { token: bob.token });
    for (const until = Date.now() + 15_000; page.status === 503 && Date.now() < until; ) {
      await sleep(250);
      page = await api(n2.base, 'GET', `/v1/conversations/${alice.userId}/messages${q}`, { token: bob.token });
    }
    t.equal(page.status, 200, `history page answered (${page.status} ${page.body?.error?.message ?? ''})`);
    if (page.status !== 200) return;
    for (const m of page.body.messages as Array<{ messageId: string; body: string }>) stored.set(m.messageId, m.body);
    if (!page.body.next) break;
    before = page.body.next;
  }
  const missing = [...acked].filter(([id, body]) => stored.get(id) !== body);
  t.same(missing, [], `all ${acked.size} acknowledged messages are in the history (${stored.size} stored)`);
  t.ok(acked.size > 10, 'and there were many');
  t.comment(`overall: ${summary(outcomes)}`);
});
