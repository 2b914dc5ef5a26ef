/**
 * The CPU-bound parts of settlement, as pure functions: run in the piscina worker
 * (worker.ts) so pricing and signing never hold up the event loop that serves sockets,
 * and importable directly by tests.
 */
import { createHmac } from 'node:crypto';
import type { Book, BookFormat, CartLine, OrderLine } from '../contracts.js';

/** The fields of a book pricing needs (only these cross to the worker). */
export type PricedBook = Pick<Book, 'bookId' | 'title' | 'formats' | 'priceCents' | 'currency'>;

export interface PriceTask {
  kind: 'price';
  lines: CartLine[];
  books: PricedBook[];
  /** tax in basis points of the subtotal (1000 = 10 %) */
  taxBasisPoints: number;
}

export interface Priced {
  lines: OrderLine[];
  currency: string;
  subtotalCents: number;
  taxCents: number;
  totalCents: number;
}

/** A line the order cannot contain: answered as INVALID_ARGUMENT by the service. */
export interface PriceRejection {
  rejected: string;
}

export interface SignTask {
  kind: 'sign';
  orderId: string;
  customerId: string;
  ebooks: string[];
  hasPrint: boolean;
  expiresAt: number;
  maxDownloads: number;
}

export interface Signed {
  downloads: Array<{ bookId: string; tokenId: string; token: string }>;
  trackingId: string | null;
}

export type SettlementTask = PriceTask | SignTask;

const MAX_QUANTITY = 100;

export function price(task: PriceTask): Priced | PriceRejection {
  const byId = new Map(task.books.map((b) => [b.bookId, b]));
  const seen = new Set<string>();
  const lines: OrderLine[] = [];
  let currency: string | undefined;
  let subtotal = 0;
  for (const l of task.lines) {
    const book = byId.get(l.bookId);
    if (!book) return { rejected: `lines: no book ${l.bookId}` };
    if (!book.formats.includes(l.format)) return { rejected: `lines: "${book.title}" is not sold as ${l.format}` };
    if (!Number.isInteger(l.quantity) || l.quantity < 1 || l.quantity > MAX_QUANTITY) return { rejected: `lines: quantity must be 1 to ${MAX_QUANTITY}` };
    if (l.format === 'ebook' && l.quantity !== 1) return { rejected: `lines: an ebook is bought once (quantity 1)` };
    const key = `${l.bookId}/${l.format}`;
    if (seen.has(key)) return { rejected: `lines: ${key} appears twice` };
    seen.add(key);
    if (currency !== undefined && book.currency !== currency) return { rejected: 'lines: books priced in different currencies cannot share an order' };
    currency = book.currency;
    subtotal += book.priceCents * l.quantity;
    lines.push({ bookId: book.bookId, format: l.format, quantity: l.quantity, unitPriceCents: book.priceCents, title: book.title });
  }
  if (!currency) return { rejected: 'lines: the order is empty' };
  const tax = Math.round((subtotal * task.taxBasisPoints) / 10_000);
  return { lines, currency, subtotalCents: subtotal, taxCents: tax, totalCents: subtotal + tax };
}

function mac(secret: Buffer, text: string): string {
  return createHmac('sha256', secret).update(text).digest('base64url');
}

/**
 * Download tokens: `<base64url JSON {t, o, c, b, e}>.<HMAC>`. Ids are derived from the
 * order (HMAC of order and book), so signing again after a crash gives the same links
 * and the same tracking id: fulfilment is idempotent.
 */
export function sign(task: SignTask, secret: Buffer): Signed {
  const downloads = task.ebooks.map((bookId) => {
    const tokenId = mac(secret, `download/${task.orderId}/${bookId}`).slice(0, 22);
    const payload = Buffer.from(JSON.stringify({ t: tokenId, o: task.orderId, c: task.customerId, b: bookId, e: task.expiresAt })).toString('base64url');
    return { bookId, tokenId, token: `${payload}.${mac(secret, payload)}` };
  });
  const trackingId = task.hasPrint ? `KT${createHmac('sha256', secret).update(`ship/${task.orderId}`).digest('hex').slice(0, 16).toUpperCase()}` : null;
  return { downloads, trackingId };
}

export interface DownloadClaims {
  tokenId: string;
  orderId: string;
  customerId: string;
  bookId: string;
  expiresAt: number;
}

/** The claims of a download token whose signature is valid, or undefined. */
export function verifyDownloadToken(token: string, secret: Buffer): DownloadClaims | undefined {
  const dot = token.indexOf('.');
  if (dot <= 0 || token.length > 1024) return undefined;
  const payload = token.slice(0, dot);
  // Compared as text, not as decoded bytes: base64url decoding ignores the spare low bits of the
  // last character, so a token with that character changed would otherwise still verify.
  const given = Buffer.from(token.slice(dot + 1), 'utf8');
  const expected = Buffer.from(createHmac('sha256', secret).update(payload).digest('base64url'), 'utf8');
  if (given.length !== expected.length || !timingSafe(given, expected)) return undefined;
  try {
    const c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { t: string; o: string; c: string; b: string; e: number };
    return { tokenId: c.t, orderId: c.o, customerId: c.c, bookId: c.b, expiresAt: c.e };
  } catch {
    return undefined;
  }
}

function timingSafe(a: Buffer, b: Buffer): boolean {
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function isFormat(v: unknown): v is BookFormat {
  return v === 'ebook' || v === 'print';
}
