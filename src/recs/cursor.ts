/**
 * The deck's opaque cursor: base64url JSON of where the previous page ended (tier edges and
 * the last key served), the session's frozen clock and seed, and a fingerprint of what the
 * deck was computed for (the seeker's location to ~1 km, preferences, gender, birth date).
 * A cursor whose fingerprint no longer matches, or that is older than SESSION_MS, starts a
 * fresh deck: that is how a deck refreshes when the user moves or changes preferences.
 * Cursors hold no ids or secrets; a forged one can only reorder the forger's own deck.
 */
import { KindredError } from '../errors.js';
import type { Profile } from '../storage/types.js';
import type { DeckPosition } from './deck-core.js';
import { fnv1a } from './score.js';

/** A deck session lasts at most this long; after it, paging starts over with fresh scores. */
export const SESSION_MS = 30 * 60_000;

export interface DeckCursor {
  v: 1;
  /** fingerprint of the seeker's deck settings */
  f: number;
  seed: number;
  asOf: number;
  pos: DeckPosition;
}

export function fingerprint(p: Profile): number {
  const loc = p.location ? `${Math.round(p.location.lat * 100)},${Math.round(p.location.lon * 100)}` : '-';
  const prefs = p.preferences;
  return fnv1a(
    [loc, prefs.ageMin, prefs.ageMax, [...prefs.genders].sort().join('+'), prefs.maxDistanceKm, p.gender, p.birthDate].join('|'),
  );
}

export function encodeCursor(c: DeckCursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

const bad = () => new KindredError('INVALID_ARGUMENT', 'cursor: not a deck cursor (use the `next` of a previous deck page)');

function num(v: unknown, optional: boolean): boolean {
  return (optional && v === undefined) || (typeof v === 'number' && Number.isFinite(v));
}

export function decodeCursor(s: string): DeckCursor {
  if (typeof s !== 'string' || s.length === 0 || s.length > 512 || !/^[A-Za-z0-9_-]+$/.test(s)) throw bad();
  let c: unknown;
  try {
    c = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  const o = c as Partial<DeckCursor> | null;
  if (!o || typeof o !== 'object' || o.v !== 1 || !num(o.f, false) || !num(o.seed, false) || !num(o.asOf, false)) throw bad();
  const p = o.pos as Partial<DeckPosition> | undefined;
  if (!p || typeof p !== 'object' || !num(p.lo, false) || !num(p.hi, true) || !num(p.s, true) || !num(p.h, true) || !num(p.id, true)) throw bad();
  return { v: 1, f: o.f!, seed: o.seed! >>> 0, asOf: o.asOf!, pos: { lo: p.lo!, hi: p.hi, s: p.s, h: p.h, id: p.id } };
}
