/**
 * Presence between matches (with the opt-out), idempotent swipes, unmatch, block
 * and report, over real sockets.
 */
import t from 'tap';
import { api, connectWs, matchedPair, registerUser, setProfile, startTestServer } from '../helpers/server.js';

t.test('presence flows between matches and respects the opt-out', async (t) => {
  const server = await startTestServer(t);
  const [a, b] = await matchedPair(server, 'pres');
  const aWs = await connectWs(server, a);
  t.teardown(() => aWs.close());

  const bWs = await connectWs(server, b);
  const online = await aWs.nextEvent((e) => e.type === 'presence');
  t.match(online, { type: 'presence', userId: b.userId, online: true });
  const seen = await aWs.request('presence.get', { userIds: [b.userId] });
  t.equal(seen.presence.length, 1);
  t.equal(seen.presence[0]!.online, true);

  bWs.close();
  const offline = await aWs.nextEvent((e) => e.type === 'presence');
  t.match(offline, { type: 'presence', userId: b.userId, online: false });
  t.type(offline.type === 'presence' && offline.lastActiveAt, 'number', 'last active is shown');

  // A stranger cannot see presence at all.
  const stranger = await registerUser(server.base, 'pres-x');
  const none = await api(server.base, 'GET', `/v1/presence?userIds=${b.userId}`, { token: stranger.token });
  t.equal(none.status, 200);
  t.same(none.body.presence, [], 'presence is only for matches');

  // B opts out: A learns nothing more.
  t.equal((await api(server.base, 'PATCH', '/v1/profile', { token: b.token, json: { showPresence: false } })).status, 200);
  const bAgain = await connectWs(server, b);
  await new Promise((r) => setTimeout(r, 300));
  t.same(aWs.drainEvents().filter((e) => e.type === 'presence'), [], 'no presence event after opting out');
  const hidden = await aWs.request('presence.get', { userIds: [b.userId] });
  t.same(hidden.presence, [{ userId: b.userId, online: false, lastActiveAt: null }]);
  bAgain.close();
});

t.test('swipes are idempotent; unmatch, block and report', async (t) => {
  const server = await startTestServer(t);
  const { base } = server;
  const [a, b] = await matchedPair(server, 'safe');
  const again = await api(base, 'POST', '/v1/swipes', { token: a.token, json: { targetId: b.userId, kind: 'like' } });
  t.equal(again.status, 200);
  t.equal(again.body.matched, true, 'repeating a like returns the same outcome');
  const matches = await api(base, 'GET', '/v1/matches', { token: a.token });
  t.equal(matches.body.matches.length, 1, 'and does not create a second match');

  const aWs = await connectWs(server, a);
  const bWs = await connectWs(server, b);
  t.teardown(() => (aWs.close(), bWs.close()));
  await aWs.request('message.send', { to: b.userId, body: 'before' });
  const unmatch = await api(base, 'DELETE', `/v1/matches/${a.userId}`, { token: b.token });
  t.equal(unmatch.status, 200);
  const [ua, ub] = await Promise.all([aWs.nextEvent((e) => e.type === 'unmatch'), bWs.nextEvent((e) => e.type === 'unmatch')]);
  t.match(ua, { type: 'unmatch', userId: b.userId });
  t.match(ub, { type: 'unmatch', userId: a.userId });
  await t.rejects(aWs.request('message.send', { to: b.userId, body: 'after' }), { code: 'NOT_MATCHED' }, 'no messages after unmatch');
  const history = await aWs.request('messages.history', { with: b.userId });
  t.equal(history.messages.length, 1, 'the conversation stays readable (for reports)');
  const ended = await api(base, 'GET', '/v1/matches', { token: a.token });
  t.equal(ended.body.matches[0].ended, true);

  // Report is stored for moderation.
  const report = await api(base, 'POST', '/v1/reports', { token: a.token, json: { userId: b.userId, reason: 'spam', details: 'sent links' } });
  t.equal(report.status, 201);
  const stored = await server.node.service['d'].storage.reports.listForReported(b.userId);
  t.equal(stored.length, 1);
  t.match(stored[0], { reporterId: a.userId, reason: 'spam', details: 'sent links' });

  // Block: the blocked user disappears from decks, profile views and swipes.
  const c = await registerUser(base, 'safe-c');
  const d = await registerUser(base, 'safe-d');
  await setProfile(base, c);
  await setProfile(base, d);
  const deckBefore = await api(base, 'GET', '/v1/deck', { token: c.token });
  t.ok(deckBefore.body.cards.some((x: { userId: string }) => x.userId === d.userId));
  t.equal((await api(base, 'POST', '/v1/blocks', { token: c.token, json: { userId: d.userId } })).status, 200);
  const deckAfter = await api(base, 'GET', '/v1/deck', { token: c.token });
  t.notOk(deckAfter.body.cards.some((x: { userId: string }) => x.userId === d.userId), 'blocked user leaves the deck');
  const theirDeck = await api(base, 'GET', '/v1/deck', { token: d.token });
  t.notOk(theirDeck.body.cards.some((x: { userId: string }) => x.userId === c.userId), 'both ways');
  const swipe = await api(base, 'POST', '/v1/swipes', { token: d.token, json: { targetId: c.userId, kind: 'like' } });
  t.equal(swipe.status, 404, 'a blocked user cannot be swiped');
  const view = await api(base, 'GET', `/v1/users/${c.userId}/profile`, { token: d.token });
  t.equal(view.status, 404, 'nor viewed');
});

t.test('a block after a like prevents the match, even with both actors active', async (t) => {
  const server = await startTestServer(t);
  const { base } = server;
  const carol = await registerUser(base, 'carol');
  const eve = await registerUser(base, 'eve');
  await setProfile(base, carol);
  await setProfile(base, eve);
  const carolWs = await connectWs(server, carol);
  const eveWs = await connectWs(server, eve);
  t.teardown(() => (carolWs.close(), eveWs.close()));
  t.equal((await carolWs.request('swipe', { targetId: eve.userId, kind: 'like' })).matched, false);
  await carolWs.request('block', { userId: eve.userId });
  await t.rejects(eveWs.request('swipe', { targetId: carol.userId, kind: 'like' }), { code: 'NOT_FOUND' }, 'the blocked user cannot like the blocker');
  await t.rejects(eveWs.request('message.send', { to: carol.userId, body: 'hi' }), { code: 'NOT_MATCHED' });
  const matches = await carolWs.request('matches.list');
  t.equal(matches.matches.length, 0, 'no match was made');
});

t.test('the deck keeps filling after the nearest people were swiped', async (t) => {
  const server = await startTestServer(t);
  const { base } = server;
  const seeker = await registerUser(base, 'seeker');
  await setProfile(base, seeker, { location: { lat: 40, lon: -3 } });
  const others = [];
  for (let i = 0; i < 90; i++) {
    const u = await registerUser(base, 'near');
    await setProfile(base, u, { location: { lat: 40 + i * 0.001, lon: -3 } });
    others.push(u);
  }
  const ws = await connectWs(server, seeker);
  t.teardown(() => ws.close());
  // Pass on the 80 nearest: the default window (limit*5+50 = 75 for limit 5) is all swiped.
  for (const u of others.slice(0, 80)) await ws.request('swipe', { targetId: u.userId, kind: 'pass' });
  const deck = await ws.request('deck.get', { limit: 5 });
  t.same(deck.cards.map((c) => c.userId), others.slice(80, 85).map((u) => u.userId), 'the next nearest unswiped people');
});
