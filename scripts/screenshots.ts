/**
 * Takes the screenshots in docs/screenshots/ (shown in the README and docs/web.md):
 * starts a throwaway node on free ports serving the built front end (run `npm run build`
 * first), fills it with a few people, a match and a conversation, and, when the book store's
 * routes are there, some books and an order; then drives Debian's Chromium through the
 * main pages at desktop and phone width.
 *
 *   npm run build && npm run screenshots
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { makeConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { startNode } from '../src/node.js';
import { ProviderProcess } from '../src/payments/provider/process.js';
import { launchBrowser, openPage } from '../test/web/browser.js';
import { seedCatalogue } from '../test/web/store-fixture.js';
import { randomBytes } from 'node:crypto';

const OUT = fileURLToPath(new URL('../docs/screenshots/', import.meta.url));
const PASSWORD = 'correct horse battery';

interface User {
  userId: string;
  token: string;
  username: string;
}

async function call<T = any>(base: string, method: string, path: string, opts: { token?: string; json?: unknown; body?: Buffer; type?: string } = {}): Promise<T> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.json !== undefined) headers['content-type'] = 'application/json';
  if (opts.body) headers['content-type'] = opts.type ?? 'image/png';
  const res = await fetch(base + path, { method, headers, body: opts.json !== undefined ? JSON.stringify(opts.json) : opts.body });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A portrait-like placeholder photo: a gradient and the person's initial. */
function portrait(initial: string, from: string, to: string): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="600" height="800">
    <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="${from}"/><stop offset="1" stop-color="${to}"/></linearGradient></defs>
    <rect width="600" height="800" fill="url(#g)"/>
    <circle cx="300" cy="300" r="130" fill="#ffffff55"/>
    <rect x="140" y="450" width="320" height="350" rx="160" fill="#ffffff55"/>
    <text x="300" y="345" font-family="DejaVu Sans" font-size="130" font-weight="bold" fill="#fff" text-anchor="middle">${initial}</text>
  </svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

async function person(base: string, username: string, profile: Record<string, unknown>, colors: [string, string][]): Promise<User> {
  const r = await call(base, 'POST', '/v1/register', { json: { username, password: PASSWORD } });
  const user = { userId: r.userId, token: r.token, username };
  await call(base, 'PATCH', '/v1/profile', { token: user.token, json: profile });
  for (const [a, b] of colors) await call(base, 'POST', '/v1/profile/images', { token: user.token, body: await portrait(String(profile.displayName).slice(0, 1), a, b) });
  return user;
}

async function login(page: Page, username: string): Promise<void> {
  await page.goto('/login');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in', exact: true }).last().click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
}

async function shot(page: Page, name: string): Promise<void> {
  await page.waitForLoadState('networkidle');
  await page.evaluate(() => document.fonts.ready);
  await page.screenshot({ path: join(OUT, `${name}.png`) });
  console.log(`docs/screenshots/${name}.png`);
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), 'kindred-shots-'));
  // the payment provider stand-in, as its own process (the store's checkout pays through it)
  const webhookSecret = randomBytes(32).toString('hex');
  const provider = await ProviderProcess.start({ dbFile: join(dataDir, 'provider.db'), webhookSecret, behaviour: { latencyMs: 50 } });
  const config = makeConfig({
    dataDir,
    httpPort: 0,
    tcpPort: 0,
    logLevel: 'silent',
    xmpp: { port: 0, tlsPort: 0 },
    auth: { scryptN: 1024 },
    store: { admins: ['librarian'] },
    orders: { providerUrl: provider.url, webhookSecret },
  });
  const node = await startNode(config, createLogger('silent'));
  const base = `http://127.0.0.1:${node.httpPort}`;
  const browser = await launchBrowser({ teardown: () => undefined });
  try {
    const london = { lat: 51.5072, lon: -0.1276 };
    const prefs = (genders: string[]) => ({ ageMin: 24, ageMax: 45, genders, maxDistanceKm: 50 });
    const alice = await person(base, 'alice', { displayName: 'Alice', birthDate: '1995-04-12', gender: 'woman', bio: 'Tea, chess and long walks by the river. Currently reading Le Guin.', location: london, preferences: prefs(['man']) }, [['#f6a5c0', '#8e44ad'], ['#ffd29d', '#e67e22']]);
    const bob = await person(base, 'bob', { displayName: 'Bob', birthDate: '1992-09-30', gender: 'man', bio: 'Builder by day, baker by night. Will trade sourdough for book tips.', location: { lat: 51.5155, lon: -0.0922 }, preferences: prefs(['woman']) }, [['#7fc8f8', '#1d5fa8'], ['#a8e6cf', '#2e8b57']]);
    const carl = await person(base, 'carl', { displayName: 'Carl', birthDate: '1990-01-20', gender: 'man', bio: 'Climbing, jazz records, terrible puns.', location: { lat: 51.53, lon: -0.12 }, preferences: prefs(['woman']) }, [['#f9d56e', '#e8505b']]);
    const dan = await person(base, 'dan', { displayName: 'Dan', birthDate: '1993-07-02', gender: 'man', bio: 'Cyclist and amateur astronomer.', location: { lat: 51.49, lon: -0.15 }, preferences: prefs(['woman']) }, [['#b8f2e6', '#5e6472']]);
    const eve = await person(base, 'eve', { displayName: 'Eve', birthDate: '1996-11-05', gender: 'woman', bio: 'Marine biologist. Ask me about octopuses.', location: { lat: 51.52, lon: -0.1 }, preferences: prefs(['man']) }, [['#c3f0ca', '#1b998b']]);
    void carl;
    void dan;
    void eve;
    // Bob likes Alice; Alice's like (on screen) makes the match
    await call(base, 'POST', '/v1/swipes', { token: bob.token, json: { targetId: alice.userId, kind: 'like' } });

    // ── Tindr, desktop ──
    const a = await openPage(browser, base);
    await a.page.goto('/login?mode=register');
    await shot(a.page, 'tindr-login');
    await login(a.page, 'alice');
    await a.page.goto('/tindr/profile');
    await a.page.getByTestId('photo-grid').locator('img').first().waitFor();
    await shot(a.page, 'tindr-profile');
    await a.page.goto('/tindr');
    await a.page.getByTestId('swipe-card').waitFor();
    // the nearest person first: swipe until Bob is on top
    for (let i = 0; i < 4 && !(await a.page.getByTestId('swipe-card').getAttribute('aria-label'))?.startsWith('Bob'); i++) {
      await a.page.getByRole('button', { name: 'Pass', exact: true }).click();
    }
    await shot(a.page, 'tindr-deck');
    await a.page.getByRole('button', { name: 'Like', exact: true }).click();
    await a.page.getByTestId('match-dialog').getByText("It's a match!").waitFor();
    await shot(a.page, 'tindr-match');
    await a.page.getByRole('button', { name: 'Send a message' }).click();
    await a.page.locator('.live-online').waitFor();

    const b = await openPage(browser, base, { phone: true });
    await login(b.page, 'bob');
    await b.page.goto(`/tindr/chat/${alice.userId}`);
    await b.page.locator('.live-online').waitFor();
    await a.page.getByLabel('Message to Bob').fill('Hi Bob! Your sourdough offer caught my eye.');
    await a.page.getByLabel('Message to Bob').press('Enter');
    await b.page.getByText('Your sourdough offer').waitFor();
    await b.page.getByLabel('Message to Alice').fill('Ha! Deal. What are you reading at the moment?');
    await b.page.getByLabel('Message to Alice').press('Enter');
    await a.page.getByText('What are you reading').waitFor();
    await a.page.getByLabel('Message to Bob').fill('The Dispossessed. You?');
    await a.page.getByLabel('Message to Bob').press('Enter');
    await b.page.getByText('The Dispossessed').waitFor();
    await b.page.getByLabel('Message to Alice').pressSequentially('Something with', { delay: 10 });
    await a.page.getByText('Bob is typing…').waitFor();
    await a.page.getByTestId('message-status').getByText('Read').waitFor();
    await shot(a.page, 'tindr-chat');
    await shot(b.page, 'tindr-chat-phone');
    await a.page.goto('/tindr/matches');
    await a.page.getByTestId('match-list').getByText('Bob').waitFor();
    await shot(a.page, 'tindr-matches');
    await b.page.goto('/tindr');
    await b.page.getByTestId('swipe-card').or(b.page.getByText('No one new nearby')).first().waitFor();
    await shot(b.page, 'tindr-deck-phone');

    await storeShots(base, a.page, b.page);
  } finally {
    await browser.close();
    await node.stop();
    await provider.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The book store's pages, as Alice (desktop) and Bob (phone) shop. */
async function storeShots(base: string, page: Page, phone: Page): Promise<void> {
  const librarian = await call(base, 'POST', '/v1/register', { json: { username: 'librarian', password: PASSWORD } });
  await seedCatalogue(async (method, path, opts = {}) => {
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.json !== undefined) headers['content-type'] = 'application/json';
    else if (opts.body) headers['content-type'] = opts.contentType ?? 'application/octet-stream';
    const res = await fetch(base + path, { method, headers, body: opts.json !== undefined ? JSON.stringify(opts.json) : (opts.body as BodyInit | undefined) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }, librarian.token);

  await page.goto('/');
  await page.getByRole('combobox').pressSequentially('le gu', { delay: 40 });
  await page.getByTestId('suggestions').getByRole('option').first().waitFor();
  await shot(page, 'store-landing');
  await page.goto('/store/search?q=le%20guin');
  await page.getByTestId('results').locator('li').first().waitFor();
  await shot(page, 'store-results');
  await page.getByTestId('results').getByRole('link', { name: 'The Dispossessed' }).click();
  await page.getByRole('button', { name: 'Add to cart' }).waitFor();
  await shot(page, 'store-book');
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.getByText('is in your cart').waitFor();
  await page.goto('/store/search?q=kindred');
  await page.getByTestId('results').getByRole('link', { name: 'Kindred', exact: true }).click();
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.getByText('is in your cart').last().waitFor();
  await page.goto('/store/cart');
  await page.getByTestId('cart').getByText('Kindred').waitFor();
  await shot(page, 'store-cart');
  await page.getByRole('button', { name: 'Go to checkout' }).click();
  await page.getByLabel('Full name').fill('Alice Liddell');
  await page.getByLabel('Address', { exact: true }).fill('12 Rabbit Hole Lane');
  await page.getByLabel('Postal code').fill('OX1 1DP');
  await page.getByLabel('City').fill('Oxford');
  await page.getByLabel('Country').selectOption('GB');
  await shot(page, 'store-checkout');
  await page.getByRole('button', { name: 'Place order and pay' }).click();
  await page.getByTestId('order-state').getByText('Ready').waitFor({ timeout: 20_000 }).catch(async (err) => {
    await page.screenshot({ path: '/tmp/web-eng/order-fail.png' });
    throw err;
  });
  await page.getByTestId('download').waitFor();
  await shot(page, 'store-order');
  await page.goto('/store/orders');
  await page.getByTestId('orders').locator('li').first().waitFor();
  await shot(page, 'store-orders');

  await phone.goto('/store/search?q=dispossesed');
  await phone.getByTestId('results').locator('li').first().waitFor();
  await shot(phone, 'store-results-phone');
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
