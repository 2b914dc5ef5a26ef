import Database from 'better-sqlite3';
import { KindredError } from '../../errors.js';
import type { WalSync } from './wal-sync.js';

/** What every SQLite store is built from: the one connection and its WAL syncer. */
export interface SqliteContext {
  db: Database.Database;
  sync: WalSync;
}

const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|CORRUPT|NOMEM|NOTADB|PROTOCOL|INTERRUPT)/;

/**
 * Maps driver errors onto the error registry: a busy, full or failing database
 * is UNAVAILABLE (retryable at the edge), a duplicate key CONFLICT, another
 * constraint (a NULL where a value belongs) INVALID_ARGUMENT; anything else is
 * a bug and propagates.
 */
export function storageError(err: unknown): unknown {
  if (err instanceof KindredError) return err;
  if (err instanceof Database.SqliteError) {
    if (UNAVAILABLE_CODES.test(err.code)) return new KindredError('UNAVAILABLE', `storage: ${err.code}`);
    if (err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || err.code === 'SQLITE_CONSTRAINT_UNIQUE') {
      return new KindredError('CONFLICT', 'already exists');
    }
    if (err.code.startsWith('SQLITE_CONSTRAINT')) return new KindredError('INVALID_ARGUMENT', `storage: ${err.code}`);
    if (err.message === 'The database connection is not open') return new KindredError('UNAVAILABLE', 'storage is closed');
  }
  if (err instanceof TypeError && err.message === 'The database connection is not open') {
    return new KindredError('UNAVAILABLE', 'storage is closed');
  }
  return err;
}

/** Runs synchronous statements, mapping errors; for reads. */
export function read<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(storageError(err));
  }
}

/** Runs a write (already inside a transaction where it needs one), then waits until it is durable. */
export async function write<T>(ctx: SqliteContext, fn: () => T): Promise<T> {
  let result: T;
  try {
    result = fn();
  } catch (err) {
    throw storageError(err);
  }
  await ctx.sync.durable();
  return result;
}

/** Binds a list of ids as one JSON parameter: `... IN (SELECT value FROM json_each(?))`, so one prepared statement serves any length. */
export function jsonList(values: readonly string[]): string {
  return JSON.stringify(values);
}
