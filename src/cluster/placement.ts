/**
 * Shard placement by rendezvous (highest-random-weight) hashing: every shard goes to
 * the member with the highest score hash(member, shard). Pure and deterministic: any
 * node computing it over the same member set gets the same answer, and when a member
 * leaves only its own shards move (each to the next-highest member); when one joins it
 * takes only the shards it now wins.
 */
import { hashString } from '../actors/shards.js';

/** murmur3's 32-bit finaliser: FNV alone spreads poorly over consecutive inputs. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The rendezvous score of `member` for `shard`. */
export function score(member: string, shard: number): number {
  return mix32(hashString(member) ^ mix32(shard + 0x9e3779b9));
}

/** The owner of one shard among `members` (undefined when there are none). */
export function ownerFor(shard: number, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    const s = score(m, shard);
    // ties (practically never) go to the smaller id, so the result does not depend on order
    if (s > bestScore || (s === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = s;
    }
  }
  return best;
}

/** owner[shard] for every shard, over the given members. */
export function place(shardCount: number, members: readonly string[]): Array<string | undefined> {
  const unique = [...new Set(members)];
  const out: Array<string | undefined> = new Array(shardCount);
  for (let s = 0; s < shardCount; s++) out[s] = ownerFor(s, unique);
  return out;
}
