/**
 * The Books service's cluster store: its own keyspace `<base>_books`.
 *
 * table              | key                              | how it is written
 * -------------------|----------------------------------|-----------------------------------------------
 * books              | (book_id)                        | INSERT IF NOT EXISTS on create, UPDATE IF EXISTS
 * books_by_isbn      | (isbn) -> book_id                | INSERT IF NOT EXISTS (LWT): one book per ISBN
 * book_stock         | (book_id), order_id              | the row order_id = '' holds `available`; every
 *                    |                                  | other row is one order's hold of `quantity` copies
 * stock_reservations | (order_id)                       | status moved by LWTs only (see below)
 *
 * Why stock never oversells on any number of nodes: taking copies for an order is ONE
 * conditional batch on the book's partition, `UPDATE available = a - q WHERE order_id = ''
 * IF available = a` together with `INSERT hold (order_id, q) IF NOT EXISTS`. Paxos applies
 * it only if nobody changed `available` since we read `a` and this order holds nothing yet,
 * so concurrent takers serialise on the partition and available stays >= 0; a repeat of
 * the same order (a retry, a second node, a lost answer) finds its hold and takes nothing.
 * Returning copies is the mirror batch (`available = a + q IF available = a`, `DELETE hold
 * IF quantity = q`), so copies are returned at most once.
 *
 * A reservation of ONE book (most orders) lives entirely in that book's partition: the hold
 * row carries the reservation's status, so taking the copies and recording the outcome is
 * the one conditional batch above (hold inserted with status 'reserved'), a shortage is one
 * `INSERT hold (status 'rejected') IF NOT EXISTS`, commit is `UPDATE hold SET status =
 * 'committed' IF status = 'reserved'`, and release is the mirror batch (`available = a + q
 * IF available = a`, `status = 'released' IF status = 'reserved'`). Paxos orders them all
 * on the one partition, so a release and a commit cannot both win, and a hold is returned at
 * most once. single_reservations (order_id → book, quantity; a plain write made before the
 * take) tells release and commit, which get only the order id, where to look. A release
 * that finds no hold fences the order with a 'released' row (IF NOT EXISTS), so a take that
 * arrives later takes nothing.
 *
 * A reservation of several books spans several partitions, so its all-or-nothing outcome is
 * a small state machine on stock_reservations, every transition an LWT:
 *   pending ──(every line held)──▶ reserved ──▶ committed
 *      │                              └──▶ releasing ──(holds returned)──▶ released
 *      └──(a line short)──▶ rejecting ──(holds returned)──▶ rejected
 * Each step is idempotent and every operation loops "read the state with SERIAL, do the
 * next step", so a retry, a concurrent duplicate or a caller that crashed half-way is
 * finished by the next call instead of leaving copies taken. (Its holds have no status.)
 *
 * An order's lines are fixed, so its reservation is one or the other; a repeat with other
 * lines answers the outcome of the first (each path looks for the other's record first).
 */
import { KindredError } from '../../errors.js';
import type { BookRecord, BookStore, ReservationLine, ReserveOutcome, StoredBook } from '../../store/books/storage.js';
import { mergeLines, outcomeOf } from '../../store/books/stock-lines.js';
import { backoff, isRetryable, isUnknownOutcome, toNum, type Row, type Session } from './client.js';
import { openServiceKeyspace, type ServiceKeyspaceOptions } from './store-schema.js';

/** 2: book_stock.status and single_reservations (one-book reservations in the book's partition). */
export const BOOKS_KEYSPACE_VERSION = 2;

const TABLES: Array<[string, string]> = [
  ['books', `(
    book_id text PRIMARY KEY,
    title text, authors list<text>, isbn text, description text,
    price_cents bigint, currency text, formats list<text>,
    cover_image_id text, ebook_key text, ebook_type text, ebook_bytes bigint,
    created_at bigint, updated_at bigint)`],
  ['books_by_isbn', `(isbn text PRIMARY KEY, book_id text)`],
  ['book_stock', `(
    book_id text, order_id text, available int, quantity int, status text,
    PRIMARY KEY ((book_id), order_id))`],
  ['single_reservations', `(order_id text PRIMARY KEY, book_id text, quantity int)`],
  ['stock_reservations', `(
    order_id text PRIMARY KEY, status text, lines text, failed_book text, updated_at bigint)`],
];

const ADDED_COLUMNS: Array<[string, string, string]> = [['book_stock', 'status', 'text']];

/** Rounds of one operation before it gives up with UNAVAILABLE (each round, some competing change won). */
const ROUNDS = 64;
const STOCK_ROW = '';
/** An ISBN claim without its book is taken over after this long (a create takes far less). */
const ORPHAN_CLAIM_MS = 30_000;

function toStored(r: Row, stock: number): StoredBook {
  return {
    record: {
      bookId: r.book_id,
      title: r.title,
      authors: (r.authors as string[] | null) ?? [],
      isbn: r.isbn,
      description: r.description ?? '',
      priceCents: toNum(r.price_cents),
      currency: r.currency,
      formats: ((r.formats as string[] | null) ?? []) as BookRecord['formats'],
      coverImageId: (r.cover_image_id as string | null) ?? null,
      ebook: r.ebook_key ? { blobKey: r.ebook_key, contentType: r.ebook_type ?? 'application/octet-stream', bytes: toNum(r.ebook_bytes ?? 0) } : null,
      createdAt: toNum(r.created_at),
      updatedAt: toNum(r.updated_at),
    },
    stock,
  };
}

interface Reservation {
  status: string;
  lines: ReservationLine[];
  failedBook: string | null;
}

function toReservation(r: Row): Reservation {
  return { status: r.status as string, lines: JSON.parse((r.lines as string) ?? '[]') as ReservationLine[], failedBook: (r.failed_book as string | null) ?? null };
}

const COLS = 'book_id, title, authors, isbn, description, price_cents, currency, formats, cover_image_id, ebook_key, ebook_type, ebook_bytes, created_at, updated_at';

export class CassandraBookStore implements BookStore {
  private readonly q: Record<string, string>;
  private readonly queues = new Map<string, Promise<void>>();

  private constructor(private readonly s: Session, ks: string) {
    this.q = {
      insert: `INSERT INTO ${ks}.books (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
      update: `UPDATE ${ks}.books SET title = ?, authors = ?, isbn = ?, description = ?, price_cents = ?, currency = ?, formats = ?,
        cover_image_id = ?, ebook_key = ?, ebook_type = ?, ebook_bytes = ?, updated_at = ? WHERE book_id = ? IF EXISTS`,
      get: `SELECT ${COLS} FROM ${ks}.books WHERE book_id = ?`,
      delete: `DELETE FROM ${ks}.books WHERE book_id = ? IF EXISTS`,
      page: `SELECT ${COLS} FROM ${ks}.books WHERE token(book_id) > token(?) LIMIT ?`,
      pageFirst: `SELECT ${COLS} FROM ${ks}.books LIMIT ?`,
      claimIsbn: `INSERT INTO ${ks}.books_by_isbn (isbn, book_id) VALUES (?, ?) IF NOT EXISTS`,
      moveIsbn: `UPDATE ${ks}.books_by_isbn SET book_id = ? WHERE isbn = ? IF book_id = ?`,
      isbn: `SELECT book_id, WRITETIME(book_id) AS claimed_us FROM ${ks}.books_by_isbn WHERE isbn = ?`,
      freeIsbn: `DELETE FROM ${ks}.books_by_isbn WHERE isbn = ? IF book_id = ?`,
      stock: `SELECT available FROM ${ks}.book_stock WHERE book_id = ? AND order_id = ''`,
      stockAndHold: `SELECT order_id, available, quantity, status FROM ${ks}.book_stock WHERE book_id = ? AND order_id IN ('', ?)`,
      holdSingle: `INSERT INTO ${ks}.book_stock (book_id, order_id, quantity, status) VALUES (?, ?, ?, ?) IF NOT EXISTS`,
      moveHold: `UPDATE ${ks}.book_stock SET status = ? WHERE book_id = ? AND order_id = ? IF status = ?`,
      indexSingle: `INSERT INTO ${ks}.single_reservations (order_id, book_id, quantity) VALUES (?, ?, ?)`,
      single: `SELECT book_id, quantity FROM ${ks}.single_reservations WHERE order_id = ?`,
      initStock: `INSERT INTO ${ks}.book_stock (book_id, order_id, available) VALUES (?, '', ?) IF NOT EXISTS`,
      casStock: `UPDATE ${ks}.book_stock SET available = ? WHERE book_id = ? AND order_id = '' IF available = ?`,
      hold: `INSERT INTO ${ks}.book_stock (book_id, order_id, quantity) VALUES (?, ?, ?) IF NOT EXISTS`,
      unhold: `DELETE FROM ${ks}.book_stock WHERE book_id = ? AND order_id = ? IF quantity = ?`,
      reservation: `SELECT status, lines, failed_book FROM ${ks}.stock_reservations WHERE order_id = ?`,
      claimReservation: `INSERT INTO ${ks}.stock_reservations (order_id, status, lines, updated_at) VALUES (?, 'pending', ?, ?) IF NOT EXISTS`,
      moveReservation: `UPDATE ${ks}.stock_reservations SET status = ?, updated_at = ? WHERE order_id = ? IF status = ?`,
      rejectReservation: `UPDATE ${ks}.stock_reservations SET status = 'rejecting', failed_book = ?, updated_at = ? WHERE order_id = ? IF status = 'pending'`,
    };
  }

  static async open(opts: ServiceKeyspaceOptions): Promise<CassandraBookStore> {
    const { session, ks } = await openServiceKeyspace(opts, 'books', TABLES, BOOKS_KEYSPACE_VERSION, ADDED_COLUMNS);
    return new CassandraBookStore(session, ks);
  }

  /** Runs an LWT; true/false when its outcome is known, undefined when it is not (timeout, contention). */
  private async cas(query: string, params: unknown[]): Promise<{ applied: boolean; row: Row } | undefined> {
    try {
      const rs = await this.s.execute(query, params);
      const row = rs.first();
      return { applied: row ? row['[applied]'] === true : true, row };
    } catch (err) {
      if (isUnknownOutcome(err) || isRetryable(err)) return undefined;
      throw err;
    }
  }

  /** A conditional batch; its rows answer the current values when it was refused; undefined when the outcome is unknown. */
  private async casBatchRows(queries: Array<{ query: string; params: unknown[] }>): Promise<{ applied: boolean; rows: Row[] } | undefined> {
    try {
      const rs = await this.s.batch(queries, { logged: true });
      return { applied: rs.first()?.['[applied]'] === true, rows: rs.rows };
    } catch (err) {
      if (isUnknownOutcome(err) || isRetryable(err)) return undefined;
      throw err;
    }
  }

  private async casBatch(queries: Array<{ query: string; params: unknown[] }>): Promise<boolean | undefined> {
    try {
      const rs = await this.s.batch(queries, { logged: true });
      return rs.first()?.['[applied]'] === true;
    } catch (err) {
      if (isUnknownOutcome(err) || isRetryable(err)) return undefined;
      throw err;
    }
  }

  /** A SERIAL read; retried a few times when Paxos contention makes it time out (a read changes nothing). */
  private async serial(query: string, params: unknown[]): Promise<Row[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.s.execute(query, params, { serial: true, idempotent: true })).rows;
      } catch (err) {
        if (attempt >= 8 || !(isUnknownOutcome(err) || isRetryable(err))) throw err;
        await backoff(attempt);
      }
    }
  }

  /**
   * Runs `fn` after the previous task for the same key on this process finished. Purely an
   * optimisation: correctness comes from the LWTs, but letting one process send one Paxos
   * round per book at a time avoids the contention (and timeouts) of hundreds at once.
   */
  private serialised<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(() => undefined, () => undefined);
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return run;
  }

  private recordParams(b: BookRecord): unknown[] {
    return [
      b.bookId, b.title, b.authors, b.isbn, b.description, b.priceCents, b.currency, b.formats,
      b.coverImageId, b.ebook?.blobKey ?? null, b.ebook?.contentType ?? null, b.ebook?.bytes ?? null, b.createdAt, b.updatedAt,
    ];
  }

  /**
   * Makes `bookId` the owner of `isbn`; CONFLICT when another book owns it. A claim whose book
   * does not exist is taken over only once it is older than ORPHAN_CLAIM_MS: younger, it may
   * belong to a create still between its claim and its book row.
   */
  private async claimIsbn(isbn: string, bookId: string): Promise<void> {
    for (let round = 0; round < ROUNDS; round++) {
      const r = await this.cas(this.q.claimIsbn, [isbn, bookId]);
      if (r?.applied) return;
      const claim = (await this.serial(this.q.isbn, [isbn]))[0];
      const owner = claim?.book_id as string | undefined;
      if (owner === bookId) return;
      if (owner === undefined) continue;
      const conflict = new KindredError('CONFLICT', `isbn: ${isbn} is already the ISBN of book ${owner}`);
      const live = (await this.s.execute(this.q.get, [owner], { idempotent: true })).first();
      if (live && live.isbn === isbn) throw conflict;
      // A claim left by a create that crashed before writing its book, or by a deleted or re-numbered book.
      if (Date.now() - toNum(claim!.claimed_us) / 1000 < ORPHAN_CLAIM_MS) throw conflict;
      await this.cas(this.q.moveIsbn, [bookId, isbn, owner]);
      await backoff(round);
    }
    throw new KindredError('UNAVAILABLE', 'cassandra: the ISBN claim stayed contended');
  }

  async create(record: BookRecord, stock: number): Promise<void> {
    await this.claimIsbn(record.isbn, record.bookId);
    // Stock before the book row, so a visible book always has its stock row.
    for (let round = 0; ; round++) {
      const r = await this.cas(this.q.initStock, [record.bookId, stock]);
      if (r) break;
      if (round >= ROUNDS) throw new KindredError('UNAVAILABLE', 'cassandra: could not write the stock row');
      await backoff(round);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const r = await this.cas(this.q.insert, this.recordParams(record));
      if (r?.applied) return;
      const existing = r ? r.row : (await this.serial(this.q.get, [record.bookId]))[0];
      if (!existing) continue;
      // A retry of our own create (same ISBN, same creation time) is success.
      if (existing.isbn === record.isbn && toNum(existing.created_at) === record.createdAt) return;
      throw new KindredError('CONFLICT', `book ${record.bookId} exists`);
    }
    throw new KindredError('UNAVAILABLE', 'cassandra: could not insert the book');
  }

  /** No batching gain on Cassandra (each book is its own partitions and ISBN claim): 16 at a time. */
  async createMany(books: Array<{ record: BookRecord; stock: number }>): Promise<Array<Error | undefined>> {
    const out: Array<Error | undefined> = new Array(books.length);
    // A later line with the ISBN of an earlier one loses, as it would one by one.
    const firstOf = new Map<string, string>();
    const todo: number[] = [];
    books.forEach((b, i) => {
      const first = firstOf.get(b.record.isbn);
      if (first === undefined) {
        firstOf.set(b.record.isbn, b.record.bookId);
        todo.push(i);
      } else out[i] = new KindredError('CONFLICT', `isbn: ${b.record.isbn} is already the ISBN of book ${first}`);
    });
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const i = todo[next++]!;
        try {
          await this.create(books[i]!.record, books[i]!.stock);
          out[i] = undefined;
        } catch (err) {
          if (!(err instanceof KindredError) || err.code === 'UNAVAILABLE') throw err;
          out[i] = err;
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    return out;
  }

  async update(record: BookRecord): Promise<void> {
    const current = (await this.serial(this.q.get, [record.bookId]))[0];
    if (!current) throw new KindredError('NOT_FOUND', 'no such book');
    const oldIsbn = current.isbn as string;
    if (oldIsbn !== record.isbn) await this.claimIsbn(record.isbn, record.bookId);
    const p = this.recordParams(record);
    for (let round = 0; round < ROUNDS; round++) {
      const r = await this.cas(this.q.update, [...p.slice(1, 12), record.updatedAt, record.bookId]);
      if (r && !r.applied) {
        if (oldIsbn !== record.isbn) await this.cas(this.q.freeIsbn, [record.isbn, record.bookId]);
        throw new KindredError('NOT_FOUND', 'no such book');
      }
      if (r?.applied) break;
      const now = (await this.serial(this.q.get, [record.bookId]))[0];
      if (now && toNum(now.updated_at) === record.updatedAt && now.isbn === record.isbn) break;
      await backoff(round);
    }
    if (oldIsbn !== record.isbn) await this.cas(this.q.freeIsbn, [oldIsbn, record.bookId]);
  }

  async setStock(bookId: string, stock: number): Promise<void> {
    if (!(await this.s.execute(this.q.get, [bookId], { idempotent: true })).first()) throw new KindredError('NOT_FOUND', 'no such book');
    for (let round = 0; round < ROUNDS; round++) {
      const cur = (await this.serial(this.q.stock, [bookId]))[0];
      if (!cur) {
        if ((await this.cas(this.q.initStock, [bookId, stock]))?.applied) return;
        continue;
      }
      const r = await this.cas(this.q.casStock, [stock, bookId, cur.available]);
      if (r?.applied) return;
      await backoff(round);
    }
    throw new KindredError('UNAVAILABLE', 'cassandra: the stock row stayed contended');
  }

  async remove(bookId: string): Promise<boolean> {
    const current = (await this.serial(this.q.get, [bookId]))[0];
    if (!current) return false;
    const r = await this.cas(this.q.delete, [bookId]);
    if (r && !r.applied) return false;
    await this.cas(this.q.freeIsbn, [current.isbn, bookId]);
    return true;
  }

  private async stockOf(bookId: string): Promise<number> {
    const r = (await this.s.execute(this.q.stock, [bookId], { idempotent: true })).first();
    return r ? toNum(r.available ?? 0) : 0;
  }

  async get(bookId: string): Promise<StoredBook | undefined> {
    const [row, stock] = await Promise.all([this.s.execute(this.q.get, [bookId], { idempotent: true }).then((rs) => rs.first()), this.stockOf(bookId)]);
    return row ? toStored(row, stock) : undefined;
  }

  async getMany(bookIds: string[]): Promise<StoredBook[]> {
    const found = await Promise.all([...new Set(bookIds)].map((id) => this.get(id)));
    return found.filter((b): b is StoredBook => b !== undefined);
  }

  async byIsbn(isbn: string): Promise<StoredBook | undefined> {
    const owner = (await this.s.execute(this.q.isbn, [isbn], { idempotent: true })).first();
    if (!owner) return undefined;
    const book = await this.get(owner.book_id as string);
    return book && book.record.isbn === isbn ? book : undefined;
  }

  /** Token order (Cassandra's partition order): stable across calls, resumable from the last bookId. */
  async page(after: string | undefined, limit: number): Promise<StoredBook[]> {
    const rs = after === undefined
      ? await this.s.execute(this.q.pageFirst, [limit], { idempotent: true })
      : await this.s.execute(this.q.page, [after, limit], { idempotent: true });
    const stocks = await Promise.all(rs.rows.map((r) => this.stockOf(r.book_id as string)));
    return rs.rows.map((r, i) => toStored(r, stocks[i]!));
  }

  // ── stock ───────────────────────────────────────────────────────────

  private async reservation(orderId: string): Promise<Reservation | undefined> {
    const r = (await this.serial(this.q.reservation, [orderId]))[0];
    return r ? toReservation(r) : undefined;
  }

  private async move(orderId: string, from: string, to: string): Promise<void> {
    await this.cas(this.q.moveReservation, [to, Date.now(), orderId, from]);
  }

  /** Holds `quantity` copies of the book for the order; false when fewer are available. Idempotent. */
  private take(bookId: string, orderId: string, quantity: number): Promise<boolean> {
    return this.serialised(bookId, () => this.takeNow(bookId, orderId, quantity));
  }

  /**
   * One LWT per line in the common case: the compare-and-set starts from a plain read, not a
   * SERIAL read (a Paxos round). That is safe because the batch's condition checks it: a
   * stale value only makes the batch refuse, and a refused conditional batch answers the
   * rows it checked (the current `available`, and our hold if a repeat of this order took it
   * already), from which the next round goes on. Only an unknown outcome (timeout) sends the
   * next round to a SERIAL read, which also completes the Paxos round in flight.
   */
  private async takeNow(bookId: string, orderId: string, quantity: number): Promise<boolean> {
    let seen: { available: number; held: boolean } | undefined = this.stockState(await this.s.all(this.q.stockAndHold, [bookId, orderId]), orderId);
    for (let round = 0; round < ROUNDS; round++) {
      seen ??= this.stockState(await this.serial(this.q.stockAndHold, [bookId, orderId]), orderId);
      if (seen.held) return true;
      const available = seen.available;
      if (available < quantity) return false;
      const r = await this.casBatchRows([
        { query: this.q.casStock, params: [available - quantity, bookId, available] },
        { query: this.q.hold, params: [bookId, orderId, quantity] },
      ]);
      if (r?.applied) return true;
      seen = r ? this.stockState(r.rows, orderId) : undefined;
      if (r && round > 2) await backoff(round - 2);
    }
    throw new KindredError('UNAVAILABLE', `cassandra: stock of ${bookId} stayed contended`);
  }

  /** What the rows of a book's stock partition (the stock row, the order's hold) say. */
  private stockState(rows: Row[], orderId: string): { available: number; held: boolean } {
    const stock = rows.find((r) => r.order_id === STOCK_ROW);
    return {
      available: stock ? toNum(stock.available ?? 0) : 0,
      held: rows.some((r) => r.order_id === orderId && r.quantity !== null && r.quantity !== undefined),
    };
  }

  /** Returns the order's hold on the book, if it has one. Idempotent. */
  private giveBack(bookId: string, orderId: string): Promise<void> {
    return this.serialised(bookId, () => this.giveBackNow(bookId, orderId));
  }

  private async giveBackNow(bookId: string, orderId: string): Promise<void> {
    for (let round = 0; round < ROUNDS; round++) {
      const rows = await this.serial(this.q.stockAndHold, [bookId, orderId]);
      const hold = rows.find((r) => r.order_id === orderId);
      if (!hold) return;
      const stock = rows.find((r) => r.order_id === STOCK_ROW);
      const available = stock ? toNum(stock.available ?? 0) : 0;
      const quantity = toNum(hold.quantity);
      const applied = await this.casBatch([
        { query: this.q.casStock, params: [available + quantity, bookId, available] },
        { query: this.q.unhold, params: [bookId, orderId, quantity] },
      ]);
      if (applied) return;
      if (applied === false && round > 2) await backoff(round - 2);
    }
    throw new KindredError('UNAVAILABLE', `cassandra: stock of ${bookId} stayed contended`);
  }

  /**
   * The claim comes first: applied, the reservation is new (pending, with these lines);
   * refused, the LWT answers the existing row. Either way the common path needs no SERIAL
   * read, and a step whose LWT applied moves on with the state it wrote. Only an LWT that
   * lost or whose outcome is unknown sends the next round to read the state.
   */
  async reserve(orderId: string, lines: ReservationLine[]): Promise<ReserveOutcome> {
    const merged = mergeLines(lines);
    if (merged.length === 1) {
      // Unless this order has a several-book reservation (a repeat with other lines): answer that one.
      const multi = (await this.s.execute(this.q.reservation, [orderId], { idempotent: true })).first();
      if (!multi) return this.reserveSingle(orderId, merged[0]!);
    } else {
      const single = await this.singleOf(orderId);
      if (single) return this.reserveSingle(orderId, single);
    }
    return this.reserveMulti(orderId, merged);
  }

  private async reserveMulti(orderId: string, merged: ReservationLine[]): Promise<ReserveOutcome> {
    let r: Reservation | undefined;
    const claim = await this.cas(this.q.claimReservation, [orderId, JSON.stringify(merged), Date.now()]);
    if (claim?.applied) r = { status: 'pending', lines: merged, failedBook: null };
    else if (claim?.row?.status) r = toReservation(claim.row);
    for (let round = 0; round < ROUNDS; round++) {
      r ??= await this.reservation(orderId);
      if (!r) {
        const again = await this.cas(this.q.claimReservation, [orderId, JSON.stringify(merged), Date.now()]);
        r = again?.applied ? { status: 'pending', lines: merged, failedBook: null } : undefined;
        continue;
      }
      const cur = r;
      const held = cur.lines;
      r = undefined;
      switch (cur.status) {
        case 'pending': {
          let short: string | undefined;
          for (const line of held) {
            if (!(await this.take(line.bookId, orderId, line.quantity))) {
              short = line.bookId;
              break;
            }
          }
          if (short === undefined) {
            if ((await this.cas(this.q.moveReservation, ['reserved', Date.now(), orderId, 'pending']))?.applied) return { ok: true };
          } else if ((await this.cas(this.q.rejectReservation, [short, Date.now(), orderId]))?.applied) {
            r = { status: 'rejecting', lines: held, failedBook: short };
          }
          continue;
        }
        case 'rejecting':
          for (const line of held) await this.giveBack(line.bookId, orderId);
          await this.move(orderId, 'rejecting', 'rejected');
          continue;
        case 'releasing':
          for (const line of held) await this.giveBack(line.bookId, orderId);
          await this.move(orderId, 'releasing', 'released');
          continue;
        default:
          return outcomeOf(cur.status, cur.failedBook);
      }
    }
    throw new KindredError('UNAVAILABLE', 'cassandra: the reservation stayed contended');
  }

  async release(orderId: string): Promise<boolean> {
    const single = await this.singleOf(orderId);
    const released = single ? await this.serialised(single.bookId, () => this.releaseSingle(single.bookId, orderId)) : 'multi';
    return released === 'multi' ? this.releaseMulti(orderId) : released;
  }

  private async releaseMulti(orderId: string): Promise<boolean> {
    for (let round = 0; round < ROUNDS; round++) {
      const r = await this.reservation(orderId);
      if (!r) return false;
      switch (r.status) {
        case 'reserved':
          await this.move(orderId, 'reserved', 'releasing');
          continue;
        case 'pending':
          // A reservation that never finished (its caller crashed): release what it took.
          await this.move(orderId, 'pending', 'releasing');
          continue;
        case 'releasing':
        case 'rejecting':
          for (const line of r.lines) await this.giveBack(line.bookId, orderId);
          await this.move(orderId, r.status, r.status === 'releasing' ? 'released' : 'rejected');
          continue;
        case 'released':
          return true;
        case 'rejected':
          // A duplicate reserve racing the rejection may have left a hold behind: return it.
          for (const line of r.lines) await this.giveBack(line.bookId, orderId);
          return false;
        default:
          return false; // committed
      }
    }
    throw new KindredError('UNAVAILABLE', 'cassandra: the release stayed contended');
  }

  async commit(orderId: string): Promise<boolean> {
    const single = await this.singleOf(orderId);
    if (single) return this.commitSingle(single.bookId, orderId);
    return this.commitMulti(orderId);
  }

  /** One LWT in the common case: reserved → committed; a refused one answers the status it found. */
  private async commitMulti(orderId: string): Promise<boolean> {
    for (let round = 0; round < ROUNDS; round++) {
      const m = await this.cas(this.q.moveReservation, ['committed', Date.now(), orderId, 'reserved']);
      let status: string | undefined;
      if (m?.applied) return true;
      if (m) status = (m.row?.status as string | null) ?? undefined;
      else status = (await this.reservation(orderId))?.status; // outcome unknown: read it
      if (status === undefined) return false;
      if (status === 'committed') return true;
      if (status !== 'reserved') return false;
    }
    throw new KindredError('UNAVAILABLE', 'cassandra: the commit stayed contended');
  }

  // ── one-book reservations: the hold row is the reservation ───────────────────────

  private async singleOf(orderId: string): Promise<ReservationLine | undefined> {
    const r = (await this.s.execute(this.q.single, [orderId], { idempotent: true })).first();
    return r ? { bookId: r.book_id as string, quantity: toNum(r.quantity) } : undefined;
  }

  /** The order's hold in a book's stock rows, if any: undefined status is a several-book reservation's hold. */
  private holdOf(rows: Row[], orderId: string): { status: string | undefined; quantity: number } | undefined {
    const h = rows.find((r) => r.order_id === orderId);
    return h ? { status: (h.status as string | null) ?? undefined, quantity: toNum(h.quantity ?? 0) } : undefined;
  }

  /** What a one-book hold says about its reservation; 'multi' for a several-book reservation's hold (its own record answers). */
  private holdOutcome(status: string | undefined, bookId: string): ReserveOutcome | 'multi' {
    switch (status) {
      case 'reserved':
      case 'committed':
        return { ok: true };
      case 'rejected':
        return { ok: false, reason: 'out_of_stock', bookId };
      case 'released':
        return { ok: false, reason: 'released' };
      default:
        return 'multi';
    }
  }

  /**
   * The index first (a plain write: release and commit find the book by it; the same row on
   * every repeat), then one conditional batch takes the copies and records 'reserved'; a
   * shortage records 'rejected'. A refused LWT answers the rows it checked, which decide
   * the next round without a read.
   */
  private async reserveSingle(orderId: string, line: ReservationLine): Promise<ReserveOutcome> {
    const { bookId, quantity } = line;
    await this.s.execute(this.q.indexSingle, [orderId, bookId, quantity], { idempotent: true });
    // (the several-book path runs outside this book's queue: it queues its own takes on it)
    const outcome = await this.serialised(bookId, async (): Promise<ReserveOutcome | 'multi'> => {
      let rows: Row[] | undefined = await this.s.all(this.q.stockAndHold, [bookId, orderId]);
      for (let round = 0; round < ROUNDS; round++) {
        rows ??= await this.serial(this.q.stockAndHold, [bookId, orderId]);
        const hold = this.holdOf(rows, orderId);
        if (hold) return this.holdOutcome(hold.status, bookId);
        const { available } = this.stockState(rows, orderId);
        if (available < quantity) {
          const r = await this.cas(this.q.holdSingle, [bookId, orderId, 0, 'rejected']);
          if (r?.applied) return { ok: false, reason: 'out_of_stock', bookId };
          rows = r ? [r.row] : undefined;
          continue;
        }
        const r = await this.casBatchRows([
          { query: this.q.casStock, params: [available - quantity, bookId, available] },
          { query: this.q.holdSingle, params: [bookId, orderId, quantity, 'reserved'] },
        ]);
        if (r?.applied) return { ok: true };
        rows = r?.rows;
        if (r && round > 2) await backoff(round - 2);
      }
      throw new KindredError('UNAVAILABLE', `cassandra: stock of ${bookId} stayed contended`);
    });
    return outcome === 'multi' ? this.reserveMulti(orderId, []) : outcome;
  }

  /** 'reserved' → 'released' with the copies back, in one batch; no hold yet: fence the order with a 'released' row. */
  private async releaseSingle(bookId: string, orderId: string): Promise<boolean | 'multi'> {
    let rows: Row[] | undefined = await this.s.all(this.q.stockAndHold, [bookId, orderId]);
    for (let round = 0; round < ROUNDS; round++) {
      rows ??= await this.serial(this.q.stockAndHold, [bookId, orderId]);
      const hold = this.holdOf(rows, orderId);
      if (!hold) {
        const r = await this.cas(this.q.holdSingle, [bookId, orderId, 0, 'released']);
        if (r?.applied) return true;
        rows = r ? [r.row] : undefined;
        continue;
      }
      if (hold.status === undefined) return 'multi';
      if (hold.status !== 'reserved') return hold.status === 'released';
      const { available } = this.stockState(rows, orderId);
      const r = await this.casBatchRows([
        { query: this.q.casStock, params: [available + hold.quantity, bookId, available] },
        { query: this.q.moveHold, params: ['released', bookId, orderId, 'reserved'] },
      ]);
      if (r?.applied) return true;
      rows = r?.rows;
      if (r && round > 2) await backoff(round - 2);
    }
    throw new KindredError('UNAVAILABLE', `cassandra: stock of ${bookId} stayed contended`);
  }

  /** One LWT: 'reserved' → 'committed'; a refused one answers the status it found. */
  private async commitSingle(bookId: string, orderId: string): Promise<boolean> {
    for (let round = 0; round < ROUNDS; round++) {
      const r = await this.cas(this.q.moveHold, ['committed', bookId, orderId, 'reserved']);
      if (r?.applied) return true;
      // Refused: its answer has the status; a refusal without one (no hold row, or a several-book
      // hold) or an unknown outcome is decided from a SERIAL read.
      let status = (r?.row?.status as string | null | undefined) ?? undefined;
      if (status === undefined) {
        const hold = this.holdOf(await this.serial(this.q.stockAndHold, [bookId, orderId]), orderId);
        if (!hold) return false;
        if (hold.status === undefined) return this.commitMulti(orderId);
        status = hold.status;
      }
      if (status !== 'reserved') return status === 'committed';
    }
    throw new KindredError('UNAVAILABLE', 'cassandra: the commit stayed contended');
  }

  close(): Promise<void> {
    return this.s.close();
  }
}
