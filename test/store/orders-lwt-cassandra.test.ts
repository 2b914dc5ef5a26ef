/**
 * What one order costs Cassandra in Paxos rounds (lightweight transactions and SERIAL reads,
 * the bulk of its CPU per order), counted at the session: the store calls the Orders service
 * makes to settle an ebook order and a one-line print order (checkout, reserve, three
 * transitions, commit, fulfilment), against a real Cassandra 5.0. The counts are asserted, so
 * a change that adds a Paxos round to the common path fails here, and printed for the report.
 */
import t from 'tap';
import { newId } from '../../src/ids.js';
import type { Session } from '../../src/storage/cassandra/client.js';
import { CassandraOrderStore } from '../../src/storage/cassandra/orders.js';
import { CassandraBookStore } from '../../src/storage/cassandra/store-books.js';
import type { OrderRecord } from '../../src/store/orders/storage.js';
import { startCassandra } from '../helpers/cassandra.js';
import { record } from './books-contract.js';
import { sampleOrder } from './orders-contract.js';

t.setTimeout(300_000);
const node = await startCassandra(t);
const opts = { contactPoints: [node.contactPoint], localDataCenter: 'datacenter1', keyspace: 'klwt' };

interface Counts {
  lwt: number;
  serialReads: number;
  plain: number;
}

/** Wraps the store's session: a statement with an IF condition is an LWT; a SERIAL read is a Paxos read. */
function count(store: object): Counts {
  const s = (store as unknown as { s: Session }).s;
  const c: Counts = { lwt: 0, serialReads: 0, plain: 0 };
  const isLwt = (q: string) => /\bIF\b/i.test(q);
  const execute = s.execute.bind(s);
  const batch = s.batch.bind(s);
  const all = s.all.bind(s);
  s.execute = (query, params, o = {}) => {
    if (isLwt(query)) c.lwt++;
    else if (o.serial) c.serialReads++;
    else c.plain++;
    return execute(query, params, o);
  };
  s.all = (query, params, o = {}) => {
    if (o.serial) c.serialReads++;
    else c.plain++;
    return all(query, params, o);
  };
  s.batch = (queries, o) => {
    if (queries.some((q) => isLwt(q.query))) c.lwt++;
    else c.plain++;
    return batch(queries, o);
  };
  return c;
}

const orders = await CassandraOrderStore.open(opts);
const books = await CassandraBookStore.open(opts);
t.teardown(async () => {
  await orders.close();
  await books.close();
});
const book = record({ formats: ['ebook', 'print'] });
await books.create(book, 1000);
const oc = count(orders);
const bc = count(books);

/** The store calls of one settlement, in the order the Orders service makes them (service.ts). */
async function settle(format: 'ebook' | 'print'): Promise<{ orders: Counts; books: Counts; final: OrderRecord }> {
  const before = { o: { ...oc }, b: { ...bc } };
  const customerId = newId();
  const key = newId();
  t.equal(await orders.byIdempotencyKey(customerId, key), undefined, 'a fresh key');
  const draft = sampleOrder(customerId, key, {
    lines: [{ bookId: book.bookId, format, quantity: 1, unitPriceCents: 1000, title: 'A Book' }],
    ...(format === 'ebook' ? { shippingAddress: null } : {}),
  });
  const { created, order } = await orders.create(draft);
  t.ok(created, 'created');
  if (format === 'print') t.same(await books.reserve(order.orderId, [{ bookId: book.bookId, quantity: 1 }]), { ok: true }, 'reserved');
  const reserved = await orders.transition(order.orderId, 1, { to: 'stock_reserved', at: Date.now() }, order);
  const paid = await orders.transition(order.orderId, 2, { to: 'paid', at: Date.now() }, reserved!);
  if (format === 'print') t.equal(await books.commit(order.orderId), true, 'committed');
  const at = paid!.updatedAt;
  const final = await orders.transition(
    order.orderId,
    3,
    {
      to: 'fulfilled',
      at: Date.now(),
      pending: false,
      ...(format === 'ebook'
        ? { downloads: [{ tokenId: `tok-${order.orderId}`, orderId: order.orderId, customerId, bookId: book.bookId, expiresAt: at + 60_000, maxUses: 2, uses: 0 }] }
        : { shipment: { trackingId: `KT-${order.orderId}`, carrier: 'kindred-post', createdAt: at, orderId: order.orderId, address: order.shippingAddress! } }),
    },
    paid!,
  );
  t.equal(final?.state, 'fulfilled', `${format} order fulfilled`);
  const diff = (a: Counts, b: Counts): Counts => ({ lwt: a.lwt - b.lwt, serialReads: a.serialReads - b.serialReads, plain: a.plain - b.plain });
  return { orders: diff(oc, before.o), books: diff(bc, before.b), final: final! };
}

t.test('an ebook order: one claim and three transitions', async (t) => {
  await settle('ebook'); // warm: prepared statements, the stock hint
  const { orders: o, books: b, final } = await settle('ebook');
  t.comment(`ebook order: orders ${JSON.stringify(o)}, books ${JSON.stringify(b)}`);
  t.equal(o.lwt + o.serialReads, 4, 'Paxos rounds on the Orders keyspace');
  t.equal(b.lwt + b.serialReads, 0, 'none on the Books keyspace');
  const token = `tok-${final.orderId}`;
  const uses = await Promise.all(Array.from({ length: 5 }, () => orders.useDownload(token, Date.now())));
  t.equal(uses.filter((u) => u.ok).length, 2, 'the link written with the transition counts its uses up to maxUses');
});

t.test('a one-line print order: claim, reserve (one batch on the book), three transitions, commit', async (t) => {
  await settle('print');
  const { orders: o, books: b, final } = await settle('print');
  t.comment(`print order: orders ${JSON.stringify(o)}, books ${JSON.stringify(b)}`);
  t.equal(o.lwt + o.serialReads, 4, 'Paxos rounds on the Orders keyspace');
  t.equal(b.lwt + b.serialReads, 2, 'Paxos rounds on the Books keyspace');
  t.equal((await orders.shipment(`KT-${final.orderId}`))?.orderId, final.orderId, 'the shipment written with the transition exists');
  t.equal((await books.get(book.bookId))?.stock, 1000 - 2, 'two copies taken by the two print orders');
});

t.test('a retried creation (the claimant died before writing the order) is completed from the claim', async (t) => {
  const customerId = newId();
  const draft = sampleOrder(customerId, 'rescue');
  // The claim alone, as a claimant that crashed right after it would leave it.
  const s = (orders as unknown as { s: Session }).s;
  await s.execute(`INSERT INTO klwt_orders.order_keys (customer_id, idempotency_key, order_id, request_hash, doc) VALUES (?, ?, ?, ?, ?)`, [
    customerId,
    'rescue',
    draft.orderId,
    draft.requestHash,
    JSON.stringify(draft),
  ]);
  t.equal(await orders.get(draft.orderId), undefined, 'no order row yet');
  const retry = await orders.create({ ...sampleOrder(customerId, 'rescue'), orderId: newId() });
  t.equal(retry.created, false, 'the retry did not create another order');
  t.equal(retry.order.orderId, draft.orderId, 'it answers the claimed order');
  t.equal((await orders.get(draft.orderId))?.state, 'created', 'whose row now exists');
  t.ok((await orders.listPending(10_000)).some((o) => o.orderId === draft.orderId), 'and is pending, so recovery drives it');
  const next = await orders.transition(draft.orderId, 1, { to: 'stock_reserved', at: Date.now() });
  t.equal(next?.version, 2, 'it moves on like any order');
  // A late copy of the creation row (a slow or retried write) cannot take the order back.
  await (orders as unknown as { writeCreated(o: OrderRecord): Promise<void> }).writeCreated({ ...draft, state: 'created', version: 1, pending: true });
  t.equal((await orders.get(draft.orderId))?.state, 'stock_reserved', 'a late creation row loses to the transition');
});

t.test('one-book reservations: a release before the take fences the order; release and commit exclude each other', async (t) => {
  const b = record({ formats: ['print'] });
  await books.create(b, 3);
  const early = newId();
  t.equal(await books.release(early), false, 'nothing reserved, nothing known: false');
  // The index exists once a reserve started: a release then fences the order even before the take.
  const s = (books as unknown as { s: Session }).s;
  await s.execute(`INSERT INTO klwt_books.single_reservations (order_id, book_id, quantity) VALUES (?, ?, ?)`, [early, b.bookId, 1]);
  t.equal(await books.release(early), true, 'a release before the take');
  t.same(await books.reserve(early, [{ bookId: b.bookId, quantity: 1 }]), { ok: false, reason: 'released' }, 'the late take takes nothing');
  t.equal((await books.get(b.bookId))?.stock, 3, 'stock untouched');
  const raced = await Promise.all(
    Array.from({ length: 3 }, async () => {
      const o = newId();
      t.same(await books.reserve(o, [{ bookId: b.bookId, quantity: 1 }]), { ok: true });
      const [committed, released] = await Promise.all([books.commit(o), books.release(o)]);
      return { committed, released };
    }),
  );
  t.ok(raced.every((r) => r.committed !== r.released), 'for each order exactly one of commit and release won');
  const sold = raced.filter((r) => r.committed).length;
  t.equal((await books.get(b.bookId))?.stock, 3 - sold, 'the released copies are back, the committed ones sold');
});

t.test('keyspaces made by version 1 are migrated: the added columns appear, orders and reservations work', async (t) => {
  const s = (orders as unknown as { s: Session }).s;
  const ddl = { unprepared: true, idempotent: true, readTimeoutMs: 30_000 } as const;
  // Version 1's tables, as version 1 created them (without order_keys.doc, book_stock.status).
  for (const [ks, tables] of [
    ['kmig_orders', ['order_keys (customer_id text, idempotency_key text, order_id text, request_hash text, PRIMARY KEY ((customer_id, idempotency_key)))']],
    ['kmig_books', ['book_stock (book_id text, order_id text, available int, quantity int, PRIMARY KEY ((book_id), order_id))']],
  ] as const) {
    await s.execute(`CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`, [], ddl);
    await s.execute(`CREATE TABLE IF NOT EXISTS ${ks}.schema_version (id int PRIMARY KEY, version int, applied_at bigint)`, [], ddl);
    for (const table of tables) await s.execute(`CREATE TABLE IF NOT EXISTS ${ks}.${table}`, [], ddl);
    await s.execute(`INSERT INTO ${ks}.schema_version (id, version, applied_at) VALUES (1, 1, 0)`, [], ddl);
  }
  const mOrders = await CassandraOrderStore.open({ ...opts, keyspace: 'kmig' });
  const mBooks = await CassandraBookStore.open({ ...opts, keyspace: 'kmig' });
  try {
    const { created, order } = await mOrders.create(sampleOrder(newId(), 'k'));
    t.ok(created, 'an order is created in the migrated keyspace');
    t.equal((await mOrders.get(order.orderId))?.state, 'created');
    const b = record({ formats: ['print'] });
    await mBooks.create(b, 2);
    t.same(await mBooks.reserve(order.orderId, [{ bookId: b.bookId, quantity: 1 }]), { ok: true }, 'a one-book reservation in the migrated keyspace');
    t.equal(await mBooks.commit(order.orderId), true);
    const v = await s.execute(`SELECT version FROM kmig_orders.schema_version WHERE id = 1`, [], { serial: true });
    t.equal(v.first()?.version, 2, 'the recorded version moved to 2');
  } finally {
    await mOrders.close();
    await mBooks.close();
  }
});
