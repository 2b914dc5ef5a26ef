/**
 * The Cassandra session's request limiter: at most `max` requests in flight, the rest queued
 * for a bounded time, and load shed at once (OVERLOADED) when the queue would make a request
 * wait past that time anyway. Tasks here are timers standing in for Cassandra's answers: what
 * is under test is the queueing, not the driver.
 */
import t from 'tap';
import { KindredError } from '../../src/errors.js';
import { Limiter } from '../../src/storage/cassandra/client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const task = (ms: number) => () => sleep(ms).then(() => 'ok');
const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (e instanceof KindredError ? e.code : String(e)));

t.test('runs at most max at once, queues the rest in order', async (t) => {
  const limiter = new Limiter(2, 5000);
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  const jobs = Array.from({ length: 6 }, (_, i) =>
    limiter.run(async () => {
      running++;
      peak = Math.max(peak, running);
      order.push(i);
      await sleep(20);
      running--;
    }),
  );
  await Promise.all(jobs);
  t.equal(peak, 2);
  t.same(order, [0, 1, 2, 3, 4, 5]);
});

t.test('sheds at once what would wait past the queue timeout', async (t) => {
  // 2 in flight, 50 ms each: ~40 completions/s; a 500 ms queue timeout holds ~20 queued.
  const limiter = new Limiter(2, 500, 1000);
  // the rate is learned while requests queue (Cassandra's capacity, not the offered load)
  await Promise.all(Array.from({ length: 16 }, () => limiter.run(task(50))));
  const rateKnown = limiter.expectedWaitMs();
  t.ok(rateKnown !== undefined && rateKnown > 10 && rateKnown < 100, `expected wait with an empty queue ~25 ms (${rateKnown})`);
  const started = performance.now();
  const burst = Array.from({ length: 100 }, () => code(limiter.run(task(50))));
  const firstRefusal = await Promise.race(burst.map((p) => p.then((c) => (c === 'OVERLOADED' ? performance.now() - started : Infinity))));
  const outcomes = await Promise.all(burst);
  const count = (c: string) => outcomes.filter((o) => o === c).length;
  t.ok(firstRefusal < 50, `refused at once (${firstRefusal.toFixed(1)} ms), not after the timeout`);
  t.ok(count('ok') >= 10 && count('ok') <= 30, `about the 2 running + the ~15 queued that fit in 3/4 of the timeout were served (${count('ok')})`);
  t.ok(count('OVERLOADED') >= 70, `the rest were refused with OVERLOADED (${count('OVERLOADED')})`);
  t.ok(count('UNAVAILABLE') <= 2, `at most a borderline one or two timed out in the queue (${count('UNAVAILABLE')})`);
});

t.test('a burst on an idle limiter queues (no rate known yet), however large, up to the hard bound', async (t) => {
  const limiter = new Limiter(2, 5000, 1000);
  // an idle spell: completions with nothing queued teach it nothing
  for (let i = 0; i < 10; i++) await limiter.run(task(5));
  t.equal(limiter.expectedWaitMs(), undefined, 'no estimate from an idle spell');
  const burst = await Promise.all(Array.from({ length: 200 }, () => code(limiter.run(task(1)))));
  t.equal(burst.filter((o) => o === 'ok').length, 200, 'all 200 served');
});

t.test('with no recent completions (an outage) only the hard bound applies, and queued requests time out', async (t) => {
  const limiter = new Limiter(1, 200, 3);
  const stuck = code(limiter.run(() => new Promise(() => {})));
  const queued = Array.from({ length: 3 }, () => code(limiter.run(task(1))));
  const refused = await code(limiter.run(task(1)));
  t.equal(refused, 'OVERLOADED', 'the 4th queued request is over the hard bound');
  t.same(await Promise.all(queued), ['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE'], 'queued ones fail after the queue timeout');
  void stuck;
});
