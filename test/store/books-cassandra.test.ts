/**
 * The BookStore contract on Cassandra (a real Cassandra 5.0 started for this file), each
 * subtest in a fresh base keyspace, so in a fresh `<base>_books` keyspace.
 */
import t from 'tap';
import { CassandraBookStore } from '../../src/storage/cassandra/store-books.js';
import { startCassandra } from '../helpers/cassandra.js';
import { CassandraCustomerStore } from '../../src/storage/cassandra/store-customers.js';
import { booksContract } from './books-contract.js';
import { customersContract } from './customers-contract.js';

t.setTimeout(400_000);
const node = await startCassandra(t);
t.comment(`Cassandra accepting CQL on ${node.contactPoint} after ${node.startSeconds.toFixed(1)} s`);

let n = 0;
booksContract(t, 'cassandra', () =>
  CassandraBookStore.open({ contactPoints: [node.contactPoint], localDataCenter: 'datacenter1', keyspace: `kstore_t${++n}` }),
);

customersContract(t, 'cassandra', () =>
  CassandraCustomerStore.open({ contactPoints: [node.contactPoint], localDataCenter: 'datacenter1', keyspace: `kstore_t${++n}` }),
);

t.test('reopening the keyspace migrates idempotently and keeps the data', async (t) => {
  const opts = { contactPoints: [node.contactPoint], localDataCenter: 'datacenter1', keyspace: 'kstore_reopen' };
  const { record } = await import('./books-contract.js');
  const first = await CassandraBookStore.open(opts);
  const r = record();
  await first.create(r, 4);
  await first.close();
  const second = await CassandraBookStore.open(opts);
  try {
    t.same(await second.get(r.bookId), { record: r, stock: 4 }, 'the book survives a reopen');
  } finally {
    await second.close();
  }
});
