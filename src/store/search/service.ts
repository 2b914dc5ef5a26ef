/**
 * The Search service: keeps a BookIndex (index.ts) current from the Books events on the bus
 * and answers SUBJECTS.search, hydrating the ids it finds from the Books service
 * (`get` on SUBJECTS.books) — the seed's "search svc invokes books svc".
 *
 * Every node keeps its own full index (book events are a plain subscription, not a queue
 * group, so every node sees every change), and any node answers a search (queue group
 * "search"). At start it pages through the whole catalogue from the Books service; with an
 * index file kept from the last run, only books changed since (newer `updatedAt`) are
 * re-indexed and books gone from the catalogue are dropped. Events
 * that arrive during that rebuild are applied at once; a page read before the event cannot
 * undo it, because an upsert older than what the index holds (updatedAt) is ignored and
 * deleted ids are remembered until the rebuild ends.
 *
 * Bus events are at-most-once: a node cut off from NATS misses changes. `rebuildEveryMs`
 * re-reads the catalogue periodically to repair that (off by default in embedded mode,
 * where the LocalBus loses nothing).
 */
import type { Bus, Subscription } from '../../actors/bus.js';
import { KindredError } from '../../errors.js';
import { SUBJECTS, type Book, type BookEvent, type BooksReplies } from '../contracts.js';
import type { BooksAdminReplies } from '../books/requests.js';
import { BookIndex, SORT_ORDERS, type BookIndexOptions, type SearchQuery } from './index.js';
import { MAX_PAGE_SIZE, MAX_QUERY_CHARS, MAX_RESULT_WINDOW, type SearchReplies, type SearchRequest } from './requests.js';

export interface SearchServiceDeps {
  bus: Bus;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** books per page of the rebuild (default 1000) */
  rebuildPageSize?: number;
  /** periodic full re-read of the catalogue, 0 = only at start (default 0) */
  rebuildEveryMs?: number;
  requestTimeoutMs?: number;
  /** where the index lives (default: in memory, rebuilt at every start) */
  index?: BookIndexOptions;
}

export class SearchService {
  readonly index: BookIndex;
  private subs: Subscription[] = [];
  private building = false;
  private rebuiltAt: number | null = null;
  /** ids deleted while a rebuild runs: a page read earlier must not bring them back */
  private deletedDuringRebuild = new Set<string>();
  private stopped = false;
  /** upserts from events, written together (see `upsert`) */
  private pending = new Map<string, Book>();
  private flushScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private rebuilding: Promise<void> | undefined;

  constructor(private readonly deps: SearchServiceDeps) {
    this.index = new BookIndex(deps.index);
  }

  /** Subscribes and starts the rebuild in the background (`ready()` resolves when it is done). */
  start(): void {
    this.subs.push(this.deps.bus.subscribe(SUBJECTS.bookEvents, (e) => this.apply(e as BookEvent)));
    this.subs.push(this.deps.bus.subscribe(SUBJECTS.search, (p) => this.handle(p as SearchRequest), { queue: 'search' }));
    this.rebuilding = this.rebuild();
    const every = this.deps.rebuildEveryMs ?? 0;
    if (every > 0) {
      this.timer = setInterval(() => {
        if (!this.building) this.rebuilding = this.rebuild();
      }, every);
      this.timer.unref();
    }
  }

  /** Resolves once the current rebuild finished (or failed and was logged). */
  ready(): Promise<void> {
    return this.rebuilding ?? Promise.resolve();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const s of this.subs.splice(0)) s.unsubscribe();
  }

  /** Stops and closes the index (a rebuild still waiting for a page writes nothing once stopped). */
  close(): void {
    this.stop();
    this.flush();
    this.index.close();
  }

  apply(event: BookEvent): void {
    if (event?.type === 'book.upserted') this.upsert(event.book);
    else if (event?.type === 'book.deleted') {
      this.pending.delete(event.bookId);
      this.index.remove(event.bookId);
      if (this.building) this.deletedDuringRebuild.add(event.bookId);
    }
  }

  /** The version of a book indexed or about to be. */
  private held(bookId: string): number | undefined {
    return this.pending.get(bookId)?.updatedAt ?? this.index.updatedAt(bookId);
  }

  private upsert(book: Book): void {
    const held = this.held(book.bookId);
    if (held !== undefined && held > book.updatedAt) return; // a stale copy
    if (this.building && this.deletedDuringRebuild.has(book.bookId)) return;
    // Written with the others that arrive in the same turn of the event loop: an import sends
    // thousands a second, and one index transaction each would cost more than the indexing.
    this.pending.set(book.bookId, book);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes the upserts not written yet (also before any answer: it sees every event received). */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.size === 0) return;
    const books = [...this.pending.values()];
    this.pending.clear();
    this.index.upsertMany(books);
  }

  private async rebuild(): Promise<void> {
    this.building = true;
    this.deletedDuringRebuild = new Set();
    const started = Date.now();
    const seen = new Set<string>();
    // An index kept from the last run may hold books deleted since: dropped at the end, as on a re-read.
    const heldBefore = this.index.size;
    let after: string | null = null;
    const limit = this.deps.rebuildPageSize ?? 1000;
    try {
      for (let attempt = 0; !this.stopped; ) {
        let page: BooksAdminReplies['page'];
        try {
          page = (await this.deps.bus.request(SUBJECTS.books, { op: 'page', after, limit }, this.deps.requestTimeoutMs ?? 30_000)) as BooksAdminReplies['page'];
        } catch (err) {
          // The Books service may not be up yet (another node, or starting): retry with backoff.
          if (++attempt > 60) throw err;
          await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(attempt, 6))));
          continue;
        }
        attempt = 0;
        if (this.stopped) return;
        this.flush(); // an event's newer version is written first, and wins over the page's
        const changed: Book[] = [];
        for (const b of page.books) {
          seen.add(b.bookId);
          // The same version as indexed (a kept index, or a re-read) is not written again.
          const held = this.held(b.bookId);
          if ((held === undefined || held < b.updatedAt) && !this.deletedDuringRebuild.has(b.bookId)) changed.push(b);
        }
        this.index.upsertMany(changed);
        if (page.next === null) break;
        after = page.next;
        // Let searches and events run between pages.
        await new Promise((r) => setImmediate(r));
      }
      if (this.stopped) return;
      // Drop books that are gone from the catalogue but whose delete event this node missed
      // (only those not changed since the rebuild started).
      if (this.rebuiltAt !== null || heldBefore > 0) {
        for (const id of this.index.ids()) if (!seen.has(id) && (this.index.updatedAt(id) ?? 0) < started) this.index.remove(id);
      }
      this.rebuiltAt = Date.now();
      this.deps.log?.info({ books: this.index.size, ms: this.rebuiltAt - started }, 'search index built');
    } catch (err) {
      this.deps.log?.warn({ err }, 'search index rebuild failed; serving what is indexed');
    } finally {
      this.building = false;
      this.deletedDuringRebuild = new Set();
    }
  }

  async handle(req: SearchRequest): Promise<unknown> {
    this.flush();
    switch (req?.op) {
      case 'search':
        return this.search(req.query);
      case 'suggest': {
        const q = typeof req.q === 'string' ? req.q.slice(0, MAX_QUERY_CHARS) : '';
        return { suggestions: this.index.suggest(q) } satisfies SearchReplies['suggest'];
      }
      case 'stats':
        return { indexed: this.index.size, building: this.building, rebuiltAt: this.rebuiltAt } satisfies SearchReplies['stats'];
      default:
        throw new KindredError('UNKNOWN_OPERATION', 'search: no such operation');
    }
  }

  private async search(raw: SearchQuery): Promise<SearchReplies['search']> {
    const query = checkQuery(raw);
    const hits = this.index.search(query);
    let results: Book[] = [];
    if (hits.bookIds.length > 0) {
      const reply = (await this.deps.bus.request(SUBJECTS.books, { op: 'get', bookIds: hits.bookIds }, this.deps.requestTimeoutMs ?? 10_000)) as BooksReplies['get'];
      // Books answers in the order asked and leaves out books deleted since they were indexed.
      results = reply.books;
    }
    return {
      results,
      total: hits.total,
      page: query.page,
      size: query.size,
      pages: Math.ceil(hits.total / query.size),
      facets: hits.facets,
    };
  }
}

function bad(problem: string): KindredError {
  return new KindredError('INVALID_ARGUMENT', problem);
}

/** Bus payloads are checked again here: Search may be called by any service, not only REST. */
export function checkQuery(raw: SearchQuery): SearchQuery {
  if (typeof raw !== 'object' || raw === null) throw bad('query: required');
  const q = typeof raw.q === 'string' ? raw.q : '';
  if (q.length > MAX_QUERY_CHARS) throw bad(`q: at most ${MAX_QUERY_CHARS} characters`);
  const size = raw.size ?? 20;
  const page = raw.page ?? 1;
  if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) throw bad(`size: must be between 1 and ${MAX_PAGE_SIZE}`);
  if (!Number.isInteger(page) || page < 1) throw bad('page: must be a positive integer');
  if (page * size > MAX_RESULT_WINDOW) throw bad(`page: results beyond the first ${MAX_RESULT_WINDOW} are not served; narrow the search`);
  const sort = raw.sort ?? 'relevance';
  if (!SORT_ORDERS.includes(sort)) throw bad(`sort: must be one of ${SORT_ORDERS.join(', ')}`);
  if (raw.format !== undefined && raw.format !== 'ebook' && raw.format !== 'print') throw bad('format: must be ebook or print');
  for (const k of ['minPriceCents', 'maxPriceCents'] as const) {
    const v = raw[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw bad(`${k === 'minPriceCents' ? 'minPrice' : 'maxPrice'}: must be a non-negative integer (minor units)`);
  }
  if (raw.minPriceCents !== undefined && raw.maxPriceCents !== undefined && raw.minPriceCents > raw.maxPriceCents) throw bad('minPrice: must not exceed maxPrice');
  if (raw.author !== undefined && (typeof raw.author !== 'string' || raw.author.length > 200)) throw bad('author: must be a name');
  const out: SearchQuery = { q, sort, page, size };
  if (raw.format) out.format = raw.format;
  if (raw.minPriceCents !== undefined) out.minPriceCents = raw.minPriceCents;
  if (raw.maxPriceCents !== undefined) out.maxPriceCents = raw.maxPriceCents;
  if (raw.author) out.author = raw.author;
  return out;
}
