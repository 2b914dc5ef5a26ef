/**
 * The ranked deck on the real deck worker pool (dist/recs/deck-worker.js: run `npm run build`
 * first) over real embedded storage: mutual preferences and both distances, exclusions
 * (swiped, matched, blocked, and a swipe this node has not heard of), the order of
 * constructed cases for each score term, diversity, paging without duplicates across tiers,
 * a refresh when the seeker moves or changes preferences, and index updates arriving over
 * the bus from another "node".
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalBus } from '../../src/actors/bus.js';
import { makeConfig, type RecsConfig } from '../../src/config.js';
import { monthBucket, newId } from '../../src/ids.js';
import { Recommender } from '../../src/recs/recommender.js';
import { baseScore, centrality } from '../../src/recs/score.js';
import { openEmbeddedStorage } from '../../src/storage/embedded.js';
import type { Gender, Location, Profile, Storage } from '../../src/storage/types.js';
import { codeOf, until } from '../helpers/async.js';

const DAY = 86_400_000;
const now = Date.now();
const thisYear = new Date(now).getUTCFullYear();

interface World {
  storage: Storage;
  bus: LocalBus;
  recs: Recommender;
}

async function world(t: { teardown(fn: () => unknown): void }, recs: Partial<RecsConfig> = {}): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-recs-'));
  const storage = await openEmbeddedStorage(dir);
  const bus = new LocalBus();
  const r = new Recommender({ storage, bus, clock: { now: () => Date.now() } as never, config: { ...makeConfig().recs, threads: 2, ...recs } });
  await r.start();
  t.teardown(async () => {
    await r.close();
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { storage, bus, recs: r };
}

/** A point `km` north of `from`. */
function north(from: Location, km: number): Location {
  return { lat: from.lat + km / 111.195, lon: from.lon };
}

interface Spec {
  gender?: Gender;
  age?: number;
  wants?: Gender[];
  ageMin?: number;
  ageMax?: number;
  maxKm?: number;
  at?: Location | null;
  lastActiveAt?: number;
  createdAt?: number;
}

/** A time-ordered id minted at `ms` (newId never goes back in time, and account age comes from the id). */
function idAt(ms: number): string {
  const hex = ms.toString(16).padStart(12, '0');
  const r = newId().replace(/-/g, '').slice(12);
  return `${hex.slice(0, 8)}-${hex.slice(8)}-7${r.slice(1, 4)}-${r.slice(4, 8)}-${r.slice(8, 20)}`;
}

let seq = 0;
function profile(s: Spec): Profile {
  const created = s.createdAt ?? now - 30 * DAY;
  const age = s.age ?? 30;
  return {
    userId: idAt(created),
    displayName: `p${++seq}`,
    bio: '',
    birthDate: `${thisYear - age}-01-01`,
    gender: s.gender ?? 'man',
    preferences: { ageMin: s.ageMin ?? 18, ageMax: s.ageMax ?? 99, genders: s.wants ?? ['woman'], maxDistanceKm: s.maxKm ?? 100 },
    location: s.at === undefined ? { lat: 10, lon: 10 } : s.at,
    showPresence: true,
    lastActiveAt: s.lastActiveAt ?? now - DAY,
    updatedAt: now,
  };
}

/** Writes the profile and announces it, as KindredService.updateProfile does. */
async function put(w: World, p: Profile): Promise<Profile> {
  await w.storage.profiles.put(p);
  w.recs.profileChanged(p);
  return p;
}

async function ids(w: World, seeker: Profile, limit = 50, cursor?: string): Promise<string[]> {
  return (await w.recs.deck(seeker, limit, cursor)).userIds;
}

t.test('only people who fit both ways, within both distances', async (t) => {
  const w = await world(t);
  const here = { lat: 48.85, lon: 2.35 };
  const seeker = await put(w, profile({ gender: 'woman', age: 30, wants: ['man'], ageMin: 25, ageMax: 35, maxKm: 50, at: here }));
  const fits = await put(w, profile({ gender: 'man', age: 30, wants: ['woman'], ageMin: 25, ageMax: 35, at: north(here, 10) }));
  await put(w, profile({ gender: 'man', age: 30, wants: ['man'], at: north(here, 5) })); // wants men only
  await put(w, profile({ gender: 'woman', age: 30, wants: ['woman'], at: north(here, 5) })); // not a gender she wants
  await put(w, profile({ gender: 'man', age: 40, at: north(here, 5) })); // too old for her
  await put(w, profile({ gender: 'man', age: 30, ageMin: 35, ageMax: 45, at: north(here, 5) })); // she is too young for him
  await put(w, profile({ gender: 'man', age: 30, at: north(here, 60) })); // beyond her 50 km
  await put(w, profile({ gender: 'man', age: 30, maxKm: 15, at: north(here, 20) })); // she is beyond his 15 km
  await put(w, profile({ gender: 'man', age: 30, at: null })); // no location
  const both = await put(w, profile({ gender: 'nonbinary', age: 30, wants: ['woman', 'man'], at: north(here, 30) }));
  t.same(await ids(w, seeker), [fits.userId], 'exactly the one who fits both ways');
  t.same(await ids(w, { ...seeker, preferences: { ...seeker.preferences, genders: ['man', 'nonbinary'] } }), [fits.userId, both.userId], 'widening her genders adds the nonbinary person');
  t.equal(await codeOf(w.recs.deck({ ...seeker, location: null }, 10)), 'INVALID_ARGUMENT', 'no deck without a location');
  t.equal(await codeOf(w.recs.deck(seeker, 10, 'not-a-cursor!')), 'INVALID_ARGUMENT', 'a bad cursor is refused');
  t.equal(await codeOf(w.recs.deck(seeker, 10, Buffer.from('{"v":2}').toString('base64url'))), 'INVALID_ARGUMENT', 'a cursor of another version is refused');
});

t.test('swiped, matched and blocked people never appear', async (t) => {
  const w = await world(t);
  const here = { lat: 40.4, lon: -3.7 };
  const seeker = await put(w, profile({ gender: 'woman', wants: ['man'], at: here }));
  const men = [];
  for (let i = 0; i < 6; i++) men.push(await put(w, profile({ gender: 'man', at: north(here, 1 + i) })));
  t.equal((await ids(w, seeker)).length, 6, 'all six before');
  const [swiped, matched, blocked, blocker, elsewhere, kept] = men as [Profile, Profile, Profile, Profile, Profile, Profile];
  await w.storage.swipes.record({ swiperId: seeker.userId, targetId: swiped.userId, kind: 'pass', at: now });
  w.recs.swiped(seeker.userId, swiped.userId, 'pass');
  await w.storage.matches.createIfAbsent({ matchId: newId(), users: [seeker.userId, matched.userId].sort() as [string, string], createdAt: now, endedAt: null, endedBy: null, firstBucket: monthBucket(now) });
  await w.storage.blocks.block(seeker.userId, blocked.userId, now);
  w.recs.blocked(seeker.userId, blocked.userId);
  await w.storage.blocks.block(blocker.userId, seeker.userId, now);
  w.recs.blocked(blocker.userId, seeker.userId);
  // a swipe stored by another node whose event has not arrived here: storage is asked per page
  await w.storage.swipes.record({ swiperId: seeker.userId, targetId: elsewhere.userId, kind: 'like', at: now });
  const deck = await ids(w, seeker);
  // the match was made after the exclusions were cached: only a fresh load knows it
  t.notOk(deck.includes(swiped.userId), 'swiped');
  t.notOk(deck.includes(blocked.userId), 'blocked by the seeker');
  t.notOk(deck.includes(blocker.userId), 'blocked the seeker');
  t.notOk(deck.includes(elsewhere.userId), 'swiped on another node');
  t.ok(deck.includes(kept.userId), 'the one left');
  const fresh = await world(t);
  for (const p of [seeker, ...men]) fresh.recs.profileChanged(p);
  // a second node with the same storage
  const other = new Recommender({ storage: w.storage, bus: new LocalBus(), clock: { now: () => Date.now() } as never, config: { ...makeConfig().recs, threads: 1 } });
  await other.start();
  t.teardown(() => other.close());
  t.same(await ids({ ...w, recs: other }, seeker), [kept.userId], 'a node loading the exclusions from storage excludes all five');
});

t.test('ranking: each score term orders constructed pairs', async (t) => {
  const w = await world(t);
  let lon = -170;
  /** a seeker alone in a fresh place, with two candidates differing in one way */
  const pair = async (a: Spec, b: Spec, seekerSpec: Spec = {}) => {
    lon += 5;
    const here = { lat: 0, lon };
    const seeker = await put(w, profile({ gender: 'woman', wants: ['man'], at: here, ...seekerSpec }));
    const pa = await put(w, profile({ gender: 'man', at: north(here, 5), ...a }));
    const pb = await put(w, profile({ gender: 'man', at: north(here, 5), ...b }));
    return { seeker, a: pa, b: pb };
  };
  let c = await pair({ at: north({ lat: 0, lon: lon + 5 }, 1) }, { at: north({ lat: 0, lon: lon + 5 }, 20) });
  t.same(await ids(w, c.seeker), [c.a.userId, c.b.userId], 'nearer first');
  c = await pair({ lastActiveAt: now - 3_600_000 }, { lastActiveAt: now - 10 * DAY });
  t.same(await ids(w, c.seeker), [c.a.userId, c.b.userId], 'recently active first');
  c = await pair({ createdAt: now - 2 * DAY }, { createdAt: now - 90 * DAY });
  t.same(await ids(w, c.seeker), [c.a.userId, c.b.userId], 'new account first');
  c = await pair({ age: 35 }, { age: 26 }, { age: 35, ageMin: 25, ageMax: 45 });
  t.same(await ids(w, c.seeker), [c.a.userId, c.b.userId], 'the better age fit first');

  c = await pair({}, {});
  for (let i = 0; i < 40; i++) {
    const fan = newId();
    await w.storage.swipes.record({ swiperId: fan, targetId: c.b.userId, kind: 'like', at: now });
    w.bus.publish('kindred.recs.events', { k: 'swipe', u: fan, t: c.b.userId, kind: 'like' });
  }
  await until(() => w.recs.index.arrays.likes[w.recs.index.slotOf(c.b.userId)!] === 40, 'likes counted from bus events');
  t.same(await ids(w, c.seeker), [c.b.userId, c.a.userId], 'more liked first');

  c = await pair({ at: north({ lat: 0, lon: lon + 5 }, 1) }, { at: north({ lat: 0, lon: lon + 5 }, 60) });
  await w.storage.swipes.record({ swiperId: c.b.userId, targetId: c.seeker.userId, kind: 'superlike', at: now });
  const far = await w.recs.deck(c.seeker, 10);
  t.same(far.userIds, [c.b.userId, c.a.userId], 'someone who super liked the seeker first, even from 60 km');

  // the score is the documented formula: check the top card's figure
  const slot = w.recs.index.slotOf(c.b.userId)!;
  const expected = baseScore({
    distanceKm: far.distanceKm[0]!,
    idleMs: 0, // replaced below
    fit: 0.5 * centrality(30, 18, 99) + 0.5 * centrality(30, 18, 99), // both 30, both accepting 18-99
    likes: 0,
    accountAgeMs: 0,
    superLikedMe: true,
  });
  const idle = baseScore({ distanceKm: far.distanceKm[0]!, idleMs: now - w.recs.index.arrays.lastActive[slot]!, fit: 0, likes: 0, accountAgeMs: now - w.recs.index.arrays.createdAt[slot]!, superLikedMe: false }) - baseScore({ distanceKm: far.distanceKm[0]!, idleMs: 0, fit: 0, likes: 0, accountAgeMs: 0, superLikedMe: false });
  t.ok(Math.abs(far.scores[0]! - (expected + idle)) < 1e-3, `top score ${far.scores[0]} is the formula's ${(expected + idle).toFixed(5)}`);
});

t.test('diversity: one age band does not fill the top of the deck', async (t) => {
  const w = await world(t);
  const here = { lat: -33.9, lon: 151.2 };
  const seeker = await put(w, profile({ gender: 'woman', wants: ['man'], age: 35, ageMin: 25, ageMax: 45, at: here }));
  const crowd = [];
  for (let i = 0; i < 30; i++) crowd.push(await put(w, profile({ gender: 'man', age: 31, at: north(here, 1 + i * 0.01) })));
  const outlier = await put(w, profile({ gender: 'man', age: 39, at: north(here, 3) }));
  const deck = await ids(w, seeker);
  t.equal(deck.length, 31);
  const rank = deck.indexOf(outlier.userId);
  t.ok(rank >= 0 && rank < 8, `the 39-year-old, a little farther than 30 31-year-olds, is card ${rank + 1}, not 31`);
});

t.test('paging: every fitting person exactly once, across tiers, while swiping', async (t) => {
  const w = await world(t, { tierSize: 40 });
  const here = { lat: 52.52, lon: 13.4 };
  const seeker = await put(w, profile({ gender: 'woman', wants: ['man'], at: here, maxKm: 100 }));
  const everyone = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const p = await put(w, profile({ gender: 'man', age: 20 + (i % 40), at: { lat: here.lat + ((i * 37) % 100) / 200, lon: here.lon + ((i * 53) % 100) / 150 }, lastActiveAt: now - (i % 17) * DAY }));
    everyone.add(p.userId);
  }
  for (const swipeAsWeGo of [false, true]) {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await w.recs.deck(seeker, 25, cursor);
      t.notOk(page.refreshed);
      seen.push(...page.userIds);
      if (swipeAsWeGo) {
        for (const id of page.userIds) {
          await w.storage.swipes.record({ swiperId: seeker.userId, targetId: id, kind: 'pass', at: now });
          w.recs.swiped(seeker.userId, id, 'pass');
        }
      }
      cursor = page.next ?? undefined;
      pages++;
    } while (cursor && pages < 100);
    t.equal(new Set(seen).size, seen.length, `no duplicates${swipeAsWeGo ? ' while swiping' : ''}`);
    t.equal(seen.length, everyone.size, `all ${everyone.size} people in ${pages} pages`);
    t.ok([...everyone].every((id) => seen.includes(id)));
  }
  t.same(await ids(w, seeker), [], 'after swiping everyone the deck is empty');
});

t.test('a deck refreshes when the seeker moves or changes preferences', async (t) => {
  const w = await world(t);
  const paris = { lat: 48.85, lon: 2.35 };
  const lyon = { lat: 45.76, lon: 4.84 };
  let seeker = await put(w, profile({ gender: 'woman', wants: ['man'], at: paris, maxKm: 50 }));
  const parisians: string[] = [];
  for (let i = 0; i < 10; i++) parisians.push((await put(w, profile({ gender: 'man', at: north(paris, i + 1) }))).userId);
  const lyonnais: string[] = [];
  for (let i = 0; i < 3; i++) lyonnais.push((await put(w, profile({ gender: 'man', at: north(lyon, i + 1) }))).userId);
  const first = await w.recs.deck(seeker, 4);
  t.equal(first.userIds.length, 4);
  t.ok(first.userIds.every((id) => parisians.includes(id)));
  t.ok(first.next, 'a cursor for the next page');

  seeker = await put(w, { ...seeker, location: lyon, updatedAt: Date.now() });
  const moved = await w.recs.deck(seeker, 4, first.next!);
  t.equal(moved.refreshed, true, 'the old cursor starts a fresh deck');
  t.same(new Set(moved.userIds), new Set(lyonnais), 'the people near the new place');

  seeker = await put(w, { ...seeker, location: paris, updatedAt: Date.now() });
  const again = await w.recs.deck(seeker, 4);
  const second = await w.recs.deck(seeker, 4, again.next!);
  t.notOk(second.refreshed, 'same settings: the cursor continues');
  t.equal(new Set([...again.userIds, ...second.userIds]).size, 8);
  seeker = await put(w, { ...seeker, preferences: { ...seeker.preferences, maxDistanceKm: 3.5 }, updatedAt: Date.now() });
  const narrowed = await w.recs.deck(seeker, 4, second.next!);
  t.equal(narrowed.refreshed, true, 'new preferences start a fresh deck');
  t.same(new Set(narrowed.userIds), new Set(parisians.slice(0, 3)), 'only the three within 3.5 km');
});

t.test('another node’s profile changes reach this index over the bus', async (t) => {
  const w = await world(t);
  // a second recommender on the same bus stands for another node
  const other = new Recommender({ storage: w.storage, bus: w.bus, clock: { now: () => Date.now() } as never, config: { ...makeConfig().recs, threads: 1 } });
  await other.start();
  t.teardown(() => other.close());
  const here = { lat: 35.68, lon: 139.69 };
  const seeker = await put(w, profile({ gender: 'woman', wants: ['man'], at: here, maxKm: 20 }));
  const him = profile({ gender: 'man', at: north(here, 100) });
  await w.storage.profiles.put(him);
  other.profileChanged(him); // written on the other node
  await until(() => w.recs.index.slotOf(him.userId) !== undefined, 'the event');
  t.same(await ids(w, seeker), [], 'too far');
  const moved = { ...him, location: north(here, 2), updatedAt: him.updatedAt + 1 };
  await w.storage.profiles.put(moved);
  other.profileChanged(moved);
  await until(() => Math.abs(w.recs.index.arrays.lat[w.recs.index.slotOf(him.userId)!]! - moved.location.lat) < 1e-9, 'the move');
  t.same(await ids(w, seeker), [him.userId], 'he moved into range on the other node');
  // an older event arriving late changes nothing
  other.profileChanged(him);
  await new Promise((r) => setTimeout(r, 20));
  t.same(await ids(w, seeker), [him.userId], 'a stale event is ignored');
});

t.test('the index is rebuilt from storage at start', async (t) => {
  const w = await world(t);
  const here = { lat: 59.33, lon: 18.06 };
  const seeker = profile({ gender: 'woman', wants: ['man'], at: here });
  await w.storage.profiles.put(seeker);
  const men = [];
  for (let i = 0; i < 7; i++) {
    const m = profile({ gender: 'man', at: north(here, i + 1) });
    await w.storage.profiles.put(m); // no events: only a scan finds them
    men.push(m.userId);
  }
  await w.storage.swipes.record({ swiperId: men[0]!, targetId: men[3]!, kind: 'like', at: now });
  await w.storage.swipes.record({ swiperId: men[1]!, targetId: men[3]!, kind: 'superlike', at: now });
  const restarted = new Recommender({ storage: w.storage, bus: new LocalBus(), clock: { now: () => Date.now() } as never, config: { ...makeConfig().recs, threads: 1 } });
  const built = await restarted.start();
  t.teardown(() => restarted.close());
  t.equal(built.profiles, 8);
  t.equal(restarted.index.arrays.likes[restarted.index.slotOf(men[3]!)!], 2, 'likes received counted by the scan');
  t.same(new Set(await ids({ ...w, recs: restarted }, seeker)), new Set(men));
});
