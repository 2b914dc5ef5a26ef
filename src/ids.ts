import { randomBytes } from 'node:crypto';

/**
 * Time-ordered ids (UUIDv7 layout, RFC 9562): 48-bit millisecond timestamp,
 * then a 12-bit counter that keeps ids from one process strictly increasing
 * within a millisecond, then random bits. Sorting the strings sorts by time,
 * which is what message history, cursors and Cassandra clustering rely on.
 */
let lastMs = 0;
let counter = 0;

// Random bytes come from a pool refilled 4 KiB at a time: one getrandom call per
// 512 ids instead of one per id (ids are minted for every message).
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let poolAt = 0;

function random8(): Buffer {
  if (poolAt + 8 > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    poolAt = 0;
  }
  const out = pool.subarray(poolAt, poolAt + 8);
  poolAt += 8;
  return out;
}

export function newId(now: number = Date.now()): string {
  if (now <= lastMs) {
    counter++;
    if (counter > 0xfff) {
      // Counter exhausted within this millisecond: borrow the next one to stay monotonic.
      lastMs++;
      counter = 0;
    }
    now = lastMs;
  } else {
    lastMs = now;
    counter = 0;
  }
  const rand = random8();
  const hex = now.toString(16).padStart(12, '0');
  const ver = (0x7000 | counter).toString(16);
  const variant = ((rand[0]! & 0x3f) | 0x80).toString(16).padStart(2, '0') + rand[1]!.toString(16).padStart(2, '0');
  const tail = rand.subarray(2).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8)}-${ver}-${variant}-${tail}`;
}

/** Milliseconds since the epoch encoded in a time-ordered id. */
export function idTime(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

const ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_RE.test(value);
}

/** History partitions are monthly buckets ("202611") so no conversation partition grows without bound. */
export function monthBucket(ms: number): number {
  const d = new Date(ms);
  return d.getUTCFullYear() * 100 + d.getUTCMonth() + 1;
}

export function previousBucket(bucket: number): number {
  const year = Math.floor(bucket / 100);
  const month = bucket % 100;
  return month === 1 ? (year - 1) * 100 + 12 : bucket - 1;
}
