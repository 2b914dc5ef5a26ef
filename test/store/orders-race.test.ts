/**
 * The race of the must-show 2: 1,000 concurrent orders for a print book with 10
 * copies, through REST, with the real payment provider → exactly 10 paid (and fulfilled)
 * orders, the other 990 failed cleanly (out of stock, nothing owed, nothing charged), and
 * the stock at 0. Then the same with half the payments declined: the copies of declined
 * orders go back, so paid orders + remaining stock = 10, and the provider's charges match
 * the paid orders exactly.
 */
import t from 'tap';
import { registerUser, type TestUser } from '../helpers/server.js';
import { ADDRESS, placeOrder, settled, startShop, waitForOrder } from './orders-shop.js';

t.setTimeout(300_000);

const shop = await startShop(t, { behaviour: { latencyMs: 5 }, config: { orders: { checkoutWaitMs: 20_000 } } });
const { base, provider } = shop;
const customers: TestUser[] = [];
for (let i = 0; i < 50; i++) customers.push(await registerUser(base, 'racer'));

async function race(bookId: string, n: number, tag: string): Promise<any[]> {
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      placeOrder(base, customers[i % customers.length]!, `${tag}-${i}`, { lines: [{ bookId, format: 'print', quantity: 1 }], shippingAddress: ADDRESS }),
    ),
  );
  const bad = results.filter((r) => r.status !== 201);
  if (bad.length) throw new Error(`${bad.length} checkouts failed: ${JSON.stringify(bad[0])}`);
  // every order ends (the answer may come before a failed order's release is done)
  return Promise.all(results.map((r, i) => waitForOrder(base, customers[i % customers.length]!, r.body.order.orderId, settled, 60_000)));
}

t.test('1,000 concurrent orders for 10 copies: exactly 10 paid, 990 failed cleanly', async (t) => {
  const bookId = await shop.addBook({ title: 'The Race', formats: ['print'], stock: 10 });
  const started = performance.now();
  const orders = await race(bookId, 1000, 'race');
  t.comment(`1,000 orders settled in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const fulfilled = orders.filter((o) => o.state === 'fulfilled');
  const failed = orders.filter((o) => o.state === 'failed');
  t.equal(fulfilled.length, 10, 'exactly 10 orders paid and fulfilled');
  t.equal(failed.length, 990, 'the other 990 failed');
  t.ok(failed.every((o) => o.reason === 'out_of_stock'), 'all of them for lack of stock');
  t.equal(await shop.stockOf(bookId), 0, 'no copy left, none oversold');
  const { charges } = await provider.charges();
  const paidIds = new Set(fulfilled.map((o) => o.orderId));
  const raceCharges = charges.filter((c) => orders.some((o) => o.orderId === c.orderId));
  t.equal(raceCharges.length, 10, 'the provider charged 10 times');
  t.ok(raceCharges.every((c) => paidIds.has(c.orderId)), 'only the paid orders were charged');
  t.equal(new Set(fulfilled.map((o) => o.shipment.trackingId)).size, 10, 'ten shipments');
});

t.test('with half the payments declined, declined copies go back: paid + stock = 10', async (t) => {
  const bookId = await shop.addBook({ title: 'The Declined Race', formats: ['print'], stock: 10 });
  await provider.control({ declineRate: 0.5 });
  t.teardown(() => provider.control({ declineRate: 0 }));
  const orders = await race(bookId, 300, 'drace');
  const fulfilled = orders.filter((o) => o.state === 'fulfilled');
  const declined = orders.filter((o) => o.state === 'failed' && /^payment_declined/.test(o.reason));
  const outOfStock = orders.filter((o) => o.state === 'failed' && o.reason === 'out_of_stock');
  t.equal(fulfilled.length + declined.length + outOfStock.length, 300, 'every order paid, declined or out of stock');
  t.ok(declined.length > 0, `some payments were declined (${declined.length})`);
  t.equal(fulfilled.length + (await shop.stockOf(bookId)), 10, `paid (${fulfilled.length}) + stock left = 10: declined orders' copies came back`);
  const ids = new Set(orders.map((o) => o.orderId));
  const charged = (await provider.charges()).charges.filter((c) => ids.has(c.orderId));
  t.same(charged.map((c) => c.orderId).sort(), fulfilled.map((o) => o.orderId).sort(), 'charges match the paid orders one to one');
});
