/**
 * The Books service's embedded store: its own file `<dataDir>/store/books.db`.
 *
 * books              (book_id) — the descriptive record; isbn UNIQUE
 * book_stock         (book_id) — available print copies, CHECK (available >= 0)
 * stock_reservations (order_id) — status reserved | rejected | released | committed, lines JSON
 *
 * reserve/release/commit each run atomically in a SAVEPOINT of a group-committed transaction
 * (group-commit.ts: the reservations of many orders share one COMMIT and one fsync), one
 * after another on the file's one connection: the availability check and the decrement
 * cannot interleave with another reservation, so stock never goes below zero. Each resolves
 * once its batch is durable.
 */
import path from 'node:path';
import type Database from 'better-sqlite3';
import { KindredError } from '../../errors.js';
import type { BookRecord, BookStore, ReservationLine, ReserveOutcome, StoredBook } from '../../store/books/storage.js';
import { mergeLines, outcomeOf } from '../../store/books/stock-lines.js';
import { jsonList, read, storageError, write } from './common.js';
import { GroupCommit } from './group-commit.js';
import { openServiceDb, type ServiceDb, type ServiceDbOptions } from './store-db.js';

export const BOOKS_DB_VERSION = 1;

const DDL = `
CREATE TABLE IF NOT EXISTS books (
  book_id        TEXT PRIMARY KEY,
  title          TEXT NOT NULL,
  authors        TEXT NOT NULL,   -- JSON array of strings
  isbn           TEXT NOT NULL UNIQUE,
  description    TEXT NOT NULL,
  price_cents    INTEGER NOT NULL,
  currency       TEXT NOT NULL,
  formats        TEXT NOT NULL,   -- JSON array: ebook, print
  cover_image_id TEXT,
  ebook_key      TEXT,
  ebook_type     TEXT,
  ebook_bytes    INTEGER,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS book_stock (
  book_id   TEXT PRIMARY KEY,
  available INTEGER NOT NULL CHECK (available >= 0)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS stock_reservations (
  order_id    TEXT PRIMARY KEY,
  status      TEXT NOT NULL,      -- reserved | rejected | released | committed
  lines       TEXT NOT NULL,      -- JSON [{bookId, quantity}]
  failed_book TEXT,
  updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
`;

interface BookRow {
  book_id: string;
  title: string;
  authors: string;
  isbn: string;
  description: string;
  price_cents: number;
  currency: string;
  formats: string;
  cover_image_id: string | null;
  ebook_key: string | null;
  ebook_type: string | null;
  ebook_bytes: number | null;
  created_at: number;
  updated_at: number;
  available: number | null;
}

function toStored(r: BookRow): StoredBook {
  return {
    record: {
      bookId: r.book_id,
      title: r.title,
      authors: JSON.parse(r.authors) as string[],
      isbn: r.isbn,
      description: r.description,
      priceCents: r.price_cents,
      currency: r.currency,
      formats: JSON.parse(r.formats) as BookRecord['formats'],
      coverImageId: r.cover_image_id,
      ebook: r.ebook_key ? { blobKey: r.ebook_key, contentType: r.ebook_type ?? 'application/octet-stream', bytes: r.ebook_bytes ?? 0 } : null,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    },
    stock: r.available ?? 0,
  };
}

function params(b: BookRecord): unknown[] {
  return [
    b.bookId, b.title, JSON.stringify(b.authors), b.isbn, b.description, b.priceCents, b.currency, JSON.stringify(b.formats),
    b.coverImageId, b.ebook?.blobKey ?? null, b.ebook?.contentType ?? null, b.ebook?.bytes ?? null, b.createdAt, b.updatedAt,
  ];
}

const SELECT = `SELECT b.*, s.available FROM books b LEFT JOIN book_stock s ON s.book_id = b.book_id`;

export class SqliteBookStore implements BookStore {
  /** getMany's statement, prepared once: its SQL is the same for any number of ids (json_each), and preparing it per call cost ~11 % of the server's CPU under the orders bench. */
  private readonly manyById: Database.Statement<[string], BookRow>;

  /**
   * The reservation path's statements and transactions, prepared once: it runs for every print
   * order (reserve, then commit or release), and preparing its statements on each call was a
   * visible share of the server's CPU under the orders bench.
   */
  private readonly stock: ReturnType<typeof prepareStock>;
  /** the reservation writes of many orders in one transaction and one fsync */
  private readonly group: GroupCommit;

  private constructor(private readonly ctx: ServiceDb) {
    this.manyById = ctx.db.prepare<[string], BookRow>(`${SELECT} WHERE b.book_id IN (SELECT value FROM json_each(?))`);
    this.stock = prepareStock(ctx.db);
    this.group = new GroupCommit(ctx);
  }

  static open(dataDir: string, opts: ServiceDbOptions = {}): SqliteBookStore {
    return new SqliteBookStore(openServiceDb(path.join(dataDir, 'store', 'books.db'), DDL, BOOKS_DB_VERSION, opts));
  }

  async create(record: BookRecord, stock: number): Promise<void> {
    const { db } = this.ctx;
    await write(this.ctx, () =>
      db.transaction(() => {
        const taken = db.prepare('SELECT book_id FROM books WHERE isbn = ?').get(record.isbn) as { book_id: string } | undefined;
        if (taken) throw new KindredError('CONFLICT', `isbn: ${record.isbn} is already the ISBN of book ${taken.book_id}`);
        if (db.prepare('SELECT 1 FROM books WHERE book_id = ?').get(record.bookId)) throw new KindredError('CONFLICT', `book ${record.bookId} exists`);
        db.prepare('INSERT INTO books VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(...params(record));
        db.prepare('INSERT INTO book_stock (book_id, available) VALUES (?, ?) ON CONFLICT (book_id) DO UPDATE SET available = excluded.available').run(record.bookId, stock);
      }).immediate(),
    );
  }

  async createMany(books: Array<{ record: BookRecord; stock: number }>): Promise<Array<Error | undefined>> {
    const { db } = this.ctx;
    const insert = db.prepare('INSERT INTO books VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const stock = db.prepare('INSERT INTO book_stock (book_id, available) VALUES (?, ?) ON CONFLICT (book_id) DO UPDATE SET available = excluded.available');
    const isbnOwner = db.prepare('SELECT book_id FROM books WHERE isbn = ?');
    // A nested transaction is a savepoint: a book that fails rolls back alone.
    const one = db.transaction((b: { record: BookRecord; stock: number }) => {
      const taken = isbnOwner.get(b.record.isbn) as { book_id: string } | undefined;
      if (taken) throw new KindredError('CONFLICT', `isbn: ${b.record.isbn} is already the ISBN of book ${taken.book_id}`);
      insert.run(...params(b.record));
      stock.run(b.record.bookId, b.stock);
    });
    return write(this.ctx, () =>
      db.transaction(() =>
        books.map((b) => {
          try {
            one(b);
            return undefined;
          } catch (err) {
            const mapped = storageError(err);
            if (mapped instanceof KindredError && mapped.code !== 'UNAVAILABLE') return mapped;
            throw mapped;
          }
        }),
      ).immediate(),
    );
  }

  async update(record: BookRecord): Promise<void> {
    const { db } = this.ctx;
    await write(this.ctx, () =>
      db.transaction(() => {
        const taken = db.prepare('SELECT book_id FROM books WHERE isbn = ? AND book_id <> ?').get(record.isbn, record.bookId) as { book_id: string } | undefined;
        if (taken) throw new KindredError('CONFLICT', `isbn: ${record.isbn} is already the ISBN of book ${taken.book_id}`);
        const p = params(record);
        const r = db
          .prepare(`UPDATE books SET title = ?, authors = ?, isbn = ?, description = ?, price_cents = ?, currency = ?, formats = ?,
            cover_image_id = ?, ebook_key = ?, ebook_type = ?, ebook_bytes = ?, updated_at = ? WHERE book_id = ?`)
          .run(...p.slice(1, 12), record.updatedAt, record.bookId);
        if (r.changes === 0) throw new KindredError('NOT_FOUND', 'no such book');
      }).immediate(),
    );
  }

  async setStock(bookId: string, stock: number): Promise<void> {
    const { db } = this.ctx;
    await write(this.ctx, () =>
      db.transaction(() => {
        if (!db.prepare('SELECT 1 FROM books WHERE book_id = ?').get(bookId)) throw new KindredError('NOT_FOUND', 'no such book');
        db.prepare('INSERT INTO book_stock (book_id, available) VALUES (?, ?) ON CONFLICT (book_id) DO UPDATE SET available = excluded.available').run(bookId, stock);
      }).immediate(),
    );
  }

  async remove(bookId: string): Promise<boolean> {
    const { db } = this.ctx;
    // The stock row stays: reservations of the book can still be released or committed.
    return write(this.ctx, () => db.prepare('DELETE FROM books WHERE book_id = ?').run(bookId).changes > 0);
  }

  get(bookId: string): Promise<StoredBook | undefined> {
    return read(() => {
      const r = this.ctx.db.prepare(`${SELECT} WHERE b.book_id = ?`).get(bookId) as BookRow | undefined;
      return r ? toStored(r) : undefined;
    });
  }

  getMany(bookIds: string[]): Promise<StoredBook[]> {
    if (bookIds.length === 0) return Promise.resolve([]);
    return read(() =>
      this.manyById.all(jsonList(bookIds)).map(toStored),
    );
  }

  byIsbn(isbn: string): Promise<StoredBook | undefined> {
    return read(() => {
      const r = this.ctx.db.prepare(`${SELECT} WHERE b.isbn = ?`).get(isbn) as BookRow | undefined;
      return r ? toStored(r) : undefined;
    });
  }

  page(after: string | undefined, limit: number): Promise<StoredBook[]> {
    return read(() =>
      (this.ctx.db.prepare(`${SELECT} WHERE b.book_id > ? ORDER BY b.book_id LIMIT ?`).all(after ?? '', limit) as BookRow[]).map(toStored),
    );
  }

  reserve(orderId: string, lines: ReservationLine[]): Promise<ReserveOutcome> {
    return this.group.run(() => this.stock.reserve(orderId, mergeLines(lines), Date.now()));
  }

  release(orderId: string): Promise<boolean> {
    return this.group.run(() => this.stock.release(orderId, Date.now()));
  }

  commit(orderId: string): Promise<boolean> {
    return this.group.run(() => this.stock.commit(orderId, Date.now()));
  }

  async close(): Promise<void> {
    await this.group.close();
    return this.ctx.close().catch((err: unknown) => {
      throw storageError(err);
    });
  }
}

/** The stock statements and the three reservation writes (each atomic in a group-commit savepoint: see the file comment). */
function prepareStock(db: Database.Database) {
  const reservation = db.prepare<[string], { status: string; lines: string; failed_book: string | null }>(
    'SELECT status, lines, failed_book FROM stock_reservations WHERE order_id = ?',
  );
  const available = db.prepare<[string], { available: number }>('SELECT available FROM book_stock s JOIN books b ON b.book_id = s.book_id WHERE s.book_id = ?');
  const take = db.prepare('UPDATE book_stock SET available = available - ? WHERE book_id = ?');
  const give = db.prepare('UPDATE book_stock SET available = available + ? WHERE book_id = ?');
  const insert = db.prepare('INSERT INTO stock_reservations VALUES (?, ?, ?, ?, ?)');
  const setStatus = db.prepare('UPDATE stock_reservations SET status = ?, updated_at = ? WHERE order_id = ?');
  return {
    reserve: (orderId: string, merged: ReservationLine[], now: number): ReserveOutcome => {
      const existing = reservation.get(orderId);
      if (existing) return outcomeOf(existing.status, existing.failed_book);
      for (const line of merged) {
        const s = available.get(line.bookId);
        if (!s || s.available < line.quantity) {
          insert.run(orderId, 'rejected', JSON.stringify(merged), line.bookId, now);
          return { ok: false, reason: 'out_of_stock', bookId: line.bookId };
        }
      }
      for (const line of merged) take.run(line.quantity, line.bookId);
      insert.run(orderId, 'reserved', JSON.stringify(merged), null, now);
      return { ok: true };
    },
    release: (orderId: string, now: number): boolean => {
      const r = reservation.get(orderId);
      if (!r) return false;
      if (r.status === 'released') return true;
      if (r.status !== 'reserved') return false;
      for (const line of JSON.parse(r.lines) as ReservationLine[]) give.run(line.quantity, line.bookId);
      setStatus.run('released', now, orderId);
      return true;
    },
    commit: (orderId: string, now: number): boolean => {
      const r = reservation.get(orderId);
      if (!r) return false;
      if (r.status === 'committed') return true;
      if (r.status !== 'reserved') return false;
      setStatus.run('committed', now, orderId);
      return true;
    },
  };
}
