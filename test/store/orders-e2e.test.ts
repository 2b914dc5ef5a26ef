/**
 * Orders end to end on a real node with the real payment provider process: an ebook bought
 * and downloaded through its link (which expires and counts its uses), a print book bought
 * (stock down, shipment with a tracking id), live `order` events on the customer's session,
 * idempotent checkout (also across a provider timeout: charged once, by the provider's own
 * record), declines and outages (failed or retried per the state machine, stock released,
 * customer told), cancellation and refunds, webhooks (signed, idempotent), bad input.
 */
import t from 'tap';
import { signWebhook } from '../../src/payments/webhook-signature.js';
import { api, connectWs, registerUser } from '../helpers/server.js';
import { ADDRESS, PDF, WEBHOOK_SECRET, placeOrder, settled, startShop, waitForOrder } from './orders-shop.js';

t.setTimeout(240_000);

const shop = await startShop(t, {
  config: { orders: { downloadTtlSeconds: 8, maxDownloads: 3, settleDeadlineSeconds: 6, providerAttempts: 3 } },
});
const { base, provider } = shop;

t.test('an ebook is bought and downloaded through its signed link; the link counts uses and expires', async (t) => {
  const bookId = await shop.addBook({ title: 'The Ebook Test', formats: ['ebook'], priceCents: 500 });
  const user = await registerUser(base, 'reader');
  const cart = await api(base, 'PUT', '/v1/cart/lines', { token: user.token, json: { bookId, format: 'ebook', quantity: 1 } });
  t.equal(cart.status, 200);
  t.same(cart.body.lines, [{ bookId, format: 'ebook', quantity: 1 }], 'the cart holds the ebook');
  const res = await placeOrder(base, user, 'ebook-1', {});
  t.equal(res.status, 201, 'checkout of the cart answers 201');
  const order = res.body.order;
  t.equal(order.state, 'fulfilled', 'settled before the answer');
  t.equal(order.totalCents, 550, '500 + 10 % tax');
  t.same((await api(base, 'GET', '/v1/cart', { token: user.token })).body.lines, [], 'the cart was emptied');
  t.equal(order.downloads.length, 1);
  const link = order.downloads[0];
  t.match(link.url, /^\/downloads\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  t.equal(link.maxDownloads, 3);

  for (let i = 1; i <= 3; i++) {
    const dl = await fetch(base + link.url);
    t.equal(dl.status, 200, `download ${i} of 3`);
    t.same(Buffer.from(await dl.arrayBuffer()), PDF, 'the file is the uploaded ebook');
    t.match(dl.headers.get('content-disposition') ?? '', /attachment; filename="The Ebook Test\.pdf"/);
  }
  const fourth = await fetch(base + link.url);
  t.equal(fourth.status, 409, 'a fourth download is refused');
  t.equal(((await fourth.json()) as any).error.code, 'LIMIT_REACHED');

  const forged = await fetch(base + link.url.replace(/.$/, (c: string) => (c === 'A' ? 'B' : 'A')));
  t.equal(forged.status, 404, 'a tampered token is unknown');
  t.equal((await fetch(`${base}/downloads/nonsense`)).status, 404);

  const again = await placeOrder(base, user, 'ebook-2', { lines: [{ bookId, format: 'ebook', quantity: 1 }] });
  t.equal(again.body.order.state, 'fulfilled');
  // the link expires 8 s after the payment
  await new Promise((r) => setTimeout(r, Math.max(0, again.body.order.downloads[0].expiresAt - Date.now()) + 200));
  const late = await fetch(base + again.body.order.downloads[0].url);
  t.equal(late.status, 403, 'after its lifetime the link is refused');
  t.match(((await late.json()) as any).error.message, /expired/);
  t.equal((await provider.charges(order.orderId)).charges.length, 1, 'the provider charged the order once');
});

t.test('a print book: stock goes down, a shipment with a tracking id exists, live events reach the session', async (t) => {
  const bookId = await shop.addBook({ title: 'The Print Test', formats: ['print'], stock: 5, priceCents: 2000 });
  const user = await registerUser(base, 'printer');
  const ws = await connectWs(shop.server, user);
  t.teardown(() => ws.close());
  const noAddress = await placeOrder(base, user, 'p0', { lines: [{ bookId, format: 'print', quantity: 2 }] });
  t.equal(noAddress.status, 422, 'print needs a shipping address');
  t.match(noAddress.body.error.message, /^shippingAddress/);
  const res = await placeOrder(base, user, 'p1', { lines: [{ bookId, format: 'print', quantity: 2 }], shippingAddress: ADDRESS });
  t.equal(res.status, 201);
  const order = res.body.order;
  t.equal(order.state, 'fulfilled');
  t.match(order.shipment, { trackingId: /^KT[0-9A-F]{16}$/, carrier: 'kindred-post' });
  t.same(order.shippingAddress, ADDRESS);
  t.equal(await shop.stockOf(bookId), 3, 'stock went from 5 to 3');
  const states: string[] = [];
  for (;;) {
    const e: any = await ws.nextEvent((x) => x.type === 'order' && (x as any).order.orderId === order.orderId, 5000);
    states.push(e.order.state);
    if (e.order.state === 'fulfilled') break;
  }
  t.same(states, ['created', 'stock_reserved', 'paid', 'fulfilled'], 'the session saw every transition, in order');
  const list = await api(base, 'GET', '/v1/orders', { token: user.token });
  t.equal(list.body.orders[0].orderId, order.orderId, 'GET /v1/orders lists it');
  const other = await registerUser(base, 'nosy');
  t.equal((await api(base, 'GET', `/v1/orders/${order.orderId}`, { token: other.token })).status, 404, "another customer cannot see it");
});

t.test('the same order retried with its key is one order, charged once, also across a provider timeout', async (t) => {
  const bookId = await shop.addBook({ title: 'The Retry Test', formats: ['print'], stock: 10 });
  const user = await registerUser(base, 'retrier');
  const body = { lines: [{ bookId, format: 'print', quantity: 1 }], shippingAddress: ADDRESS };
  // The provider does the work but answers only after 2.5 s: the adapter (1 s timeout) gives up and retries.
  await provider.control({ timeoutRate: 1, timeoutHangMs: 2500 });
  const first = placeOrder(base, user, 'retry-1', body);
  await new Promise((r) => setTimeout(r, 1500));
  await provider.control({ timeoutRate: 0 });
  const second = await placeOrder(base, user, 'retry-1', body);
  const [a, b] = [await first, second];
  t.equal(a.body.order.orderId, b.body.order.orderId, 'the retry answers the same order');
  t.equal(b.status, 200, 'the retry answers 200, not 201');
  t.equal(b.body.created, false);
  const done = await waitForOrder(base, user, a.body.order.orderId, settled);
  t.equal(done.state, 'fulfilled');
  const { charges } = await provider.charges(done.orderId);
  t.equal(charges.length, 1, 'the provider recorded exactly one charge');
  t.equal(charges[0].amount, done.totalCents);
  t.equal(await shop.stockOf(bookId), 9, 'one copy sold');
  const conflict = await placeOrder(base, user, 'retry-1', { ...body, lines: [{ bookId, format: 'print', quantity: 2 }] });
  t.equal(conflict.status, 409, 'the key with another order is CONFLICT');
  const viaField = await fetch(`${base}/v1/orders`, {
    method: 'POST',
    headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, idempotencyKey: 'retry-1' }),
  });
  t.equal(viaField.status, 200, 'the key may come as a body field too');
  t.equal((await placeOrder(base, user, '', body)).status, 422, 'no key: 422');
});

t.test('a declined payment fails the order, releases the stock and tells the customer', async (t) => {
  const bookId = await shop.addBook({ title: 'The Decline Test', formats: ['print'], stock: 4 });
  const user = await registerUser(base, 'declined');
  const ws = await connectWs(shop.server, user);
  t.teardown(() => ws.close());
  await provider.control({ declineRate: 1 });
  t.teardown(() => provider.control({ declineRate: 0 }));
  const res = await placeOrder(base, user, 'd1', { lines: [{ bookId, format: 'print', quantity: 3 }], shippingAddress: ADDRESS });
  t.equal(res.body.order.state, 'failed');
  t.match(res.body.order.reason, /^payment_declined: card_declined/);
  const failed: any = await ws.nextEvent((e) => e.type === 'order' && (e as any).order.state === 'failed', 5000);
  t.equal(failed.order.orderId, res.body.order.orderId, 'the customer got a `failed` event');
  t.equal(failed.from, 'stock_reserved', 'from stock_reserved');
  t.equal(await shop.stockOf(bookId), 4, 'the three reserved copies are back');
  t.equal((await provider.charges(res.body.order.orderId)).charges.length, 0, 'nothing charged');
});

t.test('a short provider outage is retried through; a long one fails the order and releases its stock', async (t) => {
  const bookId = await shop.addBook({ title: 'The Outage Test', formats: ['print'], stock: 4 });
  const user = await registerUser(base, 'outage');
  await provider.control({ outage: { mode: '503', forMs: 1500 } });
  const short = await placeOrder(base, user, 'o1', { lines: [{ bookId, format: 'print', quantity: 1 }], shippingAddress: ADDRESS });
  t.equal(short.body.order.state, 'fulfilled', 'a 1.5 s outage of 503s is retried through');
  t.equal((await provider.charges(short.body.order.orderId)).charges.length, 1);

  await provider.control({ outage: { mode: 'refuse', forMs: 9000 } });
  const long = await placeOrder(base, user, 'o2', { lines: [{ bookId, format: 'print', quantity: 2 }], shippingAddress: ADDRESS }, 0);
  t.equal(long.status, 201);
  t.not(long.body.order.state, 'fulfilled', 'answered before settling (waitMs=0)');
  const done = await waitForOrder(base, user, long.body.order.orderId, (o) => settled(o), 30_000);
  t.equal(done.state, 'failed', 'connection refused past the deadline: failed');
  t.equal(done.reason, 'payment_unavailable');
  t.equal(await shop.stockOf(bookId), 3, 'its two copies were released (one sold before)');
  // once the provider is back, the cleanup confirms no charge stands
  await new Promise((r) => setTimeout(r, 9500));
  t.equal((await provider.charges(long.body.order.orderId)).charges.length, 0, 'nothing was charged');
});

t.test('cancel before payment releases stock; cancel after fulfilment refunds', async (t) => {
  const bookId = await shop.addBook({ title: 'The Cancel Test', formats: ['print'], stock: 3 });
  const user = await registerUser(base, 'canceller');
  await provider.control({ asyncRate: 1, asyncDelayMs: 6000 });
  const res = await placeOrder(base, user, 'c1', { lines: [{ bookId, format: 'print', quantity: 1 }], shippingAddress: ADDRESS }, 0);
  const waiting = await waitForOrder(base, user, res.body.order.orderId, (o) => o.state !== 'created');
  t.equal(waiting.state, 'stock_reserved', 'waiting for an asynchronous confirmation');
  const cancelled = await api(base, 'POST', `/v1/orders/${res.body.order.orderId}/cancel`, { token: user.token });
  await provider.control({ asyncRate: 0 });
  t.equal(cancelled.status, 200);
  t.equal(cancelled.body.order.state, 'cancelled');
  await waitForOrder(base, user, res.body.order.orderId, () => true);
  await new Promise((r) => setTimeout(r, 500));
  t.equal(await shop.stockOf(bookId), 3, 'the copy is back');
  const again = await api(base, 'POST', `/v1/orders/${res.body.order.orderId}/cancel`, { token: user.token });
  t.equal(again.body.order.state, 'cancelled', 'cancelling twice changes nothing');
  await new Promise((r) => setTimeout(r, 6500));
  const { charges, refunds } = await provider.charges(res.body.order.orderId);
  t.equal(charges.length - refunds.length, 0, 'no charge stands for the cancelled order');

  const paid = await placeOrder(base, user, 'c2', { lines: [{ bookId, format: 'print', quantity: 1 }], shippingAddress: ADDRESS });
  t.equal(paid.body.order.state, 'fulfilled');
  const refund = await api(base, 'POST', `/v1/orders/${paid.body.order.orderId}/cancel`, { token: user.token });
  t.equal(refund.body.order.state, 'refunded');
  const money = await provider.charges(paid.body.order.orderId);
  t.same([money.charges.length, money.refunds.length], [1, 1], 'charged once, refunded once');
});

t.test('webhooks: a bad signature is refused, a redelivery changes nothing', async (t) => {
  const body = JSON.stringify({ id: 'evt_x', type: 'payment_intent.succeeded', data: { object: { id: 'pi_x', status: 'succeeded', metadata: { orderId: 'none' } } } });
  const bad = await fetch(`${base}/webhooks/payments`, { method: 'POST', body, headers: { 'kindred-signature': signWebhook('wrong', body) } });
  t.equal(bad.status, 403);
  const none = await fetch(`${base}/webhooks/payments`, { method: 'POST', body });
  t.equal(none.status, 403, 'no signature: refused');
  const old = await fetch(`${base}/webhooks/payments`, { method: 'POST', body, headers: { 'kindred-signature': signWebhook(WEBHOOK_SECRET, body, Math.floor(Date.now() / 1000) - 3600) } });
  t.equal(old.status, 403, 'a replay an hour later: refused');
  for (let i = 0; i < 2; i++) {
    const ok = await fetch(`${base}/webhooks/payments`, { method: 'POST', body, headers: { 'kindred-signature': signWebhook(WEBHOOK_SECRET, body) } });
    t.equal(ok.status, 200, `a valid delivery is acknowledged (${i + 1})`);
  }
});

t.test('bad input gets clear errors', async (t) => {
  const user = await registerUser(base, 'badinput');
  const cases: Array<[string, unknown, number, RegExp]> = [
    ['unknown book', { bookId: 'nope', format: 'print', quantity: 1 }, 404, /no book/],
    ['bad format', { bookId: 'x', format: 'audio', quantity: 1 }, 422, /^format/],
    ['negative quantity', { bookId: 'x', format: 'print', quantity: -1 }, 422, /^quantity/],
    ['unknown field', { bookId: 'x', format: 'print', quantity: 1, color: 'red' }, 422, /color/],
  ];
  for (const [what, json, status, message] of cases) {
    const res = await api(base, 'PUT', '/v1/cart/lines', { token: user.token, json });
    t.equal(res.status, status, what);
    t.match(res.body?.error?.message, message, `${what}: says why`);
  }
  t.equal((await placeOrder(base, user, 'empty', {})).status, 422, 'an empty cart cannot be ordered');
  t.equal((await placeOrder(base, user, 'badlines', { lines: 'x' })).status, 422);
  t.equal((await api(base, 'GET', '/v1/orders/not-an-id', { token: user.token })).status, 422);
  t.equal((await api(base, 'GET', '/v1/cart')).status, 401, 'the cart needs a token');
});
