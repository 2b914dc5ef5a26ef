/**
 * The actor mailbox, on its own and inside an ActorSystem on a LocalBus: one message
 * at a time, FIFO, bounded with OVERLOADED, and one failing message never stops the rest.
 */
import t from 'tap';
import { Mailbox, later } from '../../src/actors/mailbox.js';
import { ActorSystem, type Actor } from '../../src/actors/system.js';
import { LocalBus } from '../../src/actors/bus.js';
import { ShardMap } from '../../src/actors/shards.js';
import { ManualClock } from '../../src/actors/clock.js';
import { KindredError } from '../../src/errors.js';
import { codeOf, gate, sleep, tick } from '../helpers/async.js';

// ── Mailbox alone ──────────────────────────────────────────────────────────

t.test('Mailbox: one message at a time, in order', async (t) => {
  let inside = 0;
  let maxInside = 0;
  const seen: number[] = [];
  const box = new Mailbox<number, number>(1000, async (n) => {
    inside++;
    maxInside = Math.max(maxInside, inside);
    await sleep(n % 3); // uneven work, so overlap would show
    await tick();
    seen.push(n);
    inside--;
    return n * 2;
  });
  const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => box.post(i)));
  t.equal(maxInside, 1, 'never two process() calls at once');
  t.same(seen, Array.from({ length: 200 }, (_, i) => i), 'FIFO');
  t.same(replies, Array.from({ length: 200 }, (_, i) => i * 2), 'each post resolves with its own result');
  t.ok(box.idle);
  t.equal(box.depth, 0);
});

t.test('Mailbox: the overlap counter does detect overlap when processing is concurrent', async (t) => {
  // Control for the test above: two mailboxes run at the same time.
  let inside = 0;
  let maxInside = 0;
  const work = async () => {
    inside++;
    maxInside = Math.max(maxInside, inside);
    await sleep(2);
    inside--;
  };
  const a = new Mailbox<number, void>(10, work);
  const b = new Mailbox<number, void>(10, work);
  await Promise.all([a.post(1), b.post(1), a.post(2), b.post(2)]);
  t.equal(maxInside, 2);
});

t.test('Mailbox: bounded, the overflow is OVERLOADED and accepted messages still run', async (t) => {
  const g = gate();
  const done: string[] = [];
  const box = new Mailbox<string, string>(2, async (m) => {
    if (m === 'first') await g.promise;
    done.push(m);
    return m.toUpperCase();
  });
  const first = box.post('first');
  await tick();
  t.notOk(box.idle, 'busy with the first message');
  const second = box.post('second');
  const third = box.post('third');
  t.equal(box.depth, 3, 'one running and two queued');
  const fourth = box.post('fourth');
  t.equal(await codeOf(fourth), 'OVERLOADED', 'the queue is full');
  await fourth.catch((err: KindredError) => t.equal(err.message, 'actor mailbox is full'));
  t.equal(box.depth, 3, 'the refused message was not queued');
  g.open();
  t.same(await Promise.all([first, second, third]), ['FIRST', 'SECOND', 'THIRD']);
  t.same(done, ['first', 'second', 'third'], 'the refused message never ran');
  t.equal(await box.post('again'), 'AGAIN', 'accepts again once drained');
});

t.test('Mailbox: a failing message does not stop later ones', async (t) => {
  const processed: number[] = [];
  const box = new Mailbox<number, number>(100, (n) => {
    if (n === 3) throw new KindredError('CONFLICT', 'three is a conflict'); // synchronous throw
    if (n === 5) return Promise.reject(new Error('five exploded')); // rejected promise
    processed.push(n);
    return n;
  });
  const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => box.post(i)));
  t.same(processed, [0, 1, 2, 4, 6, 7]);
  t.equal(results[3]!.status, 'rejected');
  t.equal(((results[3] as PromiseRejectedResult).reason as KindredError).code, 'CONFLICT');
  t.equal(((results[5] as PromiseRejectedResult).reason as Error).message, 'five exploded');
  t.same(results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<number>).value), [0, 1, 2, 4, 6, 7]);
  t.ok(box.idle);
});

// ── The same guarantees through an ActorSystem on a LocalBus ───────────────

interface Counters {
  inside: Map<string, number>;
  maxInside: Map<string, number>;
  order: Map<string, number[]>;
  activations: Map<string, number>;
  globalInside: number;
  maxGlobalInside: number;
}

type Msg = { k: 'work'; seq: number; ms: number } | { k: 'block' } | { k: 'fail'; how: 'kindred' | 'plain' } | { k: 'count' };

function makeSystem(t: { teardown(fn: () => unknown): void }, opts: { mailboxLimit?: number; activateMs?: number; blocker?: Promise<void> } = {}) {
  const c: Counters = { inside: new Map(), maxInside: new Map(), order: new Map(), activations: new Map(), globalInside: 0, maxGlobalInside: 0 };
  const bus = new LocalBus();
  const shards = new ShardMap(8);
  shards.assignAll('node-a');
  const clock = new ManualClock(1000);
  const system: ActorSystem<Msg, unknown> = new ActorSystem<Msg, unknown>({
    kind: 'test',
    bus,
    shards,
    owner: 'node-a',
    mailboxLimit: opts.mailboxLimit ?? 1000,
    idleMs: 60_000,
    askTimeoutMs: 5000,
    clock,
    create: (id): Actor<Msg, unknown> => {
      let activated = false;
      let handled = 0;
      return {
        async activate() {
          c.activations.set(id, (c.activations.get(id) ?? 0) + 1);
          await sleep(opts.activateMs ?? 0);
          activated = true;
        },
        async receive(msg) {
          if (!activated) throw new Error('receive before activate finished');
          const n = (c.inside.get(id) ?? 0) + 1;
          c.inside.set(id, n);
          c.maxInside.set(id, Math.max(c.maxInside.get(id) ?? 0, n));
          c.globalInside++;
          c.maxGlobalInside = Math.max(c.maxGlobalInside, c.globalInside);
          try {
            switch (msg.k) {
              case 'work':
                await sleep(msg.ms);
                await tick();
                (c.order.get(id) ?? c.order.set(id, []).get(id)!).push(msg.seq);
                handled++;
                return { seq: msg.seq };
              case 'block':
                await opts.blocker;
                handled++;
                return 'unblocked';
              case 'fail':
                if (msg.how === 'kindred') throw new KindredError('NOT_MATCHED', 'deliberate');
                throw new Error('a bug with secret details');
              case 'count':
                return handled;
            }
          } finally {
            c.inside.set(id, c.inside.get(id)! - 1);
            c.globalInside--;
          }
        },
        canPassivate: () => true,
        passivate: async () => undefined,
      };
    },
  });
  system.start();
  t.teardown(async () => {
    await system.stop();
    await bus.close();
  });
  return { system, c, bus };
}

t.test('ActorSystem: no two receive() calls overlap for one actor; different actors do run concurrently', async (t) => {
  const { system, c } = makeSystem(t);
  const asks: Promise<unknown>[] = [];
  for (let i = 0; i < 60; i++) {
    for (const id of ['a', 'b', 'c']) asks.push(system.ask(id, { k: 'work', seq: i, ms: i % 4 }));
    system.tell('a', { k: 'work', seq: 1000 + i, ms: 0 });
  }
  await Promise.all(asks);
  while ((c.order.get('a')?.length ?? 0) < 120) await sleep(5);
  for (const id of ['a', 'b', 'c']) t.equal(c.maxInside.get(id), 1, `actor ${id}: one message at a time`);
  t.ok(c.maxGlobalInside > 1, `the counter can see overlap: ${c.maxGlobalInside} actors were busy at once`);
});

t.test('ActorSystem: per-actor FIFO for asks and tells from one sender', async (t) => {
  const { system, c } = makeSystem(t);
  const asks: Promise<unknown>[] = [];
  for (let seq = 0; seq < 300; seq++) {
    if (seq % 2) system.tell('fifo', { k: 'work', seq, ms: 0 });
    else asks.push(system.ask('fifo', { k: 'work', seq, ms: seq % 3 === 0 ? 1 : 0 }));
  }
  const replies = (await Promise.all(asks)) as Array<{ seq: number }>;
  t.same(replies.map((r) => r.seq), Array.from({ length: 150 }, (_, i) => i * 2), 'each ask gets its own reply');
  while ((c.order.get('fifo')?.length ?? 0) < 300) await sleep(5);
  t.same(c.order.get('fifo'), Array.from({ length: 300 }, (_, i) => i), 'processed in send order');
});

t.test('ActorSystem: activation happens once, even for many concurrent first messages', async (t) => {
  const { system, c } = makeSystem(t, { activateMs: 30 });
  const asks = Array.from({ length: 50 }, (_, seq) => system.ask('late', { k: 'work', seq, ms: 0 }));
  for (let seq = 50; seq < 100; seq++) system.tell('late', { k: 'work', seq, ms: 0 });
  t.equal(system.isActive('late') || (await tick(), system.isActive('late')), true, 'active right away, while activate() runs');
  await Promise.all(asks);
  while ((c.order.get('late')?.length ?? 0) < 100) await sleep(5);
  t.equal(c.activations.get('late'), 1, 'activate() called exactly once');
  t.same(c.order.get('late'), Array.from({ length: 100 }, (_, i) => i), 'and no message was lost or reordered while it ran');
  t.equal(system.activeCount, 1);
});

t.test('ActorSystem: a full mailbox answers OVERLOADED to the sender', async (t) => {
  const blocker = gate();
  const { system } = makeSystem(t, { mailboxLimit: 3, blocker: blocker.promise });
  const first = system.ask('busy', { k: 'block' });
  while (system.mailboxDepth < 1) await tick();
  await tick();
  const more = Array.from({ length: 6 }, (_, seq) => system.ask('busy', { k: 'work', seq, ms: 0 }));
  const settledEarly = await Promise.race([Promise.allSettled(more.slice(3)), sleep(2000).then(() => 'hung')]);
  t.not(settledEarly, 'hung', 'the overflow is refused at once, not queued');
  const overflow = (settledEarly as PromiseSettledResult<unknown>[]).map((r) => (r.status === 'rejected' ? (r.reason as KindredError).code : 'accepted'));
  t.same(overflow, ['OVERLOADED', 'OVERLOADED', 'OVERLOADED'], 'three queued, the rest OVERLOADED');
  t.equal(system.mailboxDepth, 4, 'one running and three queued');
  blocker.open();
  t.equal(await first, 'unblocked');
  const accepted = (await Promise.all(more.slice(0, 3))) as Array<{ seq: number }>;
  t.same(accepted.map((r) => r.seq), [0, 1, 2], 'the accepted ones all ran');
  t.same(await system.ask('busy', { k: 'count' }), 4, 'exactly the accepted messages were handled');
});

t.test('ActorSystem: an error in one message does not stop later ones', async (t) => {
  const { system } = makeSystem(t);
  t.same(await system.ask('x', { k: 'work', seq: 1, ms: 0 }), { seq: 1 });
  const kindred = system.ask('x', { k: 'fail', how: 'kindred' });
  const plain = system.ask('x', { k: 'fail', how: 'plain' });
  const after = system.ask('x', { k: 'work', seq: 2, ms: 0 });
  try {
    await kindred;
    t.fail('should reject');
  } catch (err) {
    t.equal((err as KindredError).code, 'NOT_MATCHED', 'a KindredError keeps its code across the bus');
    t.equal((err as KindredError).message, 'deliberate');
  }
  try {
    await plain;
    t.fail('should reject');
  } catch (err) {
    t.equal((err as KindredError).code, 'INTERNAL', 'any other error becomes INTERNAL');
    t.notMatch((err as KindredError).message, /secret/, 'without leaking its details');
  }
  t.same(await after, { seq: 2 }, 'the next message is processed');
  t.equal(await system.ask('x', { k: 'count' }), 2, 'the actor kept its state');
});

t.test('a letter past its deadline is dropped unprocessed with TIMEOUT', async (t) => {
  let now = 1000;
  const processed: number[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const box = new Mailbox<number, number>(10, async (n) => {
    if (n === 0) await gate;
    processed.push(n);
    return n;
  }, () => now);
  const first = box.post(0);
  const expired = box.post(1, 1500);
  const fresh = box.post(2, 5000);
  now = 2000; // the asker of letter 1 gave up while letter 0 was being processed
  release();
  t.equal(await first, 0);
  await t.rejects(expired, { code: 'TIMEOUT' });
  t.equal(await fresh, 2);
  t.same(processed, [0, 2], 'the expired letter never reached the actor');
});

t.test('later(): the next letter runs while a deferred reply settles, and replies keep their own outcome', async (t) => {
  const order: string[] = [];
  let finishWrite!: (v: string) => void;
  const box = new Mailbox<string, unknown>(10, (m) => {
    order.push(`start ${m}`);
    if (m === 'write') return later(new Promise<string>((r) => (finishWrite = r)));
    return `done ${m}`;
  });
  const write = box.post('write');
  const read = box.post('read');
  t.equal(await read, 'done read', 'the second letter did not wait for the first reply');
  t.same(order, ['start write', 'start read']);
  finishWrite('written');
  t.equal(await write, 'written');
  const failing = new Mailbox<string, unknown>(10, () => later(Promise.reject(new Error('disk'))));
  await t.rejects(failing.post('x'), { message: 'disk' }, 'a deferred failure rejects that letter');
});
