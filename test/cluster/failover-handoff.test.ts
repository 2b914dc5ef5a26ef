/**
 * The actor runtime's side of a shard handoff (src/actors/system.ts), on LocalBus:
 * - `waitForOwner`: an ask for a shard nobody serves yet waits (bounded by its timeout)
 *   for the new owner instead of failing at once; only letters that never reached an
 *   actor are re-sent, so a handler's own error is never retried;
 * - `mayServe`: a node whose lease lapsed refuses letters unprocessed, both new ones and
 *   those already queued in a mailbox (the "slow node" half of at most one live copy).
 */
import t from 'tap';
import { LocalBus } from '../../src/actors/bus.js';
import { ShardMap } from '../../src/actors/shards.js';
import { ActorSystem, neverDelivered, type Actor } from '../../src/actors/system.js';
import { systemClock } from '../../src/actors/clock.js';
import { KindredError } from '../../src/errors.js';
import { codeOf, gate, until } from '../helpers/async.js';
import { failOnLingeringHandles } from '../helpers/exit-watch.js';

// first, so its teardown runs last: a socket or timer left after the teardowns fails the file with a report
failOnLingeringHandles(t);

type Msg = { k: 'get' } | { k: 'fail' } | { k: 'hold' };

function world() {
  const processed: string[] = [];
  // letters are copied through the bus, so a 'hold' waits on this shared gate
  const hold = { until: Promise.resolve() };
  const create = (owner: string) => (id: string): Actor<Msg, unknown> => ({
    activate: async () => undefined,
    receive: async (m) => {
      processed.push(`${owner}:${id}:${m.k}`);
      if (m.k === 'fail') throw new KindredError('UNAVAILABLE', 'storage is down');
      if (m.k === 'hold') await hold.until;
      return owner;
    },
    canPassivate: () => true,
    passivate: async () => undefined,
  });
  return { processed, create, hold };
}

function system(t: { teardown(fn: () => unknown): void }, bus: LocalBus, shards: ShardMap, owner: string, create: (owner: string) => (id: string) => Actor<Msg, unknown>, extra: { waitForOwner?: boolean; mayServe?: (s: number) => boolean; askTimeoutMs?: number } = {}) {
  const s = new ActorSystem<Msg, unknown>({
    kind: 'probe',
    bus,
    shards,
    owner,
    create: create(owner),
    mailboxLimit: 100,
    idleMs: 60_000,
    askTimeoutMs: extra.askTimeoutMs ?? 2000,
    clock: systemClock,
    ...extra,
  });
  s.start();
  t.teardown(() => s.stop());
  return s;
}

t.test('an ask waits for the shard\'s new owner instead of failing', async (t) => {
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  const { create, processed } = world();
  const askerShards = new ShardMap(4);
  const ownerShards = new ShardMap(4);
  const asker = system(t, bus, askerShards, 'asker', create, { waitForOwner: true });
  system(t, bus, ownerShards, 'owner', create);
  const shard = ownerShards.shardOf('u1');

  const started = Date.now();
  const reply = asker.ask('u1', { k: 'get' });
  await new Promise((r) => setTimeout(r, 300));
  ownerShards.assign(shard, 'owner'); // the new owner picks the shard up
  t.equal(await reply, 'owner', 'answered by the new owner');
  t.ok(Date.now() - started >= 300, `waited ${Date.now() - started} ms for it`);
  t.same(processed, ['owner:u1:get'], 'processed once');

  t.equal(await codeOf(asker.ask('u1', { k: 'fail' })), 'UNAVAILABLE', "the actor's own UNAVAILABLE reaches the asker");
  t.equal(processed.filter((p) => p.endsWith(':fail')).length, 1, 'and is not retried: the letter was processed');
});

t.test('no owner within the ask timeout: UNAVAILABLE at the timeout', async (t) => {
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  const { create } = world();
  const asker = system(t, bus, new ShardMap(4), 'asker', create, { waitForOwner: true, askTimeoutMs: 800 });
  const started = Date.now();
  const err = await asker.ask('nobody', { k: 'get' }).catch((e: unknown) => e);
  const took = Date.now() - started;
  t.equal((err as KindredError).code, 'UNAVAILABLE');
  t.ok(neverDelivered(err), 'reported as never delivered');
  t.ok(took >= 400 && took <= 800, `gave up after ${took} ms (timeout 800)`);
});

t.test('without waitForOwner (embedded mode) an unowned shard fails at once', async (t) => {
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  const { create } = world();
  const asker = system(t, bus, new ShardMap(4), 'asker', create);
  const started = Date.now();
  t.equal(await codeOf(asker.ask('nobody', { k: 'get' })), 'UNAVAILABLE');
  t.ok(Date.now() - started < 100, 'at once');
});

t.test('a node whose lease lapsed refuses letters, new and queued, unprocessed', async (t) => {
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  const { create, processed, hold } = world();
  const shards = new ShardMap(4);
  shards.assignAll('n');
  let leaseValid = true;
  const sys = system(t, bus, shards, 'n', create, { waitForOwner: true, mayServe: () => leaseValid });

  const g = gate();
  hold.until = g.promise;
  const held = sys.ask('u', { k: 'hold' });
  await until(() => processed.length === 1, 'the first letter to run');
  const queued = sys.ask('u', { k: 'get' }); // waits in the mailbox behind the held one
  leaseValid = false; // the node stalls past its lease here
  g.open();
  t.equal(await held, 'n', 'the letter already running finishes');
  const queuedErr = await queued.catch((e: unknown) => e);
  t.equal((queuedErr as KindredError).code, 'UNAVAILABLE', 'the queued letter is refused');
  t.match((queuedErr as KindredError).message, /lease lapsed/);
  t.notOk(neverDelivered(queuedErr), 'and not re-sent by the asker (the new owner may have it too)');

  const started = Date.now();
  t.equal(await codeOf(sys.ask('u', { k: 'get' })), 'UNAVAILABLE', 'a new letter is refused');
  t.ok(Date.now() - started < 200, 'at once, without waiting out the ask timeout');
  t.equal(await codeOf(sys.ask('fresh', { k: 'get' })), 'UNAVAILABLE', 'and activates nothing');
  t.notOk(sys.isActive('fresh'));
  t.same(processed, ['n:u:hold'], 'nothing ran after the lease lapsed');
});

t.test('asks waiting on a node that died are given up at once, others keep waiting', async (t) => {
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  const { create, hold } = world();
  const askerShards = new ShardMap(4);
  const ownerShards = new ShardMap(4);
  const asker = system(t, bus, askerShards, 'asker', create, { waitForOwner: true, askTimeoutMs: 5000 });
  system(t, bus, ownerShards, 'owner', create);
  const ids = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
  const onDying = ids.find((id) => ownerShards.shardOf(id) !== ownerShards.shardOf('u1'))!;
  ownerShards.assign(ownerShards.shardOf('u1'), 'owner');
  ownerShards.assign(ownerShards.shardOf(onDying), 'owner');
  // what the asker knows from shard announcements: u1's shard is served by node "dying"
  askerShards.assign(askerShards.shardOf('u1'), 'dying');
  askerShards.assign(askerShards.shardOf(onDying), 'owner');

  const g = gate();
  t.teardown(() => g.open());
  hold.until = g.promise;
  const started = Date.now();
  const lost = asker.ask('u1', { k: 'hold' }).catch((e: unknown) => e);
  const other = asker.ask(onDying, { k: 'hold' });
  await new Promise((r) => setTimeout(r, 100));
  t.equal(asker.abandonAsksTo('nobody'), 0, 'a node with no shard: nothing given up');
  t.equal(asker.abandonAsksTo('dying'), 1, 'the ask waiting on the dead node is given up');
  const err = (await lost) as KindredError;
  t.equal(err.code, 'TIMEOUT');
  t.match(err.message, /may or may not have been processed/);
  t.ok(Date.now() - started < 1000, 'long before the 5 s ask timeout');
  g.open();
  t.equal(await other, 'owner', 'the ask to a live node is answered');
});
