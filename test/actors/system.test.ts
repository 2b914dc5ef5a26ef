/**
 * The virtual-actor runtime: activation, passivation with a manual clock, tellIfActive,
 * reloading state on re-activation, shard moves between two owners on one bus, and
 * the LocalBus contract (copies on every hop, UNAVAILABLE, TIMEOUT, error codes).
 */
import t from 'tap';
import { ActorSystem, type Actor } from '../../src/actors/system.js';
import { LocalBus } from '../../src/actors/bus.js';
import { ShardMap } from '../../src/actors/shards.js';
import { ManualClock } from '../../src/actors/clock.js';
import { KindredError } from '../../src/errors.js';
import { codeOf, gate, sleep, tick, until } from '../helpers/async.js';

type Msg =
  | { k: 'inc'; by: number }
  | { k: 'get' }
  | { k: 'whoami' }
  | { k: 'hold' }
  | { k: 'touch'; note: string }
  | { k: 'mutate'; payload: { list: number[]; nested: { v: string } } };

/** Test world: one "storage" shared by every owner, and a log of lifecycle calls. */
class World {
  readonly store = new Map<string, number>();
  readonly log: string[] = [];
  readonly activations = new Map<string, number>();
  readonly passivations = new Map<string, number>();
  /** live copies of each actor across every system, and the most ever seen */
  readonly live = new Map<string, number>();
  maxLive = 0;
  readonly received: Array<{ owner: string; id: string; msg: Msg }> = [];
  readonly canPassivate = new Map<string, boolean>();
  hold: Promise<void> = Promise.resolve();

  actor(owner: string, id: string): Actor<Msg, unknown> {
    let count = 0;
    let dirty = false;
    return {
      activate: async () => {
        this.log.push(`${owner}:activate:${id}`);
        this.activations.set(id, (this.activations.get(id) ?? 0) + 1);
        const n = (this.live.get(id) ?? 0) + 1;
        this.live.set(id, n);
        this.maxLive = Math.max(this.maxLive, n);
        await tick();
        count = this.store.get(id) ?? 0; // state is loaded from storage
      },
      receive: async (msg) => {
        this.received.push({ owner, id, msg });
        switch (msg.k) {
          case 'inc':
            count += msg.by;
            dirty = true; // kept in memory until passivation
            return count;
          case 'get':
            return count;
          case 'whoami':
            return owner;
          case 'hold':
            await this.hold;
            return 'held';
          case 'touch':
            return msg.note;
          case 'mutate':
            msg.payload.list.push(99);
            msg.payload.nested.v = 'changed by the actor';
            return msg.payload;
        }
      },
      canPassivate: () => this.canPassivate.get(id) ?? true,
      passivate: async () => {
        this.log.push(`${owner}:passivate:${id}`);
        this.passivations.set(id, (this.passivations.get(id) ?? 0) + 1);
        this.live.set(id, (this.live.get(id) ?? 1) - 1);
        if (dirty) this.store.set(id, count); // flushed before being dropped
      },
    };
  }
}

function system(t: { teardown(fn: () => unknown): void }, world: World, bus: LocalBus, shards: ShardMap, owner: string, clock: ManualClock, idleMs = 1000) {
  const s: ActorSystem<Msg, unknown> = new ActorSystem<Msg, unknown>({
    kind: 'probe',
    bus,
    shards,
    owner,
    create: (id) => world.actor(owner, id),
    mailboxLimit: 100,
    idleMs,
    askTimeoutMs: 2000,
    clock,
  });
  s.start();
  t.teardown(() => s.stop());
  return s;
}

function single(t: { teardown(fn: () => unknown): void }, idleMs = 1000) {
  const world = new World();
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  const shards = new ShardMap(16);
  shards.assignAll('n1');
  const clock = new ManualClock(1_000_000);
  return { world, bus, shards, clock, sys: system(t, world, bus, shards, 'n1', clock, idleMs) };
}

t.test('activation on first message, once', async (t) => {
  const { world, sys } = single(t);
  t.notOk(sys.isActive('u1'), 'nothing is active before a message');
  t.equal(sys.activeCount, 0);
  const replies = await Promise.all(Array.from({ length: 20 }, () => sys.ask('u1', { k: 'inc', by: 1 })));
  t.same([...replies].sort((a, b) => (a as number) - (b as number)), Array.from({ length: 20 }, (_, i) => i + 1));
  t.equal(world.activations.get('u1'), 1, 'activated once for twenty concurrent first messages');
  t.ok(sys.isActive('u1'));
  t.equal(sys.activeCount, 1);
  t.notOk(sys.isActive('u2'), 'other actors stay inactive');
});

t.test('passivation after idle, with a manual clock', async (t) => {
  const { world, sys, clock } = single(t, 1000);
  await sys.ask('idle', { k: 'inc', by: 5 });
  clock.advance(999);
  await sys.runPassivationSweep();
  t.ok(sys.isActive('idle'), 'not yet idle long enough');
  await sys.ask('idle', { k: 'get' }); // use refreshes the idle timer
  clock.advance(999);
  await sys.runPassivationSweep();
  t.ok(sys.isActive('idle'), 'a message restarted the idle timer');
  clock.advance(2);
  await sys.runPassivationSweep();
  t.notOk(sys.isActive('idle'), 'passivated once idle for longer than idleMs');
  t.equal(world.passivations.get('idle'), 1, 'passivate() called');
  t.equal(world.store.get('idle'), 5, 'its state was flushed');
  t.equal(sys.activeCount, 0);
});

t.test('no passivation while canPassivate() is false', async (t) => {
  const { world, sys, clock } = single(t, 1000);
  await sys.ask('online', { k: 'inc', by: 1 });
  await sys.ask('offline', { k: 'inc', by: 1 });
  world.canPassivate.set('online', false);
  clock.advance(10_000);
  await sys.runPassivationSweep();
  t.ok(sys.isActive('online'), 'kept: it holds live sessions');
  t.notOk(sys.isActive('offline'), 'the other idle actor went');
  t.equal(world.passivations.get('online'), undefined);
  world.canPassivate.set('online', true);
  await sys.runPassivationSweep();
  t.notOk(sys.isActive('online'), 'passivated once it allows it');
});

t.test('no passivation while a message is being processed', async (t) => {
  const { world, sys, clock } = single(t, 1000);
  const g = gate();
  world.hold = g.promise;
  const held = sys.ask('busy', { k: 'hold' });
  await until(() => world.received.some((r) => r.id === 'busy'), 'the hold to start');
  clock.advance(10_000);
  await sys.runPassivationSweep();
  t.ok(sys.isActive('busy'), 'a busy mailbox is not idle');
  g.open();
  t.equal(await held, 'held');
});

t.test('re-activation after passivation reloads state', async (t) => {
  const { world, sys, clock } = single(t, 1000);
  await sys.ask('r', { k: 'inc', by: 3 });
  await sys.ask('r', { k: 'inc', by: 4 });
  clock.advance(5000);
  await sys.runPassivationSweep();
  t.notOk(sys.isActive('r'));
  t.equal(world.store.get('r'), 7);
  t.equal(await sys.ask('r', { k: 'get' }), 7, 'the new activation loaded what the old one flushed');
  t.equal(await sys.ask('r', { k: 'inc', by: 1 }), 8);
  t.equal(world.activations.get('r'), 2);
  t.same(world.log.filter((l) => l.endsWith(':r')), ['n1:activate:r', 'n1:passivate:r', 'n1:activate:r']);
});

t.test('tellIfActive drops messages for inactive actors', async (t) => {
  const { world, sys, clock } = single(t, 1000);
  sys.tellIfActive('ghost', { k: 'touch', note: 'dropped' });
  await tick();
  await sleep(5);
  t.notOk(sys.isActive('ghost'), 'not activated by tellIfActive');
  t.equal(world.activations.get('ghost'), undefined);
  t.equal(world.received.length, 0, 'and nothing was received');

  await sys.ask('ghost', { k: 'get' });
  sys.tellIfActive('ghost', { k: 'touch', note: 'delivered' });
  await until(() => world.received.some((r) => r.msg.k === 'touch'), 'the tell to arrive');
  t.same(world.received.filter((r) => r.msg.k === 'touch').map((r) => (r.msg as { note: string }).note), ['delivered']);

  clock.advance(5000);
  await sys.runPassivationSweep();
  t.notOk(sys.isActive('ghost'));
  sys.tellIfActive('ghost', { k: 'touch', note: 'dropped again' });
  await sleep(5);
  t.notOk(sys.isActive('ghost'), 'not re-activated either');
  t.equal(world.activations.get('ghost'), 1);

  sys.tell('ghost', { k: 'touch', note: 'plain tell' });
  await until(() => sys.isActive('ghost'), 'a plain tell to activate');
  t.equal(world.activations.get('ghost'), 2, 'a plain tell does activate');
});

t.test('shard reassignment between two owners on one bus', async (t) => {
  const world = new World();
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  const shards = new ShardMap(4);
  shards.assignAll('A');
  const clock = new ManualClock(0);
  const a = system(t, world, bus, shards, 'A', clock, 60_000);
  const b = system(t, world, bus, shards, 'B', clock, 60_000);
  const id = 'mover';
  const shard = shards.shardOf(id);
  const other = ['x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7', 'x8'].find((x) => shards.shardOf(x) !== shard)!;

  t.equal(await b.ask(id, { k: 'whoami' }), 'A', 'asked through B, served by A: the owner of the shard');
  t.equal(await a.ask(id, { k: 'inc', by: 10 }), 10);
  t.equal(await a.ask(other, { k: 'inc', by: 1 }), 1);
  t.ok(a.isActive(id));
  t.notOk(b.isActive(id), 'B holds no copy');

  // The proper handover: unassign, let the old owner drain and passivate, then assign.
  const g = gate();
  world.hold = g.promise;
  const inFlight = a.ask(id, { k: 'hold' });
  await until(() => world.received.some((r) => r.msg.k === 'hold'), 'the held message to start');
  shards.assign(shard, undefined);
  t.equal(await codeOf(b.ask(id, { k: 'get' })), 'UNAVAILABLE', 'nobody serves an unassigned shard');
  t.ok(a.isActive(id), 'the old owner finishes what it accepted before passivating');
  g.open();
  t.equal(await inFlight, 'held', 'the accepted message completed');
  await until(() => !a.isActive(id), 'A to passivate the actor');
  t.equal(world.store.get(id), 10, 'A flushed its state');
  t.ok(a.isActive(other), "actors of A's other shards are untouched");

  shards.assign(shard, 'B');
  t.equal(await a.ask(id, { k: 'whoami' }), 'B', 'asked through A, now served by B');
  t.equal(await a.ask(id, { k: 'get' }), 10, 'B loaded the state A flushed');
  t.ok(b.isActive(id));
  t.notOk(a.isActive(id));
  t.equal(await b.ask(other, { k: 'whoami' }), 'A', 'the other shard stayed with A');

  // A direct move (no unassign step): the old owner stops serving at once.
  t.equal(await a.ask(id, { k: 'inc', by: 5 }), 15);
  shards.assign(shard, 'A');
  await until(() => !b.isActive(id), 'B to passivate the actor');
  t.equal(await b.ask(id, { k: 'whoami' }), 'A');
  t.equal(await b.ask(id, { k: 'get' }), 15, 'A reloaded what B flushed');
  t.notOk(b.isActive(id));

  t.equal(world.maxLive, 1, 'never more than one live copy of any actor');
  t.same(world.log.filter((l) => l.endsWith(`:${id}`)), [`A:activate:${id}`, `A:passivate:${id}`, `B:activate:${id}`, `B:passivate:${id}`, `A:activate:${id}`]);
  const servedBy = world.received.filter((r) => r.id === id).map((r) => r.owner);
  t.same(servedBy, ['A', 'A', 'A', 'B', 'B', 'B', 'A', 'A'], 'every message was served by exactly the owner of the time');
});

t.test('stop() drains mailboxes and passivates everything', async (t) => {
  const world = new World();
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  const shards = new ShardMap(4);
  shards.assignAll('n');
  const sys = system(t, world, bus, shards, 'n', new ManualClock(0));
  const g = gate();
  world.hold = g.promise;
  await sys.ask('s1', { k: 'inc', by: 2 });
  const held = sys.ask('s1', { k: 'hold' });
  await until(() => world.received.some((r) => r.msg.k === 'hold'), 'the hold');
  const stopped = sys.stop();
  t.equal(await codeOf(sys.ask('s2', { k: 'get' })), 'UNAVAILABLE', 'no new messages once stopping');
  g.open();
  await stopped;
  t.equal(await held, 'held', 'the accepted message completed');
  t.equal(sys.activeCount, 0);
  t.equal(world.store.get('s1'), 2, 'state flushed on stop');
});

t.test('bus serialisation: nobody shares an object with anybody', async (t) => {
  const bus = new LocalBus();
  t.teardown(() => bus.close());

  // request: the handler mutates its payload, and later the object it returned.
  let returned: { list: number[] } | undefined;
  bus.subscribe('s.req', (payload) => {
    const p = payload as { list: number[]; nested: { v: string } };
    p.list.push(4);
    p.nested.v = 'mutated';
    returned = { list: [1] };
    return returned;
  });
  const sent = { list: [1, 2, 3], nested: { v: 'original' } };
  const reply = (await bus.request('s.req', sent, 1000)) as { list: number[] };
  t.same(sent, { list: [1, 2, 3], nested: { v: 'original' } }, "the sender's object is untouched");
  returned!.list.push(2);
  t.same(reply, { list: [1] }, "the reply is a copy, not the handler's object");

  // publish: every subscriber gets its own copy.
  const seen: unknown[] = [];
  bus.subscribe('s.pub', (payload) => {
    (payload as { n: number[] }).n.push(100);
    seen.push(payload);
  });
  bus.subscribe('s.pub', (payload) => void seen.push(payload));
  const event = { n: [1] };
  bus.publish('s.pub', event);
  event.n.push(2); // the publisher changing its object afterwards does not leak either
  await tick();
  t.same(seen, [{ n: [1, 100] }, { n: [1] }]);
  t.same(event, { n: [1, 2] });

  // Only plain data crosses: class instances and functions do not survive.
  class Secret {
    hidden = 'x';
    reveal() {
      return this.hidden;
    }
  }
  bus.subscribe('s.class', (p) => [p instanceof Secret, typeof (p as Secret).reveal]);
  t.same(await bus.request('s.class', new Secret(), 1000), [false, 'undefined']);
});

t.test('bus serialisation through an actor', async (t) => {
  const { sys } = single(t);
  const payload = { list: [1], nested: { v: 'mine' } };
  const reply = (await sys.ask('m', { k: 'mutate', payload })) as typeof payload;
  t.same(payload, { list: [1], nested: { v: 'mine' } }, "the actor's mutation did not reach the sender");
  t.same(reply, { list: [1, 99], nested: { v: 'changed by the actor' } });
  reply.list.push(7);
  t.same(await sys.ask('m', { k: 'get' }), 0, 'nor does mutating the reply reach the actor');
});

t.test('bus request errors: UNAVAILABLE, TIMEOUT, codes across the bus', async (t) => {
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  t.equal(await codeOf(bus.request('nobody.home', { x: 1 }, 1000)), 'UNAVAILABLE', 'no subscriber');
  const sub = bus.subscribe('once.here', () => 'hi');
  t.equal(await bus.request('once.here', {}, 1000), 'hi');
  sub.unsubscribe();
  t.equal(await codeOf(bus.request('once.here', {}, 1000)), 'UNAVAILABLE', 'after the only subscriber left');

  const g = gate();
  bus.subscribe('slow', async () => {
    await g.promise;
    return 'late';
  });
  const slow = bus.request('slow', {}, 50);
  try {
    await slow;
    t.fail('should time out');
  } catch (err) {
    t.equal((err as KindredError).code, 'TIMEOUT');
    t.match((err as KindredError).message, /slow/, 'naming the subject');
  }
  g.open();

  bus.subscribe('throws.kindred', () => {
    throw new KindredError('RATE_LIMITED', 'slow down');
  });
  bus.subscribe('rejects.plain', async () => {
    throw new TypeError('x is undefined');
  });
  await t.rejects(bus.request('throws.kindred', {}, 1000), { code: 'RATE_LIMITED', message: 'slow down' });
  await t.rejects(bus.request('rejects.plain', {}, 1000), { code: 'INTERNAL' });

  // publish to nobody is fine, and a failing subscriber does not affect the publisher
  t.doesNotThrow(() => bus.publish('nobody.home', { x: 1 }));
  bus.subscribe('pub.fails', () => {
    throw new Error('boom');
  });
  t.doesNotThrow(() => bus.publish('pub.fails', {}));
  await tick();

  await bus.close();
  t.equal(await codeOf(bus.request('once.here', {}, 1000)), 'UNAVAILABLE', 'a closed bus');
});

t.test('actor ask TIMEOUT on a slow actor, and the actor carries on', async (t) => {
  const world = new World();
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  const shards = new ShardMap(4);
  shards.assignAll('n');
  const sys = new ActorSystem<Msg, unknown>({
    kind: 'probe',
    bus,
    shards,
    owner: 'n',
    create: (id) => world.actor('n', id),
    mailboxLimit: 10,
    idleMs: 60_000,
    askTimeoutMs: 60,
    clock: new ManualClock(0),
  });
  sys.start();
  t.teardown(() => sys.stop());
  const g = gate();
  world.hold = g.promise;
  t.equal(await codeOf(sys.ask('slowpoke', { k: 'hold' })), 'TIMEOUT');
  const next = sys.ask('slowpoke', { k: 'inc', by: 1 });
  g.open();
  t.equal(await next, 1, 'the next message is answered once the slow one finishes');
});
