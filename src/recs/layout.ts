/**
 * The candidate index's memory: one typed array per field over SharedArrayBuffers, indexed
 * by a profile's slot. The main thread is the only writer; deck workers read the same
 * memory (no copy per deck). Posting lists are per cell and gender (list = cell × 3 +
 * gender index), so a seeker who wants men never walks the women of a cell. They are
 * intrusive doubly linked lists: `head[list]` is the first slot plus one (0: empty, so the
 * 50 MB of heads need no initialising and the OS only commits the pages of occupied
 * cells), `next`/`prev` link the
 * slots of one list, so moving a profile is O(1). A bulk load assigns slots in cell order,
 * which makes walking a list a nearly sequential read.
 *
 * Encodings: gender and the preferred genders are bit masks (woman 1, man 2, nonbinary 4);
 * birth dates are yyyymmdd integers, so `floor((todayYmd - birthYmd) / 10000)` is the age
 * in whole years; times are epoch ms.
 */
import type { Gender } from '../storage/types.js';

export const GENDER_BITS: Record<Gender, number> = { woman: 1, man: 2, nonbinary: 4 };
/** gender bit → list offset within a cell */
export const GENDER_LIST: readonly number[] = [-1, 0, 1, -1, 2];
export const LISTS_PER_CELL = 3;

export function genderMask(genders: readonly Gender[]): number {
  let m = 0;
  for (const g of genders) m |= GENDER_BITS[g] ?? 0;
  return m;
}

/** "1995-04-12" → 19950412 */
export function ymd(date: string): number {
  return Number(date.slice(0, 4)) * 10000 + Number(date.slice(5, 7)) * 100 + Number(date.slice(8, 10));
}

/** The UTC date of `ms` as yyyymmdd. */
export function ymdOf(ms: number): number {
  const d = new Date(ms);
  return d.getUTCFullYear() * 10000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
}

export function ageFromYmd(todayYmd: number, birthYmd: number): number {
  return Math.floor((todayYmd - birthYmd) / 10000);
}

/** Slot flags. */
export const LIVE = 1;

export interface IndexArrays {
  /** slots in use (the workers never read beyond it) */
  capacity: number;
  cellDeg: number;
  head: Int32Array;
  next: Int32Array;
  prev: Int32Array;
  /** the slot's list (cell × 3 + gender index), -1 when it is in none (no location) */
  cell: Int32Array;
  flags: Uint8Array;
  lat: Float64Array;
  lon: Float64Array;
  birth: Int32Array;
  gender: Uint8Array;
  prefMask: Uint8Array;
  prefAgeMin: Uint8Array;
  prefAgeMax: Uint8Array;
  maxDistKm: Float32Array;
  lastActive: Float64Array;
  createdAt: Float64Array;
  likes: Uint32Array;
  /** FNV-1a of the user id: the same on every node, so tie-breaks and cursors are too */
  idHash: Uint32Array;
}

/** What crosses to a worker: the buffers (shared, not copied) and the sizes. */
export interface SharedIndex {
  /** changes whenever the buffers are replaced (the index grew) */
  generation: number;
  capacity: number;
  cellDeg: number;
  buffers: Record<Exclude<keyof IndexArrays, 'capacity' | 'cellDeg'>, SharedArrayBuffer>;
}

type Ctor = Int32ArrayConstructor | Uint8ArrayConstructor | Float64ArrayConstructor | Float32ArrayConstructor | Uint32ArrayConstructor;

const PER_SLOT: Record<Exclude<keyof IndexArrays, 'capacity' | 'cellDeg' | 'head'>, Ctor> = {
  next: Int32Array,
  prev: Int32Array,
  cell: Int32Array,
  flags: Uint8Array,
  lat: Float64Array,
  lon: Float64Array,
  birth: Int32Array,
  gender: Uint8Array,
  prefMask: Uint8Array,
  prefAgeMin: Uint8Array,
  prefAgeMax: Uint8Array,
  maxDistKm: Float32Array,
  lastActive: Float64Array,
  createdAt: Float64Array,
  likes: Uint32Array,
  idHash: Uint32Array,
};

type OverShared = new (buffer: SharedArrayBuffer) => unknown;

function shared<T extends Ctor>(C: T, length: number): InstanceType<T> {
  return new (C as unknown as OverShared)(new SharedArrayBuffer(length * C.BYTES_PER_ELEMENT)) as InstanceType<T>;
}

/**
 * Builds the arrays object as one literal with every field in a fixed order: an object grown
 * field by field in a loop can end up in V8's slow dictionary mode, which made every
 * `a.lat[s]` in the hot loops a hash lookup.
 */
function build(capacity: number, cellDeg: number, head: Int32Array, f: (name: keyof typeof PER_SLOT, C: Ctor) => unknown): IndexArrays {
  return {
    capacity,
    cellDeg,
    head,
    next: f('next', Int32Array) as Int32Array,
    prev: f('prev', Int32Array) as Int32Array,
    cell: f('cell', Int32Array) as Int32Array,
    flags: f('flags', Uint8Array) as Uint8Array,
    lat: f('lat', Float64Array) as Float64Array,
    lon: f('lon', Float64Array) as Float64Array,
    birth: f('birth', Int32Array) as Int32Array,
    gender: f('gender', Uint8Array) as Uint8Array,
    prefMask: f('prefMask', Uint8Array) as Uint8Array,
    prefAgeMin: f('prefAgeMin', Uint8Array) as Uint8Array,
    prefAgeMax: f('prefAgeMax', Uint8Array) as Uint8Array,
    maxDistKm: f('maxDistKm', Float32Array) as Float32Array,
    lastActive: f('lastActive', Float64Array) as Float64Array,
    createdAt: f('createdAt', Float64Array) as Float64Array,
    likes: f('likes', Uint32Array) as Uint32Array,
    idHash: f('idHash', Uint32Array) as Uint32Array,
  };
}

/** New arrays of `capacity` slots; `from` (smaller) is copied in, the rest is empty. */
export function allocate(capacity: number, cellCount: number, cellDeg: number, from?: IndexArrays): IndexArrays {
  let head = from?.head;
  if (!head) {
    // zero = empty list: left untouched, so only pages of occupied cells are ever committed
    head = shared(Int32Array, cellCount * LISTS_PER_CELL);
  }
  return build(capacity, cellDeg, head, (name, C) => {
    const a = shared(C, capacity) as Int32Array;
    if (from) a.set(from[name] as Int32Array);
    if (name === 'cell' || name === 'next' || name === 'prev') a.fill(-1, from ? from.capacity : 0);
    return a;
  });
}

export function toShared(a: IndexArrays, generation: number): SharedIndex {
  const buffers = {} as SharedIndex['buffers'];
  for (const name of ['head', ...Object.keys(PER_SLOT)] as Array<keyof SharedIndex['buffers']>) {
    buffers[name] = (a[name] as { buffer: SharedArrayBuffer }).buffer;
  }
  return { generation, capacity: a.capacity, cellDeg: a.cellDeg, buffers };
}

export function fromShared(s: SharedIndex): IndexArrays {
  return build(s.capacity, s.cellDeg, new Int32Array(s.buffers.head as unknown as ArrayBuffer), (name, C) => new (C as unknown as OverShared)(s.buffers[name]));
}
