/**
 * CandidateIndex: this node's in-memory copy of what decks need about every profile, in
 * shared typed arrays (layout.ts) that deck workers read without copying. The main thread
 * is its only writer: it is built by a storage scan at start and kept current by profile,
 * activity and swipe events from the bus (recommender.ts), on every node.
 *
 * Updates are last-writer-wins by the profile's updatedAt, so an event that arrives after
 * a newer one (or after the start scan read a newer row) changes nothing.
 */
import { idTime, isId } from '../ids.js';
import type { Gender, Location, Preferences } from '../storage/types.js';
import { CellGrid } from './grid.js';
import { GENDER_BITS, GENDER_LIST, LISTS_PER_CELL, LIVE, allocate, genderMask, toShared, ymd, type IndexArrays, type SharedIndex } from './layout.js';
import { fnv1a } from './score.js';

/** What the index keeps of a profile. */
export interface CandidateRecord {
  userId: string;
  location: Location | null;
  gender: Gender;
  /** YYYY-MM-DD */
  birthDate: string;
  preferences: Preferences;
  lastActiveAt: number;
  updatedAt: number;
}

export interface IndexOptions {
  /** grid cell size in degrees (must divide 180) */
  cellDeg: number;
  /** slots allocated up front; the index doubles when full */
  initialCapacity: number;
}

export class CandidateIndex {
  readonly grid: CellGrid;
  private a: IndexArrays;
  private generation = 0;
  private sharedView: SharedIndex;
  private used = 0;
  private readonly slots = new Map<string, number>();
  private ids: string[] = [];
  /** updatedAt per slot (main thread only) */
  private updated: Float64Array;

  constructor(opts: IndexOptions) {
    this.grid = new CellGrid(opts.cellDeg);
    const cap = Math.max(16, opts.initialCapacity);
    this.a = allocate(cap, this.grid.cellCount, opts.cellDeg);
    this.updated = new Float64Array(cap);
    this.sharedView = toShared(this.a, this.generation);
  }

  /** Profiles held (slots in use). */
  get size(): number {
    return this.used;
  }

  get arrays(): IndexArrays {
    return this.a;
  }

  /** The buffers for a worker task (the same object until the index grows). */
  shared(): SharedIndex {
    return this.sharedView;
  }

  slotOf(userId: string): number | undefined {
    return this.slots.get(userId);
  }

  idOf(slot: number): string {
    return this.ids[slot]!;
  }

  /** Slots of the given ids that the index holds, sorted ascending (for exclusion lists). */
  slotsOf(userIds: Iterable<string>): Int32Array {
    const out: number[] = [];
    for (const id of userIds) {
      const s = this.slots.get(id);
      if (s !== undefined) out.push(s);
    }
    return Int32Array.from(out).sort();
  }

  private slotFor(userId: string): number {
    let s = this.slots.get(userId);
    if (s !== undefined) return s;
    if (this.used === this.a.capacity) this.grow();
    s = this.used++;
    this.slots.set(userId, s);
    this.ids[s] = userId;
    this.a.idHash[s] = fnv1a(userId);
    this.a.createdAt[s] = isId(userId) ? idTime(userId) : 0;
    return s;
  }

  private grow(): void {
    const cap = this.a.capacity * 2;
    this.a = allocate(cap, this.grid.cellCount, this.a.cellDeg, this.a);
    const updated = new Float64Array(cap);
    updated.set(this.updated);
    this.updated = updated;
    this.generation++;
    this.sharedView = toShared(this.a, this.generation);
  }

  private unlink(s: number): void {
    const { head, next, prev, cell } = this.a;
    const c = cell[s]!;
    if (c < 0) return;
    const p = prev[s]!;
    const n = next[s]!;
    if (p >= 0) next[p] = n;
    else head[c] = n + 1;
    if (n >= 0) prev[n] = p;
    // The slot keeps its `next`, so a worker standing on it still reaches the end of a list.
    prev[s] = -1;
    cell[s] = -1;
  }

  private link(s: number, c: number): void {
    const { head, next, prev, cell } = this.a;
    const h = head[c]! - 1;
    next[s] = h;
    prev[s] = -1;
    if (h >= 0) prev[h] = s;
    cell[s] = c;
    head[c] = s + 1; // last: the slot is complete before a reader can reach it
  }

  /** Adds or replaces a profile; returns false when `rec` is older than what is held. */
  upsert(rec: CandidateRecord): boolean {
    const s = this.slotFor(rec.userId);
    if (rec.updatedAt < this.updated[s]!) return false;
    this.updated[s] = rec.updatedAt;
    const a = this.a;
    const p = rec.preferences;
    a.birth[s] = ymd(rec.birthDate);
    a.gender[s] = GENDER_BITS[rec.gender] ?? 0;
    a.prefMask[s] = genderMask(p.genders);
    // ages are whole years: "at least 25.5" means 26, "at most 40.5" means 40
    a.prefAgeMin[s] = Math.min(255, Math.ceil(p.ageMin));
    a.prefAgeMax[s] = Math.min(255, Math.floor(p.ageMax));
    a.maxDistKm[s] = p.maxDistanceKm;
    if (rec.lastActiveAt > a.lastActive[s]!) a.lastActive[s] = rec.lastActiveAt;
    const g = GENDER_LIST[a.gender[s]!] ?? -1;
    const c = rec.location && g >= 0 ? this.grid.cellOf(rec.location.lat, rec.location.lon) * LISTS_PER_CELL + g : -1;
    if (a.cell[s]! !== c) this.unlink(s);
    if (rec.location) {
      a.lat[s] = rec.location.lat;
      a.lon[s] = rec.location.lon;
    }
    a.flags[s] = LIVE;
    if (c >= 0 && a.cell[s]! !== c) this.link(s, c);
    return true;
  }

  /** Many profiles at once (the start scan): slots are assigned in cell order, so walking a cell reads memory in order. */
  bulkLoad(records: CandidateRecord[]): void {
    const cells = new Int32Array(records.length);
    records.forEach((r, i) => (cells[i] = r.location ? this.grid.cellOf(r.location.lat, r.location.lon) : -1));
    const order = Array.from(records.keys()).sort((x, y) => cells[x]! - cells[y]!);
    for (const i of order) this.upsert(records[i]!);
  }

  /** The user was active at `at` (a session opened, a deck was asked for). */
  touch(userId: string, at: number): void {
    const s = this.slots.get(userId);
    if (s !== undefined && at > this.a.lastActive[s]!) this.a.lastActive[s] = at;
  }

  /** Likes and super likes received (desirability). */
  addLikes(userId: string, n: number): void {
    const s = this.slots.get(userId);
    if (s !== undefined) this.a.likes[s] = this.a.likes[s]! + n;
  }

  setLikes(userId: string, n: number): void {
    const s = this.slots.get(userId);
    if (s !== undefined) this.a.likes[s] = n;
  }
}
