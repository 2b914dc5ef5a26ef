/**
 * REST routes of the book store's Books, Search and Customers services. Each route decodes
 * its request and asks the service over the bus (src/store/contracts.ts and the services'
 * requests.ts): the HTTP layer holds no store logic and touches no storage, and whichever
 * node runs the service answers. The OpenAPI document is generated from these entries too
 * (storeDocs, storeSchemas), so they cannot drift.
 */
import type { KindredConfig } from '../../config.js';
import { KindredError } from '../../errors.js';
import { isId } from '../../ids.js';
import { SUBJECTS } from '../../store/contracts.js';
import type { ImportItem } from '../../store/books/requests.js';
import { MAX_IMPORT_ITEMS } from '../../store/books/service.js';
import type { SearchQuery } from '../../store/search/index.js';
import { invalid, pathId, queryInteger } from './validate.js';
import type { Reply, RequestContext, Route, RouteDeps } from './routes.js';

const TIMEOUT_MS = 10_000;
const IMPORT_CHUNK_TIMEOUT_MS = 120_000;
/** Items per bus request of an import: stays far below NATS's default 1 MiB max_payload. */
const IMPORT_CHUNK = 200;
const MAX_IMPORT_LINES = 100_000;

async function ask(deps: RouteDeps, subject: string, payload: unknown, timeoutMs = TIMEOUT_MS): Promise<any> {
  if (!deps.bus) throw new KindredError('UNAVAILABLE', 'the book store is not running on this node');
  return deps.bus.request(subject, payload, timeoutMs);
}

function caller(ctx: RequestContext): string {
  if (!ctx.principal) throw new KindredError('UNAUTHENTICATED');
  return ctx.principal.userId;
}

function bytes(ctx: RequestContext, what: string): Uint8Array {
  const data = ctx.body as Uint8Array;
  if (!data || data.byteLength === 0) throw new KindredError('BAD_REQUEST', `the request body is empty: send the ${what} bytes`);
  return data;
}

/** Parses a bulk import body: a JSON array, or NDJSON (one book per line); a line that does not parse is reported, not fatal. */
export function parseImport(body: Uint8Array): ImportItem[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new KindredError('BAD_REQUEST', 'the request body is not valid UTF-8');
  }
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(trimmed);
    } catch {
      throw new KindredError('BAD_REQUEST', 'the body starts with [ but is not a valid JSON array (send NDJSON to get per-line errors)');
    }
    if (!Array.isArray(arr)) throw new KindredError('BAD_REQUEST', 'expected a JSON array of books');
    if (arr.length > MAX_IMPORT_LINES) throw new KindredError('PAYLOAD_TOO_LARGE', `at most ${MAX_IMPORT_LINES} books per import`);
    return arr.map((value, i) => ({ line: i + 1, value }));
  }
  const items: ImportItem[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    if (items.length >= MAX_IMPORT_LINES) throw new KindredError('PAYLOAD_TOO_LARGE', `at most ${MAX_IMPORT_LINES} books per import`);
    try {
      items.push({ line: i + 1, value: JSON.parse(line) as unknown });
    } catch {
      items.push({ line: i + 1, parseError: 'not valid JSON' });
    }
  }
  if (items.length === 0) throw new KindredError('BAD_REQUEST', 'the import is empty: send a JSON array or one JSON book per line');
  return items;
}

function queryString(ctx: RequestContext, key: string, max: number): string | undefined {
  const v = ctx.query.get(key);
  if (v === null || v === '') return undefined;
  if (v.length > max) throw invalid(key, `at most ${max} characters`);
  return v;
}

export function decodeSearch(ctx: RequestContext): SearchQuery {
  const q: SearchQuery = {
    q: queryString(ctx, 'q', 200) ?? '',
    sort: (queryString(ctx, 'sort', 20) ?? 'relevance') as SearchQuery['sort'],
    page: queryInteger(ctx.query, 'page', 1, 10_000) ?? 1,
    size: queryInteger(ctx.query, 'size', 1, 100) ?? 20,
  };
  const format = queryString(ctx, 'format', 10);
  if (format !== undefined) {
    if (format !== 'ebook' && format !== 'print') throw invalid('format', 'must be ebook or print');
    q.format = format;
  }
  const minPrice = queryInteger(ctx.query, 'minPrice', 0, Number.MAX_SAFE_INTEGER);
  const maxPrice = queryInteger(ctx.query, 'maxPrice', 0, Number.MAX_SAFE_INTEGER);
  if (minPrice !== undefined) q.minPriceCents = minPrice;
  if (maxPrice !== undefined) q.maxPriceCents = maxPrice;
  const author = queryString(ctx, 'author', 200);
  if (author !== undefined) q.author = author;
  return q;
}

type StoreRoute = Route;

function route(spec: Omit<StoreRoute, 'handle' | 'tag'>, handle: (ctx: RequestContext, deps: RouteDeps) => Promise<unknown>): StoreRoute {
  return {
    ...spec,
    tag: 'store',
    async handle(ctx, deps): Promise<Reply> {
      return { status: spec.status, json: await handle(ctx, deps) };
    },
  };
}

export const storeRoutes: StoreRoute[] = [
  // ── books ─────────────────────────────────────────────────────────────
  route({ id: 'createBook', method: 'post', path: '/v1/books', auth: true, body: 'json', status: 201, summary: 'Add a book to the catalogue (store admins only)' },
    (ctx, deps) => ask(deps, SUBJECTS.books, { op: 'create', by: caller(ctx), input: ctx.body })),
  route({ id: 'importBooks', method: 'post', path: '/v1/books/import', auth: true, body: 'raw', status: 200, summary: 'Bulk import: a JSON array or NDJSON, with per-line errors (store admins only)',
    maxBodyBytes: (c) => c.store.importMaxBytes },
    async (ctx, deps) => {
      const by = caller(ctx);
      // Checked before parsing, so a non-admin's upload is refused without work.
      if (!(await ask(deps, SUBJECTS.books, { op: 'isAdmin', userId: by })).admin) throw new KindredError('FORBIDDEN', 'only store admins may change the catalogue');
      const items = parseImport(bytes(ctx, 'import'));
      const created: Array<{ line: number; bookId: string }> = [];
      const failed: Array<{ line: number; code: string; message: string }> = [];
      for (let i = 0; i < items.length; i += Math.min(IMPORT_CHUNK, MAX_IMPORT_ITEMS)) {
        const r = await ask(deps, SUBJECTS.books, { op: 'import', by, items: items.slice(i, i + IMPORT_CHUNK) }, IMPORT_CHUNK_TIMEOUT_MS);
        created.push(...r.created);
        failed.push(...r.failed);
      }
      return { lines: items.length, created, failed };
    }),
  route({ id: 'getBook', method: 'get', path: '/v1/books/:bookId', auth: false, body: 'none', status: 200, summary: 'A book, with its live print stock' },
    async (ctx, deps) => {
      const r = await ask(deps, SUBJECTS.books, { op: 'get', bookIds: [pathId(ctx.params, 'bookId')] });
      if (r.books.length === 0) throw new KindredError('NOT_FOUND', 'no such book');
      return { book: r.books[0] };
    }),
  route({ id: 'replaceBook', method: 'put', path: '/v1/books/:bookId', auth: true, body: 'json', status: 200, summary: 'Replace every field of a book (store admins only)' },
    (ctx, deps) => ask(deps, SUBJECTS.books, { op: 'update', by: caller(ctx), bookId: pathId(ctx.params, 'bookId'), input: ctx.body, replace: true })),
  route({ id: 'updateBook', method: 'patch', path: '/v1/books/:bookId', auth: true, body: 'json', status: 200, summary: 'Change some fields of a book, or its stock (store admins only)' },
    (ctx, deps) => ask(deps, SUBJECTS.books, { op: 'update', by: caller(ctx), bookId: pathId(ctx.params, 'bookId'), input: ctx.body, replace: false })),
  route({ id: 'deleteBook', method: 'delete', path: '/v1/books/:bookId', auth: true, body: 'none', status: 200, summary: 'Remove a book from the catalogue (store admins only)' },
    async (ctx, deps) => {
      await ask(deps, SUBJECTS.books, { op: 'delete', by: caller(ctx), bookId: pathId(ctx.params, 'bookId') });
      return { ok: true };
    }),
  route({ id: 'uploadBookCover', method: 'put', path: '/v1/books/:bookId/cover', auth: true, body: 'image', status: 200, summary: 'Upload the cover image: JPEG, PNG or WebP bytes (store admins only)' },
    (ctx, deps) => ask(deps, SUBJECTS.books, { op: 'setCover', by: caller(ctx), bookId: pathId(ctx.params, 'bookId'), data: bytes(ctx, 'image') }, 30_000)),
  route({ id: 'uploadBookEbook', method: 'put', path: '/v1/books/:bookId/ebook', auth: true, body: 'raw', status: 200, summary: 'Upload the ebook file: EPUB or PDF bytes (store admins only)',
    maxBodyBytes: (c) => c.store.ebookMaxBytes },
    (ctx, deps) => ask(deps, SUBJECTS.books, { op: 'setEbook', by: caller(ctx), bookId: pathId(ctx.params, 'bookId'), data: bytes(ctx, 'ebook') }, 60_000)),
  {
    id: 'getBookCover', method: 'get', path: '/v1/books/covers/:imageId', auth: false, body: 'none', status: 200, tag: 'store',
    summary: 'The bytes of a cover (JPEG; immutable under its id)',
    async handle(ctx, deps) {
      const imageId = ctx.params.imageId ?? '';
      if (!isId(imageId)) throw new KindredError('NOT_FOUND', 'no such cover');
      const cache = { ETag: `"${imageId}"`, 'Cache-Control': 'public, max-age=31536000, immutable' };
      if (ctx.headers.ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '').replace(/"/g, '') === imageId)) {
        return { status: 304, body: '', contentType: '', headers: cache };
      }
      const cover = await ask(deps, SUBJECTS.books, { op: 'cover', imageId });
      return { status: 200, body: cover.data as Uint8Array, contentType: cover.contentType as string, headers: cache };
    },
  },

  // ── search ────────────────────────────────────────────────────────────
  route({ id: 'searchBooks', method: 'get', path: '/v1/search', auth: false, body: 'none', status: 200, summary: 'Full-text search over the catalogue with facets, sorting and paging' },
    (ctx, deps) => ask(deps, SUBJECTS.search, { op: 'search', query: decodeSearch(ctx) })),
  route({ id: 'suggestBooks', method: 'get', path: '/v1/search/suggest', auth: false, body: 'none', status: 200, summary: 'Type-ahead: books whose title or author start with what was typed' },
    (ctx, deps) => ask(deps, SUBJECTS.search, { op: 'suggest', q: queryString(ctx, 'q', 200) ?? '' })),
  route({ id: 'searchStats', method: 'get', path: '/v1/search/stats', auth: false, body: 'none', status: 200, summary: "The answering node's index: books indexed, whether it is still being built" },
    (_ctx, deps) => ask(deps, SUBJECTS.search, { op: 'stats' })),

  // ── customers ─────────────────────────────────────────────────────────
  route({ id: 'getCustomer', method: 'get', path: '/v1/customers/me', auth: true, body: 'none', status: 200, summary: 'Your customer record, address book and recent orders' },
    (ctx, deps) => ask(deps, SUBJECTS.customers, { op: 'me', userId: caller(ctx) })),
  route({ id: 'updateCustomer', method: 'patch', path: '/v1/customers/me', auth: true, body: 'json', status: 200, summary: 'Change your customer name or default address' },
    (ctx, deps) => ask(deps, SUBJECTS.customers, { op: 'update', userId: caller(ctx), input: ctx.body })),
  route({ id: 'listAddresses', method: 'get', path: '/v1/customers/me/addresses', auth: true, body: 'none', status: 200, summary: 'Your address book' },
    (ctx, deps) => ask(deps, SUBJECTS.customers, { op: 'address.list', userId: caller(ctx) })),
  route({ id: 'addAddress', method: 'post', path: '/v1/customers/me/addresses', auth: true, body: 'json', status: 201, summary: 'Add an address to your address book' },
    (ctx, deps) => ask(deps, SUBJECTS.customers, { op: 'address.add', userId: caller(ctx), input: ctx.body })),
  route({ id: 'updateAddress', method: 'patch', path: '/v1/customers/me/addresses/:addressId', auth: true, body: 'json', status: 200, summary: 'Change an address' },
    (ctx, deps) => ask(deps, SUBJECTS.customers, { op: 'address.update', userId: caller(ctx), addressId: pathId(ctx.params, 'addressId'), input: ctx.body })),
  route({ id: 'deleteAddress', method: 'delete', path: '/v1/customers/me/addresses/:addressId', auth: true, body: 'none', status: 200, summary: 'Remove an address' },
    async (ctx, deps) => {
      await ask(deps, SUBJECTS.customers, { op: 'address.delete', userId: caller(ctx), addressId: pathId(ctx.params, 'addressId') });
      return { ok: true };
    }),
];
