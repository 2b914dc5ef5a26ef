/**
 * Checks of customer input. Countries are ISO 3166-1 alpha-2 codes known to the runtime's
 * ICU data; postal codes follow the country's pattern where we know it (a few common ones),
 * otherwise 2-10 letters, digits, spaces or hyphens.
 */
import { KindredError } from '../../errors.js';
import { isId } from '../../ids.js';
import type { Address } from './storage.js';

type AddressFields = Pick<Address, 'label' | 'name' | 'line1' | 'line2' | 'city' | 'region' | 'postalCode' | 'country' | 'phone'>;

const ADDRESS_FIELDS = ['label', 'name', 'line1', 'line2', 'city', 'region', 'postalCode', 'country', 'phone', 'default'] as const;
const REQUIRED = ['name', 'line1', 'city', 'postalCode', 'country'] as const;
const MAX_CHARS: Record<keyof AddressFields, number> = { label: 40, name: 120, line1: 200, line2: 200, city: 100, region: 100, postalCode: 10, country: 2, phone: 32 };

const POSTAL: Record<string, RegExp> = {
  US: /^\d{5}(-\d{4})?$/,
  DE: /^\d{5}$/,
  FR: /^\d{5}$/,
  ES: /^\d{5}$/,
  IT: /^\d{5}$/,
  NL: /^\d{4} ?[A-Z]{2}$/,
  GB: /^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$/,
  CA: /^[A-Z]\d[A-Z] ?\d[A-Z]\d$/,
  JP: /^\d{3}-?\d{4}$/,
  BR: /^\d{5}-?\d{3}$/,
};

const regions = new Intl.DisplayNames(['en'], { type: 'region', fallback: 'none' });

function invalid(field: string, problem: string): KindredError {
  return new KindredError('INVALID_ARGUMENT', `${field}: ${problem}`);
}

function text(v: unknown, field: keyof AddressFields): string {
  if (typeof v !== 'string') throw invalid(field, 'must be a string');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(v)) throw invalid(field, 'must not contain control characters');
  const s = v.trim().replace(/\s+/g, ' ');
  if ([...s].length > MAX_CHARS[field]) throw invalid(field, `must be at most ${MAX_CHARS[field]} characters`);
  return s;
}

export function isCountryCode(code: string): boolean {
  return /^[A-Z]{2}$/.test(code) && regions.of(code) !== undefined;
}

/** The address fields present (all required ones when `complete`); `country` is the current one when updating. */
export function parseAddress(body: unknown, complete: boolean, currentCountry?: string): { fields: Partial<AddressFields>; makeDefault: boolean } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body', 'must be a JSON object');
  const obj = body as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(ADDRESS_FIELDS as readonly string[]).includes(key)) throw invalid(key, `unknown field (expected ${ADDRESS_FIELDS.join(', ')})`);
  }
  const fields: Partial<AddressFields> = {};
  for (const key of ADDRESS_FIELDS) {
    if (key === 'default' || obj[key] === undefined || obj[key] === null) continue;
    fields[key] = text(obj[key], key);
  }
  if (complete) {
    for (const k of REQUIRED) if (!fields[k]) throw invalid(k, 'is required');
    for (const k of ['label', 'line2', 'region', 'phone'] as const) fields[k] ??= '';
  } else {
    for (const k of REQUIRED) if (fields[k] === '') throw invalid(k, 'must not be empty');
  }
  if (fields.country !== undefined) {
    fields.country = fields.country.toUpperCase();
    if (!isCountryCode(fields.country)) throw invalid('country', 'must be an ISO 3166-1 alpha-2 code such as DE or US');
  }
  if (fields.postalCode !== undefined) {
    fields.postalCode = fields.postalCode.toUpperCase();
    const country = fields.country ?? currentCountry ?? '';
    const pattern = POSTAL[country];
    if (pattern ? !pattern.test(fields.postalCode) : !/^[A-Z0-9][A-Z0-9 -]{0,8}[A-Z0-9]$/.test(fields.postalCode)) {
      throw invalid('postalCode', `is not a valid postal code${pattern ? ` for ${country}` : ''}`);
    }
  }
  if (fields.phone && !/^\+?[0-9 ()./-]{4,31}$/.test(fields.phone)) throw invalid('phone', 'must be a phone number (digits, spaces, + ( ) - . /)');
  const d = obj.default;
  if (d !== undefined && d !== null && typeof d !== 'boolean') throw invalid('default', 'must be a boolean');
  return { fields, makeDefault: d === true };
}

export function parseCustomerPatch(body: unknown): { name?: string; defaultAddressId?: string | null } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body', 'must be a JSON object');
  const obj = body as Record<string, unknown>;
  for (const key of Object.keys(obj)) if (key !== 'name' && key !== 'defaultAddressId') throw invalid(key, 'unknown field (expected name, defaultAddressId)');
  const out: { name?: string; defaultAddressId?: string | null } = {};
  if (obj.name !== undefined) {
    if (typeof obj.name !== 'string') throw invalid('name', 'must be a string');
    const name = obj.name.trim().replace(/\s+/g, ' ');
    // eslint-disable-next-line no-control-regex
    if (name === '' || [...name].length > 120 || /[\u0000-\u001f\u007f]/.test(name)) throw invalid('name', 'must be 1 to 120 printable characters');
    out.name = name;
  }
  if (obj.defaultAddressId !== undefined) {
    if (obj.defaultAddressId !== null && (typeof obj.defaultAddressId !== 'string' || !isId(obj.defaultAddressId))) throw invalid('defaultAddressId', 'must be an address id or null');
    out.defaultAddressId = obj.defaultAddressId as string | null;
  }
  return out;
}
