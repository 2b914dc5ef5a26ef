/**
 * The Search service's index: SQLite FTS5 (full text, BM25 ranking in C, prefix queries)
 * over title, authors and description, a typo vocabulary of title and author terms
 * (MiniSearch's radix tree, for edit-distance lookup), and compact per-book numbers in typed
 * arrays for filters, facets and sorting.
 *
 * FTS5 finds and ranks; typos are handled by correcting query words against the vocabulary
 * before the MATCH (a word is tried as typed and as each close term the index holds), so the
 * engine only ever looks up real terms. The per-book numbers stay in JavaScript because
 * facets over tens of thousands of matches are a tight loop over flat memory, not SQL.
 *
 * It holds no book data beyond what it needs to find and order books: results are ids, and
 * the service hydrates them from the Books service. With a file, the index survives a
 * restart (a rebuild then only catches up); without, it lives in memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database, { type Database as Db } from 'better-sqlite3';
import SearchableMap from 'minisearch/SearchableMap';
import type { Book, BookFormat } from '../contracts.js';
import { normaliseIsbn } from '../books/isbn.js';
import { fold, fuzziness, quoted, terms, wordExpr } from './text.js';

export type SortOrder = 'relevance' | 'price' | '-price' | 'title' | 'newest';
export const SORT_ORDERS: readonly SortOrder[] = ['relevance', 'price', '-price', 'title', 'newest'];

/** Price facet buckets in minor units: [min, max) each; the last is open-ended. */
export const PRICE_BUCKETS: ReadonlyArray<{ key: string; min: number; max: number | null }> = [
  { key: 'under-5', min: 0, max: 500 },
  { key: '5-10', min: 500, max: 1000 },
  { key: '10-20', min: 1000, max: 2000 },
  { key: '20-50', min: 2000, max: 5000 },
  { key: '50-and-up', min: 5000, max: null },
];

export interface SearchQuery {
  q: string;
  format?: BookFormat;
  minPriceCents?: number;
  maxPriceCents?: number;
  /** exact author name, case-insensitive (as listed in the author facet) */
  author?: string;
  sort: SortOrder;
  /** 1-based */
  page: number;
  size: number;
}

export interface Facets {
  format: Record<BookFormat, number>;
  price: Array<{ key: string; min: number; max: number | null; count: number }>;
  /** the 10 authors with most matching books */
  author: Array<{ name: string; count: number }>;
}

export interface SearchHits {
  bookIds: string[];
  total: number;
  facets: Facets;
}

export interface BookIndexOptions {
  /** the index file (created if missing); omitted: in memory, rebuilt at every start */
  file?: string;
  /** SQLite page cache, MiB (default 64) */
  cacheMiB?: number;
}

const FORMAT_BITS: Record<BookFormat, number> = { ebook: 1, print: 2 };
/** set in `formats` for a slot that holds a book (a freed slot is 0) */
const LIVE = 4;
const AUTHOR_FACET_SIZE = 10;
const SUGGESTIONS = 8;
/** An exact/prefix pass finding fewer books than this is retried with typo tolerance. */
const FUZZY_BELOW = 5;
/** A query word is tried as at most this many corrections (closest first, then most used). */
const MAX_CORRECTIONS = 16;
const SUGGEST_CACHE_SIZE = 10_000;
/** Match sets of at least this many books are cached (at most MATCH_CACHE_SIZE of them, ≤ 4 MB each at a million books). */
const CACHE_MATCHES_FROM = 20_000;
const MATCH_CACHE_SIZE = 32;
/**
 * BM25 costs about a microsecond per matching book in FTS5: a set of matches larger than this
 * is not scored by it (see `run`).
 */
const SCORE_AT_MOST = 2000;
/** Added to the score of a book holding every word in title or authors: above any other match. */
const TITLE_TIER = 1000;
/** Slots per block of `blockNewest`: a newest-first browse skips whole blocks of older books. */
const BLOCK_BITS = 8;
/** Bumped when the file's layout or the way text is tokenised changes: an older file is rebuilt. */
const INDEX_VERSION = 4;

function priceBucket(cents: number): number {
  for (let b = PRICE_BUCKETS.length - 1; b > 0; b--) if (cents >= PRICE_BUCKETS[b]!.min) return b;
  return 0;
}

function titleKeyOf(title: string): string {
  return fold(title).replace(/^(the|a|an) /, '');
}

const DDL = `
CREATE TABLE IF NOT EXISTS index_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
-- one row per indexed book; slot = the rowid of its text and its place in the typed arrays
CREATE TABLE IF NOT EXISTS books (
  slot INTEGER PRIMARY KEY, book_id TEXT NOT NULL UNIQUE, isbn TEXT NOT NULL, title TEXT NOT NULL,
  authors TEXT NOT NULL, formats INTEGER NOT NULL, price INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS books_isbn ON books (isbn);
-- folded author name → slots: the author filter
CREATE TABLE IF NOT EXISTS book_authors (author_key TEXT NOT NULL, slot INTEGER NOT NULL, PRIMARY KEY (author_key, slot)) WITHOUT ROWID;
-- for finding books. Contentless: the text is not stored twice, only its index; detail=column:
-- which column holds a term but not where (no phrase queries, a smaller index; contentless, it
-- cannot rank: bm25() gives 0); prefix='3' answers 3-letter prefixes from their own index
CREATE VIRTUAL TABLE IF NOT EXISTS book_text USING fts5 (title, authors, description, content='', contentless_delete=1, detail=column, tokenize='unicode61 remove_diacritics 2', prefix='3');
-- title and authors again, for ranking (detail=full, which bm25() needs). Apart, because BM25
-- normalises by the length of the whole row: a long description would outweigh a short title
CREATE VIRTUAL TABLE IF NOT EXISTS book_titles USING fts5 (title, authors, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
`;

function openDb(options: BookIndexOptions): Db {
  const file = options.file ?? ':memory:';
  const open = () => {
    const db = new Database(file);
    try {
      // One process per file: a second node pointed at the same data directory must not write into it.
      db.pragma('locking_mode = EXCLUSIVE');
      // A derived index, rebuilt from Books if lost: no fsync, and a torn file is simply recreated.
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = OFF');
      db.pragma(`cache_size = -${(options.cacheMiB ?? 64) * 1024}`);
      db.exec(DDL);
      const row = db.prepare('SELECT version FROM index_version WHERE id = 1').get() as { version: number } | undefined;
      if (row === undefined) db.prepare('INSERT INTO index_version (id, version) VALUES (1, ?)').run(INDEX_VERSION);
      else if (row.version !== INDEX_VERSION) throw new Error(`search index version ${row.version}, expected ${INDEX_VERSION}`);
      return db;
    } catch (err) {
      db.close();
      throw err;
    }
  };
  if (file === ':memory:') return open();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    return open();
  } catch (err) {
    // Held by another process: this one keeps its index in memory rather than share the file.
    if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) return openDb({ ...options, file: ':memory:' });
    // Unreadable or from another version: start empty; the service's rebuild fills it again.
    for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    return open();
  }
}

/** The prepared statements of the index. */
function statements(db: Db) {
  return {
    held: db.prepare('SELECT slot, updated FROM books WHERE book_id = ?'),
    bookOf: db.prepare('SELECT slot, title, authors FROM books WHERE book_id = ?'),
    byIsbn: db.prepare('SELECT slot FROM books WHERE isbn = ? LIMIT 1').pluck(),
    shown: db.prepare('SELECT title, authors FROM books WHERE slot = ?'),
    insertBook: db.prepare('INSERT INTO books (slot, book_id, isbn, title, authors, formats, price, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
    deleteBook: db.prepare('DELETE FROM books WHERE slot = ?'),
    insertAuthor: db.prepare('INSERT OR IGNORE INTO book_authors (author_key, slot) VALUES (?, ?)'),
    deleteAuthor: db.prepare('DELETE FROM book_authors WHERE author_key = ? AND slot = ?'),
    authorSlots: db.prepare('SELECT slot FROM book_authors WHERE author_key = ?').pluck(),
    insertText: db.prepare('INSERT INTO book_text (rowid, title, authors, description) VALUES (?, ?, ?, ?)'),
    deleteText: db.prepare('DELETE FROM book_text WHERE rowid = ?'),
    insertTitles: db.prepare('INSERT INTO book_titles (rowid, title, authors) VALUES (?, ?, ?)'),
    deleteTitles: db.prepare('DELETE FROM book_titles WHERE rowid = ?'),
    // Matching rowids come back as one comma-separated string: handing them to JavaScript row
    // by row costs twice what FTS5 spends finding them.
    titleMatching: db.prepare('SELECT group_concat(rowid) FROM book_titles WHERE book_titles MATCH ?').pluck(),
    // bm25 is negative, better matches lower: negated so that higher is better
    titleRanked: db.prepare('SELECT rowid, -bm25(book_titles, 3.0, 2.0) FROM book_titles WHERE book_titles MATCH ?').raw(),
    matching: db.prepare('SELECT group_concat(rowid) FROM book_text WHERE book_text MATCH ?').pluck(),
    suggest: db.prepare(`SELECT rowid FROM book_titles WHERE book_titles MATCH ? ORDER BY bm25(book_titles, 2.0, 1.0) LIMIT ${SUGGESTIONS * 8}`).pluck(),
    all: db.prepare('SELECT slot, book_id, title, authors, formats, price, created FROM books'),
  };
}

/**
 * Per-book numbers live in typed arrays indexed by a slot number (not in objects), so that
 * filtering, counting facets and sorting over hundreds of thousands of books is a tight
 * loop over flat memory. Catalogue-wide counts (per format combination: price buckets and
 * books per author) are kept up to date on every change, so a browse without text or price
 * filter needs no scan to count its facets.
 */
export class BookIndex {
  private readonly db: Db;
  private readonly sql: ReturnType<typeof statements>;
  /** title and author terms → books holding them: the words typos are corrected to */
  private readonly vocab = new SearchableMap<number>();
  private live = 0;

  // ── per slot ──
  private slotIds: Array<string | undefined> = [];
  /** lowercase, accents and a leading article removed: the title sort key */
  private titleKeys: Array<string | undefined> = [];
  private formats = new Uint8Array(1024);
  private price = new Float64Array(1024);
  private created = new Float64Array(1024);
  /** the book's first two author ids (-1: none); a third and more in `moreAuthors` */
  private author0 = new Int32Array(1024);
  private author1 = new Int32Array(1024);
  private readonly moreAuthors = new Map<number, number[]>();
  private freeSlots: number[] = [];
  private slotCount = 0;
  /**
   * Per block of 256 slots, the newest creation time it ever held (not lowered on removal:
   * an overestimate only costs a look). Slots are handed out roughly in creation order, so a
   * newest-first page is found in the last few blocks and the rest are skipped.
   */
  private blockNewest = new Float64Array(1024 >> BLOCK_BITS);

  // ── authors: exact name ↔ id, and per id the books per format combination (id*4 + bits) ──
  private readonly authorIds = new Map<string, number>();
  private authorNames: string[] = [];
  private authorBooks = new Int32Array(4 * 1024);
  private freeAuthorIds: number[] = [];

  /** books per format combination (index = format bits 1..3) and per price bucket */
  private readonly priceByFormat = [0, 1, 2, 3].map(() => new Array<number>(PRICE_BUCKETS.length).fill(0));
  /** top authors without text per format filter (0: none, 1: ebook, 2: print), until the catalogue changes */
  private topAuthorsCache = new Map<number, Facets['author']>();
  private readonly suggestCache = new Map<string, ReturnType<BookIndex['suggest']>>();
  /** large match sets by FTS5 expression (a common word), until the catalogue changes */
  private readonly matchCache = new Map<string, Int32Array>();

  // ── scratch for one search (searches run one at a time: JavaScript is single-threaded) ──
  private scores = new Float64Array(1024);
  private authorScratch = new Int32Array(1024);
  /** slot → the search that marked it as the filtered author's (compared with `stamp`) */
  private marks = new Int32Array(1024);
  private stamp = 0;

  private readonly upsertTx: (book: Book) => void;
  private readonly upsertManyTx: (books: Book[]) => void;
  private readonly removeTx: (bookId: string) => void;

  constructor(options: BookIndexOptions = {}) {
    this.db = openDb(options);
    const db = this.db;
    this.sql = statements(db);
    this.upsertTx = db.transaction((book: Book) => this.write(book));
    this.upsertManyTx = db.transaction((books: Book[]) => {
      for (const b of books) this.write(b);
    });
    this.removeTx = db.transaction((bookId: string) => this.erase(bookId));
    this.load();
  }

  /** Reads what the file holds into memory (nothing for a new or in-memory index). */
  private load(): void {
    type Row = { slot: number; book_id: string; title: string; authors: string; formats: number; price: number; created: number };
    let max = -1;
    for (const r of this.sql.all.iterate() as IterableIterator<Row>) {
      while (this.slotCount <= r.slot) this.newSlot(true);
      this.place(r.slot, r.book_id, r.title, JSON.parse(r.authors) as string[], r.formats, r.price, r.created);
      max = Math.max(max, r.slot);
    }
    for (let s = 0; s <= max; s++) if ((this.formats[s]! & LIVE) === 0) this.freeSlots.push(s);
  }

  close(): void {
    this.db.close();
  }

  get size(): number {
    return this.live;
  }

  ids(): string[] {
    return this.slotIds.filter((id): id is string => id !== undefined);
  }

  updatedAt(bookId: string): number | undefined {
    return (this.sql.held.get(bookId) as { updated: number } | undefined)?.updated;
  }

  private changed(): void {
    this.topAuthorsCache.clear();
    this.suggestCache.clear();
    this.matchCache.clear();
  }

  /** A free slot, or a new one (`append`: always a new one, for loading slots as stored). */
  private newSlot(append = false): number {
    const free = append ? undefined : this.freeSlots.pop();
    if (free !== undefined) return free;
    const slot = this.slotCount++;
    if (slot >= this.formats.length) {
      const cap = this.formats.length * 2;
      this.formats = grow(this.formats, new Uint8Array(cap));
      this.price = grow(this.price, new Float64Array(cap));
      this.created = grow(this.created, new Float64Array(cap));
      this.blockNewest = grow(this.blockNewest, new Float64Array(cap >> BLOCK_BITS));
      this.author0 = grow(this.author0, new Int32Array(cap));
      this.author1 = grow(this.author1, new Int32Array(cap));
      this.scores = new Float64Array(cap);
      this.marks = new Int32Array(cap);
    }
    return slot;
  }

  private authorId(name: string): number {
    let id = this.authorIds.get(name);
    if (id !== undefined) return id;
    id = this.freeAuthorIds.pop() ?? this.authorNames.length;
    if (id === this.authorNames.length) this.authorNames.push(name);
    else this.authorNames[id] = name;
    this.authorIds.set(name, id);
    if (id * 4 + 4 > this.authorBooks.length) {
      this.authorBooks = grow(this.authorBooks, new Int32Array(this.authorBooks.length * 2));
      this.authorScratch = new Int32Array(this.authorBooks.length / 4);
    }
    return id;
  }

  /** The author ids of a slot. */
  private authorsOf(slot: number): number[] {
    const a0 = this.author0[slot]!;
    if (a0 < 0) return [];
    const a1 = this.author1[slot]!;
    if (a1 < 0) return [a0];
    return [a0, a1, ...(this.moreAuthors.get(slot) ?? [])];
  }

  /** Adds (+1) or takes away (-1) a slot's share of the catalogue-wide counts. */
  private count(slot: number, delta: 1 | -1): void {
    const bits = this.formats[slot]! & 3;
    this.priceByFormat[bits]![priceBucket(this.price[slot]!)]! += delta;
    for (const a of this.authorsOf(slot)) this.authorBooks[a * 4 + bits] += delta;
  }

  /** The in-memory half of adding a book: arrays, counts, vocabulary. */
  private place(slot: number, bookId: string, title: string, authors: string[], formatBits: number, price: number, created: number): void {
    this.slotIds[slot] = bookId;
    this.titleKeys[slot] = titleKeyOf(title);
    this.formats[slot] = LIVE | formatBits;
    this.price[slot] = price;
    this.created[slot] = created;
    if (created > this.blockNewest[slot >> BLOCK_BITS]!) this.blockNewest[slot >> BLOCK_BITS] = created;
    // A book listing the same author twice counts once for them.
    const ids = [...new Set(authors)].map((name) => this.authorId(name));
    this.author0[slot] = ids[0] ?? -1;
    this.author1[slot] = ids[1] ?? -1;
    if (ids.length > 2) this.moreAuthors.set(slot, ids.slice(2));
    this.count(slot, 1);
    for (const t of new Set([...terms(title), ...terms(authors.join(' '))])) this.vocab.update(t, (n) => (n ?? 0) + 1);
    this.live++;
  }

  upsert(book: Book): void {
    this.upsertTx(book);
  }

  /** Several books in one transaction (a rebuild's page). */
  upsertMany(books: Book[]): void {
    if (books.length > 0) this.upsertManyTx(books);
  }

  private write(book: Book): void {
    this.erase(book.bookId);
    this.changed();
    const slot = this.newSlot();
    const formatBits = book.formats.reduce((bits, f) => bits | FORMAT_BITS[f], 0);
    this.sql.insertBook.run(slot, book.bookId, book.isbn, book.title, JSON.stringify(book.authors), formatBits, book.priceCents, book.createdAt, book.updatedAt);
    for (const key of new Set(book.authors.map(fold))) this.sql.insertAuthor.run(key, slot);
    const title = terms(book.title).join(' ');
    const authors = terms(book.authors.join(' ; ')).join(' ');
    this.sql.insertText.run(slot, title, authors, terms(book.description).join(' '));
    this.sql.insertTitles.run(slot, title, authors);
    this.place(slot, book.bookId, book.title, book.authors, formatBits, book.priceCents, book.createdAt);
  }

  remove(bookId: string): void {
    this.removeTx(bookId);
  }

  private erase(bookId: string): void {
    const held = this.sql.bookOf.get(bookId) as { slot: number; title: string; authors: string } | undefined;
    if (!held) return;
    this.changed();
    const { slot } = held;
    const authors = JSON.parse(held.authors) as string[];
    this.sql.deleteText.run(slot);
    this.sql.deleteTitles.run(slot);
    this.sql.deleteBook.run(slot);
    for (const key of new Set(authors.map(fold))) this.sql.deleteAuthor.run(key, slot);
    for (const t of new Set([...terms(held.title), ...terms(authors.join(' '))])) {
      const n = (this.vocab.get(t) ?? 1) - 1;
      if (n <= 0) this.vocab.delete(t);
      else this.vocab.set(t, n);
    }
    this.count(slot, -1);
    for (const a of this.authorsOf(slot)) {
      let total = 0;
      for (let bits = 1; bits < 4; bits++) total += this.authorBooks[a * 4 + bits]!;
      if (total === 0) {
        this.authorIds.delete(this.authorNames[a]!);
        this.freeAuthorIds.push(a);
      }
    }
    this.formats[slot] = 0;
    this.slotIds[slot] = undefined;
    this.titleKeys[slot] = undefined;
    this.author0[slot] = -1;
    this.author1[slot] = -1;
    this.moreAuthors.delete(slot);
    this.freeSlots.push(slot);
    this.live--;
  }

  /**
   * Title and author terms within `maxDistance` edits of `term` (not the term itself), closest
   * first, then the most used, at most MAX_CORRECTIONS, as FTS5 strings.
   */
  private corrections(term: string, maxDistance: number): string[] {
    if (maxDistance === 0) return [];
    const found = [...this.vocab.fuzzyGet(term, maxDistance)].filter(([t]) => t !== term);
    found.sort((a, b) => a[1][1] - b[1][1] || b[1][0] - a[1][0]);
    return found.slice(0, MAX_CORRECTIONS).map(([t]) => quoted(t));
  }

  /**
   * The slots matching `expr.any`, with their scores in `this.scores` when `ranked`: books
   * holding the words in title or authors (`expr.titles`) first, by BM25 over title and
   * authors (past SCORE_AT_MOST of them, by title length: shortest first, as BM25 would);
   * then the books matching only through their description, unscored (newest first).
   */
  /**
   * The slots matching an expression. A common word matches a good share of the catalogue
   * and costs milliseconds to read out of FTS5 each time: such sets are kept until the
   * catalogue changes (exact, like every answer).
   */
  private matching(expr: string): Int32Array {
    const cached = this.matchCache.get(expr);
    if (cached) return cached;
    const slots = slotList(this.sql.matching.get(expr));
    if (slots.length >= CACHE_MATCHES_FROM) {
      if (this.matchCache.size >= MATCH_CACHE_SIZE) this.matchCache.delete(this.matchCache.keys().next().value!);
      this.matchCache.set(expr, slots);
    }
    return slots;
  }

  private run(expr: { any: string; titles: string }, ranked: boolean): Int32Array {
    const slots = this.matching(expr.any);
    if (!ranked) return slots;
    const { scores, titleKeys } = this;
    for (const slot of slots) scores[slot] = 0;
    // The title matches are among the matches: when those are few, score them straight away.
    const titles = slots.length <= SCORE_AT_MOST ? slots : slotList(this.sql.titleMatching.get(expr.titles));
    if (titles.length <= SCORE_AT_MOST) {
      for (const [slot, score] of this.sql.titleRanked.all(expr.titles) as Array<[number, number]>) scores[slot] = TITLE_TIER + score;
    } else for (const slot of titles) scores[slot] = TITLE_TIER + 1 / (1 + (titleKeys[slot]?.length ?? 0));
    return slots;
  }

  /**
   * Matches for the text alone, in passes from cheap to costly, each run only when the one
   * before found too little:
   *  1. every word exactly in title, authors or description, the last one also as a prefix
   *     of a title/author word (it may be half typed);
   *  2. the same with typos in title and authors (1 edit for words of 4–7 letters, 2 beyond),
   *     when pass 1 found fewer than FUZZY_BELOW books (but not when it found some and every
   *     word is a title/author term the index holds): first correcting only the words that
   *     no title or author holds, then (if that found nothing) every word;
   *  3. any word (OR) with typos, best first — a misspelling too far off, or a word in no book.
   * Typos are corrected against the title/author vocabulary; descriptions match whole words.
   */
  private match(q: string, ranked: boolean): Int32Array {
    const isbn = normaliseIsbn(q);
    if (isbn) {
      const slot = this.sql.byIsbn.get(isbn) as number | undefined;
      if (slot !== undefined) {
        this.scores[slot] = 1;
        return Int32Array.of(slot);
      }
    }
    const words = terms(q);
    if (words.length === 0) return new Int32Array(0);
    const last = words.length - 1;
    const prefix = (t: string, i: number) => (i === last && t.length >= 3 ? [`${quoted(t)}*`] : []);
    const exact = this.run(matchExpr(words, words.map(prefix), 'AND'), ranked);
    const unknown = words.map((t) => !this.vocab.has(t));
    // Few books, but every word is one the catalogue knows (a rare author, say): taken as spelled.
    if (exact.length >= FUZZY_BELOW || (exact.length > 0 && !unknown.some(Boolean))) return exact;
    const fixes = words.map((t) => this.corrections(t, fuzziness(t)));
    const withTypos = words.map((t, i) => [...prefix(t, i), ...fixes[i]!]);
    // First only the words no title or author holds are corrected: a word the catalogue knows
    // is most likely spelled right, and its neighbours (FTS5 cannot rank a correction below
    // the word itself) would push the books holding it down.
    if (unknown.some((u, i) => u && fixes[i]!.length > 0) && unknown.some((u) => !u)) {
      const typos = this.run(matchExpr(words, words.map((t, i) => (unknown[i] ? withTypos[i]! : prefix(t, i))), 'AND'), ranked);
      if (typos.length > 0) return typos;
    }
    if (fixes.some((f) => f.length > 0)) {
      const typos = this.run(matchExpr(words, withTypos, 'AND'), ranked);
      if (typos.length > 0) return typos;
    } else if (exact.length > 0) return exact;
    return words.length > 1 ? this.run(matchExpr(words, withTypos, 'OR'), ranked) : exact;
  }

  search(query: SearchQuery): SearchHits {
    const q = query.q.trim();
    const wantBits = query.format ? FORMAT_BITS[query.format] : 0;
    const priced = query.minPriceCents !== undefined || query.maxPriceCents !== undefined;
    const minP = query.minPriceCents ?? 0;
    const maxP = query.maxPriceCents ?? Number.POSITIVE_INFINITY;
    const author = query.author ? fold(query.author) : undefined;
    const authorSlots = author === undefined ? undefined : Int32Array.from(this.sql.authorSlots.all(author) as number[]);

    // The candidate slots: the text's matches (with their scores), the author's books, or all.
    let slots: ArrayLike<number>;
    const scored = q !== '' && query.sort === 'relevance';
    const marks = this.marks;
    const stamp = ++this.stamp;
    if (q !== '') {
      slots = this.match(q, scored);
      // Text and author together: the author's books are marked, the matches checked against them.
      if (authorSlots) for (const s of authorSlots) marks[s] = stamp;
    } else if (authorSlots) {
      slots = authorSlots;
    } else {
      slots = { length: this.slotCount } as ArrayLike<number>; // every slot: read as the index itself
    }
    const all = q === '' && !authorSlots;
    const textAndAuthor = q !== '' && authorSlots !== undefined;

    // Disjunctive facets: each facet counts with every filter applied except its own.
    const facets: Facets = { format: { ebook: 0, print: 0 }, price: PRICE_BUCKETS.map((b) => ({ ...b, count: 0 })), author: [] };
    // Without text, price or author filter the facets are the catalogue-wide counts.
    const precounted = all && !priced;
    const countAuthors = !precounted && !(q === '' && authorSlots && wantBits === 0 && !priced);
    const authorCounts = this.authorScratch;
    const touched: number[] = [];
    const hits: number[] = [];
    const { formats, price, author0, author1 } = this;
    const countAuthor = (a: number) => {
      if (authorCounts[a]!++ === 0) touched.push(a);
    };
    // A browse newest first with catalogue-wide facets: its total is counted already and its
    // page found by skipping blocks of older books, so no loop over every book.
    const newestBrowse = precounted && (query.sort === 'newest' || query.sort === 'relevance');
    for (let i = 0; i < (newestBrowse ? 0 : slots.length); i++) {
      const slot = all ? i : slots[i]!;
      const f = formats[slot]!;
      if ((f & LIVE) === 0) continue;
      const fmtOk = wantBits === 0 || (f & wantBits) !== 0;
      const p = price[slot]!;
      const priceOk = p >= minP && p <= maxP;
      const authorOk = !textAndAuthor || marks[slot] === stamp;
      if (!precounted) {
        if (priceOk && authorOk) {
          if (f & 1) facets.format.ebook++;
          if (f & 2) facets.format.print++;
        }
        if (fmtOk && authorOk) facets.price[priceBucket(p)]!.count++;
        if (fmtOk && priceOk && countAuthors) {
          const a0 = author0[slot]!;
          if (a0 >= 0) {
            countAuthor(a0);
            const a1 = author1[slot]!;
            if (a1 >= 0) {
              countAuthor(a1);
              for (const a of this.moreAuthors.get(slot) ?? []) countAuthor(a);
            }
          }
        }
      }
      if (fmtOk && priceOk && authorOk) hits.push(slot);
    }
    if (precounted) this.catalogueFacets(facets, wantBits);
    else if (countAuthors) {
      facets.author = this.topAuthors(touched, (a) => authorCounts[a]!);
      for (const a of touched) authorCounts[a] = 0;
    } else {
      // An author's books without other filters: the author facet over the whole catalogue.
      facets.author = this.catalogueTopAuthors(0);
    }

    const { created, scores, slotIds, titleKeys } = this;
    const byId = (a: number, b: number) => (slotIds[a]! < slotIds[b]! ? -1 : slotIds[a]! > slotIds[b]! ? 1 : 0);
    const order: (a: number, b: number) => number = {
      relevance: scored
        ? (a: number, b: number) => scores[b]! - scores[a]! || created[b]! - created[a]! || byId(a, b)
        : (a: number, b: number) => created[b]! - created[a]! || byId(a, b),
      price: (a: number, b: number) => price[a]! - price[b]! || byId(a, b),
      '-price': (a: number, b: number) => price[b]! - price[a]! || byId(a, b),
      title: (a: number, b: number) => {
        const ka = titleKeys[a]!;
        const kb = titleKeys[b]!;
        return ka < kb ? -1 : ka > kb ? 1 : byId(a, b);
      },
      newest: (a: number, b: number) => created[b]! - created[a]! || byId(b, a),
    }[query.sort];
    const start = (query.page - 1) * query.size;
    const end = start + query.size;
    if (newestBrowse) {
      const total = wantBits === 0 ? this.live : wantBits === FORMAT_BITS.ebook ? facets.format.ebook : facets.format.print;
      return { bookIds: this.newestPage(wantBits, end, order).slice(start, end).map((s) => slotIds[s]!), total, facets };
    }
    return { bookIds: topK(hits, end, order).slice(start, end).map((s) => slotIds[s]!), total: hits.length, facets };
  }

  /** The first `k` books (of a format) newest first, looking only into blocks that can hold one. */
  private newestPage(wantBits: number, k: number, order: (a: number, b: number) => number): number[] {
    const { formats, created, blockNewest } = this;
    const best = new TopK(k, order);
    for (let block = (this.slotCount - 1) >> BLOCK_BITS; block >= 0; block--) {
      const worst = best.worst();
      if (worst !== undefined && blockNewest[block]! < created[worst]!) continue;
      const first = block << BLOCK_BITS;
      for (let slot = Math.min(this.slotCount, first + (1 << BLOCK_BITS)) - 1; slot >= first; slot--) {
        const f = formats[slot]!;
        if ((f & LIVE) !== 0 && (wantBits === 0 || (f & wantBits) !== 0)) best.offer(slot);
      }
    }
    return best.sorted();
  }

  /** Facets of the whole catalogue (optionally one format) from the counts kept on every change. */
  private catalogueFacets(facets: Facets, wantBits: number): void {
    for (let bits = 1; bits < 4; bits++) {
      const perBucket = this.priceByFormat[bits]!;
      const books = perBucket.reduce((a, b) => a + b, 0);
      if (bits & 1) facets.format.ebook += books;
      if (bits & 2) facets.format.print += books;
      if (wantBits === 0 || (bits & wantBits) !== 0) perBucket.forEach((n, b) => (facets.price[b]!.count += n));
    }
    facets.author = this.catalogueTopAuthors(wantBits);
  }

  private catalogueTopAuthors(wantBits: number): Facets['author'] {
    let top = this.topAuthorsCache.get(wantBits);
    if (!top) {
      const books = this.authorBooks;
      const count = (a: number) => {
        let n = 0;
        for (let bits = 1; bits < 4; bits++) if (wantBits === 0 || (bits & wantBits) !== 0) n += books[a * 4 + bits]!;
        return n;
      };
      top = this.topAuthors([...this.authorIds.values()], count);
      this.topAuthorsCache.set(wantBits, top);
    }
    return top;
  }

  /** The AUTHOR_FACET_SIZE authors with most books, most first (ties by name), by partial selection. */
  private topAuthors(ids: number[], count: (a: number) => number): Facets['author'] {
    const byCount = (a: number, b: number) => count(b) - count(a) || (this.authorNames[a]! < this.authorNames[b]! ? -1 : 1);
    return topK(ids.filter((a) => count(a) > 0), AUTHOR_FACET_SIZE, byCount).map((a) => ({ name: this.authorNames[a]!, count: count(a) }));
  }

  /**
   * Type-ahead over many matches (BM25 for all would cost too much): one book per title,
   * titles beginning with what was typed first, then the shortest, then the newest.
   */
  private shortestTitles(matches: Int32Array, typed: string): number[] {
    const { titleKeys, created } = this;
    const newestPerTitle = new Map<string, number>();
    for (const slot of matches) {
      const key = titleKeys[slot];
      if (key === undefined) continue;
      const held = newestPerTitle.get(key);
      if (held === undefined || created[slot]! > created[held]!) newestPerTitle.set(key, slot);
    }
    const rank = (slot: number) => (titleKeys[slot]!.startsWith(typed) ? 0 : 1e6) + titleKeys[slot]!.length;
    const best = new TopK<number>(SUGGESTIONS, (a, b) => rank(a) - rank(b) || created[b]! - created[a]! || a - b);
    for (const slot of newestPerTitle.values()) best.offer(slot);
    return best.sorted();
  }

  /**
   * Type-ahead: books whose title or authors hold the typed words (the last one as a prefix,
   * the others exactly or with a typo), best first. Answers are cached until the catalogue
   * changes: people type the same beginnings.
   */
  suggest(q: string): Array<{ bookId: string; title: string; authors: string[] }> {
    const text = q.trim();
    if (text === '') return [];
    const key = fold(text);
    const cached = this.suggestCache.get(key);
    if (cached) return cached;
    const words = terms(text);
    const out: Array<{ bookId: string; title: string; authors: string[] }> = [];
    if (words.length > 0) {
      const last = words.length - 1;
      const parts = words.map((t, i) => {
        if (i === last) return `${quoted(t)}*`;
        const fixes = t.length >= 5 ? this.corrections(t, 1) : [];
        return fixes.length === 0 ? quoted(t) : `(${[quoted(t), ...fixes].join(' OR ')})`;
      });
      const expr = `{title authors}: (${parts.join(' AND ')})`;
      const matches = slotList(this.sql.titleMatching.get(expr));
      const seen = new Set<string>();
      const best = matches.length <= SCORE_AT_MOST ? (this.sql.suggest.all(expr) as number[]) : this.shortestTitles(matches, titleKeyOf(text));
      for (const slot of best) {
        const bookId = this.slotIds[slot];
        const titleKey = this.titleKeys[slot];
        if (bookId === undefined || titleKey === undefined || seen.has(titleKey)) continue;
        seen.add(titleKey);
        const shown = this.sql.shown.get(slot) as { title: string; authors: string };
        out.push({ bookId, title: shown.title, authors: JSON.parse(shown.authors) as string[] });
        if (out.length >= SUGGESTIONS) break;
      }
    }
    if (this.suggestCache.size >= SUGGEST_CACHE_SIZE) this.suggestCache.delete(this.suggestCache.keys().next().value!);
    this.suggestCache.set(key, out);
    return out;
  }
}

/**
 * The words (each with its title/author alternatives) joined by `op`: `any` as searched, and
 * `titles`, the same in title and authors only (for ranking large match sets coarsely).
 */
function matchExpr(words: string[], alternatives: string[][], op: 'AND' | 'OR'): { any: string; titles: string } {
  return {
    any: words.map((t, i) => wordExpr(t, alternatives[i]!)).join(` ${op} `),
    titles: `{title authors}: (${words.map((t, i) => `(${[quoted(t), ...alternatives[i]!].join(' OR ')})`).join(` ${op} `)})`,
  };
}

/** The slots in a `group_concat(rowid)` answer (null when nothing matched). */
function slotList(joined: unknown): Int32Array {
  if (typeof joined !== 'string' && typeof joined !== 'number') return new Int32Array(0);
  const text = String(joined);
  const out = new Int32Array((text.length >> 1) + 1);
  let n = 0;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 44) {
      out[n++] = value;
      value = 0;
    } else value = value * 10 + (c - 48);
  }
  out[n++] = value;
  return out.subarray(0, n);
}

function grow<T extends Uint8Array | Int32Array | Float64Array>(old: T, bigger: T): T {
  bigger.set(old);
  return bigger;
}

/**
 * The best `k` items in `order` seen so far, without sorting everything: a bounded binary
 * heap whose root is the worst of the best k, so most items cost one comparison and the
 * rest log k.
 */
class TopK<T> {
  private readonly heap: T[] = [];
  constructor(
    private readonly k: number,
    private readonly order: (a: T, b: T) => number,
  ) {}

  /** The worst item kept, once k are kept (anything not better can be skipped). */
  worst(): T | undefined {
    return this.heap.length === this.k ? this.heap[0] : undefined;
  }

  offer(it: T): void {
    const { heap, order } = this;
    if (heap.length < this.k) {
      heap.push(it);
      for (let i = heap.length - 1; i > 0 && order(heap[i]!, heap[(i - 1) >> 1]!) > 0; i = (i - 1) >> 1) this.swap(i, (i - 1) >> 1);
    } else if (this.k > 0 && order(it, heap[0]!) < 0) {
      heap[0] = it;
      this.siftDown(0);
    }
  }

  sorted(): T[] {
    return [...this.heap].sort(this.order);
  }

  private swap(i: number, j: number): void {
    const t = this.heap[i]!;
    this.heap[i] = this.heap[j]!;
    this.heap[j] = t;
  }

  private siftDown(i: number): void {
    const { heap, order } = this;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let w = i;
      if (l < heap.length && order(heap[l]!, heap[w]!) > 0) w = l;
      if (r < heap.length && order(heap[r]!, heap[w]!) > 0) w = r;
      if (w === i) return;
      this.swap(i, w);
      i = w;
    }
  }
}

/** The first `k` items in `order`, sorted: a plain sort when few, else a bounded heap. */
function topK<T>(items: T[], k: number, order: (a: T, b: T) => number): T[] {
  if (items.length <= k * 4) return items.sort(order).slice(0, k);
  const best = new TopK(k, order);
  // Backwards: slots are mostly handed out oldest first, so for newest-first orders the best
  // items come first and nearly all the rest cost one comparison.
  for (let i = items.length - 1; i >= 0; i--) best.offer(items[i]!);
  return best.sorted();
}
