/**
 * The book store in a real browser (Chromium through playwright-core) against a real node
 * and the payment provider stand-in running as its own process: a shopper sees suggestions
 * as they type, searches with a typo and still finds the book, filters by format, buys the
 * ebook (checkout → payment through the Payment service → fulfilment), watches the order
 * reach "Ready" live (no reload, no polling), and downloads the file they paid for.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProviderProcess } from '../../src/payments/provider/process.js';
import { api, startTestServer } from '../helpers/server.js';
import { launchBrowser, openPage } from './browser.js';
import { seedCatalogue } from './store-fixture.js';

// a browser on a busy 2-core machine (CI runs two test files at once) needs more than tap's default
t.setTimeout(300_000);

const dir = mkdtempSync(join(tmpdir(), 'kindred-store-web-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('a shopper finds a book despite a typo, buys the ebook and downloads it', async (t) => {
  const webhookSecret = randomBytes(32).toString('hex');
  // a little provider latency, so the order visibly goes through its states
  const provider = await ProviderProcess.start({ dbFile: join(dir, 'provider.db'), webhookSecret, behaviour: { latencyMs: 300 } });
  t.teardown(() => provider.stop());
  const adminName = `admin${process.pid}`;
  const server = await startTestServer(t, { store: { admins: [adminName] }, orders: { providerUrl: provider.url, webhookSecret } });
  const call = (method: string, path: string, opts = {}) => api(server.base, method, path, opts);
  const admin = await api(server.base, 'POST', '/v1/register', { json: { username: adminName, password: 'correct horse battery' } });
  t.equal(admin.status, 201);
  const { ids, ebooks } = await seedCatalogue(call, admin.body.token);

  const browser = await launchBrowser(t);
  const { page, errors } = await openPage(browser, server.base);
  const requests: string[] = [];
  page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));

  // an account first (the same one Tindr uses), coming back to the store
  await page.goto('/login?mode=register&next=/');
  await page.getByLabel('Username').fill(`shopper${process.pid}`);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL((u) => u.pathname === '/');

  // suggestions as you type
  const box = page.getByRole('combobox', { name: /Search books/ });
  await box.pressSequentially('Frank Her', { delay: 30 });
  const suggestions = page.getByTestId('suggestions');
  await t.resolves(suggestions.getByText('Dune', { exact: true }).waitFor(), 'Dune is suggested for "Frank Her"');
  t.ok(await suggestions.getByText('Dune Messiah').isVisible(), 'and Dune Messiah');
  await box.press('ArrowDown');
  t.equal(await suggestions.getByRole('option').first().getAttribute('aria-selected'), 'true', 'the arrow key moves into the suggestions');
  t.equal(await box.getAttribute('aria-activedescendant'), 'suggestion-0');
  await box.press('Escape');
  await suggestions.waitFor({ state: 'hidden' });

  // a search with a typo still finds it
  await box.fill('dispossesed');
  await box.press('Enter');
  await page.waitForURL('**/store/search?q=dispossesed');
  const results = page.getByTestId('results');
  await t.resolves(results.getByRole('link', { name: 'The Dispossessed', exact: true }).waitFor(), '"dispossesed" finds The Dispossessed');
  const first = results.locator('li').first();
  t.match(await first.textContent(), /The Dispossessed/, 'the best match first');
  t.match(await first.textContent(), /Ursula K\. Le Guin/, 'author shown');
  t.match(await first.textContent(), /11[.,]99/, 'price shown');
  t.match(await first.textContent(), /Ebook/, 'format shown');
  t.match(await first.locator('img').getAttribute('src'), /^\/v1\/books\/covers\//, 'cover shown');

  // the format filter narrows to books that have it (an author search: Le Guin has an ebook-only book)
  await page.goto('/store/search?q=le%20guin');
  await results.getByRole('link', { name: 'A Wizard of Earthsea' }).waitFor();
  await page.getByLabel(/^Print/).check();
  await page.waitForURL(/format=print/);
  await results.getByRole('link', { name: 'A Wizard of Earthsea' }).waitFor({ state: 'detached' });
  const printRows = await results.locator('li').allTextContents();
  t.ok(printRows.length >= 2, 'print books of Le Guin listed');
  for (const text of printRows) t.match(text, /Print/, 'only print books listed');

  // the book page: choose the ebook, add it to the cart
  await page.goto('/store/search?q=dispossesed');
  await results.getByRole('link', { name: 'The Dispossessed', exact: true }).click();
  await page.waitForURL(`**/store/books/${ids['The Dispossessed']}`);
  await page.getByRole('heading', { name: 'The Dispossessed', level: 1 }).waitFor();
  await page.getByLabel(/^Ebook/).check();
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await t.resolves(page.getByText('is in your cart').waitFor(), 'added to the cart');

  // cart → checkout (an ebook needs no delivery address)
  await page.getByRole('link', { name: /Cart/ }).click();
  await page.getByTestId('cart').getByText('The Dispossessed').waitFor();
  await page.getByRole('button', { name: 'Go to checkout' }).click();
  await page.waitForURL('**/store/checkout');
  t.equal(await page.getByLabel('Full name').count(), 0, 'no address asked for an ebook');
  const requestsBeforePay = requests.length;
  await page.getByRole('button', { name: 'Place order and pay' }).click();
  await page.waitForURL(/\/store\/orders\/[0-9a-f-]+$/);
  const orderId = page.url().split('/').pop()!;

  // the order's status changes on screen by itself
  await t.resolves(page.getByTestId('order-state').getByText('Ready').waitFor({ timeout: 20_000 }), 'the order reaches Ready live');
  const orderFetches = requests.slice(requestsBeforePay).filter((r) => r === `GET /v1/orders/${orderId}`);
  t.ok(orderFetches.length <= 1, `the order page loaded the order once and did not poll (${orderFetches.length} fetches)`);

  // the server agrees: fulfilled, paid once, one download link
  const order = (await api(server.base, 'GET', `/v1/orders/${orderId}`, { token: (await page.evaluate(() => JSON.parse(localStorage.getItem('kindred.session')!))).token })).body.order;
  t.equal(order.state, 'fulfilled');
  t.equal(order.downloads.length, 1);

  // the download is the ebook that was uploaded
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download').click()]);
  const file = await download.path();
  t.same(readFileSync(file), ebooks['The Dispossessed'], 'the downloaded file is the ebook');
  t.match(download.suggestedFilename(), /\.pdf$/);

  // the order history shows it
  await page.getByRole('link', { name: 'Orders' }).click();
  await t.resolves(page.getByTestId('orders').getByText('The Dispossessed').waitFor(), 'the order is in the history');
  t.equal(await page.getByTestId('orders').getByTestId('order-state').first().textContent(), 'Ready');

  // a print book: the address is asked for, saved to the address book, and the order ships
  await page.goto(`/store/books/${ids['Kindred']}`);
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.getByText('is in your cart').last().waitFor();
  await page.goto('/store/checkout');
  await page.getByLabel('Full name').fill('Dana Franklin');
  await page.getByLabel('Address', { exact: true }).fill('1 Rufus Lane');
  await page.getByLabel('Postal code').fill('OX1 1DP');
  await page.getByLabel('City').fill('Oxford');
  await page.getByLabel('Country').selectOption('GB');
  await page.getByRole('button', { name: 'Place order and pay' }).click();
  await page.waitForURL((u) => /\/store\/orders\/[0-9a-f-]+$/.test(u.pathname) && !u.pathname.endsWith(orderId));
  await t.resolves(page.getByTestId('order-state').getByText('Ready').waitFor({ timeout: 20_000 }), 'the print order is fulfilled');
  await t.resolves(page.getByText(/tracking number/).waitFor(), 'with a shipment');
  const token = (await page.evaluate(() => JSON.parse(localStorage.getItem('kindred.session')!))).token;
  const book = (await api(server.base, 'GET', `/v1/books/${ids['Kindred']}`)).body.book;
  t.equal(book.stock, 2, 'one print copy sold (3 → 2)');
  const saved = (await api(server.base, 'GET', '/v1/customers/me/addresses', { token })).body.addresses;
  t.equal(saved.length, 1, 'the address was saved to the address book');
  t.equal(saved[0].city, 'Oxford');

  t.same(errors, [], 'no script errors');
});
