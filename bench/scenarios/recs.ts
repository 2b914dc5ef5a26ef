/**
 * recs: ranked decks from a candidate index of N generated profiles, computed on the real
 * deck worker pool (piscina, dist/recs/deck-worker.js) through the real Recommender.deck()
 * path (cursor, exclusion cache, pool, main-thread re-check). Storage is an in-memory stub
 * (each seeker has --swiped random nearby people already swiped), so the figures are the
 * recommender's own cost, not SQLite's or Cassandra's; hydrating cards into profiles with
 * images is the ordinary storage read of 50 rows and is not included.
 *
 * Profiles are generated straight into the index (bulkLoad, as the start scan does):
 * --cities metro areas across a Europe-sized box with Zipf-like populations and a normal
 * spread of --spread-km, plus 10% scattered uniformly; genders 48/48/4 with mostly
 * opposite-gender preferences; ages 18-65 with age ranges around their own; maximum
 * distances of 10-160 km; last activity within 3 weeks; accounts up to a year old.
 *
 * Closed loop: --concurrency decks in flight; each deck is the first page for a random seeker
 * (or, with --paging, the next page of that seeker's deck). Latency is the time of one
 * Recommender.deck() call.
 *
 * --scan N additionally writes N profiles to a fresh SQLite database and times the start
 * scan that builds the index from it (Recommender.start()).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Options } from '../lib/args.js';
import { Latency, nowMs } from '../lib/hist.js';
import { machineInfo } from '../lib/proc.js';
import { prng as rng } from '../lib/random.js';
import { fmt, log, ms, printTable, writeResult } from '../lib/report.js';
import { LocalBus } from '../../src/actors/bus.js';
import { makeConfig } from '../../src/config.js';
import { Recommender } from '../../src/recs/recommender.js';
import type { CandidateRecord } from '../../src/recs/index.js';
import type { Gender, Profile, Storage } from '../../src/storage/types.js';
import { openEmbeddedStorage } from '../../src/storage/embedded.js';

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

const DAY = 86_400_000;

/** A time-ordered id minted at `ms` (newId never goes back in time; account age comes from the id). */
function idAt(ms: number, r: () => number): string {
  const hex = ms.toString(16).padStart(12, '0');
  let tail = '';
  for (let i = 0; i < 5; i++) tail += Math.floor(r() * 0x1000000).toString(16).padStart(6, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8)}-7${tail.slice(0, 3)}-${(8 + (parseInt(tail[3]!, 16) & 3)).toString(16)}${tail.slice(4, 7)}-${tail.slice(7, 19)}`;
}

export interface GeneratedPopulation {
  records: CandidateRecord[];
  likes: number[];
}

export function generateProfiles(n: number, opts: { cities: number; spreadKm: number; seed: number; now: number }): GeneratedPopulation {
  const r = rng(opts.seed);
  const cities = Array.from({ length: opts.cities }, (_, i) => ({ lat: 36 + r() * 24, lon: -10 + r() * 40, weight: 1 / (i + 1) }));
  const total = cities.reduce((s, c) => s + c.weight, 0);
  const cumulative: number[] = [];
  let acc = 0;
  for (const c of cities) cumulative.push((acc += c.weight / total));
  const records: CandidateRecord[] = new Array(n);
  const likes: number[] = new Array(n);
  const distances = [10, 25, 50, 50, 100, 160];
  for (let i = 0; i < n; i++) {
    let lat: number;
    let lon: number;
    if (r() < 0.1) {
      lat = 36 + r() * 24;
      lon = -10 + r() * 40;
    } else {
      const x = r();
      const c = cities[cumulative.findIndex((v) => x <= v)] ?? cities[0]!;
      lat = c.lat + (gaussian(r) * opts.spreadKm) / 111.2;
      lon = c.lon + (gaussian(r) * opts.spreadKm) / (111.2 * Math.cos((c.lat * Math.PI) / 180));
    }
    const g = r();
    const gender: Gender = g < 0.48 ? 'woman' : g < 0.96 ? 'man' : 'nonbinary';
    const p = r();
    const genders: Gender[] =
      p < 0.8 ? [gender === 'woman' ? 'man' : gender === 'man' ? 'woman' : 'nonbinary'] : p < 0.9 ? [gender === 'nonbinary' ? 'woman' : gender] : ['woman', 'man', 'nonbinary'];
    const age = 18 + Math.floor(Math.pow(r(), 1.6) * 47);
    const year = new Date(opts.now).getUTCFullYear() - age - 1;
    const birthDate = `${year}-${String(1 + Math.floor(r() * 12)).padStart(2, '0')}-${String(1 + Math.floor(r() * 28)).padStart(2, '0')}`;
    const ageMin = Math.max(18, age - 3 - Math.floor(r() * 8));
    const ageMax = Math.min(99, age + 3 + Math.floor(r() * 10));
    const createdAt = opts.now - Math.floor(r() * 365 * DAY);
    records[i] = {
      userId: idAt(createdAt, r),
      location: { lat, lon },
      gender,
      birthDate,
      preferences: { ageMin, ageMax, genders, maxDistanceKm: distances[Math.floor(r() * distances.length)]! },
      lastActiveAt: opts.now - Math.floor(Math.pow(r(), 2) * 21 * DAY),
      updatedAt: createdAt,
    };
    likes[i] = Math.floor(Math.pow(r(), 4) * 400);
  }
  return { records, likes };
}

function toProfile(rec: CandidateRecord): Profile {
  return { ...rec, displayName: 'x', bio: '', showPresence: true };
}

/** Storage as the Recommender reads it for decks, in memory: swipes per seeker, nothing else. */
function stubStorage(swipedBy: Map<string, string[]>): Storage {
  const none = () => Promise.resolve([]);
  return {
    swipes: {
      swipedBy: (id: string) => Promise.resolve(swipedBy.get(id) ?? []),
      superLikersOf: none,
      swipedAmong: () => Promise.resolve(new Set<string>()),
    },
    matches: { listForUser: none },
    blocks: { blockedEitherWay: () => Promise.resolve(new Set<string>()) },
  } as unknown as Storage;
}

async function timeScan(n: number, population: GeneratedPopulation): Promise<{ profiles: number; writeSeconds: number; scanSeconds: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-recs-scan-'));
  try {
    const storage = await openEmbeddedStorage(dir);
    const writeStart = performance.now();
    const batch = 2000;
    for (let i = 0; i < n; i += batch) {
      await Promise.all(population.records.slice(i, Math.min(n, i + batch)).map((r) => storage.profiles.put(toProfile(r))));
      if (i % 100_000 === 0) log(`scan setup: ${i} profiles written`);
    }
    const writeSeconds = (performance.now() - writeStart) / 1000;
    const recs = new Recommender({ storage, bus: new LocalBus(), clock: { now: () => Date.now() } as never, config: { ...makeConfig().recs, threads: 1 } });
    const { profiles, seconds } = await recs.start();
    await recs.close();
    await storage.close();
    return { profiles, writeSeconds, scanSeconds: seconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function recs(o: Options): Promise<void> {
  const n = o.num('profiles', 1_000_000);
  const concurrency = o.num('concurrency', 8);
  const duration = o.num('duration', 20);
  const warmup = o.num('warmup', 3);
  const threads = o.num('threads', 2);
  const limit = o.num('limit', 50);
  const swipedPerSeeker = o.num('swiped', 200);
  const cities = o.num('cities', 50);
  const spreadKm = o.num('spread-km', 15);
  const tierSize = o.num('tier-size', makeConfig().recs.tierSize);
  const cellDeg = o.num('cell-deg', makeConfig().recs.cellDeg);
  const paging = o.bool('paging');
  const scan = o.num('scan', 0);
  const seekerCount = o.num('seekers', 5000);
  const outDir = o.str('out-dir', '') || undefined;
  o.checkUnknown();

  const now = Date.now();
  log(`generating ${fmt(n, 0)} profiles (${cities} cities, spread ${spreadKm} km)`);
  let t = performance.now();
  const population = generateProfiles(n, { cities, spreadKm, seed: 42, now });
  const generateSeconds = (performance.now() - t) / 1000;

  // Seekers: random profiles; each has already swiped `swipedPerSeeker` people near them.
  const r = rng(7);
  const seekers: Profile[] = [];
  const swipedBy = new Map<string, string[]>();
  for (let i = 0; i < Math.min(seekerCount, n); i++) seekers.push(toProfile(population.records[Math.floor(r() * n)]!));

  const config = { ...makeConfig().recs, threads, tierSize, cellDeg, initialCapacity: n, maxQueue: 10_000 };
  const recommender = new Recommender({ storage: stubStorage(swipedBy), bus: new LocalBus(), clock: { now: () => Date.now() } as never, config });
  t = performance.now();
  recommender.index.bulkLoad(population.records);
  population.records.forEach((rec, i) => recommender.index.setLikes(rec.userId, population.likes[i]!));
  const loadSeconds = (performance.now() - t) / 1000;
  (recommender as unknown as { ready: boolean }).ready = true;
  log(`index: ${fmt(recommender.index.size, 0)} profiles loaded in ${loadSeconds.toFixed(2)} s; ${recommender.pool.threads} deck workers`);

  // swiped people: taken from each seeker's own first deck pages, so they really are in the way
  log(`setup: ${swipedPerSeeker} swipes for each of ${seekers.length} seekers (from their own decks)`);
  if (swipedPerSeeker > 0) {
    for (let i = 0; i < seekers.length; i += 64) {
      await Promise.all(
        seekers.slice(i, i + 64).map(async (s) => {
          const res = await recommender.deck(s, Math.min(100, swipedPerSeeker));
          const ids = res.userIds.filter((_, k) => k % 2 === 0 || r() < 0.5).slice(0, swipedPerSeeker);
          swipedBy.set(s.userId, ids);
        }),
      );
    }
  }
  // the cache was filled with empty swipe sets during that setup: start again
  for (const s of seekers) (recommender as unknown as { exclusions: { forget(id: string): void } }).exclusions.forget(s.userId);

  const latency = new Latency();
  let cardsServed = 0;
  let decks = 0;
  let measured = 0;
  let emptyDecks = 0;
  let shortDecks = 0;
  const cursors = new Map<string, string>();
  const errors: Record<string, number> = {};
  const start = nowMs();
  const measureStart = start + warmup * 1000;
  const end = measureStart + duration * 1000;
  let cpuStart: NodeJS.CpuUsage | undefined;
  log(`decks for ${warmup} + ${duration} s with ${concurrency} in flight${paging ? ' (paging through each seeker\'s deck)' : ''}`);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const now2 = nowMs();
        if (now2 >= end) return;
        if (!cpuStart && now2 >= measureStart) cpuStart = process.cpuUsage();
        const seeker = seekers[Math.floor(r() * seekers.length)]!;
        const cursor = paging ? cursors.get(seeker.userId) : undefined;
        const t0 = nowMs();
        try {
          const page = await recommender.deck(seeker, limit, cursor);
          const t1 = nowMs();
          decks++;
          if (paging) {
            if (page.next) cursors.set(seeker.userId, page.next);
            else cursors.delete(seeker.userId);
          }
          if (t0 >= measureStart && t1 <= end) {
            measured++;
            latency.recordMs(t1 - t0);
            cardsServed += page.userIds.length;
            if (page.userIds.length === 0) emptyDecks++;
            else if (page.userIds.length < limit) shortDecks++;
          }
        } catch (err) {
          const code = (err as { code?: string }).code ?? (err as Error).message;
          errors[code] = (errors[code] ?? 0) + 1;
        }
      }
    }),
  );
  const cpu = process.cpuUsage(cpuStart);
  const workers = recommender.pool.threads;
  await recommender.close();

  let scanResult: Awaited<ReturnType<typeof timeScan>> | undefined;
  if (scan > 0) {
    log(`scan: writing ${fmt(Math.min(scan, n), 0)} profiles to SQLite, then timing the index build`);
    scanResult = await timeScan(Math.min(scan, n), population);
  }

  const l = latency.summary();
  const decksPerSecond = measured / duration;
  const cardsPerDeck = measured > 0 ? cardsServed / measured : 0;
  const rows: Array<[string, string | number]> = [
    ['profiles in the index', fmt(n, 0)],
    ['generate / bulk load', `${generateSeconds.toFixed(1)} s / ${loadSeconds.toFixed(2)} s`],
    ['deck workers / in flight', `${workers} / ${concurrency}`],
    ['cards per deck asked', limit],
    ['swiped per seeker', swipedPerSeeker],
    ['decks measured', fmt(measured, 0)],
    ['decks/s', fmt(decksPerSecond, 0)],
    ['latency p50 / p90 / p99 / max', `${ms(l.p50)} / ${ms(l.p90)} / ${ms(l.p99)} / ${ms(l.max)}`],
    ['cards per deck (mean)', fmt(cardsPerDeck, 1)],
    ['short / empty decks', `${shortDecks} / ${emptyDecks}`],
    ['process CPU per deck (all threads)', ms((cpu.user + cpu.system) / 1000 / Math.max(1, measured))],
    ['errors', Object.keys(errors).length ? JSON.stringify(errors) : 'none'],
    ['load average (1/5/15 min)', loadavg().map((x) => x.toFixed(1)).join(' / ')],
  ];
  if (scanResult) {
    rows.push(['scan: profiles written to SQLite', `${fmt(scanResult.profiles, 0)} in ${scanResult.writeSeconds.toFixed(1)} s`]);
    rows.push(['scan: index built from SQLite', `${scanResult.scanSeconds.toFixed(2)} s`]);
  }
  printTable('recs: ranked decks on the deck worker pool', rows);
  const file = writeResult('recs', {
    scenario: 'recs',
    machine: machineInfo(),
    loadAverage: loadavg(),
    options: { n, seekerCount, concurrency, duration, warmup, threads, limit, swipedPerSeeker, cities, spreadKm, tierSize, cellDeg, paging, scan },
    decksPerSecond,
    latencyMs: l,
    cardsPerDeck,
    shortDecks,
    emptyDecks,
    errors,
    generateSeconds,
    loadSeconds,
    scan: scanResult,
  }, outDir);
  log(`wrote ${file}`);
}
