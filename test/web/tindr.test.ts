/**
 * Tindr in two real browsers (Chromium through playwright-core) against a real node serving
 * the built front end: both register, fill their profiles and upload photos (one reorders and
 * deletes), like each other on the deck, both see the match live, then chat: typing shows on
 * the other side, messages arrive live, read receipts come back, and older history loads on
 * scrolling up. One browser runs at phone width.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { api, startTestServer } from '../helpers/server.js';
import { launchBrowser, openPage } from './browser.js';

// a browser on a busy 2-core machine (CI runs two test files at once) needs more than tap's default
t.setTimeout(300_000);

const dir = mkdtempSync(join(tmpdir(), 'kindred-photos-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function photo(name: string, color: string): Promise<string> {
  const file = join(dir, name);
  await sharp({ create: { width: 300, height: 400, channels: 3, background: color } }).jpeg().toFile(file);
  return file;
}

async function register(page: Page, username: string): Promise<void> {
  await page.goto('/login?mode=register');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL('**/tindr/profile');
}

async function fillProfile(page: Page, p: { name: string; gender: string; likes: string[]; lat: string; lon: string }): Promise<void> {
  await page.getByLabel('Name', { exact: true }).fill(p.name);
  await page.getByLabel('Birth date').fill('1994-05-17');
  await page.getByLabel('Gender', { exact: true }).selectOption(p.gender);
  await page.getByLabel('Bio').fill(`Hi, I am ${p.name}.`);
  await page.getByLabel('Latitude').fill(p.lat);
  await page.getByLabel('Longitude').fill(p.lon);
  for (const g of ['woman', 'man', 'nonbinary']) await page.getByLabel(g, { exact: true }).setChecked(p.likes.includes(g));
  await page.getByRole('button', { name: 'Save profile' }).click();
  await page.getByText('Profile saved.').waitFor();
}

async function token(page: Page): Promise<{ token: string; userId: string }> {
  return page.evaluate(() => JSON.parse(localStorage.getItem('kindred.session')!));
}

t.test('two people register, match live and chat', async (t) => {
  const server = await startTestServer(t);
  const browser = await launchBrowser(t);
  const alice = await openPage(browser, server.base);
  const bob = await openPage(browser, server.base, { phone: true });
  const suffix = String(process.pid);

  // a refusal is shown to the person, not swallowed
  await bob.page.goto('/login');
  await bob.page.getByLabel('Username').fill(`nobody${suffix}`);
  await bob.page.getByLabel('Password').fill('not the password');
  await bob.page.getByRole('button', { name: 'Log in', exact: true }).last().click();
  await t.resolves(bob.page.getByRole('alert').getByText('Wrong username or password').waitFor(), 'a failed login says why');

  await register(alice.page, `alice${suffix}`);
  await register(bob.page, `bob${suffix}`);
  await fillProfile(alice.page, { name: 'Alice', gender: 'woman', likes: ['man'], lat: '51.5072', lon: '-0.1276' });
  await fillProfile(bob.page, { name: 'Bob', gender: 'man', likes: ['woman'], lat: '51.5155', lon: '-0.0922' });

  // photos: Alice uploads three, moves the last to the front and deletes one
  const red = await photo('red.jpg', '#c03030');
  const green = await photo('green.jpg', '#30a040');
  const blue = await photo('blue.jpg', '#3050c0');
  await alice.page.getByLabel('Add photos').setInputFiles([red, green, blue]);
  const aliceGrid = alice.page.getByTestId('photo-grid').locator('li');
  await t.resolves(aliceGrid.nth(2).waitFor(), 'three photos shown');
  t.equal(await aliceGrid.count(), 3);
  const a = await token(alice.page);
  const before = (await api(server.base, 'GET', '/v1/profile/images', { token: a.token })).body.images.map((i: { imageId: string }) => i.imageId);
  t.equal(before.length, 3, 'three photos stored');
  await alice.page.getByRole('button', { name: 'Move photo 3 earlier' }).click();
  await alice.page.getByRole('button', { name: 'Move photo 2 earlier' }).click();
  await t.resolves(
    (async () => {
      for (let i = 0; i < 50; i++) {
        const now = (await api(server.base, 'GET', '/v1/profile/images', { token: a.token })).body.images.map((x: { imageId: string }) => x.imageId);
        if (now[0] === before[2]) return now;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('order not saved');
    })(),
    'the third photo is now first on the server',
  );
  await alice.page.getByRole('button', { name: 'Delete photo 3' }).click();
  await alice.page.getByText('Photo deleted.').waitFor();
  t.equal(await aliceGrid.count(), 2, 'two photos left on screen');
  const after = (await api(server.base, 'GET', '/v1/profile/images', { token: a.token })).body.images.map((x: { imageId: string }) => x.imageId);
  t.same(after, [before[2], before[0]], 'server order: blue, red (green deleted)');

  await bob.page.getByLabel('Add photos').setInputFiles([green]);
  await bob.page.getByTestId('photo-grid').locator('li').first().waitFor();

  // a third person, whom Alice will pass by dragging the card away
  const carl = await api(server.base, 'POST', '/v1/register', { json: { username: `carl${suffix}`, password: 'correct horse battery' } });
  await api(server.base, 'PATCH', '/v1/profile', {
    token: carl.body.token,
    json: { displayName: 'Carl', birthDate: '1990-01-20', gender: 'man', location: { lat: 51.51, lon: -0.12 }, preferences: { ageMin: 18, ageMax: 99, genders: ['woman'], maxDistanceKm: 50 } },
  });

  // the deck: Alice drags Carl away (pass) and likes Bob with the button; Bob likes Alice with the keyboard
  await alice.page.getByRole('link', { name: 'Discover' }).click();
  const aliceCard = alice.page.getByTestId('swipe-card');
  await aliceCard.waitFor();
  // the order of the deck is the ranking's: handle whoever is on top
  const seen: string[] = [];
  while (await aliceCard.count()) {
    const label = (await aliceCard.getAttribute('aria-label'))!;
    seen.push(label.split(',')[0]!);
    if (label.startsWith('Bob')) {
      t.match(await aliceCard.textContent(), /km away/);
      await alice.page.getByRole('button', { name: 'Like', exact: true }).click();
    } else {
      const box = (await aliceCard.boundingBox())!;
      await alice.page.mouse.move(box.x + box.width / 2, box.y + box.height / 3);
      await alice.page.mouse.down();
      for (let dx = 20; dx <= 200; dx += 20) await alice.page.mouse.move(box.x + box.width / 2 - dx, box.y + box.height / 3);
      await alice.page.mouse.up();
    }
    await alice.page.waitForFunction((old) => document.querySelector('[data-testid=swipe-card]')?.getAttribute('aria-label') !== old, label);
  }
  t.same(seen.sort(), ['Bob', 'Carl'], 'Alice saw Bob and Carl, liked Bob and dragged Carl away');
  await alice.page.getByText('No one new nearby').waitFor();
  await alice.page.locator('.live-online').waitFor(); // Alice's live socket is up before Bob answers

  await bob.page.goto('/tindr');
  const bobCard = bob.page.getByTestId('swipe-card');
  await bobCard.waitFor();
  t.match(await bobCard.getAttribute('aria-label'), /^Alice, \d+$/, 'Bob sees Alice');
  t.equal(await bobCard.locator('img').getAttribute('src'), `/images/${before[2]}`, "Alice's first photo is the one she moved first");
  await bob.page.keyboard.press('ArrowRight');

  // both see the match: Bob from his swipe's answer, Alice live from the match event
  const bobDialog = bob.page.getByTestId('match-dialog');
  const aliceDialog = alice.page.getByTestId('match-dialog');
  await t.resolves(bobDialog.getByText("It's a match!").waitFor(), 'Bob sees the match');
  await t.resolves(aliceDialog.getByText("It's a match!").waitFor(), 'Alice sees the match live');
  t.match(await aliceDialog.textContent(), /You and Bob like each other/);

  // history to scroll back through: 40 older messages from Alice, over REST
  const b = await token(bob.page);
  for (let i = 1; i <= 40; i++) {
    const res = await api(server.base, 'POST', '/v1/messages', { token: a.token, json: { to: b.userId, body: `old message ${i}` } });
    t.equal(res.status, 201);
  }

  await aliceDialog.getByRole('button', { name: 'Send a message' }).click();
  await bobDialog.getByRole('button', { name: 'Send a message' }).click();
  await alice.page.waitForURL(`**/tindr/chat/${b.userId}`);
  await bob.page.waitForURL(`**/tindr/chat/${a.userId}`);

  // scroll-back: the newest page is shown, older ones load when scrolling up
  const bobMessages = bob.page.getByTestId('message');
  await bob.page.getByText('old message 40').waitFor();
  t.equal(await bob.page.getByText('old message 1', { exact: true }).count(), 0, 'the oldest are not loaded yet');
  await bob.page.getByTestId('messages').evaluate((el) => (el.scrollTop = 0));
  await t.resolves(bob.page.getByText('old message 1', { exact: true }).waitFor(), 'scrolling up loads older history');
  await bob.page.getByText('Start of your conversation').waitFor();
  t.equal(await bobMessages.count(), 40);

  // typing: Alice types, Bob sees it; she sends, Bob gets the message and it turns Read for her
  await alice.page.locator('.live-online').waitFor();
  await bob.page.locator('.live-online').waitFor();
  await alice.page.getByLabel('Message to Bob').pressSequentially('Hello Bob', { delay: 20 });
  await t.resolves(bob.page.getByTestId('typing').getByText('Alice is typing…').waitFor(), 'Bob sees Alice typing');
  await alice.page.getByLabel('Message to Bob').press('Enter');
  await t.resolves(bob.page.getByText('Hello Bob', { exact: true }).waitFor(), 'Bob gets the message live');
  await t.resolves(bob.page.getByTestId('typing').getByText('Alice is typing…').waitFor({ state: 'detached' }), 'the typing indicator goes away');
  const aliceStatus = alice.page.getByTestId('message-status');
  await t.resolves(aliceStatus.getByText('Read').waitFor(), 'Alice sees that Bob read it');

  await bob.page.getByLabel('Message to Alice').fill('Hi Alice! Tea?');
  await bob.page.getByRole('button', { name: 'Send' }).click();
  await t.resolves(alice.page.getByText('Hi Alice! Tea?').waitFor(), 'Alice gets the reply live');
  await t.resolves(bob.page.getByTestId('message-status').getByText('Read').waitFor(), 'Bob sees that Alice read it');

  // the server agrees: both messages are in the history
  const history = (await api(server.base, 'GET', `/v1/conversations/${b.userId}/messages?limit=2`, { token: a.token })).body.messages.map((m: { body: string }) => m.body);
  t.same(history, ['Hi Alice! Tea?', 'Hello Bob']);

  // Bob reports Alice; Alice unmatches, and Bob's open chat turns read-only live
  await bob.page.getByRole('button', { name: 'Report' }).click();
  await bob.page.getByLabel('Reason').selectOption('spam');
  await bob.page.getByLabel('What happened? (optional)').fill('Testing the report form.');
  await bob.page.getByRole('button', { name: 'Send report' }).click();
  await t.resolves(bob.page.getByText('was reported to our moderators').waitFor(), 'the report is confirmed');

  // the matches list shows the match
  await alice.page.getByRole('link', { name: /Matches/ }).click();
  await t.resolves(alice.page.getByTestId('match-list').getByText('Bob').waitFor(), 'Bob is in the matches list');
  await alice.page.getByTestId('match-list').getByText('Bob').click();
  alice.page.once('dialog', (d) => void d.accept());
  await alice.page.getByRole('button', { name: 'Unmatch' }).click();
  await alice.page.waitForURL('**/tindr/matches');
  await t.resolves(bob.page.getByText('This match has ended').waitFor(), "Bob's chat learns of the unmatch live");
  await t.resolves(alice.page.getByRole('heading', { name: 'Ended' }).waitFor(), 'the match is listed as ended');
  const aliceDeck = (await api(server.base, 'GET', '/v1/deck', { token: a.token })).body.cards;
  t.same(aliceDeck, [], "the drag was stored as a swipe: Carl is not in Alice's deck any more");

  t.same(alice.errors, [], 'no script errors in Alice\'s browser');
  t.same(bob.errors, [], 'no script errors in Bob\'s browser');
});
