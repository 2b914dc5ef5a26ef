/**
 * Checks on what customers send the Orders service (over the bus the values are plain
 * data from the REST layer, which checked only their JSON shape).
 */
import { KindredError } from '../../errors.js';
import type { CartLine, ShippingAddress } from '../contracts.js';
import { isFormat } from './settlement-tasks.js';

const MAX_LINES = 50;

function invalid(field: string, why: string): KindredError {
  return new KindredError('INVALID_ARGUMENT', `${field}: ${why}`);
}

export function validateIdempotencyKey(key: unknown): string {
  if (typeof key !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw invalid('idempotencyKey', 'required: 1 to 255 visible ASCII characters (send an Idempotency-Key header)');
  }
  return key;
}

export function validateCartLine(line: unknown, field = 'line'): CartLine {
  if (typeof line !== 'object' || line === null) throw invalid(field, 'must be an object');
  const l = line as Record<string, unknown>;
  if (typeof l.bookId !== 'string' || l.bookId.length === 0 || l.bookId.length > 64) throw invalid(`${field}.bookId`, 'must be a book id');
  if (!isFormat(l.format)) throw invalid(`${field}.format`, 'must be ebook or print');
  if (typeof l.quantity !== 'number' || !Number.isInteger(l.quantity) || l.quantity < 0 || l.quantity > 100) {
    throw invalid(`${field}.quantity`, 'must be an integer from 0 to 100');
  }
  return { bookId: l.bookId, format: l.format, quantity: l.quantity };
}

const ADDRESS_FIELDS = ['name', 'line1', 'line2', 'city', 'postalCode', 'country'] as const;

export function validateAddress(a: unknown): ShippingAddress {
  if (typeof a !== 'object' || a === null) throw invalid('shippingAddress', 'must be an object');
  const o = a as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!(ADDRESS_FIELDS as readonly string[]).includes(k)) throw invalid(`shippingAddress.${k}`, 'unknown field');
  const str = (k: (typeof ADDRESS_FIELDS)[number], required: boolean): string | undefined => {
    const v = o[k];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || v.trim().length === 0 || v.length > 200) throw invalid(`shippingAddress.${k}`, 'must be a non-empty string of at most 200 characters');
    return v.trim();
  };
  const country = str('country', true)!;
  if (!/^[A-Za-z]{2}$/.test(country)) throw invalid('shippingAddress.country', 'must be an ISO 3166 two-letter code');
  const out: ShippingAddress = { name: str('name', true)!, line1: str('line1', true)!, city: str('city', true)!, postalCode: str('postalCode', true)!, country: country.toUpperCase() };
  const line2 = str('line2', false);
  if (line2) out.line2 = line2;
  return out;
}

export function validateCheckout(
  key: string,
  lines: unknown,
  address: unknown,
): { idempotencyKey: string; lines: CartLine[]; shippingAddress?: ShippingAddress } {
  if (!Array.isArray(lines)) throw invalid('lines', 'must be an array');
  if (lines.length === 0) throw invalid('lines', 'the order is empty (add books to the cart, or send lines)');
  if (lines.length > MAX_LINES) throw invalid('lines', `at most ${MAX_LINES} lines`);
  const parsed = lines.map((l, i) => validateCartLine(l, `lines[${i}]`));
  if (parsed.some((l) => l.quantity === 0)) throw invalid('lines', 'every quantity must be at least 1');
  return { idempotencyKey: key, lines: parsed, ...(address === undefined ? {} : { shippingAddress: validateAddress(address) }) };
}
