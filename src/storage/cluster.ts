/**
 * Cluster storage: Cassandra for every table (src/storage/cassandra/) and a BlobStore
 * given by the caller for image and ebook bytes (S3 in a cluster; the local file store
 * in tests). Many app nodes share one keyspace; each opens its own driver session.
 *
 *   const storage = await openCassandraStorage({
 *     contactPoints: ['10.0.0.1:9042', '10.0.0.2:9042'], localDataCenter: 'dc1',
 *     keyspace: 'kindred', replication: { class: 'NetworkTopologyStrategy', dc1: 3 },
 *     blobs,
 *   });
 *
 * The server it expects (durable commitlog, timeouts) is described in deploy/cassandra/.
 */
export { openCassandraStorage, DEFAULT_SWIPE_TTL_SECONDS, CASSANDRA_SCHEMA_VERSION, type CassandraStorageOptions } from './cassandra/index.js';
