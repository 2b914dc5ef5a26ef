/**
 * 1,000 pairs like each other at the same instant: exactly 1,000 matches, and each
 * user hears of their match exactly once.
 */
import t from 'tap';
import { connectWs, registerUser, setProfile, startTestServer, type TestUser } from '../helpers/server.js';
import type { NativeClient } from '../../src/client/native.js';

const PAIRS = Number(process.env.RACE_PAIRS ?? 1000);

async function inBatches<T, R>(items: T[], size: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map((item, j) => fn(item, i + j)))));
  return out;
}

t.test(`${PAIRS} pairs like each other concurrently`, async (t) => {
  const server = await startTestServer(t);
  const users: TestUser[] = await inBatches(Array.from({ length: PAIRS * 2 }), 50, async (_, i) => {
    const u = await registerUser(server.base, 'race');
    await setProfile(server.base, u, { location: { lat: 10 + (i % 50) * 0.01, lon: 20 } });
    return u;
  });
  const clients: NativeClient[] = await inBatches(users, 100, (u) => connectWs(server, u));
  t.teardown(() => clients.forEach((c) => c.close()));

  const matchEvents = new Map<string, string[]>(); // userId -> matchIds announced
  clients.forEach((c, i) => {
    const userId = users[i]!.userId;
    matchEvents.set(userId, []);
    c.on('event', (e) => e.type === 'match' && matchEvents.get(userId)!.push(e.matchId));
  });

  // Both sides of every pair swipe at once.
  const replies = await Promise.all(
    Array.from({ length: PAIRS }, (_, p) => {
      const [a, b] = [2 * p, 2 * p + 1];
      return Promise.all([
        clients[a]!.request('swipe', { targetId: users[b]!.userId, kind: 'like' }, 60_000),
        clients[b]!.request('swipe', { targetId: users[a]!.userId, kind: 'like' }, 60_000),
      ]);
    }),
  );
  const matchIds = new Set<string>();
  let bothSaidMatched = 0;
  for (const [ra, rb] of replies) {
    t.ok(ra.matched || rb.matched, 'at least one side learns of the match in its reply');
    if (ra.matched && rb.matched) bothSaidMatched++;
    matchIds.add((ra.matchId ?? rb.matchId)!);
    if (ra.matchId && rb.matchId && ra.matchId !== rb.matchId) t.fail('two match ids for one pair');
  }
  t.equal(matchIds.size, PAIRS, `exactly ${PAIRS} distinct matches`);
  t.comment(`${bothSaidMatched} pairs saw each other's like at the same time`);

  // Every user hears of the match once; wait for all, then a little longer for duplicates.
  const deadline = Date.now() + 30_000;
  while ([...matchEvents.values()].some((l) => l.length === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 500));
  let once = 0;
  for (let p = 0; p < PAIRS; p++) {
    const a = matchEvents.get(users[2 * p]!.userId)!;
    const b = matchEvents.get(users[2 * p + 1]!.userId)!;
    if (a.length === 1 && b.length === 1 && a[0] === b[0] && matchIds.has(a[0]!)) once++;
  }
  t.equal(once, PAIRS, 'each match announced exactly once to each side, with the same id');

  // And storage holds exactly one match per pair.
  const sample = await clients[0]!.request('matches.list');
  t.equal(sample.matches.length, 1);
});
