/**
 * The Bus contract on NatsBus against a real nats-server (started here on a free
 * loopback port), an outage (server stopped and restarted on the same port, the
 * same buses reconnect), and two ActorSystems on two connections splitting the
 * shards: actors asked from either side through the broker.
 */
import t from 'tap';
import { NatsBus, type NatsBusStatus } from '../../src/actors/nats-bus.js';
import { ActorSystem, type Actor } from '../../src/actors/system.js';
import { ShardMap } from '../../src/actors/shards.js';
import { ManualClock } from '../../src/actors/clock.js';
import { KindredError } from '../../src/errors.js';
import { startNats } from '../helpers/nats.js';
import { busContract, settle } from './bus-contract.js';
import { codeOf, until } from '../helpers/async.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const nats = await startNats(t);

async function bus(name: string, statuses?: NatsBusStatus[]): Promise<NatsBus> {
  return NatsBus.connect({ servers: [nats.url], name, onStatus: (s) => statuses?.push(s) });
}

busContract(t, 'nats', async () => {
  const a = await bus('contract-a');
  const b = await bus('contract-b');
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
});

t.test('nats: error mapping and close', async (t) => {
  const a = await bus('map-a');
  t.teardown(() => a.close());
  // nats.js sends such subjects as they are, and the server then drops the whole connection
  a.subscribe('still.up', () => 'yes');
  await settle(a);
  t.equal(await codeOf(a.request('bad subject with spaces', {}, 1000)), 'BAD_REQUEST', 'an invalid subject');
  t.equal(await codeOf(a.request('empty..token', {}, 1000)), 'BAD_REQUEST');
  t.equal(await codeOf(a.request('wild.*', {}, 1000)), 'BAD_REQUEST', 'no wildcards in a request');
  t.throws(() => a.subscribe('bad subject', () => 1), { code: 'BAD_REQUEST' });
  a.publish('bad\r\nPUB x 1', {});
  t.equal(await a.request('still.up', {}, 1000), 'yes', 'the connection survived them');
  const big = new Uint8Array(2 * 1024 * 1024); // nats-server's default max_payload is 1 MiB
  t.equal(await codeOf(a.request('too.big', { big }, 1000)), 'PAYLOAD_TOO_LARGE');
  const errors: unknown[] = [];
  const b = await NatsBus.connect({ servers: [nats.url], name: 'map-b', onError: (e) => errors.push(e) });
  t.teardown(() => b.close());
  t.doesNotThrow(() => b.publish('too.big', { big }), 'publish never throws');
  t.equal((errors[0] as KindredError)?.code, 'PAYLOAD_TOO_LARGE', 'it is reported instead');
  t.doesNotThrow(() => b.publish('bad subject', {}));
  t.equal((errors[1] as KindredError)?.code, 'BAD_REQUEST', 'so is an invalid subject');
  b.subscribe('huge.reply', () => ({ big }));
  await settle(b);
  t.equal(await codeOf(a.request('huge.reply', {}, 2000)), 'PAYLOAD_TOO_LARGE', 'a reply too large comes back as an error, not a timeout');

  // close() drains: a request being handled when close starts still gets its reply
  let release!: () => void;
  b.subscribe('slow.close', () => new Promise((r) => (release = () => r('done'))));
  await settle(b);
  const pending = a.request('slow.close', {}, 3000);
  await until(() => release !== undefined, 'the handler to start');
  const closing = b.close();
  await sleep(20);
  release();
  t.equal(await pending, 'done', 'the reply of a handler running at close was sent');
  await closing;
  t.equal(await codeOf(b.request('x', {}, 500)), 'UNAVAILABLE', 'a closed bus');
  t.doesNotThrow(() => b.publish('x', {}));
  t.equal(await codeOf(a.request('slow.close', {}, 2000)), 'UNAVAILABLE', 'its subscriptions are gone');
});

t.test('nats: outage and reconnect', async (t) => {
  const sa: NatsBusStatus[] = [];
  const sb: NatsBusStatus[] = [];
  const a = await bus('outage-a', sa);
  const b = await bus('outage-b', sb);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const events: string[] = [];
  b.subscribe('svc.echo', (p) => ({ echo: p }));
  b.subscribe('events', (p) => void events.push((p as { e: string }).e));
  await settle(a, b);
  t.same(await a.request('svc.echo', 1, 1000), { echo: 1 });
  a.publish('events', { e: 'before' });
  await until(() => events.includes('before'), 'the event before the outage');

  b.subscribe('svc.slow', () => sleep(3000).then(() => 'too late'));
  await settle(b);
  const inFlightStart = Date.now();
  const inFlight = codeOf(a.request('svc.slow', {}, 800)).then((code) => ({ code, took: Date.now() - inFlightStart }));

  await nats.stop();
  // Right at the outage the client may not know yet: UNAVAILABLE or TIMEOUT, within the timeout.
  const t0 = Date.now();
  const first = await codeOf(a.request('svc.echo', 2, 1000));
  t.ok(first === 'UNAVAILABLE' || first === 'TIMEOUT', `first request during the outage: ${first}`);
  t.ok(Date.now() - t0 < 1300, `settled in ${Date.now() - t0} ms (timeout 1000)`);
  const f = await inFlight;
  t.equal(f.code, 'TIMEOUT', 'a request in flight when the connection dropped ends with TIMEOUT');
  t.ok(f.took < 1100, `at its timeout (${f.took} ms, timeout 800)`);
  await until(() => !a.isConnected && !b.isConnected, 'both buses to see the disconnect');
  t.ok(sa.some((s) => s.type === 'disconnect'), 'onStatus reported the disconnect');
  const t1 = Date.now();
  t.equal(await codeOf(a.request('svc.echo', 3, 5000)), 'UNAVAILABLE', 'a request while disconnected');
  t.ok(Date.now() - t1 < 100, `fails fast (${Date.now() - t1} ms), not at its 5 s timeout`);
  t.doesNotThrow(() => a.publish('events', { e: 'during' }), 'publish does not throw while disconnected');
  await t.rejects(a.flush(), { code: 'UNAVAILABLE' }, 'flush reports the outage');
  await sleep(600); // let a few reconnect attempts fail
  t.ok(sa.some((s) => s.type === 'reconnecting'), 'reconnect attempts are reported');

  await nats.start();
  await until(() => a.isConnected && b.isConnected, 'both buses to reconnect', 10_000);
  const rec = sa.find((s) => s.type === 'reconnect') as Extract<NatsBusStatus, { type: 'reconnect' }>;
  t.ok(rec, 'onStatus reported the reconnect');
  t.equal(rec.buffered, 1, 'the publish made during the outage was kept and sent on reconnect');
  t.comment(`outage seen by a: ${rec.outageMs} ms; statuses a: ${sa.map((s) => s.type).join(',')}`);
  await settle(a, b);
  t.same(await a.request('svc.echo', 4, 2000), { echo: 4 }, 'the same buses work again (subscriptions restored)');
  a.publish('events', { e: 'after' });
  await until(() => events.includes('after'), 'an event published after reconnect');
  // The buffered publish reaches b only if b re-subscribed before a flushed: core NATS is at-most-once.
  t.comment(`events received: ${events.join(',')}`);
  t.ok(events.indexOf('during') === -1 || events.indexOf('during') < events.indexOf('after'), 'and never out of order');
});

type Msg = { k: 'whoami' } | { k: 'inc'; by: number } | { k: 'get' } | { k: 'fail' };

t.test('nats: two ActorSystems on two connections split the shards', async (t) => {
  const busA = await bus('node-a');
  const busB = await bus('node-b');
  t.teardown(() => Promise.all([busA.close(), busB.close()]));
  const SHARDS = 8;
  const counts = new Map<string, number>();
  const actor = (owner: string, id: string): Actor<Msg, unknown> => ({
    activate: async () => undefined,
    receive: (m) => {
      switch (m.k) {
        case 'whoami':
          return `${owner}:${id}`;
        case 'inc':
          counts.set(id, (counts.get(id) ?? 0) + m.by);
          return counts.get(id);
        case 'get':
          return counts.get(id) ?? 0;
        case 'fail':
          throw new KindredError('NOT_MATCHED', `${id} says no`);
      }
    },
    canPassivate: () => true,
    passivate: async () => undefined,
  });
  // Each node has its own ShardMap (as separate processes would), with the same assignment.
  const node = (owner: string, b: NatsBus) => {
    const shards = new ShardMap(SHARDS);
    for (let s = 0; s < SHARDS; s++) shards.assign(s, s % 2 === 0 ? 'A' : 'B');
    const sys = new ActorSystem<Msg, unknown>({
      kind: 'user',
      bus: b,
      shards,
      owner,
      create: (id) => actor(owner, id),
      mailboxLimit: 1000,
      idleMs: 60_000,
      askTimeoutMs: 2000,
      clock: new ManualClock(0),
    });
    sys.start();
    t.teardown(() => sys.stop());
    return { sys, shards };
  };
  const A = node('A', busA);
  const B = node('B', busB);
  await settle(busA, busB);

  const ids = Array.from({ length: 24 }, (_, i) => `user-${i}`);
  const owners = new Set(ids.map((id) => A.shards.ownerOfEntity(id)));
  t.same([...owners].sort(), ['A', 'B'], 'the ids span both owners');
  for (const id of ids) {
    const owner = A.shards.ownerOfEntity(id)!;
    t.equal(await A.sys.ask(id, { k: 'whoami' }), `${owner}:${id}`, `${id} asked from A, served by ${owner}`);
    t.equal(await B.sys.ask(id, { k: 'whoami' }), `${owner}:${id}`, `${id} asked from B, served by ${owner}`);
  }
  const liveOnlyAtOwner = ids.filter((id) => A.sys.isActive(id) === (A.shards.ownerOfEntity(id) === 'A') && B.sys.isActive(id) === (A.shards.ownerOfEntity(id) === 'B'));
  t.equal(liveOnlyAtOwner.length, ids.length, 'every actor is live only at its owner');

  // tells from both sides, then asks: per-publisher FIFO through the broker
  const target = ids.find((id) => A.shards.ownerOfEntity(id) === 'B')!;
  for (let i = 0; i < 100; i++) A.sys.tell(target, { k: 'inc', by: 1 });
  t.equal(await A.sys.ask(target, { k: 'get' }), 100, "A's ask comes after A's hundred tells");
  for (let i = 0; i < 50; i++) B.sys.tell(target, { k: 'inc', by: 2 });
  t.equal(await B.sys.ask(target, { k: 'get' }), 200, "and B's after B's fifty");
  await t.rejects(A.sys.ask(target, { k: 'fail' }), { code: 'NOT_MATCHED', message: `${target} says no` }, 'actor errors keep their code');

  // an unowned shard: nobody subscribes, the ask fails fast
  const lost = ids.find((id) => A.shards.ownerOfEntity(id) === 'A')!;
  const shard = A.shards.shardOf(lost);
  A.shards.assign(shard, undefined);
  B.shards.assign(shard, undefined);
  await sleep(20);
  await settle(busA, busB);
  const t0 = Date.now();
  t.equal(await codeOf(B.sys.ask(lost, { k: 'get' })), 'UNAVAILABLE', 'unowned shard → UNAVAILABLE');
  t.ok(Date.now() - t0 < 1000, 'quickly');
  // moved to B: B now serves it
  A.shards.assign(shard, 'B');
  B.shards.assign(shard, 'B');
  await settle(busA, busB);
  t.equal(await A.sys.ask(lost, { k: 'whoami' }), `B:${lost}`, 'after the move, B serves it');
});
