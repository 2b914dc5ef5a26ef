/** Helpers both BookStore backends share for reservations. */
import type { ReservationLine, ReserveOutcome } from './storage.js';

/** The remembered outcome of a reservation, as reserve() answers a repeat. */
export function outcomeOf(status: string, failedBook: string | null): ReserveOutcome {
  if (status === 'rejected') return { ok: false, reason: 'out_of_stock', bookId: failedBook ?? '' };
  if (status === 'released' || status === 'releasing') return { ok: false, reason: 'released' };
  return { ok: true };
}

/** One line per book (quantities added), sorted by bookId so concurrent reservations take rows in one order. */
export function mergeLines(lines: ReservationLine[]): ReservationLine[] {
  const byBook = new Map<string, number>();
  for (const l of lines) byBook.set(l.bookId, (byBook.get(l.bookId) ?? 0) + l.quantity);
  return [...byBook].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([bookId, quantity]) => ({ bookId, quantity }));
}
