/**
 * cluster.cassandra.replicationFactor: what production manifests set (3) so that Kindred
 * creates its keyspace with three copies per data center instead of the dev default of one.
 */
import t from 'tap';
import { loadConfig } from '../../src/config.js';

t.test('replication factor: default 1, from the env and the flag', async (t) => {
  t.equal(loadConfig([], {}).cluster.cassandra.replicationFactor, 1);
  t.equal(loadConfig([], { KINDRED_CASSANDRA_REPLICATION_FACTOR: '3' }).cluster.cassandra.replicationFactor, 3);
  const both = loadConfig(['--cassandra-replication-factor', '5'], { KINDRED_CASSANDRA_REPLICATION_FACTOR: '3' });
  t.equal(both.cluster.cassandra.replicationFactor, 5, 'the flag beats the env');
  t.equal(both.cluster.cassandra.keyspace, 'kindred', 'siblings keep their defaults');
  t.throws(() => loadConfig([], { KINDRED_CASSANDRA_REPLICATION_FACTOR: 'three' }), /replicationFactor/);
});
