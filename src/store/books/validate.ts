/**
 * Validation of a book as an admin sends it (POST/PUT/PATCH /books, bulk import lines).
 * The input is untrusted JSON; every refusal is INVALID_ARGUMENT whose message starts with
 * the field, e.g. "isbn: the ISBN check digit is wrong". Unknown fields are refused so a
 * typo never silently does nothing.
 */
import { KindredError } from '../../errors.js';
import type { BookFormat } from '../contracts.js';
import { isbnProblem, normaliseIsbn } from './isbn.js';

export interface BookInput {
  title: string;
  authors: string[];
  isbn: string;
  description: string;
  priceCents: number;
  currency: string;
  formats: BookFormat[];
  stock: number;
}

export const BOOK_FIELDS = ['title', 'authors', 'isbn', 'description', 'priceCents', 'currency', 'formats', 'stock'] as const;
export const LIMITS = {
  titleChars: 500,
  authors: 20,
  authorChars: 200,
  descriptionChars: 20_000,
  maxPriceCents: 100_000_000,
  maxStock: 10_000_000,
} as const;

const CURRENCIES = new Set<string>(typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('currency') : []);

function invalid(field: string, problem: string): KindredError {
  return new KindredError('INVALID_ARGUMENT', `${field}: ${problem}`);
}

/** Trims and collapses inner whitespace runs; refuses control characters. */
function text(v: unknown, field: string, max: number, allowEmpty = false): string {
  if (typeof v !== 'string') throw invalid(field, 'must be a string');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(v)) throw invalid(field, 'must not contain control characters');
  const s = v.trim();
  if (!allowEmpty && s === '') throw invalid(field, 'must not be empty');
  if ([...s].length > max) throw invalid(field, `must be at most ${max} characters`);
  return s;
}

function integer(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(field, 'must be an integer');
  if (v < min || v > max) throw invalid(field, `must be between ${min} and ${max}`);
  return v;
}

/** Reads the fields present in `body` (all of them required when `complete`). */
export function parseBookFields(body: unknown, complete: boolean): Partial<BookInput> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body', 'must be a JSON object');
  const obj = body as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(BOOK_FIELDS as readonly string[]).includes(key)) throw invalid(key, `unknown field (expected ${BOOK_FIELDS.join(', ')})`);
  }
  const has = (k: string) => Object.prototype.hasOwnProperty.call(obj, k) && obj[k] !== undefined && obj[k] !== null;
  if (complete) {
    for (const k of ['title', 'authors', 'isbn', 'priceCents', 'currency', 'formats'] as const) if (!has(k)) throw invalid(k, 'is required');
  }
  const out: Partial<BookInput> = {};
  if (has('title')) out.title = text(obj.title, 'title', LIMITS.titleChars);
  if (has('authors')) {
    const a = obj.authors;
    if (!Array.isArray(a)) throw invalid('authors', 'must be an array of names');
    if (a.length === 0) throw invalid('authors', 'must name at least one author');
    if (a.length > LIMITS.authors) throw invalid('authors', `at most ${LIMITS.authors} authors`);
    out.authors = a.map((name, i) => text(name, `authors[${i}]`, LIMITS.authorChars));
  }
  if (has('isbn')) {
    if (typeof obj.isbn !== 'string') throw invalid('isbn', 'must be a string');
    const problem = isbnProblem(obj.isbn);
    if (problem) throw invalid('isbn', problem);
    out.isbn = normaliseIsbn(obj.isbn)!;
  }
  if (has('description')) out.description = text(obj.description, 'description', LIMITS.descriptionChars, true);
  if (has('priceCents')) out.priceCents = integer(obj.priceCents, 'priceCents', 0, LIMITS.maxPriceCents);
  if (has('currency')) {
    if (typeof obj.currency !== 'string' || !/^[A-Z]{3}$/.test(obj.currency)) throw invalid('currency', 'must be an ISO 4217 code such as EUR');
    if (CURRENCIES.size > 0 && !CURRENCIES.has(obj.currency)) throw invalid('currency', `${obj.currency} is not an ISO 4217 currency`);
    out.currency = obj.currency;
  }
  if (has('formats')) {
    const f = obj.formats;
    if (!Array.isArray(f) || f.length === 0) throw invalid('formats', 'must be a non-empty array of "ebook" and/or "print"');
    const set = new Set<BookFormat>();
    f.forEach((x, i) => {
      if (x !== 'ebook' && x !== 'print') throw invalid(`formats[${i}]`, 'must be "ebook" or "print"');
      set.add(x);
    });
    out.formats = (['ebook', 'print'] as const).filter((x) => set.has(x));
  }
  if (has('stock')) out.stock = integer(obj.stock, 'stock', 0, LIMITS.maxStock);
  return out;
}

/** Checks that hold across fields, on the book as it will be stored. */
export function checkBook(b: BookInput): void {
  if (b.stock > 0 && !b.formats.includes('print')) throw invalid('stock', 'only a book with the print format has stock');
}

export function completeBook(partial: Partial<BookInput>): BookInput {
  const b: BookInput = {
    title: partial.title!,
    authors: partial.authors!,
    isbn: partial.isbn!,
    description: partial.description ?? '',
    priceCents: partial.priceCents!,
    currency: partial.currency!,
    formats: partial.formats!,
    stock: partial.stock ?? 0,
  };
  checkBook(b);
  return b;
}
