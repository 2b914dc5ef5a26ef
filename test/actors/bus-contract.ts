/**
 * The Bus contract (src/actors/bus.ts): every implementation must pass this suite.
 *
 *   busContract(t, 'local', async () => { const bus = new LocalBus(); return { a: bus, b: bus, close: () => bus.close() }; });
 *
 * `makeBuses` is called once per subtest and returns two handles, as two nodes
 * would hold (for LocalBus both are the same instance); the subtest closes them.
 * Subscriptions are made "effective" before other handles publish by `settle()`:
 * a bus that has a `flush()` (NatsBus: the server has processed our SUBs) is
 * flushed, others just let a macrotask pass.
 */
import type { Test } from 'tap';
import { HandOver, handOver, type Bus } from '../../src/actors/bus.js';
import { KindredError } from '../../src/errors.js';
import { codeOf, gate, sleep, until } from '../helpers/async.js';

export interface BusPair {
  a: Bus;
  b: Bus;
  close(): Promise<void>;
}

export async function settle(...buses: Bus[]): Promise<void> {
  for (const bus of new Set(buses)) await (bus as { flush?: () => Promise<void> }).flush?.();
  await new Promise((r) => setImmediate(r));
}

export function busContract(t: Test, name: string, makeBuses: () => Promise<BusPair>): void {
  let n = 0;
  /** subjects unique per subtest, so a late message of one test never reaches another */
  const subj = (s: string) => `contract.${name}.${++n}.${s}`;

  const withBuses = (title: string, fn: (t: Test, p: BusPair) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const pair = await makeBuses();
      t.teardown(() => pair.close());
      await fn(t, pair);
    });

  withBuses('publish reaches every plain subscriber, on both handles', async (t, { a, b }) => {
    const s = subj('fanout');
    const got: Array<[string, unknown]> = [];
    a.subscribe(s, (p, subject) => void got.push(['a1', p], ['subject', subject]));
    a.subscribe(s, (p) => void got.push(['a2', p]));
    b.subscribe(s, (p) => void got.push(['b1', p]));
    a.subscribe(subj('other'), () => void got.push(['wrong', null]));
    await settle(a, b);
    a.publish(s, { n: 1 });
    b.publish(s, { n: 2 });
    await until(() => got.length >= 8, 'six deliveries and two subjects');
    await sleep(50);
    const by = (who: string) => got.filter(([w]) => w === who).map(([, p]) => (p as { n: number }).n).sort();
    t.same(by('a1'), [1, 2]);
    t.same(by('a2'), [1, 2]);
    t.same(by('b1'), [1, 2]);
    t.same(got.filter(([w]) => w === 'subject').map(([, s]) => s), [s, s], 'the handler is told the subject');
    t.same(by('wrong'), [], 'nothing on other subjects');
    t.doesNotThrow(() => a.publish(subj('nobody'), { x: 1 }), 'publishing to nobody is fine');
  });

  withBuses('queue groups deliver each message to exactly one member', async (t, { a, b }) => {
    const s = subj('work');
    const counts = new Map<number, string[]>();
    const member = (who: string) => (p: unknown) => {
      const i = (p as { i: number }).i;
      counts.set(i, [...(counts.get(i) ?? []), who]);
    };
    a.subscribe(s, member('qa'), { queue: 'workers' });
    b.subscribe(s, member('qb'), { queue: 'workers' });
    b.subscribe(s, member('qb2'), { queue: 'workers' });
    const plain: number[] = [];
    b.subscribe(s, (p) => void plain.push((p as { i: number }).i));
    await settle(a, b);
    const N = 200;
    for (let i = 0; i < N; i++) (i % 2 ? a : b).publish(s, { i });
    await until(() => counts.size === N && plain.length === N, 'all deliveries');
    await sleep(100);
    const multi = [...counts].filter(([, who]) => who.length !== 1);
    t.same(multi, [], 'no message went to two members of the group');
    t.equal(counts.size, N, 'every message reached the group');
    t.equal(plain.length, N, 'a plain subscriber still sees every message');
    // A request to a queue group is answered by one member.
    const r = subj('qreq');
    let answered = 0;
    a.subscribe(r, () => ++answered && 'qa', { queue: 'rq' });
    b.subscribe(r, () => ++answered && 'qb', { queue: 'rq' });
    await settle(a, b);
    for (let i = 0; i < 20; i++) t.match(await a.request(r, { i }, 2000), /^q[ab]$/);
    await sleep(50);
    t.equal(answered, 20, 'one handler ran per request');
  });

  withBuses('request/reply across handles', async (t, { a, b }) => {
    const s1 = subj('echo.b');
    const s2 = subj('echo.a');
    b.subscribe(s1, (p) => ({ from: 'b', got: p }));
    a.subscribe(s2, async (p) => {
      await sleep(5);
      return { from: 'a', got: p };
    });
    const nothing = subj('void');
    b.subscribe(nothing, () => undefined);
    await settle(a, b);
    t.same(await a.request(s1, { hello: [1, 'two', null, true, 1.5] }, 2000), { from: 'b', got: { hello: [1, 'two', null, true, 1.5] } });
    t.same(await b.request(s2, 'plain string', 2000), { from: 'a', got: 'plain string' }, 'async handler, other direction');
    t.equal(await a.request(nothing, null, 2000), undefined, 'a handler returning nothing replies undefined');
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => a.request(s1, i, 2000)));
    t.same(many, Array.from({ length: 50 }, (_, i) => ({ from: 'b', got: i })), '50 concurrent requests each get their own reply');
  });

  withBuses('errors keep their code across the wire', async (t, { a, b }) => {
    const kindred = subj('throws.kindred');
    const async = subj('rejects.kindred');
    const plain = subj('throws.plain');
    b.subscribe(kindred, () => {
      throw new KindredError('RATE_LIMITED', 'slow down');
    });
    b.subscribe(async, async () => {
      throw new KindredError('NOT_MATCHED', 'not your match');
    });
    b.subscribe(plain, async () => {
      throw new TypeError('x is undefined at secret/path.ts:12');
    });
    await settle(a, b);
    await t.rejects(a.request(kindred, {}, 2000), { name: 'KindredError', code: 'RATE_LIMITED', message: 'slow down' });
    await t.rejects(a.request(async, {}, 2000), { code: 'NOT_MATCHED', message: 'not your match' });
    try {
      await a.request(plain, {}, 2000);
      t.fail('should reject');
    } catch (err) {
      t.ok(err instanceof KindredError, 'a KindredError');
      t.equal((err as KindredError).code, 'INTERNAL', 'unexpected errors become INTERNAL');
      t.notMatch((err as Error).message, /secret/, 'without leaking details');
    }
    // a failing publish subscriber affects nobody
    const p = subj('pub.fails');
    const seen: number[] = [];
    b.subscribe(p, () => {
      throw new Error('boom');
    });
    b.subscribe(p, async () => {
      throw new Error('async boom');
    });
    b.subscribe(p, (x) => void seen.push(x as number));
    await settle(a, b);
    t.doesNotThrow(() => a.publish(p, 1));
    t.doesNotThrow(() => a.publish(p, 2));
    await until(() => seen.length === 2, 'the healthy subscriber');
    t.same(seen, [1, 2], 'later messages and other subscribers are unaffected');
  });

  withBuses('no responder → UNAVAILABLE, quickly', async (t, { a, b }) => {
    const s = subj('nobody.home');
    const started = Date.now();
    t.equal(await codeOf(a.request(s, { x: 1 }, 5000)), 'UNAVAILABLE');
    t.ok(Date.now() - started < 1000, `failed in ${Date.now() - started} ms (< 1 s), not at the 5 s timeout`);
    // after the only subscriber leaves (same handle: its unsubscribe is ordered before the request)
    const s2 = subj('once.here');
    const sub = b.subscribe(s2, () => 'hi');
    await settle(a, b);
    t.equal(await a.request(s2, {}, 2000), 'hi');
    sub.unsubscribe();
    const t2 = Date.now();
    t.equal(await codeOf(b.request(s2, {}, 5000)), 'UNAVAILABLE', 'after the only subscriber left');
    t.ok(Date.now() - t2 < 1000, 'also quickly');
  });

  withBuses('slow handler → TIMEOUT at the timeout', async (t, { a, b }) => {
    const s = subj('slow');
    const g = gate();
    let calls = 0;
    b.subscribe(s, async () => {
      calls++;
      await g.promise;
      return 'late';
    });
    await settle(a, b);
    const started = Date.now();
    try {
      await a.request(s, {}, 300);
      t.fail('should time out');
    } catch (err) {
      const took = Date.now() - started;
      t.equal((err as KindredError).code, 'TIMEOUT');
      t.match((err as KindredError).message, /slow/, 'naming the subject');
      t.ok(took >= 280 && took < 1000, `timed out after ${took} ms (timeout 300)`);
    }
    t.equal(calls, 1, 'the handler did receive it');
    g.open();
    await sleep(50); // the late reply is dropped without harm
    t.equal(await a.request(s, {}, 2000), 'late', 'the bus carries on');
  });

  withBuses('payload isolation: nobody shares an object with anybody', async (t, { a, b }) => {
    const s = subj('mutate');
    let returned: { list: number[] } | undefined;
    b.subscribe(s, (payload) => {
      const p = payload as { list: number[]; nested: { v: string } };
      p.list.push(4);
      p.nested.v = 'mutated';
      returned = { list: [1] };
      return returned;
    });
    const pub = subj('pub.copies');
    const seen: Array<{ n: number[] }> = [];
    a.subscribe(pub, (p) => {
      (p as { n: number[] }).n.push(100);
      seen.push(p as { n: number[] });
    });
    b.subscribe(pub, (p) => void seen.push(p as { n: number[] }));
    await settle(a, b);

    const sent = { list: [1, 2, 3], nested: { v: 'original' } };
    const reply = (await a.request(s, sent, 2000)) as { list: number[] };
    t.same(sent, { list: [1, 2, 3], nested: { v: 'original' } }, "the handler's mutation did not reach the sender");
    returned!.list.push(2);
    t.same(reply, { list: [1] }, "the reply is a copy, not the handler's object");

    const event = { n: [1] };
    a.publish(pub, event);
    event.n.push(2); // the publisher changing its object afterwards does not leak either
    await until(() => seen.length === 2, 'both subscribers');
    t.same(seen.map((x) => x.n).sort((x, y) => x.length - y.length), [[1], [1, 100]], 'each subscriber got its own copy');
    t.same(event, { n: [1, 2] });

    class Secret {
      hidden = 'x';
      reveal() {
        return this.hidden;
      }
    }
    const c = subj('class');
    b.subscribe(c, (p) => [p instanceof Secret, typeof (p as Secret).reveal, (p as Secret).hidden]);
    await settle(b);
    t.same(await a.request(c, new Secret(), 2000), [false, 'undefined', 'x'], 'only plain data crosses');
  });

  withBuses('handed-over payloads and replies arrive as the plain data they wrap', async (t, { a, b }) => {
    const s = subj('handover.req');
    const got: unknown[] = [];
    b.subscribe(s, (p) => {
      got.push(p);
      return handOver({ echoed: p, list: [1, 2] });
    });
    const pub = subj('handover.pub');
    const published: unknown[] = [];
    a.subscribe(pub, (p) => void published.push(p));
    b.subscribe(pub, (p) => void published.push(p));
    await settle(a, b);
    const reply = await a.request(s, handOver({ op: 'message.send', body: 'hi', n: [1] }), 2000);
    t.notOk(got[0] instanceof HandOver, 'the handler gets the payload, not its wrapper');
    t.same(got[0], { op: 'message.send', body: 'hi', n: [1] });
    t.notOk(reply instanceof HandOver, 'the requester gets the reply, not its wrapper');
    t.same(reply, { echoed: { op: 'message.send', body: 'hi', n: [1] }, list: [1, 2] });
    a.publish(pub, handOver({ event: 'message', n: [7] }));
    await until(() => published.length === 2, 'both subscribers');
    t.same(published, [{ event: 'message', n: [7] }, { event: 'message', n: [7] }], 'every subscriber gets the data');
    t.not(published[0], published[1], 'two subscribers never share the one object');
    // an error thrown by a handler that was handed its payload keeps its code
    const e = subj('handover.err');
    b.subscribe(e, () => {
      throw new KindredError('NOT_MATCHED', 'nope');
    });
    await settle(b);
    await t.rejects(a.request(e, handOver({ x: 1 }), 2000), { code: 'NOT_MATCHED', message: 'nope' });
  });

  withBuses('per-publisher FIFO over 1,000 publishes (and tells before an ask)', async (t, { a, b }) => {
    const s = subj('fifo');
    const got: number[] = [];
    b.subscribe(s, (p) => {
      const m = p as { i?: number; ask?: true };
      if (m.ask) return got.length;
      got.push(m.i!);
      return undefined;
    });
    await settle(a, b);
    const N = 1000;
    for (let i = 0; i < N; i++) a.publish(s, { i, pad: 'x'.repeat(i % 50) });
    t.equal(await a.request(s, { ask: true }, 5000), N, 'an ask after 1,000 tells is handled after all of them');
    t.same(got, Array.from({ length: N }, (_, i) => i), 'delivered in publish order');
    // interleaved tells and asks keep their order too
    got.length = 0;
    const asks: Array<Promise<unknown>> = [];
    for (let i = 0; i < 100; i++) {
      a.publish(s, { i });
      if (i % 10 === 9) asks.push(a.request(s, { ask: true }, 5000));
    }
    t.same(await Promise.all(asks), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 'each ask saw exactly the tells sent before it');
  });

  withBuses('unsubscribe stops delivery', async (t, { a, b }) => {
    const s = subj('unsub');
    const kept: number[] = [];
    const gone: number[] = [];
    const sub = b.subscribe(s, (p) => void gone.push(p as number));
    b.subscribe(s, (p) => void kept.push(p as number));
    await settle(a, b);
    a.publish(s, 1);
    await until(() => kept.length === 1 && gone.length === 1, 'the first message');
    sub.unsubscribe();
    sub.unsubscribe(); // twice is harmless
    a.publish(s, 2);
    a.publish(s, 3);
    await until(() => kept.length === 3, 'the other subscriber');
    await sleep(50);
    t.same(gone, [1], 'nothing after unsubscribe');
    t.same(kept, [1, 2, 3], 'the other subscriber is unaffected');
  });

  withBuses('binary (Uint8Array) fields round-trip', async (t, { a, b }) => {
    const s = subj('bin');
    const small = new Uint8Array([0, 1, 2, 253, 254, 255]);
    const big = new Uint8Array(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    b.subscribe(s, (p) => {
      const m = p as { small: Uint8Array; big: Uint8Array; tag: string };
      return { isU8: m.small instanceof Uint8Array && m.big instanceof Uint8Array, small: m.small, big: m.big, tag: m.tag, back: new Uint8Array([9, 8, 7]) };
    });
    const pub = subj('bin.pub');
    const views: Uint8Array[] = [];
    a.subscribe(pub, (p) => void views.push((p as { data: Uint8Array }).data));
    b.subscribe(pub, (p) => void views.push((p as { data: Uint8Array }).data));
    await settle(a, b);
    const reply = (await a.request(s, { small, big, tag: 'bytes' }, 5000)) as { isU8: boolean; small: Uint8Array; big: Uint8Array; tag: string; back: Uint8Array };
    t.ok(reply.isU8, 'the handler got Uint8Arrays');
    t.ok(reply.small instanceof Uint8Array && reply.big instanceof Uint8Array && reply.back instanceof Uint8Array, 'and so did the requester');
    t.same([...reply.small], [...small], 'small bytes intact');
    t.equal(reply.big.length, big.length);
    t.ok(Buffer.compare(Buffer.from(reply.big), Buffer.from(big)) === 0, '300 kB of bytes intact');
    t.same([...reply.back], [9, 8, 7]);
    t.equal(reply.tag, 'bytes');

    const data = new Uint8Array([1, 2, 3]);
    a.publish(pub, { data });
    data[0] = 42; // after publish: not seen by anyone
    await until(() => views.length === 2, 'both subscribers');
    views[0]![1] = 77; // one subscriber scribbling on its bytes
    t.same([...views[1]!], [1, 2, 3], "a subscriber's bytes are its own");
    t.same([...data], [42, 2, 3]);
  });
}
