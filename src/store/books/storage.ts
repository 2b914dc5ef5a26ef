/**
 * What the Books service stores, behind one interface with an embedded (SQLite,
 * src/storage/sqlite/store-books.ts) and a cluster (Cassandra, src/storage/cassandra/store-books.ts)
 * implementation, both passing test/store/books-contract.ts. Only the Books service opens
 * this store: no other service reads its tables (they ask over the bus).
 *
 * Stock is kept apart from the descriptive record: the record is rewritten by admins
 * (last write wins), while available copies change only through the atomic operations
 * below, so an edit of a title can never undo a reservation.
 */
import type { Book } from '../contracts.js';

/** Where a book's ebook file lives in the blob store. */
export interface EbookFile {
  blobKey: string;
  contentType: string;
  bytes: number;
}

/** The descriptive record of a book (everything but stock), as stored. */
export interface BookRecord {
  bookId: string;
  title: string;
  authors: string[];
  /** normalised: digits (and a final X), no hyphens */
  isbn: string;
  description: string;
  priceCents: number;
  currency: string;
  formats: Book['formats'];
  /** the cover's image id (bytes in the blob store under store/covers/<id>) */
  coverImageId: string | null;
  ebook: EbookFile | null;
  createdAt: number;
  updatedAt: number;
}

/** A record with its available print copies. */
export interface StoredBook {
  record: BookRecord;
  stock: number;
}

export interface ReservationLine {
  bookId: string;
  quantity: number;
}

/** What reserve() did, for one orderId (the first outcome is remembered). */
export type ReserveOutcome =
  | { ok: true }
  /** a line could not be met: the book and how many copies were available when it failed */
  | { ok: false; reason: 'out_of_stock'; bookId: string }
  /** the reservation was reserved and later released: a repeat does not reserve again */
  | { ok: false; reason: 'released' };

export interface BookStore {
  /**
   * Inserts a new book with its initial stock. CONFLICT when the bookId exists or another
   * book already has the ISBN (ISBNs are unique, so re-running an import adds nothing twice).
   */
  create(record: BookRecord, stock: number): Promise<void>;
  /**
   * create() for many books (a bulk import): each book succeeds or fails on its own, the
   * answer holds, in order, undefined for a created book or its error (CONFLICT...).
   * Embedded, one transaction and one fsync for them all.
   */
  createMany(books: Array<{ record: BookRecord; stock: number }>): Promise<Array<Error | undefined>>;
  /**
   * Replaces the descriptive record of an existing book (NOT_FOUND otherwise); CONFLICT when
   * the new ISBN belongs to another book. Stock is untouched.
   */
  update(record: BookRecord): Promise<void>;
  /** Sets the available copies (an admin's count after a stock take). NOT_FOUND for unknown books. */
  setStock(bookId: string, stock: number): Promise<void>;
  /** Removes the book and frees its ISBN; false when it did not exist. Reservations stay settleable. */
  remove(bookId: string): Promise<boolean>;
  get(bookId: string): Promise<StoredBook | undefined>;
  /** The books that exist among `bookIds`, in no particular order. */
  getMany(bookIds: string[]): Promise<StoredBook[]>;
  byIsbn(isbn: string): Promise<StoredBook | undefined>;
  /** Every book in bookId order, `limit` at a time, strictly after the `after` cursor. */
  page(after: string | undefined, limit: number): Promise<StoredBook[]>;

  /**
   * Takes print copies for an order: all lines or none, never below zero, also under
   * concurrent calls from several processes. Idempotent per orderId: a repeat returns the
   * first outcome without taking copies again. Unknown books are an out_of_stock line.
   */
  reserve(orderId: string, lines: ReservationLine[]): Promise<ReserveOutcome>;
  /**
   * Gives a reservation's copies back. True when the order's copies are (now) released;
   * false when there was no reservation, it failed, or it was committed (a no-op then).
   */
  release(orderId: string): Promise<boolean>;
  /** The reserved copies are sold. True when the reservation is (now) committed; false when none or released. */
  commit(orderId: string): Promise<boolean>;

  close(): Promise<void>;
}
