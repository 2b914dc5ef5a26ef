/**
 * The Books service: owns the catalogue and the print stock. It answers requests on
 * SUBJECTS.books (queue group "books": in a cluster every node runs one and any one answers)
 * and publishes a BookEvent on SUBJECTS.bookEvents after every committed change of a book,
 * which the Search service indexes. Reservations change only stock, which Search does not
 * index, so they publish nothing (search results read live stock when they hydrate).
 *
 * Admin operations carry the caller's user id (`by`), checked against the AdminPolicy.
 */
import { handOver, type Bus, type Subscription } from '../../actors/bus.js';
import { KindredError } from '../../errors.js';
import { isId, newId } from '../../ids.js';
import type { BlobStore } from '../../storage/types.js';
import type { AdminPolicy } from '../customers/admins.js';
import { SUBJECTS, type Book, type BookEvent, type BooksReplies, type BooksRequest } from '../contracts.js';
import { checkEbook, normaliseCover } from './files.js';
import type { BooksAdminReplies, BooksAdminRequest, ImportItem } from './requests.js';
import type { BookRecord, BookStore, StoredBook } from './storage.js';
import { checkBook, completeBook, parseBookFields, type BookInput } from './validate.js';

export interface BooksLimits {
  /** largest cover upload, bytes (the stored cover is re-encoded and smaller) */
  coverMaxBytes: number;
  /** largest ebook file, bytes; in a cluster also bounded by the NATS max_payload */
  ebookMaxBytes: number;
}

export interface BooksServiceDeps {
  bus: Bus;
  store: BookStore;
  blobs: BlobStore;
  admins: AdminPolicy;
  limits: BooksLimits;
  log?: { warn(obj: object, msg: string): void };
  now?: () => number;
}

export const MAX_GET_IDS = 200;
export const MAX_PAGE = 1000;
export const MAX_IMPORT_ITEMS = 1000;
const MAX_LINES = 100;
const MAX_QUANTITY = 1000;

export function coverBlobKey(imageId: string): string {
  return `store/covers/${imageId}`;
}

/** What clients and other services see of a stored book. */
export function toBook(s: StoredBook): Book {
  const r = s.record;
  const book: Book = {
    bookId: r.bookId,
    title: r.title,
    authors: r.authors,
    isbn: r.isbn,
    description: r.description,
    priceCents: r.priceCents,
    currency: r.currency,
    formats: r.formats,
    stock: r.formats.includes('print') ? s.stock : 0,
    hasEbookFile: r.ebook !== null,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
  if (r.coverImageId) book.coverUrl = `/v1/books/covers/${r.coverImageId}`;
  return book;
}

type AnyRequest = BooksRequest | BooksAdminRequest;

function bad(problem: string): KindredError {
  return new KindredError('INVALID_ARGUMENT', problem);
}

function requireId(v: unknown, field: string): string {
  if (typeof v !== 'string' || !isId(v)) throw bad(`${field}: must be an id`);
  return v;
}

function bytesOf(v: unknown, field: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(`${field}: must be bytes`);
  return v;
}

export class BooksService {
  private sub: Subscription | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: BooksServiceDeps) {
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    // Every reply is built for this one request (fresh from a store read), so it is handed over, not copied (bus.ts HandOver).
    this.sub = this.deps.bus.subscribe(SUBJECTS.books, (payload) => this.handle(payload as AnyRequest).then(handOver), { queue: 'books' });
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  /** One request; the reply shape is BooksReplies[op] or BooksAdminReplies[op]. */
  async handle(req: AnyRequest): Promise<unknown> {
    if (typeof req !== 'object' || req === null || typeof (req as { op?: unknown }).op !== 'string') throw bad('op: required');
    switch (req.op) {
      case 'get':
        return this.get(req.bookIds);
      case 'reserve':
        return this.reserve(req.orderId, req.lines);
      case 'release':
        return { released: await this.deps.store.release(requireId(req.orderId, 'orderId')) } satisfies BooksReplies['release'];
      case 'commit':
        return { committed: await this.deps.store.commit(requireId(req.orderId, 'orderId')) } satisfies BooksReplies['commit'];
      case 'ebookFile':
        return this.ebookFile(req.bookId);
      case 'page':
        return this.page(req.after, req.limit);
      case 'cover':
        return this.cover(req.imageId);
      case 'isAdmin':
        return { admin: await this.deps.admins.isAdmin(requireId(req.userId, 'userId')) } satisfies BooksAdminReplies['isAdmin'];
      case 'create':
        await this.requireAdmin(req.by);
        return { book: await this.create(req.input) } satisfies BooksAdminReplies['create'];
      case 'update':
        await this.requireAdmin(req.by);
        return { book: await this.update(requireId(req.bookId, 'bookId'), req.input, req.replace === true) } satisfies BooksAdminReplies['update'];
      case 'delete':
        await this.requireAdmin(req.by);
        return this.remove(requireId(req.bookId, 'bookId'));
      case 'import':
        await this.requireAdmin(req.by);
        return this.importItems(req.items);
      case 'setCover':
        await this.requireAdmin(req.by);
        return { book: await this.setCover(requireId(req.bookId, 'bookId'), bytesOf(req.data, 'data')) } satisfies BooksAdminReplies['setCover'];
      case 'setEbook':
        await this.requireAdmin(req.by);
        return { book: await this.setEbook(requireId(req.bookId, 'bookId'), bytesOf(req.data, 'data')) } satisfies BooksAdminReplies['setEbook'];
      default:
        throw new KindredError('UNKNOWN_OPERATION', `books: no operation ${String((req as { op: unknown }).op).slice(0, 40)}`);
    }
  }

  private async requireAdmin(by: unknown): Promise<void> {
    if (typeof by !== 'string' || !(await this.deps.admins.isAdmin(by))) {
      throw new KindredError('FORBIDDEN', 'only store admins may change the catalogue');
    }
  }

  private publish(event: BookEvent): void {
    this.deps.bus.publish(SUBJECTS.bookEvents, event);
  }

  private async get(bookIds: unknown): Promise<BooksReplies['get']> {
    if (!Array.isArray(bookIds) || bookIds.length > MAX_GET_IDS) throw bad(`bookIds: must be an array of at most ${MAX_GET_IDS} ids`);
    const ids = bookIds.filter((id): id is string => typeof id === 'string' && isId(id));
    const found = new Map((await this.deps.store.getMany(ids)).map((b) => [b.record.bookId, toBook(b)]));
    // In the order asked, unknown ids left out.
    return { books: ids.map((id) => found.get(id)).filter((b): b is Book => b !== undefined) };
  }

  private async page(after: unknown, limit: unknown): Promise<BooksAdminReplies['page']> {
    if (after !== undefined && after !== null && typeof after !== 'string') throw bad('after: must be a cursor');
    const n = typeof limit === 'number' && Number.isInteger(limit) ? Math.min(Math.max(limit, 1), MAX_PAGE) : 100;
    const rows = await this.deps.store.page((after as string | null) ?? undefined, n);
    return { books: rows.map(toBook), next: rows.length === n ? rows[rows.length - 1]!.record.bookId : null };
  }

  private async reserve(orderId: unknown, lines: unknown): Promise<BooksReplies['reserve']> {
    const id = requireId(orderId, 'orderId');
    if (!Array.isArray(lines) || lines.length === 0 || lines.length > MAX_LINES) throw bad(`lines: must hold 1 to ${MAX_LINES} lines`);
    const parsed = lines.map((l: unknown, i) => {
      const line = l as { bookId?: unknown; quantity?: unknown };
      const bookId = requireId(line?.bookId, `lines[${i}].bookId`);
      const q = line?.quantity;
      if (typeof q !== 'number' || !Number.isInteger(q) || q < 1 || q > MAX_QUANTITY) throw bad(`lines[${i}].quantity: must be an integer from 1 to ${MAX_QUANTITY}`);
      return { bookId, quantity: q };
    });
    const outcome = await this.deps.store.reserve(id, parsed);
    if (outcome.ok) return { reserved: true };
    if (outcome.reason === 'released') throw new KindredError('CONFLICT', `the reservation of order ${id} was released`);
    // Only a refusal needs the books themselves (an ebook-only book has no copies to reserve):
    // reading them for every reservation was a visible share of a print order's cost.
    const books = new Map((await this.deps.store.getMany(parsed.map((l) => l.bookId))).map((b) => [b.record.bookId, b]));
    for (const l of parsed) {
      const b = books.get(l.bookId);
      if (b && !b.record.formats.includes('print')) throw bad(`lines: book ${l.bookId} is not sold in print (ebooks need no stock)`);
    }
    throw new KindredError('LIMIT_REACHED', `out of stock: ${outcome.bookId}`);
  }

  private async ebookFile(bookId: unknown): Promise<BooksReplies['ebookFile']> {
    const b = await this.deps.store.get(requireId(bookId, 'bookId'));
    if (!b?.record.ebook) throw new KindredError('NOT_FOUND', 'the book has no ebook file');
    return { ...b.record.ebook };
  }

  private async cover(imageId: unknown): Promise<BooksAdminReplies['cover']> {
    const id = requireId(imageId, 'imageId');
    const blob = await this.deps.blobs.get(coverBlobKey(id));
    if (!blob) throw new KindredError('NOT_FOUND', 'no such cover');
    return { data: blob.data, contentType: blob.contentType };
  }

  private async mustGet(bookId: string): Promise<StoredBook> {
    const b = await this.deps.store.get(bookId);
    if (!b) throw new KindredError('NOT_FOUND', 'no such book');
    return b;
  }

  /** Reads back what was committed and tells Search. */
  private async committed(bookId: string): Promise<Book> {
    const book = toBook(await this.mustGet(bookId));
    this.publish({ type: 'book.upserted', book });
    return book;
  }

  async create(input: unknown): Promise<Book> {
    const { record, stock } = this.newRecord(input);
    await this.deps.store.create(record, stock);
    return this.committed(record.bookId);
  }

  /** Validates an admin's book and makes its record (a new id, created now). */
  private newRecord(input: unknown): { record: BookRecord; stock: number } {
    const b = completeBook(parseBookFields(input, true));
    const at = this.now();
    const record: BookRecord = {
      bookId: newId(at),
      title: b.title,
      authors: b.authors,
      isbn: b.isbn,
      description: b.description,
      priceCents: b.priceCents,
      currency: b.currency,
      formats: b.formats,
      coverImageId: null,
      ebook: null,
      createdAt: at,
      updatedAt: at,
    };
    return { record, stock: b.stock };
  }

  async update(bookId: string, input: unknown, replace: boolean): Promise<Book> {
    const current = await this.mustGet(bookId);
    const fields = parseBookFields(input, replace);
    const r = current.record;
    const merged: BookInput = replace
      ? completeBook(fields)
      : {
          title: fields.title ?? r.title,
          authors: fields.authors ?? r.authors,
          isbn: fields.isbn ?? r.isbn,
          description: fields.description ?? r.description,
          priceCents: fields.priceCents ?? r.priceCents,
          currency: fields.currency ?? r.currency,
          formats: fields.formats ?? r.formats,
          stock: fields.stock ?? (fields.formats && !fields.formats.includes('print') ? 0 : current.stock),
        };
    checkBook(merged);
    const record: BookRecord = {
      ...r,
      title: merged.title,
      authors: merged.authors,
      isbn: merged.isbn,
      description: merged.description,
      priceCents: merged.priceCents,
      currency: merged.currency,
      formats: merged.formats,
      updatedAt: Math.max(this.now(), r.updatedAt + 1),
    };
    await this.deps.store.update(record);
    if (fields.stock !== undefined || replace || merged.stock !== current.stock) await this.deps.store.setStock(bookId, merged.stock);
    return this.committed(bookId);
  }

  private async remove(bookId: string): Promise<BooksAdminReplies['delete']> {
    const current = await this.mustGet(bookId);
    if (!(await this.deps.store.remove(bookId))) throw new KindredError('NOT_FOUND', 'no such book');
    this.publish({ type: 'book.deleted', bookId });
    // Bytes after the row: a crash in between leaves an unreferenced blob, never a dangling reference.
    if (current.record.coverImageId) await this.removeBlob(coverBlobKey(current.record.coverImageId));
    // The ebook file stays: orders already paid may still download it through their links.
    return { deleted: true };
  }

  private async importItems(items: unknown): Promise<BooksAdminReplies['import']> {
    if (!Array.isArray(items) || items.length > MAX_IMPORT_ITEMS) throw bad(`items: at most ${MAX_IMPORT_ITEMS} a request`);
    const created: BooksAdminReplies['import']['created'] = [];
    const failed: BooksAdminReplies['import']['failed'] = [];
    const fail = (line: number, err: unknown) => {
      const k = err instanceof KindredError ? err : new KindredError('INTERNAL');
      if (k.code === 'INTERNAL') this.deps.log?.warn({ err, line }, 'import line failed');
      failed.push({ line, code: k.code, message: k.message });
    };
    const valid: Array<{ line: number; record: BookRecord; stock: number }> = [];
    for (const raw of items) {
      const item = raw as ImportItem;
      if ('parseError' in item) {
        failed.push({ line: item.line, code: 'BAD_REQUEST', message: item.parseError });
        continue;
      }
      try {
        valid.push({ line: item.line, ...this.newRecord(item.value) });
      } catch (err) {
        fail(item.line, err);
      }
    }
    // Two lines of one import with the same ISBN: the first wins, as it would one by one.
    const outcomes = await this.deps.store.createMany(valid);
    outcomes.forEach((err, i) => {
      const v = valid[i]!;
      if (err) return fail(v.line, err);
      created.push({ line: v.line, bookId: v.record.bookId });
      this.publish({ type: 'book.upserted', book: toBook({ record: v.record, stock: v.stock }) });
    });
    failed.sort((a, b) => a.line - b.line);
    return { created, failed };
  }

  private async setCover(bookId: string, data: Uint8Array): Promise<Book> {
    const current = await this.mustGet(bookId);
    const jpeg = await normaliseCover(data, this.deps.limits.coverMaxBytes);
    const imageId = newId();
    await this.deps.blobs.put(coverBlobKey(imageId), jpeg, 'image/jpeg');
    await this.deps.store.update({ ...current.record, coverImageId: imageId, updatedAt: Math.max(this.now(), current.record.updatedAt + 1) });
    if (current.record.coverImageId) await this.removeBlob(coverBlobKey(current.record.coverImageId));
    return this.committed(bookId);
  }

  private async setEbook(bookId: string, data: Uint8Array): Promise<Book> {
    const current = await this.mustGet(bookId);
    if (!current.record.formats.includes('ebook')) throw bad('formats: add "ebook" to the book before uploading its file');
    const kind = checkEbook(data, this.deps.limits.ebookMaxBytes);
    // A new key per upload: links handed out for the old file keep working until it is replaced.
    const blobKey = `store/ebooks/${bookId}/${newId()}.${kind.ext}`;
    await this.deps.blobs.put(blobKey, Buffer.from(data.buffer, data.byteOffset, data.byteLength), kind.contentType);
    await this.deps.store.update({
      ...current.record,
      ebook: { blobKey, contentType: kind.contentType, bytes: data.byteLength },
      updatedAt: Math.max(this.now(), current.record.updatedAt + 1),
    });
    return this.committed(bookId);
  }

  private async removeBlob(key: string): Promise<void> {
    try {
      await this.deps.blobs.remove(key);
    } catch (err) {
      this.deps.log?.warn({ err, key }, 'could not remove a book store blob');
    }
  }
}
