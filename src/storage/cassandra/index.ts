import type { BlobStore, Storage } from '../types.js';
import { CassandraAccountStore, CassandraRevocationStore } from './accounts.js';
import { Session } from './client.js';
import { GeoGrid } from './geocell.js';
import { CassandraImageStore } from './images.js';
import { CassandraMatchStore } from './matches.js';
import { CassandraMessageStore } from './messages.js';
import { CassandraProfileStore } from './profiles.js';
import { CassandraBlockStore, CassandraReportStore } from './safety.js';
import { assertKeyspaceName, migrate, type Replication } from './schema.js';
import { CassandraSwipeStore } from './swipes.js';

export { CASSANDRA_SCHEMA_VERSION, tableId } from './schema.js';
export { cassandraError } from './client.js';
export { GeoGrid } from './geocell.js';

export interface CassandraStorageOptions {
  /** `host` or `host:port` (default port 9042). */
  contactPoints: string[];
  /** The data center this process talks to (`datacenter1` with SimpleSnitch). */
  localDataCenter: string;
  keyspace: string;
  /**
   * Keyspace replication, used only when the keyspace is created. Default
   * `{ class: 'NetworkTopologyStrategy', <localDataCenter>: 1 }`: fine for one dev node;
   * a production cluster wants 3 per data center.
   */
  replication?: Replication;
  /** Image and ebook bytes live elsewhere (S3 in a cluster, files in tests). */
  blobs: BlobStore;
  /** TTL of swipes and likes_received rows (default 90 days; 0 = keep forever). */
  swipeTtlSeconds?: number;
  /** Geo cell size in degrees of latitude for the deck query (default 0.5, about 55 km; must divide 180). */
  geoCellDegrees?: number;
  /** Client-side request timeout (default 5000 ms). */
  readTimeoutMs?: number;
  /** TCP connect timeout (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Requests in flight at once from this process (default 512); the rest wait in a local queue. */
  maxConcurrentRequests?: number;
  /** How long a request may wait in that queue before failing with UNAVAILABLE (default 2 x readTimeoutMs). */
  queueTimeoutMs?: number;
  /** Run the idempotent schema migrations at open (default true). */
  migrate?: boolean;
}

export const DEFAULT_SWIPE_TTL_SECONDS = 90 * 24 * 3600;

/**
 * Connects, applies the schema migrations and returns the Cassandra stores plus the given
 * blob store. An unreachable cluster rejects with KindredError('UNAVAILABLE') after the
 * connect timeout. close() waits for requests in flight and closes the connections (it does
 * not close `blobs`).
 */
export async function openCassandraStorage(opts: CassandraStorageOptions): Promise<Storage> {
  assertKeyspaceName(opts.keyspace);
  const ttl = opts.swipeTtlSeconds ?? DEFAULT_SWIPE_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 630_720_000) throw new Error('swipeTtlSeconds must be an integer in [0, 630720000]');
  const grid = new GeoGrid(opts.geoCellDegrees ?? 0.5);
  const session = new Session(opts);
  await session.connect();
  try {
    if (opts.migrate ?? true) {
      await migrate(session, opts.keyspace, opts.replication ?? { class: 'NetworkTopologyStrategy', [opts.localDataCenter]: 1 });
    }
  } catch (err) {
    await session.close().catch(() => {});
    throw err;
  }
  const ks = opts.keyspace;
  const messages = new CassandraMessageStore(session, ks);
  let closing: Promise<void> | undefined;
  return {
    accounts: new CassandraAccountStore(session, ks),
    revocations: new CassandraRevocationStore(session, ks),
    profiles: new CassandraProfileStore(session, ks, grid),
    images: new CassandraImageStore(session, ks),
    blobs: opts.blobs,
    swipes: new CassandraSwipeStore(session, ks, ttl),
    matches: new CassandraMatchStore(session, ks),
    blocks: new CassandraBlockStore(session, ks),
    reports: new CassandraReportStore(session, ks),
    messages,
    close() {
      closing ??= (async () => {
        messages.close();
        await session.close();
      })();
      return closing;
    },
  };
}
