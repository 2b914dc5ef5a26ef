/**
 * What the Orders service needs of a book to price an order (title, formats, price), kept
 * for a few seconds: at hundreds of checkouts per second over a few thousand books, asking
 * Books for every checkout was the largest single cost of a checkout. Entries are dropped
 * as soon as Books announces a change (SUBJECTS.bookEvents), so a price edit is seen by
 * the next checkout on every node; the TTL only bounds a lost event. Stock is never cached:
 * reservations always go to Books.
 */
import type { Bus, Subscription } from '../../actors/bus.js';
import { SUBJECTS, type BookEvent } from '../contracts.js';
import type { BooksClient } from './clients.js';

export type { PricedBook } from './settlement-tasks.js';
import type { PricedBook } from './settlement-tasks.js';

const MAX_ENTRIES = 100_000;

export class BookCache {
  private readonly entries = new Map<string, { book: PricedBook; at: number }>();
  private sub: Subscription | undefined;

  constructor(
    private readonly books: BooksClient,
    private readonly ttlMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  start(bus: Bus): void {
    this.sub = bus.subscribe(SUBJECTS.bookEvents, (payload) => {
      const e = payload as BookEvent;
      this.entries.delete(e.type === 'book.deleted' ? e.bookId : e.book.bookId);
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
  }

  /** The books that exist among `bookIds` (fresh from Books for any not cached or too old). */
  async get(bookIds: string[]): Promise<PricedBook[]> {
    const now = this.now();
    const out: PricedBook[] = [];
    const missing: string[] = [];
    for (const id of bookIds) {
      const e = this.entries.get(id);
      if (e && now - e.at < this.ttlMs) out.push(e.book);
      else missing.push(id);
    }
    if (missing.length > 0) {
      for (const b of await this.books.get(missing)) {
        const book: PricedBook = { bookId: b.bookId, title: b.title, formats: b.formats, priceCents: b.priceCents, currency: b.currency };
        if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
        this.entries.set(b.bookId, { book, at: now });
        out.push(book);
      }
    }
    return out;
  }
}
