/**
 * The page's live connection when the socket drops: the page says live updates are paused,
 * reconnects by itself, and what happened meanwhile shows up (a message sent while it was
 * away arrives through the replay and the page's resync). The WebSocket is routed through
 * Playwright so the test can cut it as a network failure would.
 */
import t from 'tap';
import type { WebSocketRoute } from 'playwright-core';
import { api, matchedPair, startTestServer } from '../helpers/server.js';
import { launchBrowser, openPage } from './browser.js';

t.setTimeout(300_000);

t.test('the chat survives a dropped socket', async (t) => {
  const server = await startTestServer(t);
  const [alice, bob] = await matchedPair(server, 'live');
  const browser = await launchBrowser(t);
  const { page, errors } = await openPage(browser, server.base);

  const sockets: WebSocketRoute[] = [];
  await page.routeWebSocket(/\/ws$/, (ws) => {
    sockets.push(ws);
    ws.connectToServer(); // frames pass through both ways
  });
  // logged in as Alice (the session the login page would store)
  await page.addInitScript((s) => localStorage.setItem('kindred.session', s), JSON.stringify({ userId: alice.userId, username: alice.username, token: alice.token, expiresAt: Date.now() + 3_600_000 }));
  await page.goto(`/tindr/chat/${bob.userId}`);
  await page.locator('.live-online').waitFor();
  t.equal(sockets.length, 1, 'one live connection');

  await api(server.base, 'POST', '/v1/messages', { token: bob.token, json: { to: alice.userId, body: 'before the drop' } });
  await t.resolves(page.getByText('before the drop').waitFor(), 'a live message arrives');

  // the network drops the socket; Bob writes while Alice is away
  await sockets[0]!.close({ code: 1006, reason: 'network gone' });
  await t.resolves(page.getByText('Live updates are paused').waitFor(), 'the page says live updates stopped');
  await api(server.base, 'POST', '/v1/messages', { token: bob.token, json: { to: alice.userId, body: 'while you were away' } });

  await t.resolves(page.locator('.live-online').waitFor(), 'it reconnects by itself');
  t.equal(sockets.length, 2, 'through a new connection');
  await t.resolves(page.getByText('while you were away').waitFor(), 'the message sent meanwhile shows up');
  t.equal(await page.getByText('Live updates are paused').count(), 0, 'the banner is gone');
  t.equal(await page.getByText('while you were away').count(), 1, 'shown once, though it came by replay and by resync');

  // and it still works both ways
  await page.getByLabel(/^Message to/).fill('back again');
  await page.getByLabel(/^Message to/).press('Enter');
  await t.resolves(page.getByTestId('message-status').getByText(/Sent|Delivered|Read/).waitFor(), 'sent after the reconnect');
  const history = (await api(server.base, 'GET', `/v1/conversations/${alice.userId}/messages?limit=1`, { token: bob.token })).body.messages;
  t.equal(history[0].body, 'back again', 'the server has it');
  t.same(errors, [], 'no script errors');
});
