/**
 * The storage contract: every backend (embedded SQLite + files; Cassandra + S3)
 * must pass this suite. Run it with
 *
 *   storageContract(t, 'embedded', () => openEmbeddedStorage(freshDir()))
 *
 * `open` is called once per top-level subtest and must return an empty store;
 * each subtest closes what it opened. Everything is checked through the
 * Storage interface only, with expected values computed independently here.
 */
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { KindredError } from '../../src/errors.js';
import { monthBucket, newId } from '../../src/ids.js';
import type {
  Account,
  BlobStore,
  ChatMessage,
  Gender,
  ImageRecord,
  Match,
  Profile,
  Storage,
} from '../../src/storage/types.js';
import { seededRandom as prng } from '../helpers/async.js';

type T = Test;

/** A time-ordered id at a chosen millisecond, without touching newId's process-wide monotonic clock. */
export function idAt(ms: number, seq = 0): string {
  const hex = ms.toString(16).padStart(12, '0');
  const ver = (0x7000 | (seq & 0xfff)).toString(16);
  const rand = randomBytes(8);
  const variant = ((rand[0]! & 0x3f) | 0x80).toString(16).padStart(2, '0') + rand[1]!.toString(16).padStart(2, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8)}-${ver}-${variant}-${rand.subarray(2).toString('hex')}`;
}

function account(username: string, userId = newId()): Account {
  const v = (tag: string) => ({ salt: `${tag}-salt`, iterations: 4096, storedKey: `${tag}-stored`, serverKey: `${tag}-server` });
  return {
    userId,
    username,
    passwordHash: `scrypt$16384$8$1$c2FsdA$${username}`,
    scramSha1: v('sha1'),
    scramSha256: v('sha256'),
    createdAt: 1_750_000_000_000,
  };
}

function isCode(code: string) {
  return (err: unknown) => err instanceof KindredError && err.code === code;
}

async function rejectsWith(t: T, p: Promise<unknown>, code: string, msg: string): Promise<void> {
  try {
    await p;
    t.fail(`${msg}: expected ${code}, but it resolved`);
  } catch (err) {
    t.ok(isCode(code)(err), `${msg}: ${code}`, { found: err });
  }
}

/** Seeded PRNG so the profile fixtures are the same on every run and backend. */

/** Independent reference for the distance filter (same Earth radius as the backends). */
function distanceKm(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const R = 6371.0088;
  const toRad = (d: number) => (d * Math.PI) / 180;
  const dLat = toRad(b.lat - a.lat);
  const dLon = toRad(b.lon - a.lon);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(toRad(a.lat)) * Math.cos(toRad(b.lat)) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.sqrt(h));
}

/** The point `km` east of `from` along its parallel (good enough for fixtures; the real distance is computed). */
function east(from: { lat: number; lon: number }, km: number): { lat: number; lon: number } {
  return { lat: from.lat, lon: from.lon + km / (111.195 * Math.cos((from.lat * Math.PI) / 180)) };
}

function profile(userId: string, over: Partial<Profile> = {}): Profile {
  return {
    userId,
    displayName: `user ${userId.slice(-4)}`,
    bio: 'hello',
    birthDate: '1995-06-15',
    gender: 'man',
    preferences: { ageMin: 18, ageMax: 99, genders: ['woman', 'man', 'nonbinary'], maxDistanceKm: 500 },
    location: null,
    showPresence: true,
    lastActiveAt: 1_750_000_000_000,
    updatedAt: 1_750_000_000_000,
    ...over,
  };
}

function image(profileId: string, i: number): ImageRecord {
  return {
    profileId,
    imageId: newId(),
    url: `/images/${profileId}/${i}`,
    position: 0,
    contentType: 'image/jpeg',
    width: 640 + i,
    height: 480,
    bytes: 1000 + i,
    createdAt: 1_750_000_000_000 + i,
  };
}

export function storageContract(t: T, name: string, open: () => Promise<Storage>): void {
  /** Runs a subtest against a fresh store, closing it afterwards even when assertions fail. */
  const withStore = (title: string, fn: (t: T, s: Storage) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const s = await open();
      try {
        await fn(t, s);
      } finally {
        await s.close();
      }
    });

  withStore('accounts: create, look up, conflict', async (t, s) => {
    const alice = account('alice');
    await s.accounts.create(alice);
    t.same(await s.accounts.byId(alice.userId), alice, 'byId returns the account as stored');
    t.same(await s.accounts.byUsername('alice'), alice, 'byUsername');
    t.same(await s.accounts.byUsername('ALICE'), alice, 'usernames are case-insensitive on lookup');
    t.equal(await s.accounts.byUsername('bob'), undefined, 'unknown username');
    t.equal(await s.accounts.byId(newId()), undefined, 'unknown id');

    await rejectsWith(t, s.accounts.create(account('alice')), 'CONFLICT', 'same username again');
    await rejectsWith(t, s.accounts.create(account('Alice')), 'CONFLICT', 'same username, other case');

    const mixed = account('Carol');
    await s.accounts.create(mixed);
    const got = await s.accounts.byUsername('carol');
    t.equal(got?.userId, mixed.userId, 'a mixed-case username is found by its lowercase form');
    t.equal(got?.username, 'carol', 'and is stored lowercase');

    const racers = Array.from({ length: 20 }, () => account('dave'));
    const results = await Promise.allSettled(racers.map((a) => s.accounts.create(a)));
    const won = results.filter((r) => r.status === 'fulfilled');
    t.equal(won.length, 1, 'of 20 concurrent creates of one username exactly one wins');
    t.ok(
      results.every((r) => r.status === 'fulfilled' || isCode('CONFLICT')(r.reason)),
      'the others fail with CONFLICT',
    );
    const winner = racers[results.findIndex((r) => r.status === 'fulfilled')]!;
    t.equal((await s.accounts.byUsername('dave'))?.userId, winner.userId, 'the username points at the winner');
    const losers = racers.filter((a) => a !== winner);
    t.same(await Promise.all(losers.map((a) => s.accounts.byId(a.userId))), losers.map(() => undefined), 'no orphan account rows');
  });

  withStore('revocations: active() leaves out expired tokens', async (t, s) => {
    const now = Date.now();
    await s.revocations.revoke('gone', now - 1000);
    await s.revocations.revoke('edge', now);
    await s.revocations.revoke('soon', now + 1000);
    await s.revocations.revoke('later', now + 3_600_000);
    const ids = (rows: Array<{ tokenId: string }>) => rows.map((r) => r.tokenId).sort();
    const active = await s.revocations.active(now);
    t.same(ids(active), ['later', 'soon'], 'only tokens expiring after now');
    t.same(active.find((r) => r.tokenId === 'soon'), { tokenId: 'soon', expiresAt: now + 1000 }, 'with their expiry');
    t.same(ids(await s.revocations.active(now + 2000)), ['later'], 'later, fewer are active');
    t.same(await s.revocations.active(now + 7_200_000), [], 'eventually none');
  });

  withStore('profiles: put, get, getMany, touchLastActive', async (t, s) => {
    const a = profile(newId(), { location: { lat: 48.85, lon: 2.35 }, gender: 'nonbinary', showPresence: false });
    const b = profile(newId(), { preferences: { ageMin: 30, ageMax: 40, genders: ['nonbinary', 'woman'], maxDistanceKm: 25 } });
    await s.profiles.put(a);
    await s.profiles.put(b);
    t.same(await s.profiles.get(a.userId), a, 'round trip with a location');
    t.same(await s.profiles.get(b.userId), b, 'round trip without a location, preference order kept');
    t.equal(await s.profiles.get(newId()), undefined, 'unknown profile');

    const updated = { ...a, bio: 'changed', location: null, updatedAt: a.updatedAt + 1 };
    await s.profiles.put(updated);
    t.same(await s.profiles.get(a.userId), updated, 'put replaces the profile');

    const many = await s.profiles.getMany([b.userId, newId(), a.userId]);
    t.same(
      many.map((p) => p.userId).sort(),
      [a.userId, b.userId].sort(),
      'getMany returns the known profiles and skips unknown ids',
    );
    t.same(await s.profiles.getMany([]), [], 'getMany of nothing');

    await s.profiles.touchLastActive(b.userId, b.lastActiveAt + 5000);
    t.equal((await s.profiles.get(b.userId))?.lastActiveAt, b.lastActiveAt + 5000, 'touchLastActive');
    await s.profiles.touchLastActive(newId(), 1); // unknown user: no error, no row
  });

  withStore('profiles: candidates filter both sides and order by distance', async (t, s) => {
    const center = { lat: 52.52, lon: 13.405 };
    const seeker = profile(newId(), {
      gender: 'woman',
      birthDate: '1995-03-01',
      location: center,
      preferences: { ageMin: 25, ageMax: 35, genders: ['man', 'nonbinary'], maxDistanceKm: 50 },
    });
    const query = {
      userId: seeker.userId,
      near: center,
      radiusKm: 50,
      genders: ['man', 'nonbinary'] as Gender[],
      bornOnOrAfter: '1990-01-01',
      bornOnOrBefore: '2000-12-31',
      seekerGender: 'woman' as Gender,
      seekerAge: 30,
      limit: 100,
    };
    const accepts = { ageMin: 25, ageMax: 40, genders: ['woman'] as Gender[], maxDistanceKm: 100 };
    const named: Record<string, Profile> = {
      near: profile(newId(), { gender: 'man', birthDate: '1994-01-01', location: east(center, 2), preferences: accepts }),
      nb: profile(newId(), { gender: 'nonbinary', birthDate: '1996-01-01', location: east(center, 10), preferences: accepts }),
      edge: profile(newId(), { gender: 'man', birthDate: '1990-01-01', location: east(center, 49), preferences: accepts }),
      far: profile(newId(), { gender: 'man', location: east(center, 51), preferences: accepts }),
      wrongGender: profile(newId(), { gender: 'woman', location: east(center, 3), preferences: accepts }),
      tooYoung: profile(newId(), { gender: 'man', birthDate: '2001-01-01', location: east(center, 3), preferences: accepts }),
      tooOld: profile(newId(), { gender: 'man', birthDate: '1989-12-31', location: east(center, 3), preferences: accepts }),
      rejectsGender: profile(newId(), { gender: 'man', location: east(center, 4), preferences: { ...accepts, genders: ['man'] } }),
      rejectsAge: profile(newId(), { gender: 'man', location: east(center, 5), preferences: { ...accepts, ageMin: 18, ageMax: 29 } }),
      shortReach: profile(newId(), { gender: 'man', location: east(center, 20), preferences: { ...accepts, maxDistanceKm: 15 } }),
      noLocation: profile(newId(), { gender: 'man', location: null, preferences: accepts }),
    };
    // Random fixtures too, checked against a brute-force reference.
    const rnd = prng(20261126);
    const genders: Gender[] = ['woman', 'man', 'nonbinary'];
    const random: Profile[] = Array.from({ length: 100 }, () => {
      const ageMin = 18 + Math.floor(rnd() * 16);
      return profile(newId(), {
        gender: genders[Math.floor(rnd() * 3)]!,
        birthDate: `${1987 + Math.floor(rnd() * 16)}-0${1 + Math.floor(rnd() * 9)}-1${Math.floor(rnd() * 9)}`,
        location: rnd() < 0.1 ? null : { lat: center.lat + (rnd() - 0.5) * 0.9, lon: center.lon + (rnd() - 0.5) * 1.5 },
        preferences: {
          ageMin,
          ageMax: ageMin + 3 + Math.floor(rnd() * 20),
          genders: genders.filter((g) => rnd() < (g === 'woman' ? 0.8 : 0.5)),
          maxDistanceKm: 10 + Math.floor(rnd() * 90),
        },
      });
    });
    const all = [seeker, ...Object.values(named), ...random];
    await Promise.all(all.map((p) => s.profiles.put(p)));

    const expected = all
      .filter((p) => {
        if (p.userId === seeker.userId || !p.location) return false;
        const d = distanceKm(center, p.location);
        return (
          d <= query.radiusKm &&
          query.genders.includes(p.gender) &&
          p.birthDate >= query.bornOnOrAfter &&
          p.birthDate <= query.bornOnOrBefore &&
          p.preferences.genders.includes(query.seekerGender) &&
          p.preferences.ageMin <= query.seekerAge &&
          query.seekerAge <= p.preferences.ageMax &&
          d <= p.preferences.maxDistanceKm
        );
      })
      .sort((x, y) => distanceKm(center, x.location!) - distanceKm(center, y.location!));
    t.ok(expected.length >= 6, `the fixtures give a meaningful answer (${expected.length} candidates)`);
    t.ok(expected.length < all.length - 10, 'and the filters exclude plenty');

    const got = await s.profiles.candidates(query);
    t.same(got.map((p) => p.userId), expected.map((p) => p.userId), 'same candidates as the reference, nearest first');
    const ids = new Set(got.map((p) => p.userId));
    for (const k of ['near', 'nb', 'edge']) t.ok(ids.has(named[k]!.userId), `includes ${k}`);
    for (const k of ['far', 'wrongGender', 'tooYoung', 'tooOld', 'rejectsGender', 'rejectsAge', 'shortReach', 'noLocation']) {
      t.notOk(ids.has(named[k]!.userId), `excludes ${k}`);
    }
    t.notOk(ids.has(seeker.userId), 'excludes the seeker');
    t.same(got.find((p) => p.userId === named.near!.userId), named.near, 'candidates are whole profiles');

    const top3 = await s.profiles.candidates({ ...query, limit: 3 });
    t.same(top3.map((p) => p.userId), expected.slice(0, 3).map((p) => p.userId), 'limit keeps the nearest');
    t.same(await s.profiles.candidates({ ...query, genders: [] }), [], 'wanting no gender finds nobody');

    // Moving a profile moves it in and out of range.
    await s.profiles.put({ ...named.far!, location: east(center, 1) });
    t.equal((await s.profiles.candidates(query))[0]?.userId, named.far!.userId, 'a moved profile is found at its new place');
  });

  withStore('profiles: candidates across the antimeridian and near a pole', async (t, s) => {
    const base = { ageMin: 18, ageMax: 99, genders: ['woman', 'man', 'nonbinary'] as Gender[], maxDistanceKm: 500 };
    const q = (near: { lat: number; lon: number }) => ({
      userId: 'seeker',
      near,
      radiusKm: 50,
      genders: ['woman', 'man', 'nonbinary'] as Gender[],
      bornOnOrAfter: '1900-01-01',
      bornOnOrBefore: '2100-01-01',
      seekerGender: 'woman' as Gender,
      seekerAge: 30,
      limit: 10,
    });
    const west = profile(newId(), { location: { lat: 0, lon: -179.9 }, preferences: base });
    const eastFar = profile(newId(), { location: { lat: 0, lon: 179.0 }, preferences: base });
    const eastNear = profile(newId(), { location: { lat: 0, lon: 179.92 }, preferences: base });
    const polar = profile(newId(), { location: { lat: 89.9, lon: 180 }, preferences: base });
    await Promise.all([west, eastFar, eastNear, polar].map((p) => s.profiles.put(p)));
    t.same(
      (await s.profiles.candidates(q({ lat: 0, lon: 179.95 }))).map((p) => p.userId),
      [eastNear.userId, west.userId],
      'from just east of the antimeridian: finds a profile across it, not one 100 km away',
    );
    t.same(
      (await s.profiles.candidates(q({ lat: 0, lon: -179.95 }))).map((p) => p.userId),
      [west.userId, eastNear.userId],
      'from just west of it, the same',
    );
    t.same((await s.profiles.candidates(q({ lat: 89.9, lon: 0 }))).map((p) => p.userId), [polar.userId], 'finds a profile across the pole');
  });

  withStore('images: limit under concurrency, list, get, remove, reorder', async (t, s) => {
    const owner = newId();
    const tries = Array.from({ length: 10 }, (_, i) => image(owner, i));
    const added = await Promise.all(tries.map((img) => s.images.addIfUnder(img, 5)));
    t.equal(added.filter(Boolean).length, 5, '10 concurrent adds under a limit of 5: exactly 5 succeed');
    let list = await s.images.list(owner);
    t.equal(list.length, 5, 'and exactly 5 rows exist');
    t.same(list.map((r) => r.position), [0, 1, 2, 3, 4], 'positions are 0..4');
    t.same(
      new Set(list.map((r) => r.imageId)),
      new Set(tries.filter((_, i) => added[i]).map((r) => r.imageId)),
      'the rows are the adds that returned true',
    );
    t.equal(await s.images.addIfUnder(image(owner, 99), 5), false, 'a 6th add is refused');

    const other = newId();
    t.equal(await s.images.addIfUnder(image(other, 0), 5), true, "another profile's limit is separate");

    const first = list[0]!;
    t.same(await s.images.get(first.imageId), first, 'get by image id');
    t.equal(await s.images.get(newId()), undefined, 'unknown image');
    t.equal(await s.images.addIfUnder(first, 6), true, 'a retried add of the same image succeeds');
    t.equal((await s.images.list(owner)).length, 5, 'without a second row');

    t.equal(await s.images.remove(other, first.imageId), false, "removing through the wrong profile does nothing");
    t.equal(await s.images.remove(owner, list[2]!.imageId), true, 'remove');
    t.equal(await s.images.remove(owner, list[2]!.imageId), false, 'remove again is false');
    t.equal(await s.images.get(list[2]!.imageId), undefined, 'a removed image is gone from get');
    list = await s.images.list(owner);
    t.equal(list.length, 4, 'four left');
    t.equal(await s.images.addIfUnder(image(owner, 50), 5), true, 'there is room again');
    list = await s.images.list(owner);
    const ids = list.map((r) => r.imageId);
    t.same(
      [...list.map((r) => r.position)].sort((a, b) => a - b),
      [0, 1, 2, 3, 4],
      'positions stay dense after a removal and an add',
    );
    t.equal(list[4]!.imageId, ids[4], 'list is in position order');

    const reversed = [...ids].reverse();
    await s.images.reorder(owner, reversed);
    list = await s.images.list(owner);
    t.same(list.map((r) => r.imageId), reversed, 'reorder sets the order');
    t.same(list.map((r) => r.position), [0, 1, 2, 3, 4], 'and positions 0..n-1');

    await rejectsWith(t, s.images.reorder(owner, reversed.slice(1)), 'INVALID_ARGUMENT', 'reorder missing an image');
    await rejectsWith(t, s.images.reorder(owner, [...reversed, newId()]), 'INVALID_ARGUMENT', 'reorder with an extra id');
    await rejectsWith(t, s.images.reorder(owner, [reversed[0]!, ...reversed.slice(0, 4)]), 'INVALID_ARGUMENT', 'reorder with a duplicate');
    await rejectsWith(t, s.images.reorder(owner, [...reversed.slice(1), (await s.images.list(other))[0]!.imageId]), 'INVALID_ARGUMENT', "reorder with another profile's image");
    t.same((await s.images.list(owner)).map((r) => r.imageId), reversed, 'a rejected reorder changes nothing');
  });

  // The blob checks live in blobContract, which blob-only backends (S3) run on their own.
  blobContract(t, name, async () => {
    const s = await open();
    return { put: (k, d, c) => s.blobs.put(k, d, c), get: (k) => s.blobs.get(k), remove: (k) => s.blobs.remove(k), close: () => s.close() };
  });

  withStore('swipes: first one wins, likes_received, swipedAmong', async (t, s) => {
    const [me, a, b, c, d] = Array.from({ length: 5 }, () => newId());
    t.same(await s.swipes.record({ swiperId: me!, targetId: a!, kind: 'like', at: 1 }), { first: true }, 'first swipe');
    const again = await s.swipes.record({ swiperId: me!, targetId: a!, kind: 'pass', at: 2 });
    t.equal(again.first, false, 'a repeat is not first');
    t.same(again.existing, { swiperId: me, targetId: a, kind: 'like', at: 1 }, 'and returns the first swipe');
    t.same(await s.swipes.likeFrom(me!, a!), { swiperId: me, targetId: a, kind: 'like', at: 1 }, 'likeFrom finds the like');
    t.equal(await s.swipes.likeFrom(a!, me!), undefined, 'likes are directional');

    await s.swipes.record({ swiperId: me!, targetId: b!, kind: 'pass', at: 3 });
    t.equal(await s.swipes.likeFrom(me!, b!), undefined, 'a pass is not a like');
    await s.swipes.record({ swiperId: me!, targetId: b!, kind: 'like', at: 4 });
    t.equal(await s.swipes.likeFrom(me!, b!), undefined, 'a like after a pass does not count (the pass stays)');

    await s.swipes.record({ swiperId: me!, targetId: c!, kind: 'superlike', at: 5 });
    t.equal((await s.swipes.likeFrom(me!, c!))?.kind, 'superlike', 'super likes are likes');

    const racing = await Promise.all(
      Array.from({ length: 20 }, (_, i) => s.swipes.record({ swiperId: d!, targetId: me!, kind: i % 2 ? 'like' : 'pass', at: 100 + i })),
    );
    t.equal(racing.filter((r) => r.first).length, 1, '20 concurrent swipes on one pair: exactly one is first');
    const kept = racing.find((r) => !r.first)!.existing!;
    t.ok(racing.every((r) => r.first || (r.existing?.at === kept.at && r.existing.kind === kept.kind)), 'all others see the same first swipe');

    t.same(await s.swipes.swipedAmong(me!, [a!, b!, c!, d!, newId()]), new Set([a, b, c]), 'swipedAmong');
    t.same(await s.swipes.swipedAmong(me!, []), new Set(), 'swipedAmong of nothing');
  });

  withStore('matches: exactly once per pair, listForUser, end', async (t, s) => {
    const [u, v] = [newId(), newId()].sort() as [string, string];
    const now = Date.now();
    const attempts = Array.from({ length: 200 }, (_, i): Match => ({
      matchId: newId(),
      users: i % 2 ? [u, v] : [v, u],
      createdAt: now + i,
      endedAt: null,
      endedBy: null,
      firstBucket: monthBucket(now),
    }));
    const results = await Promise.all(attempts.map((m) => s.matches.createIfAbsent(m)));
    const created = results.filter((r) => r.created);
    t.equal(created.length, 1, '200 concurrent createIfAbsent on one pair: exactly one creates');
    const matchId = created[0]!.match.matchId;
    t.ok(results.every((r) => r.match.matchId === matchId), 'all 200 return the same match id');
    t.same(created[0]!.match.users, [u, v], 'users are sorted');
    const stored = await s.matches.get(matchId);
    t.same(stored, created[0]!.match, 'get returns the created match');
    t.same(await s.matches.byPair(u, v), stored, 'byPair');
    t.same(await s.matches.byPair(v, u), stored, 'byPair either way round');
    t.equal(await s.matches.get(attempts.find((m) => m.matchId !== matchId)!.matchId), undefined, 'losing ids were not stored');

    const w = newId();
    const x = newId();
    const m2 = (await s.matches.createIfAbsent({ matchId: newId(), users: [w, u], createdAt: now + 1000, endedAt: null, endedBy: null, firstBucket: monthBucket(now) })).match;
    const m3 = (await s.matches.createIfAbsent({ matchId: newId(), users: [u, x], createdAt: now + 2000, endedAt: null, endedBy: null, firstBucket: monthBucket(now) })).match;
    t.same((await s.matches.listForUser(u)).map((m) => m.matchId), [m3.matchId, m2.matchId, matchId], 'listForUser: newest first');
    t.same((await s.matches.listForUser(w)).map((m) => m.matchId), [m2.matchId], 'the other side sees it too');
    t.same(await s.matches.listForUser(newId()), [], 'no matches');
    t.equal(await s.matches.byPair(v, w), undefined, 'no match for an unmatched pair');

    const ended = await s.matches.end(m2.matchId, w, now + 5000);
    t.same(ended, { ...m2, endedAt: now + 5000, endedBy: w }, 'end returns the ended match');
    t.same(await s.matches.get(m2.matchId), ended, 'and it is stored');
    const again = await s.matches.end(m2.matchId, u, now + 9000);
    t.same(again, ended, 'ending again keeps the first end');
    t.equal(await s.matches.end(newId(), u, now), undefined, 'ending an unknown match');
    const listed = await s.matches.listForUser(u);
    t.equal(listed.length, 3, 'ended matches stay listed');
    t.equal(listed.find((m) => m.matchId === m2.matchId)?.endedBy, w, 'with their end');

    const retry = await s.matches.createIfAbsent({ matchId: newId(), users: [u, w], createdAt: now + 10_000, endedAt: null, endedBy: null, firstBucket: monthBucket(now) });
    t.same(retry, { created: false, match: ended }, 'an ended pair does not match again');
  });

  withStore('blocks and reports', async (t, s) => {
    const [a, b, c, d] = Array.from({ length: 4 }, () => newId());
    await s.blocks.block(a!, b!, 1);
    await s.blocks.block(c!, a!, 2);
    await s.blocks.block(a!, b!, 3); // repeat is harmless
    t.same(await s.blocks.blockedEitherWay(a!), new Set([b, c]), 'blocked and blocked-by');
    t.same(await s.blocks.blockedEitherWay(b!), new Set([a]), 'the blocked side sees the block');
    t.same(await s.blocks.blockedEitherWay(c!), new Set([a]), 'the blocker sees it');
    t.same(await s.blocks.blockedEitherWay(d!), new Set(), 'nobody');
    t.same(await s.blocks.blockedBy(a!), [b], "a's own block list holds only whom a blocked");
    t.same(await s.blocks.blockedBy(b!), [], 'being blocked is not on your own list');

    const r1 = { reportId: newId(), reporterId: a!, reportedId: b!, reason: 'spam', details: 'sent links', createdAt: 10 };
    const r2 = { reportId: newId(), reporterId: c!, reportedId: b!, reason: 'abuse', details: '', createdAt: 11 };
    const r3 = { reportId: newId(), reporterId: a!, reportedId: c!, reason: 'fake', details: 'stock photos', createdAt: 12 };
    for (const r of [r1, r2, r3]) await s.reports.add(r);
    const forB = await s.reports.listForReported(b!);
    t.same([...forB].sort((x, y) => (x.reportId < y.reportId ? -1 : 1)), [r1, r2], 'reports about b');
    t.same(await s.reports.listForReported(c!), [r3], 'reports about c');
    t.same(await s.reports.listForReported(d!), [], 'none about d');
  });

  withStore('messages: 2,000 concurrent appends, paging across two buckets', async (t, s) => {
    const [alice, bob] = [newId(), newId()];
    const matchId = newId();
    const boundary = Date.UTC(2025, 3, 1); // 2025-04-01: March and April buckets
    const msgs: ChatMessage[] = Array.from({ length: 2000 }, (_, i) => {
      const sentAt = boundary - 1000 * 1000 + i * 1000; // 1,000 in March, 1,000 in April
      const from = i % 2 ? alice : bob;
      return {
        messageId: idAt(sentAt, i),
        matchId,
        senderId: from,
        recipientId: from === alice ? bob : alice,
        body: `message ${i}`,
        sentAt,
        bucket: monthBucket(sentAt),
      };
    });
    t.same([...new Set(msgs.map((m) => m.bucket))], [202503, 202504], 'fixtures span two month buckets');
    // Other conversations must not leak into this one.
    const otherMatch = newId();
    const noise = Array.from({ length: 20 }, (_, i): ChatMessage => {
      const sentAt = boundary - 500_000 + i * 7;
      return { messageId: idAt(sentAt, 4000 + i), matchId: otherMatch, senderId: alice, recipientId: newId(), body: 'x', sentAt, bucket: monthBucket(sentAt) };
    });
    // Append in a scrambled order: the order of history must come from the ids.
    const rnd = prng(7);
    const shuffled = [...msgs, ...noise].map((m) => ({ m, k: rnd() })).sort((x, y) => x.k - y.k).map((x) => x.m);
    await Promise.all(shuffled.map((m) => s.messages.append(m)));

    const newestFirst = [...msgs].sort((x, y) => (x.messageId < y.messageId ? 1 : -1));
    const seen: ChatMessage[] = [];
    let before: string | undefined;
    for (let pages = 0; pages < 200; pages++) {
      const page = await s.messages.page(matchId, 202503, { before, limit: 37 });
      if (page.length === 0) break;
      t.ok(page.length <= 37, 'page respects the limit');
      seen.push(...page);
      before = page[page.length - 1]!.messageId;
    }
    t.equal(seen.length, 2000, 'paging returns all 2,000 messages');
    t.equal(new Set(seen.map((m) => m.messageId)).size, 2000, 'no duplicates');
    t.same(seen.map((m) => m.messageId), newestFirst.map((m) => m.messageId), 'newest first, no gaps, across the bucket boundary');
    t.same(seen[0], newestFirst[0], 'pages carry whole messages');

    const aprilOnly = await s.messages.page(matchId, 202504, { limit: 5000 });
    t.equal(aprilOnly.length, 1000, 'paging stops at firstBucket');
    t.ok(aprilOnly.every((m) => m.bucket === 202504), 'and returns only that bucket and later');
    const fromMiddle = await s.messages.page(matchId, 202503, { before: newestFirst[999]!.messageId, limit: 3 });
    t.same(fromMiddle.map((m) => m.messageId), newestFirst.slice(1000, 1003).map((m) => m.messageId), 'a cursor at the last April message continues in March');
    t.same(await s.messages.page(matchId, 202503, { before: newestFirst[1999]!.messageId, limit: 10 }), [], 'nothing before the oldest');
    t.same(await s.messages.page(newId(), 202503, { limit: 10 }), [], 'an empty conversation');

    const one = newestFirst[1234]!;
    t.same(await s.messages.get(matchId, one.messageId), one, 'get finds a message by conversation and id');
    t.equal(await s.messages.get(otherMatch, one.messageId), undefined, 'not in another conversation');
    t.equal(await s.messages.get(matchId, newId()), undefined, 'nor an unknown id');
    t.equal(await s.messages.get(matchId, 'not-an-id'), undefined, 'nor a malformed one');

    // Forward paging (oldest first after a cursor) walks the same history the other way.
    const oldestFirst = [...newestFirst].reverse();
    const forward: ChatMessage[] = [];
    let after = '00000000-0000-0000-0000-000000000000';
    for (let pages = 0; pages < 200; pages++) {
      const page = await s.messages.pageAfter(matchId, 202503, { after, limit: 41 });
      if (page.length === 0) break;
      t.ok(page.length <= 41, 'forward page respects the limit');
      forward.push(...page);
      after = page[page.length - 1]!.messageId;
    }
    t.same(forward.map((m) => m.messageId), oldestFirst.map((m) => m.messageId), 'oldest first, no gaps, across the bucket boundary');
    const afterMarch = await s.messages.pageAfter(matchId, 202503, { after: oldestFirst[999]!.messageId, limit: 2 });
    t.same(afterMarch.map((m) => m.messageId), oldestFirst.slice(1000, 1002).map((m) => m.messageId), 'a cursor at the last March message continues in April');
    t.same(await s.messages.pageAfter(matchId, 202503, { after: oldestFirst[1999]!.messageId, limit: 5 }), [], 'nothing after the newest');
  });

  withStore('messages: pendingFor, markDelivered, idempotent append', async (t, s) => {
    const [alice, bob] = [newId(), newId()];
    const matchId = newId();
    const now = Date.now();
    const msgs = Array.from({ length: 60 }, (_, i): ChatMessage => {
      const sentAt = now + i;
      const from = i % 3 === 0 ? bob : alice; // 20 for alice, 40 for bob
      return { messageId: idAt(sentAt, i), matchId, senderId: from, recipientId: from === alice ? bob : alice, body: `m${i}`, sentAt, bucket: monthBucket(sentAt) };
    });
    await Promise.all([...msgs].reverse().map((m) => s.messages.append(m)));
    const forAlice = msgs.filter((m) => m.recipientId === alice);
    const forBob = msgs.filter((m) => m.recipientId === bob);

    t.same(await s.messages.pendingFor(alice, 100), forAlice, 'pending for alice, oldest first, whole messages');
    t.same((await s.messages.pendingFor(bob, 5)).map((m) => m.messageId), forBob.slice(0, 5).map((m) => m.messageId), 'limit keeps the oldest');

    await s.messages.markDelivered(bob, forBob.slice(0, 10).map((m) => m.messageId));
    t.same((await s.messages.pendingFor(bob, 100)).map((m) => m.messageId), forBob.slice(10).map((m) => m.messageId), 'delivered messages leave the queue');
    await s.messages.markDelivered(alice, forBob.slice(10, 20).map((m) => m.messageId));
    t.equal((await s.messages.pendingFor(bob, 100)).length, 30, "marking someone else's messages does nothing");
    await s.messages.markDelivered(bob, [newId()]);
    await s.messages.markDelivered(bob, []);
    t.pass('marking unknown ids or none is fine');

    await s.messages.append(forBob[0]!); // a retried append of a delivered message
    t.equal((await s.messages.pendingFor(bob, 100)).length, 30, 'a retried append does not queue the message again');
    t.equal((await s.messages.page(matchId, monthBucket(now), { limit: 1000 })).length, 60, 'nor duplicate it in history');
    t.same(await s.messages.pendingFor(newId(), 10), [], 'nothing pending for a stranger');
  });

  withStore('messages: read markers', async (t, s) => {
    const matchId = newId();
    const [alice, bob] = [newId(), newId()];
    const ids = Array.from({ length: 3 }, () => newId());
    t.equal(await s.messages.readMarker(matchId, alice), undefined, 'no marker yet');
    await s.messages.setReadMarker(matchId, alice, ids[1]!);
    t.equal(await s.messages.readMarker(matchId, alice), ids[1], 'set');
    t.equal(await s.messages.readMarker(matchId, bob), undefined, 'per user');
    await s.messages.setReadMarker(matchId, alice, ids[0]!);
    t.equal(await s.messages.readMarker(matchId, alice), ids[1], 'an older id does not move the marker back');
    await s.messages.setReadMarker(matchId, alice, ids[2]!);
    t.equal(await s.messages.readMarker(matchId, alice), ids[2], 'a newer id moves it forward');
  });
}

/**
 * The blob part of the contract, for any BlobStore (files embedded, S3 in a cluster).
 * `open` is called once per subtest and must return an empty store; its `close()`, if it
 * has one, is called afterwards even when assertions fail.
 */
export function blobContract(t: T, name: string, open: () => Promise<BlobStore & { close?(): unknown }>): void {
  const withBlobs = (title: string, fn: (t: T, b: BlobStore) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const b = await open();
      try {
        await fn(t, b);
      } finally {
        await b.close?.();
      }
    });

  withBlobs('blobs: put, get, overwrite, remove, key validation', async (t, b) => {
    const data = Buffer.concat([Buffer.from('line one\nline two\r\n\0'), randomBytes(256 * 1024)]);
    await b.put('images/abc', data, 'image/png');
    const got = await b.get('images/abc');
    t.ok(got && got.data.equals(data), 'bytes round trip exactly');
    t.equal(got?.contentType, 'image/png', 'content type round trips');

    await b.put('images/abc', Buffer.from('v2'), 'image/webp');
    const v2 = await b.get('images/abc');
    t.equal(v2?.data.toString(), 'v2', 'put overwrites');
    t.equal(v2?.contentType, 'image/webp', 'with the new content type');

    await b.put('books/x.epub', Buffer.alloc(0), 'application/epub+zip');
    t.equal((await b.get('books/x.epub'))?.data.length, 0, 'empty blobs are fine');

    t.equal(await b.get('images/missing'), undefined, 'missing key');
    await b.remove('images/abc');
    t.equal(await b.get('images/abc'), undefined, 'removed');
    await b.remove('images/abc'); // removing a missing key is not an error
    t.pass('remove of a missing key resolves');

    const payloads = Array.from({ length: 10 }, (_, i) => Buffer.alloc(64 * 1024, i));
    await Promise.all(payloads.map((p, i) => b.put('images/race', p, `image/x-${i}`)));
    const raced = await b.get('images/race');
    const winner = payloads.findIndex((p) => raced?.data.equals(p));
    t.ok(winner >= 0, 'concurrent puts of one key leave one whole payload');
    t.equal(raced?.contentType, `image/x-${winner}`, 'with its own content type');

    for (const bad of ['../escape', '/etc/passwd', 'images/../../x', 'images/..', '', 'a//b', 'a\\b', './x', 'images/']) {
      await rejectsWith(t, b.put(bad, Buffer.from('x'), 'text/plain'), 'INVALID_ARGUMENT', `put rejects key ${JSON.stringify(bad)}`);
    }
    await rejectsWith(t, b.get('../escape'), 'INVALID_ARGUMENT', 'get rejects a bad key');
    await rejectsWith(t, b.remove('/etc/passwd'), 'INVALID_ARGUMENT', 'remove rejects a bad key');
  });
}
