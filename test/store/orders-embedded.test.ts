/** The order store contract on the embedded backend (SQLite file of its own), plus persistence across reopen. */
import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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

t.test('a version 1 file (the order JSON rewritten per transition) is migrated: reason and fulfilment kept, marked version 2', async (t) => {
  const d = dir();
  const file = path.join(d, 'store', 'orders.db');
  mkdirSync(path.dirname(file), { recursive: true });
  const old = new Database(file);
  old.pragma('journal_mode = WAL');
  old.exec(`CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, applied_at INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (1, 1, 0);
    CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, state TEXT NOT NULL, version INTEGER NOT NULL,
      pending INTEGER NOT NULL, doc TEXT NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;`);
  const shipment = { trackingId: 'KP1', carrier: 'kindred-post', createdAt: 5 };
  const failed = sampleOrder('c1', 'k1', { state: 'failed', version: 3, pending: false, reason: 'out_of_stock' });
  const done = sampleOrder('c1', 'k2', { state: 'fulfilled', version: 4, pending: false, fulfilment: { shipment } });
  for (const o of [failed, done]) {
    old.prepare('INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)').run(o.orderId, o.customerId, o.state, o.version, o.pending ? 1 : 0, JSON.stringify(o), o.updatedAt);
  }
  old.close();
  const store = SqliteOrderStore.open(d, { fsync: false });
  t.teardown(() => store.close());
  const a = await store.get(failed.orderId);
  const b = await store.get(done.orderId);
  t.equal(a?.reason, 'out_of_stock');
  t.equal(a?.fulfilment, null);
  t.same(b?.fulfilment, { shipment });
  t.equal(b?.reason, null);
  // a transition after the migration keeps the fulfilment and sets its reason
  const refunded = await store.transition(done.orderId, 4, { to: 'refunded', at: Date.now(), reason: 'refunded', pending: false });
  t.same((await store.get(done.orderId))?.fulfilment, { shipment });
  t.equal((await store.get(done.orderId))?.reason, 'refunded');
  t.equal(refunded?.version, 5);
  const check = new Database(file, { readonly: true });
  t.teardown(() => check.close());
  t.equal(check.prepare('SELECT version FROM schema_version').pluck().get(), 2, 'marked version 2: an older server refuses the file');
});

t.test('listPending with updatedBefore leaves out orders updated since (the sweeper skips young orders)', async (t) => {
  const store = SqliteOrderStore.open(dir(), { fsync: false });
  t.teardown(() => store.close());
  const old = await store.create(sampleOrder('c1', 'old', { createdAt: 1000, updatedAt: 1000 }));
  const young = await store.create(sampleOrder('c1', 'young', { createdAt: 5000, updatedAt: 5000 }));
  const ids = async (before?: number) => (await store.listPending(100, before)).map((o) => o.orderId);
  t.same(await ids(3000), [old.order.orderId]);
  t.same(await ids(), [old.order.orderId, young.order.orderId], 'without it, all pending, oldest first');
});
