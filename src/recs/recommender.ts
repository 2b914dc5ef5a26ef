/**
 * Recommender: the deck on one node. It owns the candidate index (built by a storage scan
 * at start, then kept current by bus events from every node), the per-user exclusion cache
 * and the deck worker pool, and turns a seeker's profile plus an optional cursor into one
 * page of user ids. KindredService hydrates those ids into cards.
 *
 * Exactness where it matters: the worker reads shared memory that the main thread may be
 * changing, so the main thread re-checks every returned card against its own (consistent)
 * view, and asks storage once per page whether any of them was swiped meanwhile (a swipe on
 * another node may not have reached this node's cache yet).
 */
import type { Bus, Subscription } from '../actors/bus.js';
import type { Clock } from '../actors/clock.js';
import type { RecsConfig } from '../config.js';
import { KindredError } from '../errors.js';
import { ageOn } from '../domain/profiles.js';
import type { Profile, Storage } from '../storage/types.js';
import { DeckComputer, type DeckQuery } from './deck-core.js';
import { RECS_SUBJECT, type RecsEvent } from './events.js';
import { CandidateIndex, type CandidateRecord } from './index.js';
import { GENDER_BITS, genderMask, ymdOf } from './layout.js';
import { DeckPool } from './pool.js';
import { SESSION_MS, decodeCursor, encodeCursor, fingerprint, type DeckCursor } from './cursor.js';
import { fnv1a } from './score.js';
import { ExclusionCache } from './exclusions.js';

export interface RecommenderDeps {
  storage: Storage;
  bus: Bus;
  clock: Clock;
  config: RecsConfig;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
}

export interface DeckResult {
  userIds: string[];
  distanceKm: number[];
  scores: number[];
  next: string | null;
  /** the cursor given was for other settings (the user moved or changed preferences) or too old */
  refreshed: boolean;
}

export function recordOf(p: Profile): CandidateRecord {
  return {
    userId: p.userId,
    location: p.location,
    gender: p.gender,
    birthDate: p.birthDate,
    preferences: p.preferences,
    lastActiveAt: p.lastActiveAt,
    updatedAt: p.updatedAt,
  };
}

export class Recommender {
  readonly index: CandidateIndex;
  readonly pool: DeckPool;
  private readonly exclusions: ExclusionCache;
  private sub: Subscription | undefined;
  private ready = false;

  constructor(private readonly d: RecommenderDeps) {
    this.index = new CandidateIndex({ cellDeg: d.config.cellDeg, initialCapacity: d.config.initialCapacity });
    this.pool = new DeckPool({
      threads: d.config.threads,
      maxQueue: d.config.maxQueue,
      onError: (err) => d.log?.('deck worker failed', { err: err.message }),
    });
    this.exclusions = new ExclusionCache(d.storage, d.config.exclusionCacheUsers, d.config.exclusionCacheMs, () => d.clock.now());
  }

  /** Follows the bus first (so nothing published during the scan is missed), then scans storage. */
  async start(): Promise<{ profiles: number; seconds: number }> {
    this.sub = this.d.bus.subscribe(RECS_SUBJECT, (p) => this.apply(p as RecsEvent));
    const started = performance.now();
    const records: CandidateRecord[] = [];
    for await (const page of this.d.storage.profiles.scanAll(5000)) for (const p of page) records.push(recordOf(p));
    this.index.bulkLoad(records);
    for await (const page of this.d.storage.swipes.scanLikeCounts(5000)) for (const c of page) this.index.setLikes(c.userId, c.likes);
    this.ready = true;
    const seconds = (performance.now() - started) / 1000;
    this.d.log?.('deck index built', { profiles: this.index.size, seconds: Math.round(seconds * 1000) / 1000 });
    return { profiles: this.index.size, seconds };
  }

  async close(): Promise<void> {
    this.sub?.unsubscribe();
    await this.pool.close();
  }

  // ---- events --------------------------------------------------------------

  /** A profile was written (here): index it now and tell every node. */
  profileChanged(p: Profile): void {
    const r = recordOf(p);
    this.index.upsert(r);
    this.publish({ k: 'profile', r });
  }

  active(userId: string, at: number): void {
    this.index.touch(userId, at);
    this.publish({ k: 'active', u: userId, at });
  }

  swiped(swiperId: string, targetId: string, kind: 'like' | 'pass' | 'superlike'): void {
    this.exclusions.swiped(swiperId, targetId, kind);
    this.publish({ k: 'swipe', u: swiperId, t: targetId, kind });
  }

  blocked(blockerId: string, blockedId: string): void {
    this.exclusions.forget(blockerId);
    this.exclusions.forget(blockedId);
    this.publish({ k: 'block', u: blockerId, t: blockedId });
  }

  private publish(e: RecsEvent): void {
    this.d.bus.publish(RECS_SUBJECT, e);
  }

  private apply(e: RecsEvent): void {
    switch (e?.k) {
      case 'profile':
        this.index.upsert(e.r);
        return;
      case 'active':
        this.index.touch(e.u, e.at);
        return;
      case 'swipe':
        if (e.kind !== 'pass') this.index.addLikes(e.t, 1);
        this.exclusions.swiped(e.u, e.t, e.kind);
        return;
      case 'block':
        this.exclusions.forget(e.u);
        this.exclusions.forget(e.t);
        return;
    }
  }

  // ---- decks ---------------------------------------------------------------

  /** The seeker's query as the worker takes it, for a deck session frozen at `asOf`. */
  queryFor(me: Profile, asOf: number, seed: number, limit: number): Omit<DeckQuery, 'exclude' | 'superLikers'> {
    if (!me.location) throw new KindredError('INVALID_ARGUMENT', 'location: set your location to get a deck');
    const prefs = me.preferences;
    return {
      seekerSlot: this.index.slotOf(me.userId) ?? -1,
      lat: me.location.lat,
      lon: me.location.lon,
      radiusKm: prefs.maxDistanceKm,
      wantMask: genderMask(prefs.genders),
      seekerGenderBit: GENDER_BITS[me.gender] ?? 0,
      seekerAge: ageOn(me.birthDate, asOf),
      ageMin: prefs.ageMin,
      ageMax: prefs.ageMax,
      asOf,
      todayYmd: ymdOf(asOf),
      seed,
      limit,
      tierSize: this.d.config.tierSize,
    };
  }

  async deck(me: Profile, limit: number, cursor?: string): Promise<DeckResult> {
    if (!this.ready) throw new KindredError('UNAVAILABLE', 'the deck index is still loading; retry shortly');
    const now = this.d.clock.now();
    const fp = fingerprint(me);
    let c: DeckCursor | undefined = cursor !== undefined ? decodeCursor(cursor) : undefined;
    const refreshed = c !== undefined && (c.f !== fp || now - c.asOf > SESSION_MS || c.asOf > now + 60_000);
    if (refreshed) c = undefined;
    const asOf = c?.asOf ?? now;
    const seed = c?.seed ?? fnv1a(`${me.userId}:${Math.floor(now / 86_400_000)}`);
    const ex = await this.exclusions.get(me.userId);
    const query: DeckQuery = {
      ...this.queryFor(me, asOf, seed, limit),
      exclude: this.index.slotsOf(ex.excluded()),
      superLikers: this.index.slotsOf(ex.superLikers),
      ...(c ? { from: c.pos } : {}),
    };
    const page = await this.pool.run({ index: this.index.shared(), used: this.index.size, query });

    // Re-check on the main thread, whose view of the index is consistent, and against storage for fresh swipes.
    const check = new DeckComputer(this.index.arrays, this.index.size, this.index.grid);
    const cosLat = Math.cos((query.lat * Math.PI) / 180);
    const ids: string[] = [];
    const kept: number[] = [];
    page.slots.forEach((slot, i) => {
      if (!Number.isNaN(check.fitDistance(query, slot, cosLat, 180))) {
        ids.push(this.index.idOf(slot));
        kept.push(i);
      }
    });
    const swiped = await this.d.storage.swipes.swipedAmong(me.userId, ids);
    const out: DeckResult = { userIds: [], distanceKm: [], scores: [], next: null, refreshed };
    ids.forEach((id, j) => {
      if (swiped.has(id)) return;
      out.userIds.push(id);
      out.distanceKm.push(page.distanceKm[kept[j]!]!);
      out.scores.push(page.scores[kept[j]!]!);
    });
    if (page.next) out.next = encodeCursor({ v: 1, f: fp, seed, asOf, pos: page.next });
    return out;
  }
}
