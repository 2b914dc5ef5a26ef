/**
 * One SQLite database file per book-store service (`<dataDir>/store/<service>.db`): each
 * service owns its data, so no service can join another's tables, and a service could be
 * moved to its own process (or node) with its file. Same settings and durability as the
 * Tindr database: WAL, synchronous=NORMAL, an async fsync of the WAL before a write resolves;
 * WAL checkpoints run on a worker thread (wal-checkpointer.ts) rather than inside a COMMIT.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { SqliteContext } from './common.js';
import { configure } from './schema.js';
import { walCheckpointer } from './wal-checkpointer.js';
import { WalSync } from './wal-sync.js';

export interface ServiceDbOptions {
  /** fsync before a write resolves (default true); off for tests and benches */
  fsync?: boolean;
  busyTimeoutMs?: number;
}

export interface ServiceDb extends SqliteContext {
  close(): Promise<void>;
}

/**
 * Opens (creating) the file, applies `ddl` idempotently in one transaction and records
 * `version` in the file's own schema_version table.
 */
export function openServiceDb(file: string, ddl: string, version: number, opts: ServiceDbOptions = {}): ServiceDb {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  let sync: WalSync;
  try {
    configure(db, { busyTimeoutMs: opts.busyTimeoutMs ?? 2000 });
    db.transaction(() => {
      db.exec(`CREATE TABLE IF NOT EXISTS schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, applied_at INTEGER NOT NULL);`);
      db.exec(ddl);
      const row = db.prepare('SELECT version FROM schema_version WHERE id = 1').get() as { version: number } | undefined;
      if (row === undefined) db.prepare('INSERT INTO schema_version (id, version, applied_at) VALUES (1, ?, ?)').run(version, Date.now());
      else if (row.version > version) throw new Error(`${file} has schema version ${row.version}, newer than this server (${version})`);
    }).immediate();
    sync = new WalSync(`${db.name}-wal`, opts.fsync ?? true);
    // Checkpoints run on the checkpointer thread (wal-checkpointer.ts), never inside a COMMIT on the event loop.
    db.pragma('wal_autocheckpoint = 0');
    walCheckpointer().add(db.name);
  } catch (err) {
    db.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    db,
    sync,
    close() {
      closing ??= (async () => {
        await sync.close();
        await walCheckpointer().remove(db.name);
        db.close();
      })();
      return closing;
    },
  };
}
