/**
 * The order store contract on Cassandra (a real Cassandra 5.0 started for this file), each
 * run in a fresh `<base>_orders` keyspace, plus reopening the keyspace.
 */
import t from 'tap';
import { CassandraOrderStore } from '../../src/storage/cassandra/orders.js';
import { startCassandra } from '../helpers/cassandra.js';
import { ordersContract, sampleOrder } from './orders-contract.js';

t.setTimeout(400_000);
const node = await startCassandra(t);
t.comment(`Cassandra accepting CQL on ${node.contactPoint} after ${node.startSeconds.toFixed(1)} s`);

const opts = (keyspace: string) => ({ contactPoints: [node.contactPoint], localDataCenter: 'datacenter1', keyspace });

ordersContract(t, 'cassandra', () => CassandraOrderStore.open(opts('korders_t1')));

t.test('reopening the keyspace migrates idempotently and keeps orders and their log', async (t) => {
  const first = await CassandraOrderStore.open(opts('korders_reopen'));
  const { order } = await first.create(sampleOrder('c1', 'k'));
  await first.transition(order.orderId, 1, { to: 'stock_reserved', at: Date.now() });
  await first.close();
  const second = await CassandraOrderStore.open(opts('korders_reopen'));
  try {
    t.equal((await second.get(order.orderId))?.state, 'stock_reserved');
    t.same((await second.transitions(order.orderId)).map((x) => x.to), ['created', 'stock_reserved']);
    t.ok((await second.listPending(100)).some((o) => o.orderId === order.orderId), 'still pending after a reopen');
  } finally {
    await second.close();
  }
});
