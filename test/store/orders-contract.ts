/**
 * The contract every OrderStore passes (embedded: orders-embedded.test.ts, Cassandra:
 * orders-cassandra.test.ts): carts, idempotent creation, compare-and-set transitions with
 * their append-only log (also under concurrent writers), pending orders for recovery,
 * download links whose use count never exceeds its limit, shipments.
 */
import type { Test } from 'tap';
import { KindredError } from '../../src/errors.js';
import { newId } from '../../src/ids.js';
import type { OrderRecord, OrderStore } from '../../src/store/orders/storage.js';

type TapT = Test;

export function sampleOrder(customerId: string, key: string, overrides: Partial<OrderRecord> = {}): OrderRecord {
  const now = Date.now();
  return {
    orderId: newId(),
    customerId,
    idempotencyKey: key,
    requestHash: `hash-${key}`,
    state: 'created',
    version: 1,
    lines: [{ bookId: 'b1', format: 'print', quantity: 2, unitPriceCents: 1000, title: 'A Book' }],
    currency: 'EUR',
    subtotalCents: 2000,
    taxCents: 200,
    totalCents: 2200,
    shippingAddress: { name: 'Ada', line1: '1 Road', city: 'Town', postalCode: '12345', country: 'GB' },
    reason: null,
    fulfilment: null,
    pending: true,
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}

export function ordersContract(t: TapT, name: string, open: () => Promise<OrderStore>): void {
  t.test(`${name}: order store contract`, async (t) => {
    const store = await open();
    t.teardown(() => store.close());

    t.test('cart lines are set, changed, removed and cleared', async (t) => {
      const c = newId();
      t.same(await store.cart(c), []);
      await store.setCartLine(c, { bookId: 'b1', format: 'print', quantity: 2 });
      await store.setCartLine(c, { bookId: 'b1', format: 'ebook', quantity: 1 });
      await store.setCartLine(c, { bookId: 'b2', format: 'print', quantity: 1 });
      await store.setCartLine(c, { bookId: 'b1', format: 'print', quantity: 3 });
      const lines = (await store.cart(c)).sort((a, b) => (a.bookId + a.format).localeCompare(b.bookId + b.format));
      t.same(lines, [
        { bookId: 'b1', format: 'ebook', quantity: 1 },
        { bookId: 'b1', format: 'print', quantity: 3 },
        { bookId: 'b2', format: 'print', quantity: 1 },
      ]);
      await store.setCartLine(c, { bookId: 'b1', format: 'ebook', quantity: 0 });
      t.equal((await store.cart(c)).length, 2, 'quantity 0 removes the line');
      await store.clearCart(c);
      t.same(await store.cart(c), []);
    });

    t.test('create is idempotent per (customer, key); another request under the key is CONFLICT', async (t) => {
      const c = newId();
      const first = sampleOrder(c, 'k1');
      const a = await store.create(first);
      t.equal(a.created, true);
      t.equal(a.order.state, 'created');
      t.equal(a.order.version, 1);
      t.equal(a.order.pending, true);
      const again = await store.create({ ...sampleOrder(c, 'k1'), orderId: newId() });
      t.equal(again.created, false, 'the same key does not create a second order');
      t.equal(again.order.orderId, first.orderId, 'it answers the first order');
      const conflict = await store.create({ ...sampleOrder(c, 'k1'), requestHash: 'other' }).then(() => undefined, (err: unknown) => err);
      t.ok(conflict instanceof KindredError && conflict.code === 'CONFLICT', 'the same key with another request is CONFLICT');
      const other = await store.create(sampleOrder(newId(), 'k1'));
      t.equal(other.created, true, 'keys are per customer');
      t.equal((await store.byIdempotencyKey(c, 'k1'))?.orderId, first.orderId);
      t.equal(await store.byIdempotencyKey(c, 'nope'), undefined);
      t.same((await store.transitions(first.orderId)).map((x) => [x.seq, x.from, x.to]), [[1, null, 'created']], 'creation is the first transition');
    });

    t.test('concurrent creates with one key make one order', async (t) => {
      const c = newId();
      const results = await Promise.all(Array.from({ length: 20 }, () => store.create(sampleOrder(c, 'same'))));
      t.equal(results.filter((r) => r.created).length, 1, 'exactly one created');
      t.equal(new Set(results.map((r) => r.order.orderId)).size, 1, 'everyone sees the same order');
      t.equal((await store.listForCustomer(c, 10)).length, 1);
    });

    t.test('transitions are compare-and-set and logged in order', async (t) => {
      const { order } = await store.create(sampleOrder(newId(), 'cas'));
      const at = Date.now();
      const r1 = await store.transition(order.orderId, 1, { to: 'stock_reserved', at });
      t.equal(r1?.state, 'stock_reserved');
      t.equal(r1?.version, 2);
      t.equal(await store.transition(order.orderId, 1, { to: 'failed', at }), undefined, 'a stale version loses');
      const r2 = await store.transition(order.orderId, 2, { to: 'paid', at: at + 1 });
      const r3 = await store.transition(order.orderId, 3, {
        to: 'fulfilled',
        at: at + 2,
        fulfilment: { shipment: { trackingId: 'KT1', carrier: 'c', createdAt: at } },
      });
      t.equal(r2?.pending, true, 'paid is a middle state');
      t.equal(r3?.pending, false, 'fulfilled is terminal');
      const got = await store.get(order.orderId);
      t.equal(got?.state, 'fulfilled');
      t.equal(got?.fulfilment?.shipment?.trackingId, 'KT1');
      t.same(
        (await store.transitions(order.orderId)).map((x) => [x.seq, x.from, x.to]),
        [
          [1, null, 'created'],
          [2, 'created', 'stock_reserved'],
          [3, 'stock_reserved', 'paid'],
          [4, 'paid', 'fulfilled'],
        ],
      );
    });

    t.test('racing writers: exactly one wins each step', async (t) => {
      const { order } = await store.create(sampleOrder(newId(), 'race'));
      const outcomes = await Promise.all(
        (['stock_reserved', 'failed', 'cancelled', 'failed', 'stock_reserved'] as const).map((to) => store.transition(order.orderId, 1, { to, at: Date.now() })),
      );
      const winners = outcomes.filter((o) => o !== undefined);
      t.equal(winners.length, 1, 'one transition applied');
      const log = await store.transitions(order.orderId);
      t.equal(log.length, 2, 'and only it was logged');
      t.equal(log[1]!.to, winners[0]!.state);
    });

    t.test('a transition built from the caller\'s record is still compare-and-set', async (t) => {
      const { order } = await store.create(sampleOrder(newId(), 'known'));
      const at = Date.now();
      const r1 = await store.transition(order.orderId, 1, { to: 'stock_reserved', at }, order);
      t.equal(r1?.state, 'stock_reserved', 'applied from the record the caller holds');
      t.equal(r1?.totalCents, order.totalCents, 'the order content carried over');
      // The caller's record is stale now: a step built from it must lose, whatever the store reads.
      t.equal(await store.transition(order.orderId, 1, { to: 'failed', at }, order), undefined, 'a stale record loses');
      const outcomes = await Promise.all(
        (['paid', 'failed', 'cancelled', 'paid'] as const).map((to) => store.transition(order.orderId, 2, { to, at: at + 1, pending: true }, r1)),
      );
      const winners = outcomes.filter((o) => o !== undefined);
      t.equal(winners.length, 1, 'racing writers with the same record: one wins');
      const downloadLoser = await store.transition(
        order.orderId,
        2,
        {
          to: 'fulfilled',
          at: at + 2,
          downloads: [{ tokenId: `tok-${order.orderId}`, orderId: order.orderId, customerId: order.customerId, bookId: 'b1', expiresAt: at + 60_000, maxUses: 1, uses: 0 }],
        },
        r1,
      );
      t.equal(downloadLoser, undefined, 'a transition from an older version loses');
      const log = await store.transitions(order.orderId);
      t.same(log.map((x) => x.to), ['created', 'stock_reserved', winners[0]!.state], 'only the winners were logged');
      t.equal((await store.get(order.orderId))?.version, 3);
    });

    t.test('pending orders: listed until settled', async (t) => {
      const { order } = await store.create(sampleOrder(newId(), 'pend'));
      t.ok((await store.listPending(10_000)).some((o) => o.orderId === order.orderId), 'a new order is pending');
      const failed = await store.transition(order.orderId, 1, { to: 'failed', at: Date.now(), reason: 'out_of_stock', pending: true });
      t.equal(failed?.reason, 'out_of_stock');
      t.ok((await store.listPending(10_000)).some((o) => o.orderId === order.orderId), 'failed with a release owed: still pending');
      t.equal(await store.settle(order.orderId, 1, Date.now()), false, 'settle with a stale version does nothing');
      t.equal(await store.settle(order.orderId, 2, Date.now()), true);
      t.notOk((await store.listPending(10_000)).some((o) => o.orderId === order.orderId), 'settled: no longer pending');
      t.equal((await store.get(order.orderId))?.pending, false);
    });

    t.test('orders list newest first with a cursor', async (t) => {
      const c = newId();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await store.create(sampleOrder(c, `list${i}`))).order.orderId);
      const page1 = await store.listForCustomer(c, 3);
      t.same(page1.map((o) => o.orderId), ids.slice().reverse().slice(0, 3));
      const page2 = await store.listForCustomer(c, 3, page1[2]!.orderId);
      t.same(page2.map((o) => o.orderId), ids.slice().reverse().slice(3));
    });

    t.test('download links: counted atomically, never past the limit, not after expiry', async (t) => {
      const now = Date.now();
      const tokenId = `tok${newId()}`;
      await store.createDownload({ tokenId, orderId: 'o', customerId: 'c', bookId: 'b', expiresAt: now + 60_000, maxUses: 3, uses: 0 });
      await store.createDownload({ tokenId, orderId: 'o', customerId: 'c', bookId: 'b', expiresAt: now + 60_000, maxUses: 99, uses: 0 });
      const uses = await Promise.all(Array.from({ length: 10 }, () => store.useDownload(tokenId, Date.now())));
      t.equal(uses.filter((u) => u.ok).length, 3, 'exactly maxUses succeed (a repeated create kept the first limit)');
      t.ok(uses.filter((u) => !u.ok).every((u) => !u.ok && u.reason === 'exhausted'));
      const expired = `tok${newId()}`;
      await store.createDownload({ tokenId: expired, orderId: 'o', customerId: 'c', bookId: 'b', expiresAt: now - 1, maxUses: 3, uses: 0 });
      t.same(await store.useDownload(expired, now), { ok: false, reason: 'expired' });
      t.same(await store.useDownload('missing', now), { ok: false, reason: 'not_found' });
    });

    t.test('fulfilment records are written with the transition', async (t) => {
      const { order } = await store.create(sampleOrder(newId(), 'fulfil'));
      const at = Date.now();
      const tokenId = `tok${newId()}`;
      const trackingId = `KT${newId()}`;
      const address = { name: 'Ada', line1: '1 Road', city: 'Town', postalCode: '1', country: 'GB' };
      const next = await store.transition(order.orderId, 1, {
        to: 'fulfilled',
        at,
        downloads: [{ tokenId, orderId: order.orderId, customerId: order.customerId, bookId: 'b', expiresAt: at + 60_000, maxUses: 1, uses: 0 }],
        shipment: { trackingId, carrier: 'c', createdAt: at, orderId: order.orderId, address },
      });
      t.equal(next?.state, 'fulfilled');
      t.equal((await store.useDownload(tokenId, at)).ok, true, 'the link exists');
      t.equal((await store.shipment(trackingId))?.orderId, order.orderId, 'the shipment exists');
    });

    t.test('shipments are created once', async (t) => {
      const address = { name: 'Ada', line1: '1 Road', city: 'Town', postalCode: '1', country: 'GB' };
      const trackingId = `KT${newId()}`;
      await store.createShipment({ trackingId, carrier: 'x', createdAt: 1, orderId: 'o1', address });
      await store.createShipment({ trackingId, carrier: 'y', createdAt: 2, orderId: 'o2', address });
      const s = await store.shipment(trackingId);
      t.equal(s?.orderId, 'o1');
      t.equal(s?.carrier, 'x');
      t.equal(await store.shipment('none'), undefined);
    });
  });
}
