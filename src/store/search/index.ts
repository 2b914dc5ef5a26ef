/**
 * The Search service's in-memory index: MiniSearch (full text with prefix and fuzzy
 * matching, BM25 ranking) over title, authors, ISBN and description, plus compact per-book
 * metadata kept beside it for filters, facets and sorting, which MiniSearch does not do.
 *
 * It holds no book data beyond what it needs to find and order books: results are ids, and
 * the service hydrates them from the Books service. Every node keeps its own index, fed by
 * the Books events on the bus and rebuilt from the Books service at start.
 */
import MiniSearch, { type SearchResult } from 'minisearch';
import type { Book, BookFormat } from '../contracts.js';
import { normaliseIsbn } from '../books/isbn.js';

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

interface Meta {
  /** the book's slot in the typed arrays below */
  slot: number;
  title: string;
  /** lowercase, accents removed: the title sort key */
  titleKey: string;
  authors: string[];
  /** the authors folded (lowercase, no accents), for the author filter */
  authorKeys: string[];
  updatedAt: number;
  isbn: string;
}

interface Doc {
  id: string;
  title: string;
  authors: string;
  description: string;
}

/**
 * Words too common to tell books apart: not indexed and ignored in queries. Without this a
 * query containing "the" walks the posting list of nearly every book.
 */
const STOP_WORDS = new Set('a an and are as at be by for from has in is it its of on or that the to was were with'.split(' '));

const FORMAT_BITS: Record<BookFormat, number> = { ebook: 1, print: 2 };
/** set in `formats` for a slot that holds a book (a freed slot is 0) */
const LIVE = 4;
const AUTHOR_FACET_SIZE = 10;
const SUGGESTIONS = 8;
/** An exact/prefix pass finding fewer books than this is retried with typo tolerance. */
const FUZZY_BELOW = 5;
const SUGGEST_CACHE_SIZE = 10_000;

/** Index and query terms: folded, stop words dropped. */
function processTerm(term: string): string | null {
  const t = fold(term);
  return t.length === 0 || STOP_WORDS.has(t) ? null : t;
}

function fold(s: string): string {
  return s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
}

/** Fuzzy distance allowed for a query term: none for short terms, one edit up to 7 letters, two beyond. */
function fuzziness(term: string): number {
  return term.length <= 3 ? 0 : term.length <= 7 ? 1 : 2;
}

function priceBucket(cents: number): number {
  for (let b = PRICE_BUCKETS.length - 1; b > 0; b--) if (cents >= PRICE_BUCKETS[b]!.min) return b;
  return 0;
}

/**
 * Per-book numbers live in typed arrays indexed by a slot number (not in objects), so that
 * filtering, counting facets and sorting over hundreds of thousands of books is a tight
 * loop over flat memory. Catalogue-wide counts (per format combination: price buckets and
 * books per author) are kept up to date on every change, so a browse without text or price
 * filter needs no scan to count its facets.
 */
export class BookIndex {
  private readonly mini: MiniSearch<Doc>;
  private readonly meta = new Map<string, Meta>();
  /** ISBNs are looked up exactly, not indexed as terms: a million unique terms would slow every fuzzy search */
  private readonly byIsbn = new Map<string, string>();
  /** folded author name → the slots of their books: the author filter without text reads only these */
  private readonly byAuthor = new Map<string, Set<number>>();

  // ── per slot ──
  private slotIds: Array<string | undefined> = [];
  private formats = new Uint8Array(1024);
  private price = new Float64Array(1024);
  private created = new Float64Array(1024);
  /** the book's author ids (usually one) */
  private slotAuthors: Array<Int32Array | undefined> = [];
  private freeSlots: number[] = [];
  private slotCount = 0;

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

  // ── scratch for one search (searches run one at a time: JavaScript is single-threaded) ──
  private scores = new Float64Array(1024);
  private authorScratch = new Int32Array(1024);

  constructor() {
    this.mini = new MiniSearch<Doc>({
      fields: ['title', 'authors', 'description'],
      storeFields: [],
      processTerm,
      autoVacuum: { minDirtCount: 1000, minDirtFactor: 0.05, batchSize: 2000, batchWait: 5 },
    });
  }

  get size(): number {
    return this.meta.size;
  }

  ids(): string[] {
    return [...this.meta.keys()];
  }

  updatedAt(bookId: string): number | undefined {
    return this.meta.get(bookId)?.updatedAt;
  }

  private changed(): void {
    this.topAuthorsCache.clear();
    this.suggestCache.clear();
  }

  private newSlot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    const slot = this.slotCount++;
    if (slot >= this.formats.length) {
      const cap = this.formats.length * 2;
      this.formats = grow(this.formats, new Uint8Array(cap));
      this.price = grow(this.price, new Float64Array(cap));
      this.created = grow(this.created, new Float64Array(cap));
      this.scores = new Float64Array(cap);
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

  /** Adds (+1) or takes away (-1) a slot's share of the catalogue-wide counts. */
  private count(slot: number, delta: 1 | -1): void {
    const bits = this.formats[slot]! & 3;
    this.priceByFormat[bits]![priceBucket(this.price[slot]!)]! += delta;
    for (const a of this.slotAuthors[slot]!) this.authorBooks[a * 4 + bits] += delta;
  }

  upsert(book: Book): void {
    if (this.meta.has(book.bookId)) this.remove(book.bookId);
    this.changed();
    this.mini.add({
      id: book.bookId,
      title: book.title,
      authors: book.authors.join(' ; '),
      description: book.description,
    });
    this.byIsbn.set(book.isbn, book.bookId);
    const slot = this.newSlot();
    this.slotIds[slot] = book.bookId;
    this.formats[slot] = LIVE | book.formats.reduce((bits, f) => bits | FORMAT_BITS[f], 0);
    this.price[slot] = book.priceCents;
    this.created[slot] = book.createdAt;
    // A book listing the same author twice counts once for them.
    this.slotAuthors[slot] = Int32Array.from(new Set(book.authors), (name) => this.authorId(name));
    this.count(slot, 1);
    const authorKeys = book.authors.map(fold);
    for (const key of authorKeys) {
      let slots = this.byAuthor.get(key);
      if (!slots) this.byAuthor.set(key, (slots = new Set()));
      slots.add(slot);
    }
    this.meta.set(book.bookId, {
      slot,
      title: book.title,
      titleKey: fold(book.title).replace(/^(the|a|an) /, ''),
      authors: book.authors,
      authorKeys,
      updatedAt: book.updatedAt,
      isbn: book.isbn,
    });
  }

  remove(bookId: string): void {
    const m = this.meta.get(bookId);
    if (!m) return;
    this.changed();
    this.mini.discard(bookId);
    if (this.byIsbn.get(m.isbn) === bookId) this.byIsbn.delete(m.isbn);
    const slot = m.slot;
    for (const key of m.authorKeys) {
      const slots = this.byAuthor.get(key);
      slots?.delete(slot);
      if (slots?.size === 0) this.byAuthor.delete(key);
    }
    this.count(slot, -1);
    for (const a of this.slotAuthors[slot]!) {
      let total = 0;
      for (let bits = 1; bits < 4; bits++) total += this.authorBooks[a * 4 + bits]!;
      if (total === 0) {
        this.authorIds.delete(this.authorNames[a]!);
        this.freeAuthorIds.push(a);
      }
    }
    this.formats[slot] = 0;
    this.slotIds[slot] = undefined;
    this.slotAuthors[slot] = undefined;
    this.freeSlots.push(slot);
    this.meta.delete(bookId);
  }

  /**
   * Matches for the text alone, in passes from cheap to costly, each run only when the one
   * before found too little:
   *  1. every word exactly in title, authors or description, the last one also as a prefix
   *     of a title/author word (it may be half typed);
   *  2. the same with typos in title and authors (1 edit for words of 4–7 letters, 2 beyond),
   *     when pass 1 found fewer than FUZZY_BELOW books;
   *  3. any word (OR) with typos, best first — a misspelling too far off, or a word in no book.
   * Typo and prefix expansion over a large vocabulary is what makes a query slow, so it is
   * kept to title/author words, to the last word, and to queries that need it; descriptions
   * match whole words.
   */
  private match(q: string): SearchResult[] {
    const isbn = normaliseIsbn(q);
    if (isbn) {
      const id = this.byIsbn.get(isbn);
      if (id) return [{ id, score: 1 } as SearchResult];
    }
    const lastAsPrefix = (term: string, i: number, terms: string[]) => i === terms.length - 1 && term.length >= 3;
    const query = (combineWith: 'AND' | 'OR', typos: boolean) => ({
      combineWith: 'OR' as const,
      queries: [
        {
          queries: [q],
          fields: ['title', 'authors'],
          combineWith,
          prefix: lastAsPrefix,
          fuzzy: typos ? (term: string) => fuzziness(term) : false,
          maxFuzzy: 2,
          boost: { title: 3, authors: 2 },
        },
        { queries: [q], fields: ['description'], combineWith, prefix: false, fuzzy: false },
      ],
    });
    const exact = this.mini.search(query('AND', false));
    if (exact.length >= FUZZY_BELOW) return exact;
    const typos = this.mini.search(query('AND', true));
    if (typos.length > 0) return typos;
    return this.mini.search(query('OR', true));
  }

  search(query: SearchQuery): SearchHits {
    const q = query.q.trim();
    const wantBits = query.format ? FORMAT_BITS[query.format] : 0;
    const priced = query.minPriceCents !== undefined || query.maxPriceCents !== undefined;
    const minP = query.minPriceCents ?? 0;
    const maxP = query.maxPriceCents ?? Number.POSITIVE_INFINITY;
    const author = query.author ? fold(query.author) : undefined;
    const authorSlots = author === undefined ? undefined : (this.byAuthor.get(author) ?? new Set<number>());

    // The candidate slots: the text's matches (with their scores), the author's books, or all.
    let slots: ArrayLike<number>;
    let scored = false;
    if (q !== '') {
      const matches = this.match(q);
      const s = new Int32Array(matches.length);
      let n = 0;
      for (const r of matches) {
        const m = this.meta.get(r.id);
        if (!m) continue;
        s[n++] = m.slot;
        this.scores[m.slot] = r.score;
      }
      slots = s.subarray(0, n);
      scored = true;
    } else if (authorSlots) {
      slots = Int32Array.from(authorSlots);
    } else {
      slots = { length: this.slotCount } as ArrayLike<number>; // every slot: read as the index itself
    }
    const all = q === '' && !authorSlots;

    // Disjunctive facets: each facet counts with every filter applied except its own.
    const facets: Facets = { format: { ebook: 0, print: 0 }, price: PRICE_BUCKETS.map((b) => ({ ...b, count: 0 })), author: [] };
    // Without text, price or author filter the facets are the catalogue-wide counts.
    const precounted = all && !priced;
    const countAuthors = !precounted && !(q === '' && authorSlots && wantBits === 0 && !priced);
    const authorCounts = this.authorScratch;
    const touched: number[] = [];
    const hits: number[] = [];
    const { formats, price } = this;
    for (let i = 0; i < slots.length; i++) {
      const slot = all ? i : slots[i]!;
      const f = formats[slot]!;
      if ((f & LIVE) === 0) continue;
      const fmtOk = wantBits === 0 || (f & wantBits) !== 0;
      const p = price[slot]!;
      const priceOk = p >= minP && p <= maxP;
      const authorOk = authorSlots === undefined || q === '' || authorSlots.has(slot);
      if (!precounted) {
        if (priceOk && authorOk) {
          if (f & 1) facets.format.ebook++;
          if (f & 2) facets.format.print++;
        }
        if (fmtOk && authorOk) facets.price[priceBucket(p)]!.count++;
        if (fmtOk && priceOk && countAuthors) {
          for (const a of this.slotAuthors[slot]!) if (authorCounts[a]!++ === 0) touched.push(a);
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

    const { created, scores, slotIds } = this;
    const byId = (a: number, b: number) => (slotIds[a]! < slotIds[b]! ? -1 : slotIds[a]! > slotIds[b]! ? 1 : 0);
    const titleKey = (s: number) => this.meta.get(slotIds[s]!)!.titleKey;
    const order: (a: number, b: number) => number = {
      relevance: scored
        ? (a: number, b: number) => scores[b]! - scores[a]! || created[b]! - created[a]! || byId(a, b)
        : (a: number, b: number) => created[b]! - created[a]! || byId(a, b),
      price: (a: number, b: number) => price[a]! - price[b]! || byId(a, b),
      '-price': (a: number, b: number) => price[b]! - price[a]! || byId(a, b),
      title: (a: number, b: number) => {
        const ka = titleKey(a);
        const kb = titleKey(b);
        return ka < kb ? -1 : ka > kb ? 1 : byId(a, b);
      },
      newest: (a: number, b: number) => created[b]! - created[a]! || byId(b, a),
    }[query.sort];
    const start = (query.page - 1) * query.size;
    const end = start + query.size;
    return { bookIds: topK(hits, end, order).slice(start, end).map((s) => slotIds[s]!), total: hits.length, facets };
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
   * Type-ahead: books whose title or authors start with the typed words (the last one as a
   * prefix, the others exactly or with a typo), best first. Answers are cached until the
   * catalogue changes: people type the same beginnings.
   */
  suggest(q: string): Array<{ bookId: string; title: string; authors: string[] }> {
    const text = q.trim();
    if (text === '') return [];
    const key = fold(text);
    const cached = this.suggestCache.get(key);
    if (cached) return cached;
    const results = this.mini.search(text, {
      fields: ['title', 'authors'],
      combineWith: 'AND',
      prefix: (_term, i, terms) => i === terms.length - 1,
      fuzzy: (term, i, terms) => (i < terms.length - 1 && term.length >= 5 ? 1 : 0),
      boost: { title: 2, authors: 1 },
    });
    const seen = new Set<string>();
    const out: Array<{ bookId: string; title: string; authors: string[] }> = [];
    for (const r of results) {
      const m = this.meta.get(r.id);
      if (!m || seen.has(m.titleKey)) continue;
      seen.add(m.titleKey);
      out.push({ bookId: r.id, title: m.title, authors: m.authors });
      if (out.length >= SUGGESTIONS) break;
    }
    if (this.suggestCache.size >= SUGGEST_CACHE_SIZE) this.suggestCache.delete(this.suggestCache.keys().next().value!);
    this.suggestCache.set(key, out);
    return out;
  }
}

function grow<T extends Uint8Array | Int32Array | Float64Array>(old: T, bigger: T): T {
  bigger.set(old);
  return bigger;
}

/**
 * The first `k` items in `order`, sorted, without sorting everything: a bounded binary heap
 * whose root is the worst of the best k so far, so most items cost one comparison and the
 * rest log k — O(n log k) whatever the input order (the slots often arrive oldest first).
 */
function topK<T>(items: T[], k: number, order: (a: T, b: T) => number): T[] {
  if (items.length <= k * 4) return items.sort(order).slice(0, k);
  const heap: T[] = [];
  const worse = (i: number, j: number) => order(heap[i]!, heap[j]!) > 0;
  const swap = (i: number, j: number) => {
    const t = heap[i]!;
    heap[i] = heap[j]!;
    heap[j] = t;
  };
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let w = i;
      if (l < heap.length && worse(l, w)) w = l;
      if (r < heap.length && worse(r, w)) w = r;
      if (w === i) return;
      swap(i, w);
      i = w;
    }
  };
  // Backwards: slots are mostly handed out oldest first, so for newest-first orders (the
  // common browse) the best items come first and nearly all the rest cost one comparison.
  for (let i = items.length - 1; i >= 0; i--) {
    const it = items[i]!;
    if (heap.length < k) {
      heap.push(it);
      for (let i = heap.length - 1; i > 0 && worse(i, (i - 1) >> 1); i = (i - 1) >> 1) swap(i, (i - 1) >> 1);
    } else if (order(it, heap[0]!) < 0) {
      heap[0] = it;
      siftDown(0);
    }
  }
  return heap.sort(order);
}
