/**
 * Small explicit checks that turn untrusted JSON into typed command fields. Every
 * refusal is INVALID_ARGUMENT (422) whose message starts with the field's path, e.g.
 * "preferences.ageMin: must be an integer". Objects are closed: an unknown field is
 * refused too, so a typo never silently does nothing. Values are copied field by field,
 * never spread, so nothing unexpected (like `__proto__`) reaches the domain.
 *
 * Types are checked here; value rules (lengths, age ranges, ...) are the domain's.
 */
import { KindredError } from '../../errors.js';
import { isId } from '../../ids.js';

export type JsonObject = Record<string, unknown>;

export function invalid(field: string, problem: string): KindredError {
  return new KindredError('INVALID_ARGUMENT', `${field}: ${problem}`);
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Reads the fields of one JSON object; `path` names it in messages ("" for the body). */
export class Fields {
  private readonly obj: JsonObject;
  private readonly path: string;

  constructor(value: unknown, path: string, allowed: readonly string[]) {
    if (!isObject(value)) throw invalid(path || 'body', 'must be a JSON object');
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) throw invalid(join(path, key), `unknown field (expected ${allowed.length ? allowed.join(', ') : 'none'})`);
    }
    this.obj = value;
    this.path = path;
  }

  /** True when the field is present and not null. */
  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.obj, key) && this.obj[key] !== undefined && this.obj[key] !== null;
  }

  /** The raw value of a present field (undefined when absent). */
  raw(key: string): unknown {
    return Object.prototype.hasOwnProperty.call(this.obj, key) ? this.obj[key] : undefined;
  }

  field(key: string): string {
    return join(this.path, key);
  }

  string(key: string): string {
    const v = this.raw(key);
    if (v === undefined || v === null) throw invalid(this.field(key), 'is required');
    if (typeof v !== 'string') throw invalid(this.field(key), 'must be a string');
    return v;
  }

  optionalString(key: string): string | undefined {
    return this.has(key) ? this.string(key) : undefined;
  }

  id(key: string): string {
    const v = this.string(key);
    if (!isId(v)) throw invalid(this.field(key), 'must be an id');
    return v;
  }

  ids(key: string): string[] {
    const v = this.raw(key);
    if (v === undefined || v === null) throw invalid(this.field(key), 'is required');
    if (!Array.isArray(v)) throw invalid(this.field(key), 'must be an array of ids');
    return v.map((item, i) => {
      if (!isId(item)) throw invalid(`${this.field(key)}[${i}]`, 'must be an id');
      return item;
    });
  }

  oneOf<T extends string>(key: string, values: readonly T[]): T {
    const v = this.string(key);
    if (!(values as readonly string[]).includes(v)) throw invalid(this.field(key), `must be one of ${values.join(', ')}`);
    return v as T;
  }

  boolean(key: string): boolean {
    const v = this.raw(key);
    if (v === undefined || v === null) throw invalid(this.field(key), 'is required');
    if (typeof v !== 'boolean') throw invalid(this.field(key), 'must be a boolean');
    return v;
  }

  number(key: string, min = -Infinity, max = Infinity): number {
    const v = this.raw(key);
    if (v === undefined || v === null) throw invalid(this.field(key), 'is required');
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(this.field(key), 'must be a number');
    if (v < min || v > max) throw invalid(this.field(key), `must be between ${min} and ${max}`);
    return v;
  }

  integer(key: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.raw(key);
    if (v === undefined || v === null) throw invalid(this.field(key), 'is required');
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(this.field(key), 'must be an integer');
    if (v < min || v > max) throw invalid(this.field(key), `must be between ${min} and ${max}`);
    return v;
  }

  /** An array of strings each one of `values`. */
  arrayOf<T extends string>(key: string, values: readonly T[]): T[] {
    const v = this.raw(key);
    if (v === undefined || v === null) throw invalid(this.field(key), 'is required');
    if (!Array.isArray(v)) throw invalid(this.field(key), 'must be an array');
    return v.map((item, i) => {
      if (typeof item !== 'string' || !(values as readonly string[]).includes(item)) {
        throw invalid(`${this.field(key)}[${i}]`, `must be one of ${values.join(', ')}`);
      }
      return item as T;
    });
  }

  /** A nested object's fields. */
  object(key: string, allowed: readonly string[]): Fields {
    const v = this.raw(key);
    if (v === undefined || v === null) throw invalid(this.field(key), 'is required');
    return new Fields(v, this.field(key), allowed);
  }
}

/** Query-string values: absent or empty means undefined. */
export function queryInteger(query: URLSearchParams, key: string, min: number, max: number): number | undefined {
  const raw = query.get(key);
  if (raw === null || raw === '') return undefined;
  if (!/^-?\d+$/.test(raw)) throw invalid(key, 'must be an integer');
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw invalid(key, `must be between ${min} and ${max}`);
  return n;
}

export function queryId(query: URLSearchParams, key: string): string | undefined {
  const raw = query.get(key);
  if (raw === null || raw === '') return undefined;
  if (!isId(raw)) throw invalid(key, 'must be an id');
  return raw;
}

/** A comma separated list of ids, required. */
export function queryIdList(query: URLSearchParams, key: string): string[] {
  const raw = query.getAll(key).join(',');
  const ids = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (ids.length === 0) throw invalid(key, 'is required (comma separated ids)');
  const bad = ids.find((s): boolean => !isId(s));
  if (bad !== undefined) throw invalid(key, `"${bad.slice(0, 64)}" is not an id`);
  return ids;
}

/** A path parameter that must be an id. */
export function pathId(params: Record<string, string>, key: string): string {
  const v = params[key] ?? '';
  if (!isId(v)) throw invalid(key, 'must be an id');
  return v;
}
