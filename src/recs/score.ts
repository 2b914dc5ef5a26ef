/**
 * The deck's score: a weighted sum of terms in [0, 1], documented in docs/recommendations.md.
 * Kept in one place so the worker, the tests and the docs agree.
 */
export const WEIGHTS = {
  proximity: 0.35,
  activity: 0.2,
  fit: 0.15,
  desirability: 0.15,
  newUser: 0.1,
  superLike: 0.5,
} as const;

/** proximity = 1 / (1 + d / PROXIMITY_KM): 1 next door, 0.5 at 10 km, 0.09 at 100 km */
export const PROXIMITY_KM = 10;
/** activity = exp(-idle / ACTIVITY_MS): 0.72 a day after last activity, 0.1 after a week */
export const ACTIVITY_MS = 3 * 24 * 3600_000;
/** desirability = log(1 + likes) / log(1 + LIKES_SATURATE), capped at 1 */
export const LIKES_SATURATE = 1000;
/** newUser = 1 - accountAge / NEW_USER_MS, for accounts younger than that */
export const NEW_USER_MS = 7 * 24 * 3600_000;
/** diversity: minus BAND_PENALTY·log2(1 + rank within the age band × gender) and CELL_PENALTY·log2(1 + rank within the cell) */
export const BAND_PENALTY = 0.04;
export const CELL_PENALTY = 0.01;
/** scores are compared in steps of 1e-5; equal steps are ordered by a per-user-per-day hash */
export const SCORE_STEPS = 100_000;

const LOG_SATURATE = Math.log1p(LIKES_SATURATE);

/** How central x is in [lo, hi]: 1 in the middle, falling towards (but above) 0 at the edges. */
export function centrality(x: number, lo: number, hi: number): number {
  return Math.max(0, 1 - Math.abs(x - (lo + hi) / 2) / ((hi - lo) / 2 + 1));
}

export interface ScoreInputs {
  distanceKm: number;
  idleMs: number;
  /** centrality of each side's age in the other's range, averaged */
  fit: number;
  likes: number;
  accountAgeMs: number;
  superLikedMe: boolean;
}

export function baseScore(x: ScoreInputs): number {
  const proximity = 1 / (1 + x.distanceKm / PROXIMITY_KM);
  const activity = Math.exp(-Math.max(0, x.idleMs) / ACTIVITY_MS);
  const desirability = Math.min(1, Math.log1p(x.likes) / LOG_SATURATE);
  const newUser = Math.max(0, 1 - Math.max(0, x.accountAgeMs) / NEW_USER_MS);
  return (
    WEIGHTS.proximity * proximity +
    WEIGHTS.activity * activity +
    WEIGHTS.fit * x.fit +
    WEIGHTS.desirability * desirability +
    WEIGHTS.newUser * newUser +
    (x.superLikedMe ? WEIGHTS.superLike : 0)
  );
}

export function diversityPenalty(rankInBand: number, rankInCell: number): number {
  return BAND_PENALTY * Math.log2(1 + rankInBand) + CELL_PENALTY * Math.log2(1 + rankInCell);
}

/** A 32-bit mix (murmur3's finaliser) for seeded tie-breaks. */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** FNV-1a 32 over the string's UTF-16 code units (ids are ASCII). */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
