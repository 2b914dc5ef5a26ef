/**
 * The Cassandra keyspace: the translation of src/storage/sqlite/schema.ts, one table per
 * query, plus what Cassandra needs that SQLite does not (a bucket index for history,
 * geo-cell partitions for the deck, TTLs, shards for the revocation list).
 *
 * table                      | partition key / clustering          | written by
 * ---------------------------|-------------------------------------|--------------------------------------------
 * schema_version             | (id)                                | migrate(): INSERT IF NOT EXISTS, then LWT bump
 * accounts_by_username       | (username) — the whole account      | INSERT IF NOT EXISTS (LWT): the uniqueness check
 * accounts                   | (user_id)                           | after the username claim won
 * revoked_tokens             | (shard), token_id                   | USING TTL until expiry, TIMESTAMP = expiry (later expiry wins)
 * profiles                   | (user_id)                           | last_active_at written USING TIMESTAMP = the time (a max register)
 * profiles_by_geocell        | (lat_row, lon_col), user_id         | with the profile in one logged batch
 * images_by_profile          | (profile_id), image_id; static version | conditional batches IF version = ? (LWT)
 * images                     | (image_id) -> profile_id            | after the image row
 * swipes                     | (swiper_id), target_id              | INSERT IF NOT EXISTS USING TTL (LWT), TWCS
 * likes_received             | (target_id), swiper_id              | USING TTL, TWCS
 * matches_by_pair            | (user_a, user_b)                    | INSERT IF NOT EXISTS (LWT): exactly one match a pair
 * matches                    | (match_id)                          | the winner; end() is UPDATE ... IF ended_at = null
 * matches_by_user            | (user_id), match_id DESC            | the winner, both users, with the match row
 * blocks / blocked_by        | (blocker_id), blocked_id / reverse  | one logged batch
 * reports_by_reported        | (reported_id), report_id            |
 * messages_by_conversation   | (match_id, bucket), message_id DESC | append: one logged batch with the two below
 * conversation_buckets       | (match_id), bucket DESC             | append (once per bucket and process)
 * pending_by_recipient       | (recipient_id), message_id          | append, USING TIMESTAMP = the id's time; deleted on delivery
 * read_markers               | (match_id), user_id                 | USING TIMESTAMP constant: the greatest id wins
 *
 * Ids are `text` (canonical UUIDv7 strings, which sort by time), exactly as the embedded
 * backend stores them: the `uuid` type would save ~20 bytes a row but would refuse the
 * non-UUID ids some callers and tests use, and `timeuuid` needs version 1 UUIDs.
 * Times are bigint epoch ms; history buckets are int months (202611).
 *
 * Tables get deterministic ids (a name-based UUID of keyspace.table), so two app nodes
 * racing to create the same table on a new cluster create the same table rather than two
 * conflicting ones (the classic CREATE TABLE IF NOT EXISTS race of Cassandra before 5.1).
 */
import { createHash } from 'node:crypto';
import type { Session } from './client.js';
import { toNum } from './client.js';

export const CASSANDRA_SCHEMA_VERSION = 1;

/** Keyspace names: letters, digits, underscore, up to 48, starting with a letter (Cassandra's rule). */
const KEYSPACE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,47}$/;

export type Replication = Record<string, string | number>;

const SWIPE_COMPACTION =
  "compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 7} AND gc_grace_seconds = 10800";

/** Table name -> CQL body (everything after the name). */
const TABLES: Array<[string, string]> = [
  ['accounts_by_username', `(
    username text PRIMARY KEY,
    user_id text, password_hash text,
    scram1_salt text, scram1_iterations int, scram1_stored_key text, scram1_server_key text,
    scram256_salt text, scram256_iterations int, scram256_stored_key text, scram256_server_key text,
    created_at bigint)`],
  ['accounts', `(
    user_id text PRIMARY KEY,
    username text, password_hash text,
    scram1_salt text, scram1_iterations int, scram1_stored_key text, scram1_server_key text,
    scram256_salt text, scram256_iterations int, scram256_stored_key text, scram256_server_key text,
    created_at bigint)`],
  ['revoked_tokens', `(
    shard int, token_id text, expires_at bigint,
    PRIMARY KEY ((shard), token_id)
  ) WITH gc_grace_seconds = 10800`],
  ['profiles', `(
    user_id text PRIMARY KEY,
    display_name text, bio text, birth_date text, gender text,
    preferences text,
    lat double, lon double,
    show_presence boolean, last_active_at bigint, updated_at bigint)`],
  ['profiles_by_geocell', `(
    lat_row int, lon_col int, user_id text,
    lat double, lon double, gender text, birth_date text,
    pref_age_min int, pref_age_max int, pref_genders set<text>, pref_max_distance_km double,
    PRIMARY KEY ((lat_row, lon_col), user_id))`],
  ['images_by_profile', `(
    profile_id text, image_id text,
    version int STATIC,
    position int, url text, content_type text, width int, height int, bytes int, created_at bigint,
    PRIMARY KEY ((profile_id), image_id))`],
  ['images', `(image_id text PRIMARY KEY, profile_id text)`],
  ['swipes', `(
    swiper_id text, target_id text, kind text, swiped_at bigint,
    PRIMARY KEY ((swiper_id), target_id)
  ) WITH ${SWIPE_COMPACTION}`],
  ['likes_received', `(
    target_id text, swiper_id text, kind text, at bigint,
    PRIMARY KEY ((target_id), swiper_id)
  ) WITH ${SWIPE_COMPACTION}`],
  ['matches_by_pair', `(
    user_a text, user_b text, match_id text, created_at bigint, first_bucket int,
    PRIMARY KEY ((user_a, user_b)))`],
  ['matches', `(
    match_id text PRIMARY KEY,
    user_a text, user_b text, created_at bigint, ended_at bigint, ended_by text, first_bucket int)`],
  ['matches_by_user', `(
    user_id text, match_id text, other_id text,
    PRIMARY KEY ((user_id), match_id)
  ) WITH CLUSTERING ORDER BY (match_id DESC)`],
  ['blocks', `(
    blocker_id text, blocked_id text, at bigint,
    PRIMARY KEY ((blocker_id), blocked_id))`],
  ['blocked_by', `(
    blocked_id text, blocker_id text, at bigint,
    PRIMARY KEY ((blocked_id), blocker_id))`],
  ['reports_by_reported', `(
    reported_id text, report_id text, reporter_id text, reason text, details text, created_at bigint,
    PRIMARY KEY ((reported_id), report_id))`],
  ['messages_by_conversation', `(
    match_id text, bucket int, message_id text,
    sender_id text, recipient_id text, body text, sent_at bigint,
    PRIMARY KEY ((match_id, bucket), message_id)
  ) WITH CLUSTERING ORDER BY (message_id DESC)`],
  ['conversation_buckets', `(
    match_id text, bucket int,
    PRIMARY KEY ((match_id), bucket)
  ) WITH CLUSTERING ORDER BY (bucket DESC)`],
  // A queue: rows are deleted on delivery, so keep tombstones briefly (hints cover 3 h).
  ['pending_by_recipient', `(
    recipient_id text, message_id text,
    match_id text, bucket int, sender_id text, body text, sent_at bigint,
    PRIMARY KEY ((recipient_id), message_id)
  ) WITH gc_grace_seconds = 10800`],
  ['read_markers', `(
    match_id text, user_id text, message_id text,
    PRIMARY KEY ((match_id), user_id))`],
];

export function assertKeyspaceName(keyspace: string): void {
  if (!KEYSPACE_NAME.test(keyspace)) {
    throw new Error(`invalid keyspace name ${JSON.stringify(keyspace)}: letters, digits and _ only, starting with a letter, at most 48`);
  }
}

function replicationCql(replication: Replication): string {
  const entries = Object.entries(replication).map(([k, v]) => {
    if (!/^[A-Za-z0-9_.]+$/.test(k) || !/^[A-Za-z0-9_.]+$/.test(String(v))) {
      throw new Error(`invalid replication option ${k}: ${String(v)}`);
    }
    return `'${k}': '${String(v)}'`;
  });
  return `{${entries.join(', ')}}`;
}

/** A name-based (version 5 style) UUID, so every node derives the same table id. */
export function tableId(keyspace: string, table: string): string {
  const h = createHash('sha1').update(`kindred:${keyspace}.${table}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Creates the keyspace and every table idempotently and records the schema version.
 * Safe to run from every app node at every start: existing tables are left alone.
 */
export async function migrate(session: Session, keyspace: string, replication: Replication): Promise<void> {
  assertKeyspaceName(keyspace);
  // IF NOT EXISTS makes every statement safe to retry; schema changes wait for agreement, so allow them longer.
  const ddlOpts = { unprepared: true, idempotent: true, readTimeoutMs: 30_000 } as const;
  await session.execute(
    `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = ${replicationCql(replication)} AND durable_writes = true`,
    [],
    ddlOpts,
  );
  const ddl = (table: string, body: string) => {
    const withId = /\)\s*WITH\s/i.test(body) ? `${body} AND ID = '${tableId(keyspace, table)}'` : `${body} WITH ID = '${tableId(keyspace, table)}'`;
    return `CREATE TABLE IF NOT EXISTS ${keyspace}.${table} ${withId}`;
  };
  await session.execute(ddl('schema_version', '(id int PRIMARY KEY, version int, applied_at bigint)'), [], ddlOpts);
  const current = await session.execute(`SELECT version FROM ${keyspace}.schema_version WHERE id = 1`, [], { serial: true });
  const found = current.first() ? toNum(current.first().version) : undefined;
  if (found !== undefined && found > CASSANDRA_SCHEMA_VERSION) {
    throw new Error(`keyspace ${keyspace} has schema version ${found}, newer than this server (${CASSANDRA_SCHEMA_VERSION})`);
  }
  for (const [table, body] of TABLES) await session.execute(ddl(table, body), [], ddlOpts);
  if (found === undefined) {
    await session.execute(`INSERT INTO ${keyspace}.schema_version (id, version, applied_at) VALUES (1, ?, ?) IF NOT EXISTS`, [
      CASSANDRA_SCHEMA_VERSION,
      Date.now(),
    ]);
  }
  // Future migrations: `if (found < 2) { ALTER ...; UPDATE schema_version SET version = 2 ... IF version = 1 }`.
}
