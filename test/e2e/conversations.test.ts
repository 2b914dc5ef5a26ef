/**
 * The command-layer pieces XMPP builds on, exercised natively: presence show and
 * status, name resolution, silent delivery acks, the archive across conversations
 * and forward paging, offline replay marking, and open messaging.
 */
import t from 'tap';
import { api, connectWs, matchedPair, registerUser, startTestServer } from '../helpers/server.js';

t.test('presence carries show and status to matches', async (t) => {
  const server = await startTestServer(t);
  const [a, b] = await matchedPair(server, 'show');
  const aWs = await connectWs(server, a);
  const bWs = await connectWs(server, b);
  t.teardown(() => (aWs.close(), bWs.close()));
  await aWs.nextEvent((e) => e.type === 'presence' && e.online);
  await bWs.request('presence.set', { show: 'away', status: 'at the gym' });
  const p = await aWs.nextEvent((e) => e.type === 'presence');
  t.match(p, { type: 'presence', userId: b.userId, online: true, show: 'away', status: 'at the gym' });
  const q = await aWs.request('presence.get', { userIds: [b.userId] });
  t.match(q.presence[0], { online: true, show: 'away', status: 'at the gym' });
  await t.rejects(bWs.request('presence.set', { show: 'sleeping' }), { code: 'INVALID_ARGUMENT' });
});

t.test('users.resolve maps usernames and ids', async (t) => {
  const server = await startTestServer(t);
  const a = await registerUser(server.base, 'resolve');
  const ws = await connectWs(server, a);
  t.teardown(() => ws.close());
  const r = await ws.request('users.resolve', { usernames: [a.username.toUpperCase(), 'nobody-here'] });
  t.same(r.users, [{ userId: a.userId, username: a.username }]);
  const r2 = await ws.request('users.resolve', { userIds: [a.userId] });
  t.same(r2.users, [{ userId: a.userId, username: a.username }]);
});

t.test('offline replay is marked; message.ack clears it silently', async (t) => {
  const server = await startTestServer(t);
  const [a, b] = await matchedPair(server, 'ack');
  const aWs = await connectWs(server, a);
  t.teardown(() => aWs.close());
  const sent = await aWs.request('message.send', { to: b.userId, body: 'while away' });
  const bWs = await connectWs(server, b);
  const replay = await bWs.nextEvent((e) => e.type === 'message');
  t.match(replay, { type: 'message', offline: true, message: { messageId: sent.messageId } });
  await bWs.request('message.ack', { messageIds: [sent.messageId] });
  bWs.close();
  await new Promise((r) => setTimeout(r, 100));
  t.same(aWs.drainEvents().filter((e) => e.type === 'receipt'), [], 'the sender is not told of a silent ack');
  const again = await connectWs(server, b);
  t.teardown(() => again.close());
  await new Promise((r) => setTimeout(r, 200));
  t.same(again.drainEvents().filter((e) => e.type === 'message'), [], 'acknowledged messages are not replayed');
  const live = aWs.request('message.send', { to: b.userId, body: 'now online' });
  const got = await again.nextEvent((e) => e.type === 'message');
  t.equal(got.type === 'message' && got.offline, undefined, 'live messages are not marked offline');
  await live;
});

t.test('the archive across conversations, and forward paging', async (t) => {
  const server = await startTestServer(t);
  const [a, b] = await matchedPair(server, 'arch1');
  const c = await registerUser(server.base, 'arch-c');
  await api(server.base, 'PATCH', '/v1/profile', { token: c.token, json: { birthDate: '1990-01-01', location: { lat: 52.52, lon: 13.4 } } });
  await api(server.base, 'POST', '/v1/swipes', { token: a.token, json: { targetId: c.userId, kind: 'like' } });
  await api(server.base, 'POST', '/v1/swipes', { token: c.token, json: { targetId: a.userId, kind: 'like' } });
  const ws = await connectWs(server, a);
  t.teardown(() => ws.close());
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push((await ws.request('message.send', { to: i % 2 ? c.userId : b.userId, body: `m${i}` })).messageId);
  const all = await ws.request('messages.history', { limit: 4 });
  t.same(all.messages.map((m) => m.messageId), ids.slice(2).reverse(), 'newest first across both conversations');
  t.ok(all.next, 'with a cursor to more');
  const rest = await ws.request('messages.history', { limit: 4, before: all.next! });
  t.same(rest.messages.map((m) => m.messageId), ids.slice(0, 2).reverse());
  t.equal(rest.next, null);
  const fwd = await ws.request('messages.history', { limit: 3, after: ids[1]! });
  t.same(fwd.messages.map((m) => m.messageId), ids.slice(2, 5), 'oldest first after the cursor');
  const withB = await ws.request('messages.history', { with: b.userId, after: ids[0]! });
  t.same(withB.messages.map((m) => m.body), ['m2', 'm4']);
  await t.rejects(ws.request('messages.history', { before: ids[3]!, after: ids[1]! }), { code: 'INVALID_ARGUMENT' });
});

t.test('open messaging lets any users talk; matches messaging does not', async (t) => {
  const matchesServer = await startTestServer(t);
  const x = await registerUser(matchesServer.base, 'closed-x');
  const y = await registerUser(matchesServer.base, 'closed-y');
  const xWs = await connectWs(matchesServer, x);
  t.teardown(() => xWs.close());
  await t.rejects(xWs.request('contact.add', { userId: y.userId }), { code: 'NOT_MATCHED' });
  await t.rejects(xWs.request('message.send', { to: y.userId, body: 'hi' }), { code: 'NOT_MATCHED' });

  const open = await startTestServer(t, { messaging: 'open' });
  const p = await registerUser(open.base, 'open-p');
  const q = await registerUser(open.base, 'open-q');
  const pWs = await connectWs(open, p);
  const qWs = await connectWs(open, q);
  t.teardown(() => (pWs.close(), qWs.close()));
  const added = await pWs.request('contact.add', { userId: q.userId });
  t.type(added.matchId, 'string');
  const [pm, qm] = await Promise.all([pWs.nextEvent((e) => e.type === 'match'), qWs.nextEvent((e) => e.type === 'match')]);
  t.equal(pm.type === 'match' && pm.matchId, added.matchId, 'both sides get the new contact');
  t.equal(qm.type === 'match' && qm.matchId, added.matchId);
  const r = await registerUser(open.base, 'open-r');
  const sent = await pWs.request('message.send', { to: r.userId, body: 'hello stranger' });
  t.type(sent.messageId, 'string', 'a first message opens the conversation');
  await t.rejects(pWs.request('message.send', { to: '01a217f7-e3ad-7000-89ea-b94b16aebb0b', body: 'x' }), { code: 'NOT_FOUND' });
});

t.test('the same commands over REST', async (t) => {
  const server = await startTestServer(t);
  const [a, b] = await matchedPair(server, 'rest');
  const { base } = server;
  t.equal((await api(base, 'PUT', '/v1/presence', { token: a.token, json: { show: 'dnd', status: 'busy' } })).status, 200);
  t.equal((await api(base, 'PUT', '/v1/presence', { token: a.token, json: { show: 'nap' } })).status, 422);
  const sent = await api(base, 'POST', '/v1/messages', { token: a.token, json: { to: b.userId, body: 'hey' } });
  const archive = await api(base, 'GET', '/v1/messages?limit=10', { token: b.token });
  t.same(archive.body.messages.map((m: { messageId: string }) => m.messageId), [sent.body.messageId]);
  t.equal((await api(base, 'POST', '/v1/messages/ack', { token: b.token, json: { messageIds: [sent.body.messageId] } })).status, 200);
  const users = await api(base, 'GET', `/v1/users?usernames=${a.username}`, { token: b.token });
  t.same(users.body.users, [{ userId: a.userId, username: a.username }]);
  t.equal((await api(base, 'POST', '/v1/blocks', { token: b.token, json: { userId: a.userId } })).status, 200);
  t.same((await api(base, 'GET', '/v1/blocks', { token: b.token })).body.userIds, [a.userId]);
  t.equal((await api(base, 'POST', '/v1/contacts', { token: a.token, json: { userId: b.userId } })).status, 403, 'no contact with someone who blocked you');
});

t.test('receipts only for messages you received in that conversation', async (t) => {
  const server = await startTestServer(t);
  const [a, b] = await matchedPair(server, 'rcpt');
  const aWs = await connectWs(server, a);
  const bWs = await connectWs(server, b);
  t.teardown(() => (aWs.close(), bWs.close()));
  const sent = await aWs.request('message.send', { to: b.userId, body: 'hi' });
  await t.rejects(aWs.request('receipt', { to: b.userId, messageId: sent.messageId, kind: 'read' }), { code: 'NOT_FOUND' }, 'not your own message');
  await t.rejects(bWs.request('receipt', { to: a.userId, messageId: '01a217f7-e3ad-7000-89ea-b94b16aebb0b', kind: 'read' }), { code: 'NOT_FOUND' }, 'not a made-up id');
  await bWs.request('receipt', { to: a.userId, messageId: sent.messageId, kind: 'read' });
  const r = await aWs.nextEvent((e) => e.type === 'receipt');
  t.match(r, { type: 'receipt', from: b.userId, messageId: sent.messageId, kind: 'read' });
});

t.test('a resent clientId gets the first answer, on the synchronous path and after the first send too', async (t) => {
  const server = await startTestServer(t);
  const [a, b] = await matchedPair(server, 'cid');
  const aWs = await connectWs(server, a);
  t.teardown(() => aWs.close());
  // The first send with a clientId loads the conversation's stored-send index (the slow path);
  // later ones run synchronously in the actor. Retries must be recognised on both.
  const first = await aWs.request('message.send', { to: b.userId, body: 'one', clientId: 'c-1' });
  const firstAgain = await aWs.request('message.send', { to: b.userId, body: 'one', clientId: 'c-1' });
  t.same(firstAgain, first, 'a retry of the first send: the same answer');
  const sends = await Promise.all(['c-2', 'c-3', 'c-2', 'c-4', 'c-3'].map((clientId) => aWs.request('message.send', { to: b.userId, body: clientId, clientId })));
  t.same(sends[2], sends[0], 'c-2 resent in the same burst: the same answer');
  t.same(sends[4], sends[1], 'c-3 too');
  t.equal(new Set(sends.map((s) => s.messageId)).size, 3, 'three distinct messages for three clientIds');
  const history = await api(server.base, 'GET', `/v1/conversations/${b.userId}/messages?limit=50`, { token: a.token });
  t.equal(history.body.messages.length, 4, 'four messages stored, no duplicates');
});
