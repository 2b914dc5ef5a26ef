/**
 * What settling orders costs Cassandra, without the rest of the system: the store calls the
 * Orders service makes per order (checkout's key lookup and create, a one-book reservation for
 * print orders, three transitions, commit, fulfilment), driven straight against the Orders and
 * Books stores on a running Cassandra, `--concurrency` orders at a time, half ebook, half print.
 * Prints orders/s and Cassandra's CPU seconds per order (from /proc of --pid), which on a shared
 * machine is a steadier figure than latency.
 *
 *   node --import tsx bench/orders-cassandra-cost.ts --cql 127.0.0.1:9042 --pid <cassandra pid> [--orders 2000] [--concurrency 32]
 */
import { newId } from '../src/ids.js';
import { CassandraOrderStore } from '../src/storage/cassandra/orders.js';
import { CassandraBookStore } from '../src/storage/cassandra/store-books.js';
import type { BookRecord } from '../src/store/books/storage.js';
import type { OrderRecord } from '../src/store/orders/storage.js';
import { procSnapshot } from './lib/proc.js';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

const cql = arg('cql');
const pid = Number(arg('pid'));
const total = Number(arg('orders', '2000'));
const concurrency = Number(arg('concurrency', '32'));
const books = Number(arg('books', '200'));
const keyspace = arg('keyspace', `kcost${Date.now() % 100000}`);
const opts = { contactPoints: [cql], localDataCenter: 'datacenter1', keyspace };

const orderStore = await CassandraOrderStore.open(opts);
const bookStore = await CassandraBookStore.open(opts);
const now = Date.now();
const bookIds: string[] = [];
for (let i = 0; i < books; i++) {
  const r: BookRecord = {
    bookId: newId(),
    title: `Book ${i}`,
    authors: ['A. Author'],
    isbn: `979${String(i).padStart(9, '0')}${(i % 10).toString()}`,
    description: '',
    priceCents: 1000,
    currency: 'EUR',
    formats: ['ebook', 'print'],
    coverImageId: null,
    ebook: null,
    createdAt: now,
    updatedAt: now,
  };
  await bookStore.create(r, 10_000_000);
  bookIds.push(r.bookId);
}

async function settleOne(n: number): Promise<void> {
  const customerId = newId();
  const key = `cost-${n}`;
  const bookId = bookIds[n % bookIds.length]!;
  const format = n % 2 === 0 ? 'ebook' : 'print';
  if (await orderStore.byIdempotencyKey(customerId, key)) throw new Error('key reused');
  const t = Date.now();
  const draft: OrderRecord = {
    orderId: newId(), customerId, idempotencyKey: key, requestHash: `h${n}`, state: 'created', version: 1,
    lines: [{ bookId, format, quantity: 1, unitPriceCents: 1000, title: 'A Book' }], currency: 'EUR', subtotalCents: 1000, taxCents: 100, totalCents: 1100,
    shippingAddress: format === 'print' ? { name: 'A', line1: '1 Road', city: 'Town', postalCode: '1', country: 'DE' } : null,
    reason: null, fulfilment: null, pending: true, createdAt: t, updatedAt: t,
  };
  const { order } = await orderStore.create(draft);
  if (format === 'print' && !(await bookStore.reserve(order.orderId, [{ bookId, quantity: 1 }])).ok) throw new Error('not reserved');
  const reserved = await orderStore.transition(order.orderId, 1, { to: 'stock_reserved', at: Date.now() }, order);
  const paid = await orderStore.transition(order.orderId, 2, { to: 'paid', at: Date.now() }, reserved!);
  if (format === 'print') await bookStore.commit(order.orderId);
  const at = paid!.updatedAt;
  const done = await orderStore.transition(
    order.orderId,
    3,
    format === 'ebook'
      ? { to: 'fulfilled', at: Date.now(), pending: false, downloads: [{ tokenId: `t-${order.orderId}`, orderId: order.orderId, customerId, bookId, expiresAt: at + 86_400_000, maxUses: 5, uses: 0 }] }
      : { to: 'fulfilled', at: Date.now(), pending: false, shipment: { trackingId: `KT-${order.orderId}`, carrier: 'kindred-post', createdAt: at, orderId: order.orderId, address: order.shippingAddress! } },
    paid!,
  );
  if (done?.state !== 'fulfilled') throw new Error('not fulfilled');
}

async function run(count: number, offset: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await settleOne(offset + next++);
    }),
  );
  return (performance.now() - t0) / 1000;
}

await run(Math.min(200, total), 1_000_000); // warm-up: prepared statements, JIT on both sides
const cpu0 = procSnapshot(pid).cpuSeconds;
const self0 = process.cpuUsage();
const seconds = await run(total, 0);
const cassandraCpu = procSnapshot(pid).cpuSeconds - cpu0;
const self = process.cpuUsage(self0);
console.log(
  JSON.stringify({
    orders: total,
    concurrency,
    seconds: Math.round(seconds * 10) / 10,
    ordersPerSecond: Math.round((total / seconds) * 10) / 10,
    cassandraCpuMsPerOrder: Math.round((cassandraCpu / total) * 1000 * 100) / 100,
    clientCpuMsPerOrder: Math.round(((self.user + self.system) / 1000 / total) * 100) / 100,
  }),
);
await orderStore.close();
await bookStore.close();
