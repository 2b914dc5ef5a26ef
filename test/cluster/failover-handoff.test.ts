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

type Msg = { k: 'get' } | { k: 'fail' } | { k: 'hold'; until: Promise<void> };

function world() {
  const processed: string[] = [];
  const create = (owner: string) => (id: string): Actor<Msg, unknown> => ({
    activate: async () => undefined,
    receive: async (m) => {
      processed.push(`${owner}:${id}:${m.k}`);
      if (m.k === 'fail') throw new KindredError('UNAVAILABLE', 'storage is down');
      if (m.k === 'hold') await m.until;
      return owner;
    },
    canPassivate: () => true,
    passivate: async () => undefined,
  });
  return { processed, create };
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
  const { create, processed } = world();
  const shards = new ShardMap(4);
  shards.assignAll('n');
  let leaseValid = true;
  const sys = system(t, bus, shards, 'n', create, { waitForOwner: true, mayServe: () => leaseValid });

  const g = gate();
  const held = sys.ask('u', { k: 'hold', until: g.promise });
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
