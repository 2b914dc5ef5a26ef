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
  title: string;
  /** lowercase, accents removed: the title sort key */
  titleKey: string;
  authors: string[];
  /** the authors folded (lowercase, no accents), for the author filter */
  authorKeys: string[];
  priceCents: number;
  /** bit 1: ebook, bit 2: print */
  formats: number;
  createdAt: number;
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
const AUTHOR_FACET_SIZE = 10;
const SUGGESTIONS = 8;

function fold(s: string): string {
  return s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
}

/** Fuzzy distance allowed for a query term: none for short terms, one edit up to 7 letters, two beyond. */
function fuzziness(term: string): number {
  return term.length <= 3 ? 0 : term.length <= 7 ? 1 : 2;
}

export class BookIndex {
  private readonly mini: MiniSearch<Doc>;
  private readonly meta = new Map<string, Meta>();
  /** ISBNs are looked up exactly, not indexed as terms: a million unique terms would slow every fuzzy search */
  private readonly byIsbn = new Map<string, string>();
  /** folded author name → the ids of their books: the author filter without text reads only these */
  private readonly byAuthor = new Map<string, Set<string>>();
  /** author name → books, over the whole catalogue: the author facet when nothing narrows it */
  private readonly authorTotals = new Map<string, number>();

  constructor() {
    this.mini = new MiniSearch<Doc>({
      fields: ['title', 'authors', 'description'],
      storeFields: [],
      processTerm: (term) => {
        const t = fold(term);
        return t.length === 0 || STOP_WORDS.has(t) ? null : t;
      },
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

  upsert(book: Book): void {
    if (this.meta.has(book.bookId)) this.remove(book.bookId);
    this.mini.add({
      id: book.bookId,
      title: book.title,
      authors: book.authors.join(' ; '),
      description: book.description,
    });
    this.byIsbn.set(book.isbn, book.bookId);
    const authorKeys = book.authors.map(fold);
    authorKeys.forEach((key, i) => {
      let ids = this.byAuthor.get(key);
      if (!ids) this.byAuthor.set(key, (ids = new Set()));
      ids.add(book.bookId);
      const name = book.authors[i]!;
      this.authorTotals.set(name, (this.authorTotals.get(name) ?? 0) + 1);
    });
    this.meta.set(book.bookId, {
      title: book.title,
      titleKey: fold(book.title).replace(/^(the|a|an) /, ''),
      authors: book.authors,
      authorKeys,
      priceCents: book.priceCents,
      formats: book.formats.reduce((bits, f) => bits | FORMAT_BITS[f], 0),
      createdAt: book.createdAt,
      updatedAt: book.updatedAt,
      isbn: book.isbn,
    });
  }

  remove(bookId: string): void {
    const m = this.meta.get(bookId);
    if (!m) return;
    this.mini.discard(bookId);
    if (this.byIsbn.get(m.isbn) === bookId) this.byIsbn.delete(m.isbn);
    m.authorKeys.forEach((key, i) => {
      const ids = this.byAuthor.get(key);
      ids?.delete(bookId);
      if (ids?.size === 0) this.byAuthor.delete(key);
      const name = m.authors[i]!;
      const n = (this.authorTotals.get(name) ?? 1) - 1;
      if (n > 0) this.authorTotals.set(name, n);
      else this.authorTotals.delete(name);
    });
    this.meta.delete(bookId);
  }

  /**
   * Matches for the text alone. Title and authors match by prefix and with typos (fuzzy);
   * the description only by whole words, which keeps a query from expanding into thousands
   * of description terms. All the words must match (AND); when that finds nothing (a
   * misspelling too far off, a word not in any book) any word may (OR), best first.
   */
  private match(q: string): Array<{ id: string; score: number }> {
    const isbn = normaliseIsbn(q);
    if (isbn) {
      const id = this.byIsbn.get(isbn);
      if (id) return [{ id, score: 1 }];
    }
    const query = (combineWith: 'AND' | 'OR') => ({
      combineWith: 'OR' as const,
      queries: [
        {
          queries: [q],
          fields: ['title', 'authors'],
          combineWith,
          prefix: (term: string) => term.length >= 2,
          fuzzy: (term: string) => fuzziness(term),
          maxFuzzy: 2,
          boost: { title: 3, authors: 2 },
        },
        { queries: [q], fields: ['description'], combineWith, prefix: false, fuzzy: false },
      ],
    });
    const and: SearchResult[] = this.mini.search(query('AND'));
    if (and.length > 0) return and;
    return this.mini.search(query('OR'));
  }

  search(query: SearchQuery): SearchHits {
    const q = query.q.trim();
    const wantBits = query.format ? FORMAT_BITS[query.format] : 0;
    const minP = query.minPriceCents ?? 0;
    const maxP = query.maxPriceCents ?? Number.POSITIVE_INFINITY;
    const author = query.author ? fold(query.author) : undefined;
    const narrowedOtherwise = wantBits !== 0 || query.minPriceCents !== undefined || query.maxPriceCents !== undefined;
    // Without text, an author filter reads only that author's books, and the author facet is
    // the catalogue-wide count unless format or price narrow it.
    const authorOnly = q === '' && author !== undefined && !narrowedOtherwise;
    const candidates: Iterable<{ id: string; score: number }> =
      q !== '' ? this.match(q) : authorOnly ? [...(this.byAuthor.get(author) ?? [])].map((id) => ({ id, score: 0 })) : this.everything();

    // Disjunctive facets: each facet counts with every filter applied except its own.
    const facets: Facets = { format: { ebook: 0, print: 0 }, price: PRICE_BUCKETS.map((b) => ({ ...b, count: 0 })), author: [] };
    const authorCounts = new Map<string, number>();
    const hits: Array<{ id: string; score: number; m: Meta }> = [];
    for (const c of candidates) {
      const m = this.meta.get(c.id);
      if (!m) continue;
      const fmtOk = wantBits === 0 || (m.formats & wantBits) !== 0;
      const priceOk = m.priceCents >= minP && m.priceCents <= maxP;
      const authorOk = author === undefined || m.authorKeys.includes(author);
      if (priceOk && authorOk) {
        if (m.formats & 1) facets.format.ebook++;
        if (m.formats & 2) facets.format.print++;
      }
      if (fmtOk && authorOk) {
        const bucket = facets.price.find((b) => m.priceCents >= b.min && (b.max === null || m.priceCents < b.max));
        if (bucket) bucket.count++;
      }
      if (fmtOk && priceOk && !authorOnly) for (const a of m.authors) authorCounts.set(a, (authorCounts.get(a) ?? 0) + 1);
      if (fmtOk && priceOk && authorOk) hits.push({ id: c.id, score: c.score, m });
    }
    facets.author = [...(authorOnly ? this.authorTotals : authorCounts)]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, AUTHOR_FACET_SIZE)
      .map(([name, count]) => ({ name, count }));

    const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    const order = {
      relevance: (a: (typeof hits)[0], b: (typeof hits)[0]) => b.score - a.score || b.m.createdAt - a.m.createdAt || byId(a, b),
      price: (a: (typeof hits)[0], b: (typeof hits)[0]) => a.m.priceCents - b.m.priceCents || byId(a, b),
      '-price': (a: (typeof hits)[0], b: (typeof hits)[0]) => b.m.priceCents - a.m.priceCents || byId(a, b),
      title: (a: (typeof hits)[0], b: (typeof hits)[0]) => (a.m.titleKey < b.m.titleKey ? -1 : a.m.titleKey > b.m.titleKey ? 1 : byId(a, b)),
      newest: (a: (typeof hits)[0], b: (typeof hits)[0]) => b.m.createdAt - a.m.createdAt || byId(b, a),
    }[query.sort];
    const start = (query.page - 1) * query.size;
    const end = start + query.size;
    return { bookIds: topK(hits, end, order).slice(start, end).map((h) => h.id), total: hits.length, facets };
  }

  private *everything(): Generator<{ id: string; score: number }> {
    for (const id of this.meta.keys()) yield { id, score: 0 };
  }

  /** Type-ahead: books whose title or authors start with the typed words (last one a prefix), best first. */
  suggest(q: string): Array<{ bookId: string; title: string; authors: string[] }> {
    const text = q.trim();
    if (text === '') return [];
    const results = this.mini.search(text, {
      fields: ['title', 'authors'],
      combineWith: 'AND',
      prefix: true,
      fuzzy: (term) => (term.length >= 5 ? 1 : 0),
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
    return out;
  }
}

/** The first `k` items in `order`, without sorting everything when k is small. */
function topK<T>(items: T[], k: number, order: (a: T, b: T) => number): T[] {
  if (items.length <= k * 4 || k > 2000) return items.sort(order).slice(0, k);
  // Keep a sorted window of the best k; most items fall outside it after the first pass.
  const best = items.slice(0, k).sort(order);
  for (let i = k; i < items.length; i++) {
    const it = items[i]!;
    if (order(it, best[k - 1]!) >= 0) continue;
    let lo = 0;
    let hi = k - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (order(it, best[mid]!) < 0) hi = mid;
      else lo = mid + 1;
    }
    best.splice(lo, 0, it);
    best.pop();
  }
  return best;
}
