import Database from 'better-sqlite3';
import type { Storage } from '../types.js';
import { SqliteAccountStore, SqliteRevocationStore } from './accounts.js';
import type { SqliteContext } from './common.js';
import { SqliteImageStore } from './images.js';
import { SqliteMatchStore } from './matches.js';
import { SqliteMessageStore } from './messages.js';
import { SqliteProfileStore } from './profiles.js';
import { SqliteBlockStore, SqliteReportStore } from './safety.js';
import { configure, migrate } from './schema.js';
import { SqliteSwipeStore } from './swipes.js';
import { WalSync } from './wal-sync.js';

export { SCHEMA_VERSION } from './schema.js';
export { haversineKm, boundingBox, EARTH_RADIUS_KM } from './geo.js';
export { WalSync } from './wal-sync.js';

export interface SqliteOptions {
  /**
   * fsync the WAL before a write resolves (default true). Turning it off keeps
   * crash safety (kill -9) but not power-loss durability; for tests and benches.
   */
  fsync?: boolean;
  /** Largest message group commit (default 512). */
  maxBatch?: number;
  /** How long a write waits for a lock held by another connection (default 2000 ms; it blocks the event loop). */
  busyTimeoutMs?: number;
}

/** Every store except blobs, over one connection. */
export type SqliteStores = Omit<Storage, 'blobs' | 'close'> & {
  db: Database.Database;
  sync: WalSync;
  messages: SqliteMessageStore;
  close(): Promise<void>;
};

export function openSqlite(file: string, opts: SqliteOptions = {}): SqliteStores {
  const db = new Database(file);
  let sync: WalSync;
  try {
    configure(db, { busyTimeoutMs: opts.busyTimeoutMs ?? 2000 });
    migrate(db);
    // The -wal file exists once the connection is in WAL mode; it persists while the connection is open.
    sync = new WalSync(`${db.name}-wal`, opts.fsync ?? true);
  } catch (err) {
    db.close();
    throw err;
  }
  const ctx: SqliteContext = { db, sync };
  const messages = new SqliteMessageStore(ctx, opts.maxBatch ?? 512);
  let closing: Promise<void> | undefined;
  return {
    db,
    sync,
    accounts: new SqliteAccountStore(ctx),
    revocations: new SqliteRevocationStore(ctx),
    profiles: new SqliteProfileStore(ctx),
    images: new SqliteImageStore(ctx),
    swipes: new SqliteSwipeStore(ctx),
    matches: new SqliteMatchStore(ctx),
    blocks: new SqliteBlockStore(ctx),
    reports: new SqliteReportStore(ctx),
    messages,
    close() {
      closing ??= (async () => {
        await messages.close();
        await sync.close();
        db.close();
      })();
      return closing;
    },
  };
}
