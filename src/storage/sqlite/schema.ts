/**
 * The embedded schema. Tables are designed the way the Cassandra keyspace is:
 * query-first (one table per query, denormalised where a query needs it),
 * time-ordered UUIDv7 ids as clustering keys, and bounded partitions (chat
 * history split by month bucket). A Cassandra backend is a translation of this
 * file: every PRIMARY KEY below reads as (partition key, clustering columns...),
 * and every multi-table write done here in one SQLite transaction is a logged
 * batch (or, where marked, a lightweight transaction) there.
 *
 * SQLite table                  | Cassandra table                 | partition key / clustering
 * ------------------------------|---------------------------------|------------------------------------------
 * schema_version                | (schema migrations table)       | -
 * accounts_by_username          | accounts_by_username            | (username) — INSERT ... IF NOT EXISTS (LWT)
 * accounts                      | accounts                        | (user_id)
 * revoked_tokens                | revoked_tokens                  | (token_id), written USING TTL until expiry
 * profiles                      | profiles                        | (user_id)
 *   + index profiles_by_lat_lon | profiles_by_geocell             | (geohash cell), user_id — queried per cell
 * images_by_profile             | images_by_profile               | (profile_id), image_id
 * images                        | images                          | (image_id) -> profile_id
 * swipes                        | swipes                          | (swiper_id), target_id — INSERT IF NOT EXISTS
 * likes_received                | likes_received                  | (target_id), swiper_id
 * matches_by_pair               | matches_by_pair                 | (user_a, user_b) — INSERT IF NOT EXISTS (LWT)
 * matches                       | matches                         | (match_id)
 * matches_by_user               | matches_by_user                 | (user_id), match_id DESC
 * blocks                        | blocks                          | (blocker_id), blocked_id
 * blocked_by                    | blocked_by                      | (blocked_id), blocker_id
 * reports_by_reported           | reports_by_reported             | (reported_id), report_id
 * messages_by_conversation      | messages_by_conversation        | (match_id, bucket), message_id DESC
 * pending_by_recipient          | pending_by_recipient            | (recipient_id), message_id
 * read_markers                  | read_markers                    | (match_id, user_id)
 *
 * Conventions: ids are TEXT (canonical UUID strings sort by time), times are
 * INTEGER epoch ms, booleans INTEGER 0/1. Tables keyed by a composite primary
 * key are WITHOUT ROWID so the row lives in the key's b-tree, like a Cassandra
 * partition's clustering order. The only JSON column is profiles.preferences
 * (read whole, never queried); the preference fields the candidate search
 * filters on are also kept as plain columns.
 */
import type Database from 'better-sqlite3';

export const SCHEMA_VERSION = 1;

const DDL = `
CREATE TABLE IF NOT EXISTS schema_version (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  version    INTEGER NOT NULL,
  applied_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS accounts_by_username (
  username TEXT PRIMARY KEY,            -- lowercase
  user_id  TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS accounts (
  user_id              TEXT PRIMARY KEY,
  username             TEXT NOT NULL,   -- lowercase
  password_hash        TEXT NOT NULL,
  scram1_salt          TEXT NOT NULL,
  scram1_iterations    INTEGER NOT NULL,
  scram1_stored_key    TEXT NOT NULL,
  scram1_server_key    TEXT NOT NULL,
  scram256_salt        TEXT NOT NULL,
  scram256_iterations  INTEGER NOT NULL,
  scram256_stored_key  TEXT NOT NULL,
  scram256_server_key  TEXT NOT NULL,
  created_at           INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS revoked_tokens (
  token_id   TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS revoked_tokens_by_expiry ON revoked_tokens (expires_at);

CREATE TABLE IF NOT EXISTS profiles (
  user_id              TEXT PRIMARY KEY,
  display_name         TEXT NOT NULL,
  bio                  TEXT NOT NULL,
  birth_date           TEXT NOT NULL,   -- YYYY-MM-DD, sorts as a date
  gender               TEXT NOT NULL,
  preferences          TEXT NOT NULL,   -- JSON Preferences, as given
  pref_age_min         INTEGER NOT NULL,
  pref_age_max         INTEGER NOT NULL,
  pref_genders_mask    INTEGER NOT NULL, -- bit per gender, see GENDER_BIT
  pref_max_distance_km REAL NOT NULL,
  lat                  REAL,            -- NULL when the user shared no location
  lon                  REAL,
  show_presence        INTEGER NOT NULL,
  last_active_at       INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS profiles_by_lat_lon ON profiles (lat, lon) WHERE lat IS NOT NULL;

CREATE TABLE IF NOT EXISTS images_by_profile (
  profile_id   TEXT NOT NULL,
  image_id     TEXT NOT NULL,
  position     INTEGER NOT NULL,
  url          TEXT NOT NULL,
  content_type TEXT NOT NULL,
  width        INTEGER NOT NULL,
  height       INTEGER NOT NULL,
  bytes        INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (profile_id, image_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS images (
  image_id   TEXT PRIMARY KEY,
  profile_id TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS swipes (
  swiper_id TEXT NOT NULL,
  target_id TEXT NOT NULL,
  kind      TEXT NOT NULL,
  swiped_at INTEGER NOT NULL,
  PRIMARY KEY (swiper_id, target_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS likes_received (
  target_id TEXT NOT NULL,
  swiper_id TEXT NOT NULL,
  kind      TEXT NOT NULL,              -- like | superlike
  at        INTEGER NOT NULL,
  PRIMARY KEY (target_id, swiper_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS matches_by_pair (
  user_a   TEXT NOT NULL,               -- user_a < user_b
  user_b   TEXT NOT NULL,
  match_id TEXT NOT NULL,
  PRIMARY KEY (user_a, user_b)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS matches (
  match_id     TEXT PRIMARY KEY,
  user_a       TEXT NOT NULL,
  user_b       TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  ended_at     INTEGER,
  ended_by     TEXT,
  first_bucket INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS matches_by_user (
  user_id  TEXT NOT NULL,
  match_id TEXT NOT NULL,
  other_id TEXT NOT NULL,
  PRIMARY KEY (user_id, match_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS blocks (
  blocker_id TEXT NOT NULL,
  blocked_id TEXT NOT NULL,
  at         INTEGER NOT NULL,
  PRIMARY KEY (blocker_id, blocked_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS blocked_by (
  blocked_id TEXT NOT NULL,
  blocker_id TEXT NOT NULL,
  at         INTEGER NOT NULL,
  PRIMARY KEY (blocked_id, blocker_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS reports_by_reported (
  reported_id TEXT NOT NULL,
  report_id   TEXT NOT NULL,
  reporter_id TEXT NOT NULL,
  reason      TEXT NOT NULL,
  details     TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  PRIMARY KEY (reported_id, report_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS messages_by_conversation (
  match_id     TEXT NOT NULL,
  bucket       INTEGER NOT NULL,        -- monthBucket(sent_at), e.g. 202611
  message_id   TEXT NOT NULL,
  sender_id    TEXT NOT NULL,
  recipient_id TEXT NOT NULL,
  body         TEXT NOT NULL,
  sent_at      INTEGER NOT NULL,
  PRIMARY KEY (match_id, bucket, message_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS pending_by_recipient (
  recipient_id TEXT NOT NULL,
  message_id   TEXT NOT NULL,
  match_id     TEXT NOT NULL,
  bucket       INTEGER NOT NULL,
  PRIMARY KEY (recipient_id, message_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS read_markers (
  match_id   TEXT NOT NULL,
  user_id    TEXT NOT NULL,
  message_id TEXT NOT NULL,
  PRIMARY KEY (match_id, user_id)
) WITHOUT ROWID;
`;

/**
 * Connection settings. WAL lets readers run beside the writer; synchronous=NORMAL
 * means a commit appends to the WAL without fsync (safe against a process crash,
 * since the data is in the OS page cache); power-loss durability comes from the
 * asynchronous WAL fsync in wal-sync.ts, which every write awaits before resolving.
 */
export function configure(db: Database.Database, opts: { busyTimeoutMs: number }): void {
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (String(mode).toLowerCase() !== 'wal') {
    throw new Error(`could not switch ${db.name} to WAL mode (got ${String(mode)})`);
  }
  db.pragma('synchronous = NORMAL');
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs))}`);
  db.pragma('foreign_keys = OFF');
  db.pragma('temp_store = MEMORY');
  db.pragma('cache_size = -32000'); // 32 MiB page cache
  // Truncate the WAL back to 64 MiB after a checkpoint instead of letting it keep its peak size.
  db.pragma('journal_size_limit = 67108864');
}

/** Creates every table idempotently and records the schema version. */
export function migrate(db: Database.Database): void {
  db.transaction(() => {
    db.exec(DDL);
    const row = db.prepare('SELECT version FROM schema_version WHERE id = 1').get() as { version: number } | undefined;
    if (row === undefined) {
      db.prepare('INSERT INTO schema_version (id, version, applied_at) VALUES (1, ?, ?)').run(SCHEMA_VERSION, Date.now());
    } else if (row.version > SCHEMA_VERSION) {
      throw new Error(`database schema version ${row.version} is newer than this server (${SCHEMA_VERSION})`);
    }
    // Future migrations: `if (row.version < 2) { ...; UPDATE schema_version ... }`.
  }).immediate();
}
