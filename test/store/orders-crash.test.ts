/**
 * Must-show 3, recovery: Kindred (and the payment provider with it) killed with SIGKILL in
 * the middle of settling 60 orders, then restarted on the same data: every order is driven
 * forward or back to a final state (none stuck in created, stock_reserved or paid), no
 * order is charged twice, every standing charge belongs to a fulfilled order, and the print
 * stock matches the copies sold.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProviderProcess } from '../../src/payments/provider/process.js';
import { api, registerUser, type TestUser } from '../helpers/server.js';
import { ADDRESS, PDF, WEBHOOK_SECRET, nextIsbn, placeOrder, settled } from './orders-shop.js';

t.setTimeout(180_000);

function startKindred(dataDir: string, configFile: string): Promise<{ child: ChildProcess; base: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['dist/cli.js', 'start', '--config', configFile, '--data-dir', dataDir, '--http-port', '0', '--tcp-port', '0', '--xmpp-port', '0', '--xmpp-tls-port', '0', '--log-level', 'warn'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    const timer = setTimeout(() => reject(new Error(`kindred did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const http = /HTTP \+ REST\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (http && /XMPP/.test(out)) {
        clearTimeout(timer);
        resolve({ child, base: `http://127.0.0.1:${http[1]}` });
      }
    });
    child.once('exit', (code) => reject(new Error(`kindred exited with ${code}: ${out}`)));
  });
}

t.test('SIGKILL mid-settlement: after a restart no order is stuck, none charged twice, stock adds up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-orders-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // slow and partly asynchronous payments, so the kill finds orders in every middle state
  const provider = await ProviderProcess.start({
    dbFile: join(dir, 'provider.db'),
    webhookSecret: WEBHOOK_SECRET,
    behaviour: { latencyMs: 400, jitterMs: 300, asyncRate: 0.3, asyncDelayMs: 1500 },
  });
  t.teardown(() => provider.kill());
  const configFile = join(dir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({ auth: { scryptN: 1024 }, store: { admins: ['crashadmin'] }, orders: { providerUrl: provider.url, webhookSecret: WEBHOOK_SECRET } }),
  );
  const dataDir = join(dir, 'data');
  let kindred = await startKindred(dataDir, configFile);
  t.teardown(() => kindred.child.kill('SIGKILL'));
  let base = kindred.base;

  const reg = await api(base, 'POST', '/v1/register', { json: { username: 'crashadmin', password: 'correct horse battery' } });
  const admin: TestUser = { userId: reg.body.userId, token: reg.body.token, username: 'crashadmin' };
  const book = async (title: string, formats: string[], stock: number) => {
    const res = await api(base, 'POST', '/v1/books', {
      token: admin.token,
      json: { title, authors: ['Crash Author'], isbn: nextIsbn(), description: 'x', priceCents: 900, currency: 'EUR', formats, ...(formats.includes('print') ? { stock } : {}) },
    });
    if (res.status !== 201) throw new Error(JSON.stringify(res.body));
    if (formats.includes('ebook')) await api(base, 'PUT', `/v1/books/${res.body.book.bookId}/ebook`, { token: admin.token, body: PDF, contentType: 'application/pdf' });
    return res.body.book.bookId as string;
  };
  const printBook = await book('Crash Print', ['print'], 100);
  const ebook = await book('Crash Ebook', ['ebook'], 0);
  const users: TestUser[] = [];
  for (let i = 0; i < 6; i++) users.push(await registerUser(base, 'crash'));

  const placed: Array<{ user: TestUser; orderId: string; quantity: number; print: boolean }> = [];
  await Promise.all(
    Array.from({ length: 60 }, async (_, i) => {
      const user = users[i % users.length]!;
      const print = i % 3 !== 0;
      const quantity = print ? 1 + (i % 2) : 1;
      const body = print ? { lines: [{ bookId: printBook, format: 'print', quantity }], shippingAddress: ADDRESS } : { lines: [{ bookId: ebook, format: 'ebook', quantity: 1 }] };
      const res = await placeOrder(base, user, `crash-${i}`, body, 0);
      if (res.status !== 201) throw new Error(JSON.stringify(res.body));
      placed.push({ user, orderId: res.body.order.orderId, quantity, print });
    }),
  );
  await new Promise((r) => setTimeout(r, 600));
  const before = await Promise.all(placed.map((p) => api(base, 'GET', `/v1/orders/${p.orderId}`, { token: p.user.token })));
  const middle = before.filter((r) => ['created', 'stock_reserved', 'paid'].includes(r.body.order.state)).length;
  kindred.child.kill('SIGKILL');
  await provider.kill('SIGKILL');
  t.ok(middle > 0, `${middle} of 60 orders were in a middle state just before the kill`);

  await provider.restart();
  kindred = await startKindred(dataDir, configFile);
  base = kindred.base;
  const until = Date.now() + 60_000;
  let after: any[] = [];
  for (;;) {
    after = (await Promise.all(placed.map((p) => api(base, 'GET', `/v1/orders/${p.orderId}`, { token: p.user.token })))).map((r) => r.body.order);
    if (after.every(settled) || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const stuck = after.filter((o) => !settled(o));
  t.same(stuck.map((o) => `${o.orderId}:${o.state}`), [], 'no order is left in a middle state');
  const counts: Record<string, number> = {};
  for (const o of after) counts[o.state] = (counts[o.state] ?? 0) + 1;
  t.comment(`after the restart: ${JSON.stringify(counts)}`);

  const money = await provider.charges();
  const charged = new Map<string, number>();
  for (const c of money.charges) charged.set(c.orderId, (charged.get(c.orderId) ?? 0) + 1);
  for (const r of money.refunds) charged.set(r.orderId, (charged.get(r.orderId) ?? 0) - 1);
  t.ok(money.charges.every((c) => money.charges.filter((d) => d.orderId === c.orderId).length === 1), 'no order was charged twice');
  for (const o of after) {
    const net = charged.get(o.orderId) ?? 0;
    if (o.state === 'fulfilled') t.equal(net, 1, `fulfilled ${o.orderId} has one standing charge`);
    else t.equal(net, 0, `${o.state} ${o.orderId} has no standing charge`);
  }
  const sold = placed.filter((p, i) => p.print && after[i].state === 'fulfilled').reduce((n, p) => n + p.quantity, 0);
  const stock = (await api(base, 'GET', `/v1/books/${printBook}`)).body.book.stock;
  t.equal(stock, 100 - sold, `stock ${stock} = 100 - ${sold} copies sold`);
});
