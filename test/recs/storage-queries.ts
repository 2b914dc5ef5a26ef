/**
 * What the deck needs from storage, checked the same way on every backend: the start scans
 * (every profile; likes received per user) and the per-user exclusion reads.
 */
import type { Storage } from '../../src/storage/types.js';
import { newId } from '../../src/ids.js';

type Test = { test(name: string, fn: (t: any) => Promise<void>): unknown };

async function collect<T>(it: AsyncIterable<T[]>): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let pages = 0;
  for await (const page of it) {
    pages++;
    items.push(...page);
  }
  return { items, pages };
}

export function recsStorageQueries(t: Test, open: () => Promise<Storage>): void {
  t.test('deck storage queries: scans and exclusions', async (t: any) => {
    const s = await open();
    t.teardown(() => s.close());
    const now = Date.now();
    const ids = Array.from({ length: 23 }, () => newId());
    for (const [i, id] of ids.entries()) {
      await s.profiles.put({
        userId: id,
        displayName: `u${i}`,
        bio: '',
        birthDate: '1990-01-01',
        gender: 'woman',
        preferences: { ageMin: 18, ageMax: 99, genders: ['man'], maxDistanceKm: 50 },
        location: i % 2 ? { lat: 1, lon: 2 } : null,
        showPresence: true,
        lastActiveAt: now,
        updatedAt: now,
      });
    }
    const scanned = await collect(s.profiles.scanAll(5));
    t.same(scanned.items.map((p) => p.userId).sort(), [...ids].sort(), 'scanAll returns every profile once');
    t.ok(scanned.pages >= 5, `in pages of at most 5 (${scanned.pages} pages)`);
    t.same(scanned.items.find((p) => p.userId === ids[1])?.location, { lat: 1, lon: 2 }, 'with its fields');

    const [me, a, b, c] = ids as [string, string, string, string];
    await s.swipes.record({ swiperId: me, targetId: a, kind: 'pass', at: now });
    await s.swipes.record({ swiperId: me, targetId: b, kind: 'like', at: now });
    await s.swipes.record({ swiperId: me, targetId: c, kind: 'superlike', at: now });
    await s.swipes.record({ swiperId: a, targetId: c, kind: 'like', at: now });
    await s.swipes.record({ swiperId: b, targetId: me, kind: 'superlike', at: now });
    await s.swipes.record({ swiperId: c, targetId: me, kind: 'like', at: now });
    t.same((await s.swipes.swipedBy(me)).sort(), [a, b, c].sort(), 'swipedBy: everyone I swiped, passes included');
    t.same(await s.swipes.swipedBy(newId()), [], 'nobody for a new user');
    t.same(await s.swipes.superLikersOf(me), [b], 'superLikersOf: super likes only');
    const counts = await collect(s.swipes.scanLikeCounts(2));
    const byUser = Object.fromEntries(counts.items.map((x) => [x.userId, x.likes]));
    t.same(byUser, { [b]: 1, [c]: 2, [me]: 2 }, 'likes and super likes received per user, passes not counted');
    t.equal(counts.items.length, 3, 'each user once, also across page boundaries');
  });
}
