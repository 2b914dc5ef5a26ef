/** The order store contract on the embedded backend (SQLite file of its own), plus persistence across reopen. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { SqliteOrderStore } from '../../src/storage/sqlite/orders.js';
import { ordersContract, sampleOrder } from './orders-contract.js';

const dirs: string[] = [];
t.teardown(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function dir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'kindred-orders-'));
  dirs.push(d);
  return d;
}

ordersContract(t, 'sqlite', async () => SqliteOrderStore.open(dir(), { fsync: false }));

t.test('orders and their transitions survive a reopen', async (t) => {
  const d = dir();
  const a = SqliteOrderStore.open(d);
  const { order } = await a.create(sampleOrder('c1', 'k'));
  await a.transition(order.orderId, 1, { to: 'stock_reserved', at: Date.now() });
  await a.close();
  const b = SqliteOrderStore.open(d);
  t.teardown(() => b.close());
  t.equal((await b.get(order.orderId))?.state, 'stock_reserved');
  t.equal((await b.transitions(order.orderId)).length, 2);
  t.ok((await b.listPending(10)).some((o) => o.orderId === order.orderId));
});
