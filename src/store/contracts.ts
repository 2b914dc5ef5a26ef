/**
 * The book store's services talk over the bus (LocalBus embedded, NATS in a cluster), each
 * owning its own data. This file is the one place their request/reply shapes are written
 * down, so a service can be moved to another node (or process) without its callers changing.
 *
 * Every service subscribes to its subject with a queue group named after the service, so in
 * a cluster any one node answers each request. Payloads are plain msgpack-able data.
 * Errors travel as KindredError codes (see src/errors.ts) through the bus reply envelope.
 */

export const SUBJECTS = {
  books: 'kindred.svc.books',
  search: 'kindred.svc.search',
  customers: 'kindred.svc.customers',
  orders: 'kindred.svc.orders',
  payments: 'kindred.svc.payments',
  /** Books publishes a BookEvent here after every committed change; Search indexes from it. */
  bookEvents: 'kindred.evt.books',
  /** Orders publishes an OrderEvent here after every persisted state transition. */
  orderEvents: 'kindred.evt.orders',
} as const;

export type BookFormat = 'ebook' | 'print';

export interface Book {
  bookId: string;
  title: string;
  authors: string[];
  isbn: string;
  description: string;
  /** minor units (cents) */
  priceCents: number;
  /** ISO 4217, e.g. 'EUR' */
  currency: string;
  formats: BookFormat[];
  /** print copies available to reserve (0 when the book has no print format) */
  stock: number;
  /** URL path of the cover image, when one was uploaded */
  coverUrl?: string;
  /** true when an ebook file has been uploaded */
  hasEbookFile: boolean;
  createdAt: number;
  updatedAt: number;
}

export type BookEvent =
  | { type: 'book.upserted'; book: Book }
  | { type: 'book.deleted'; bookId: string };

/** Requests to SUBJECTS.books. */
export type BooksRequest =
  | { op: 'get'; bookIds: string[] }
  /**
   * Reserve print copies for an order, all lines or none. Idempotent per orderId: repeating
   * it returns the first outcome. Never oversells, also under concurrent reservations on
   * several nodes. Fails with LIMIT_REACHED ('out of stock') when any line cannot be met.
   */
  | { op: 'reserve'; orderId: string; lines: Array<{ bookId: string; quantity: number }> }
  /** Give a reservation's copies back (order failed or cancelled). Idempotent; a no-op after commit. */
  | { op: 'release'; orderId: string }
  /** The order was paid: the reserved copies are sold. Idempotent. */
  | { op: 'commit'; orderId: string }
  /** Where the ebook file of a book lives in the blob store (for fulfilment downloads). */
  | { op: 'ebookFile'; bookId: string };

export interface BooksReplies {
  get: { books: Book[] };
  reserve: { reserved: true };
  release: { released: boolean };
  commit: { committed: boolean };
  ebookFile: { blobKey: string; contentType: string; bytes: number };
}
