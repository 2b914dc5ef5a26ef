/**
 * One page of a deck, computed from the shared index (runs in a deck worker; pure, so the
 * main thread can run it too). See docs/recommendations.md for the model:
 *
 * - Candidates are people who fit both ways (each side's genders and age range, the
 *   distance within both maximum distances), found by walking the geo cells that cover the
 *   seeker's radius nearest first.
 * - They are served in distance *tiers*: a tier is the `tierSize` nearest fitting people
 *   beyond the previous tier's edge (`lo < d <= hi`). Within a tier, people are ordered by
 *   score with a diversity penalty; when a tier is used up the next one starts at its edge.
 *   Tiers do not depend on who the seeker has swiped (exclusions are applied after ranking),
 *   so a cursor (tier edges + the last key served) continues the same order on any node.
 */
import { EARTH_RADIUS_KM } from '../storage/sqlite/geo.js';
import { CellGrid, kmToLatDeg } from './grid.js';
import { LISTS_PER_CELL, LIVE, ageFromYmd, type IndexArrays } from './layout.js';
import { SCORE_STEPS, baseScore, centrality, diversityPenalty, mix32 } from './score.js';

export interface DeckPosition {
  /** tier edges, km: the tier holds candidates with lo < d <= hi; without hi the tier starts at lo */
  lo: number;
  hi?: number;
  /** the last card served in the tier: quantised score, tie-break hash, id hash */
  s?: number;
  h?: number;
  id?: number;
}

export interface DeckQuery {
  /** the seeker's own slot, -1 when not indexed */
  seekerSlot: number;
  lat: number;
  lon: number;
  radiusKm: number;
  /** genders the seeker wants (mask) and the seeker's own gender bit */
  wantMask: number;
  seekerGenderBit: number;
  seekerAge: number;
  ageMin: number;
  ageMax: number;
  /** the deck's clock (frozen for a paging session) and its date as yyyymmdd */
  asOf: number;
  todayYmd: number;
  /** per user and day: orders equal scores */
  seed: number;
  limit: number;
  tierSize: number;
  /** slots never to return, sorted ascending (swiped, matched, blocked) */
  exclude: Int32Array;
  /** slots of people who super liked the seeker */
  superLikers: Int32Array;
  /** where the previous page ended; absent for the first page */
  from?: DeckPosition;
}

export interface DeckPage {
  slots: number[];
  distanceKm: number[];
  scores: number[];
  /** undefined when the radius is used up */
  next?: DeckPosition;
  /** fitting candidates looked at (for metrics) */
  examined: number;
}

/** A page never walks more tiers than this; a longer run of swiped tiers continues on the next page. */
const MAX_TIERS_PER_PAGE = 16;
/** Radii covering more cells than this scan every slot instead of cell lists. */
const MAX_CELLS = 40_000;

const RAD = Math.PI / 180;

interface Found {
  slot: number[];
  d: number[];
}

function has(sorted: Int32Array, x: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid]!;
    if (v === x) return true;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

export class DeckComputer {
  private readonly grid: CellGrid;

  constructor(
    private readonly a: IndexArrays,
    /** slots in use */
    private readonly used: number,
    grid?: CellGrid,
  ) {
    this.grid = grid ?? new CellGrid(a.cellDeg);
  }

  /** Does slot `s` fit the seeker both ways, and how far is it? NaN when it does not fit. */
  fitDistance(q: DeckQuery, s: number, cosLat: number, latDeg: number): number {
    const a = this.a;
    if ((a.flags[s]! & LIVE) === 0 || a.cell[s]! < 0) return NaN;
    return this.fitListed(q, s, cosLat, latDeg);
  }

  /** fitDistance for a slot reached through a cell list (so live and located). */
  private fitListed(q: DeckQuery, s: number, cosLat: number, latDeg: number): number {
    const a = this.a;
    if ((a.prefMask[s]! & q.seekerGenderBit) === 0 || (a.gender[s]! & q.wantMask) === 0 || s === q.seekerSlot) return NaN;
    if (q.seekerAge < a.prefAgeMin[s]! || q.seekerAge > a.prefAgeMax[s]!) return NaN;
    const age = ageFromYmd(q.todayYmd, a.birth[s]!);
    if (age < q.ageMin || age > q.ageMax) return NaN;
    const lat = a.lat[s]!;
    if (Math.abs(lat - q.lat) > latDeg) return NaN;
    // haversine with the storage backends' Earth radius, so the filters agree
    const dLat = (lat - q.lat) * RAD;
    const dLon = (a.lon[s]! - q.lon) * RAD;
    const h = Math.sin(dLat / 2) ** 2 + cosLat * Math.cos(lat * RAD) * Math.sin(dLon / 2) ** 2;
    const d = 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
    if (d > q.radiusKm || d > a.maxDistKm[s]!) return NaN;
    return d;
  }

  /**
   * Fitting candidates with lo < d <= hi. With `want`, it walks outwards in rings (radius
   * lo + 1 cell, then doubling the step), each ring's cells nearest first. Once `want` are
   * found, their farthest (`bound`) limits the walk: a cell whose nearest point is farther
   * cannot change the `want` nearest. It stops when bound <= the ring's radius, since every
   * cell reaching within the ring has been walked or ruled out. A large radius thus costs
   * no more than a small one when the tier fills close by.
   */
  private collect(q: DeckQuery, lo: number, hi: number, want: number): Found & { examined: number } {
    const found: Found = { slot: [], d: [] };
    const cosLat = Math.cos(q.lat * RAD);
    const latDeg = kmToLatDeg(Math.min(q.radiusKm, hi)) + 1e-9;
    const end = Math.min(hi, q.radiusKm);
    if (this.grid.estimateCells(end) > MAX_CELLS && (want === 0 || this.grid.estimateCells(Math.max(lo, 0) + 4 * this.grid.cellKm) > MAX_CELLS)) {
      for (let s = 0; s < this.used; s++) {
        const d = this.fitDistance(q, s, cosLat, latDeg);
        if (d > lo && d <= hi) {
          found.slot.push(s);
          found.d.push(d);
        }
      }
      return { ...found, examined: this.used };
    }
    const { head, next } = this.a;
    const visited = new Set<number>();
    const guard = this.used; // a list can never be longer than the slots in use
    let examined = 0;
    let step = this.grid.cellKm;
    let r = want > 0 ? Math.min(end, Math.max(lo, 0) + step) : end;
    let bound = Infinity;
    for (;;) {
      if (this.grid.estimateCells(r) > MAX_CELLS) {
        // too wide for cells: finish with a scan of every slot
        found.slot.length = 0;
        found.d.length = 0;
        for (let s = 0; s < this.used; s++) {
          const d = this.fitDistance(q, s, cosLat, latDeg);
          if (d > lo && d <= hi) {
            found.slot.push(s);
            found.d.push(d);
          }
        }
        return { ...found, examined: examined + this.used };
      }
      const { cells, minKm } = this.grid.covering(q.lat, q.lon, r);
      for (let i = 0; i < cells.length; i++) {
        if (minKm[i]! > bound) break;
        const c = cells[i]!;
        if (visited.has(c)) continue;
        visited.add(c);
        for (let g = 0; g < LISTS_PER_CELL; g++) {
          if ((q.wantMask & (1 << g)) === 0) continue;
          let steps = 0;
          for (let s = head[c * LISTS_PER_CELL + g]! - 1; s >= 0 && steps < guard; s = next[s]!, steps++) {
            const d = this.fitListed(q, s, cosLat, latDeg);
            if (d > lo && d <= hi) {
              found.slot.push(s);
              found.d.push(d);
            }
          }
          examined += steps;
        }
        if (want > 0 && found.d.length >= want && bound === Infinity) bound = kthSmallest(found.d, want);
      }
      if (r >= end || bound <= r) break;
      step *= 2;
      r = Math.min(end, Math.max(lo, 0) + step);
    }
    return { ...found, examined };
  }

  /** The next tier beyond `lo`: its edge and members. */
  private tier(q: DeckQuery, lo: number, hi: number | undefined): { hi: number; found: Found; last: boolean; examined: number } {
    if (hi !== undefined) {
      const f = this.collect(q, lo, hi, 0);
      return { hi, found: f, last: hi >= q.radiusKm, examined: f.examined };
    }
    const f = this.collect(q, lo, q.radiusKm, q.tierSize);
    if (f.d.length <= q.tierSize) return { hi: q.radiusKm, found: f, last: true, examined: f.examined };
    const edge = kthSmallest(f.d, q.tierSize);
    const kept: Found = { slot: [], d: [] };
    for (let i = 0; i < f.d.length; i++) {
      if (f.d[i]! <= edge) {
        kept.slot.push(f.slot[i]!);
        kept.d.push(f.d[i]!);
      }
    }
    return { hi: edge, found: kept, last: false, examined: f.examined };
  }

  /** Members of a tier in deck order: quantised score (with diversity) desc, then tie-break hash, then id hash. */
  private rank(q: DeckQuery, f: Found): Array<{ slot: number; d: number; s: number; h: number; id: number }> {
    const a = this.a;
    const supers = new Set<number>(q.superLikers);
    const n = f.slot.length;
    const base = new Float64Array(n);
    const tie = new Uint32Array(n);
    const order: number[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const s = f.slot[i]!;
      const age = ageFromYmd(q.todayYmd, a.birth[s]!);
      const fit = 0.5 * centrality(age, q.ageMin, q.ageMax) + 0.5 * centrality(q.seekerAge, a.prefAgeMin[s]!, a.prefAgeMax[s]!);
      base[i] = baseScore({
        distanceKm: f.d[i]!,
        idleMs: q.asOf - a.lastActive[s]!,
        fit,
        likes: a.likes[s]!,
        accountAgeMs: q.asOf - a.createdAt[s]!,
        superLikedMe: supers.has(s),
      });
      tie[i] = mix32(q.seed ^ a.idHash[s]!);
      order[i] = i;
    }
    order.sort((x, y) => base[y]! - base[x]! || tie[x]! - tie[y]! || a.idHash[f.slot[x]!]! - a.idHash[f.slot[y]!]!);
    // Diversity: the k-th best of an age band (5 years × gender) or of a cell gives way a
    // little, by log2(1 + k), so one crowd cannot fill the top of the deck.
    const bandRank = new Map<number, number>();
    const cellRank = new Map<number, number>();
    const out = new Array<{ slot: number; d: number; s: number; h: number; id: number }>(n);
    for (let k = 0; k < n; k++) {
      const i = order[k]!;
      const s = f.slot[i]!;
      const band = Math.floor(ageFromYmd(q.todayYmd, a.birth[s]!) / 5) * 8 + a.gender[s]!;
      const rb = bandRank.get(band) ?? 0;
      bandRank.set(band, rb + 1);
      const c = Math.floor(a.cell[s]! / LISTS_PER_CELL);
      const rc = cellRank.get(c) ?? 0;
      cellRank.set(c, rc + 1);
      const score = base[i]! - diversityPenalty(rb, rc);
      out[k] = { slot: s, d: f.d[i]!, s: Math.round(score * SCORE_STEPS), h: tie[i]!, id: a.idHash[s]! };
    }
    out.sort((x, y) => y.s - x.s || x.h - y.h || x.id - y.id);
    return out;
  }

  page(q: DeckQuery): DeckPage {
    const page: DeckPage = { slots: [], distanceKm: [], scores: [], examined: 0 };
    let lo = q.from?.lo ?? -1;
    let hi = q.from?.hi;
    let key = q.from && q.from.s !== undefined ? { s: q.from.s, h: q.from.h ?? 0, id: q.from.id ?? 0 } : undefined;
    if (!(q.limit > 0) || !(q.radiusKm >= 0) || q.wantMask === 0) return page;
    for (let t = 0; t < MAX_TIERS_PER_PAGE; t++) {
      if (lo >= q.radiusKm) return page;
      const tier = this.tier(q, lo, hi);
      page.examined += tier.examined;
      for (const m of this.rank(q, tier.found)) {
        if (key && !(m.s < key.s || (m.s === key.s && (m.h > key.h || (m.h === key.h && m.id > key.id))))) continue;
        if (has(q.exclude, m.slot)) continue;
        page.slots.push(m.slot);
        page.distanceKm.push(m.d);
        page.scores.push(m.s / SCORE_STEPS);
        if (page.slots.length >= q.limit) {
          page.next = { lo, hi: tier.hi, s: m.s, h: m.h, id: m.id };
          return page;
        }
      }
      if (tier.last) return page;
      lo = tier.hi;
      hi = undefined;
      key = undefined;
    }
    // many tiers in a row were all swiped: the next page carries on from here
    page.next = { lo };
    return page;
  }
}

/** The k-th smallest value (1-based) of `values`, without changing it: quickselect on a copy, O(n). */
function kthSmallest(values: number[], k: number): number {
  const a = Float64Array.from(values);
  const target = Math.min(k, a.length) - 1;
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[target]!;
}
