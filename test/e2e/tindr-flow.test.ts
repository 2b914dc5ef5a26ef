/**
 * The whole Tindr flow over real sockets: REST for accounts, profiles and images,
 * the native protocol over WebSocket for one user and over TCP for the other.
 */
import t from 'tap';
import sharp from 'sharp';
import { api, connectTcp, connectWs, registerUser, setProfile, startTestServer } from '../helpers/server.js';
import type { KindredEvent } from '../../src/domain/commands.js';

const png = (color: string) => sharp({ create: { width: 320, height: 400, channels: 3, background: color } }).png().toBuffer();

t.test('two users meet, match, chat, go offline and catch up', async (t) => {
  const server = await startTestServer(t);
  const { base } = server;
  const alice = await registerUser(base, 'alice');
  const bob = await registerUser(base, 'bob');
  await setProfile(base, alice, { displayName: 'Alice', gender: 'woman', preferences: { genders: ['man'], ageMin: 25, ageMax: 40, maxDistanceKm: 30 } });
  await setProfile(base, bob, { displayName: 'Bob', gender: 'man', birthDate: '1992-03-01', location: { lat: 52.5, lon: 13.45 }, preferences: { genders: ['woman'], ageMin: 25, ageMax: 40, maxDistanceKm: 30 } });

  // Images: upload two each over HTTP, served back with cache headers.
  for (const [user, colors] of [[alice, ['red', 'blue']], [bob, ['green', 'white']]] as const) {
    for (const color of colors) {
      const up = await api(base, 'POST', '/v1/profile/images', { token: user.token, body: await png(color), contentType: 'image/png' });
      t.equal(up.status, 201, `image upload for ${user.username}`);
    }
  }
  const aliceImages = await api(base, 'GET', '/v1/profile/images', { token: alice.token });
  t.equal(aliceImages.body.images.length, 2);
  const served = await fetch(base + aliceImages.body.images[0].url);
  t.equal(served.status, 200);
  t.equal(served.headers.get('content-type'), 'image/png');
  t.match(served.headers.get('cache-control'), /max-age=\d+/);
  const decoded = await sharp(Buffer.from(await served.arrayBuffer())).metadata();
  t.equal(decoded.width, 320, 'the served image is the uploaded one');

  // Each finds the other in their deck.
  const aliceDeck = await api(base, 'GET', '/v1/deck', { token: alice.token });
  t.equal(aliceDeck.status, 200);
  const bobCard = aliceDeck.body.cards.find((c: { userId: string }) => c.userId === bob.userId);
  t.ok(bobCard, "Bob is in Alice's deck");
  t.equal(bobCard.images.length, 2, 'with his photos');
  t.ok(bobCard.distanceKm <= 5, 'with a rounded distance');
  t.notOk('location' in bobCard, 'but not his exact location');

  const aliceWs = await connectWs(server, alice);
  const bobTcp = await connectTcp(server, bob);
  const bobDeck = await bobTcp.request('deck.get', { limit: 10 });
  t.ok(bobDeck.cards.some((c) => c.userId === alice.userId), "Alice is in Bob's deck (native, over TCP)");

  // They like each other: the second like makes the match, both hear of it at once.
  const first = await aliceWs.request('swipe', { targetId: bob.userId, kind: 'like' });
  t.equal(first.matched, false);
  const second = await bobTcp.request('swipe', { targetId: alice.userId, kind: 'superlike' });
  t.equal(second.matched, true);
  const [aliceMatch, bobMatch] = await Promise.all([
    aliceWs.nextEvent((e) => e.type === 'match'),
    bobTcp.nextEvent((e) => e.type === 'match'),
  ]);
  t.equal(aliceMatch.type === 'match' && aliceMatch.peer.userId, bob.userId);
  t.equal(bobMatch.type === 'match' && bobMatch.peer.displayName, 'Alice');
  t.equal(aliceMatch.type === 'match' && aliceMatch.matchId, second.matchId);

  // After matching they leave each other's decks.
  const after = await api(base, 'GET', '/v1/deck', { token: alice.token });
  t.notOk(after.body.cards.some((c: { userId: string }) => c.userId === bob.userId), 'a match leaves the deck');

  // Chat both ways with typing and receipts.
  await aliceWs.request('typing', { to: bob.userId, state: 'composing' });
  const typing = await bobTcp.nextEvent((e) => e.type === 'typing');
  t.same(typing, { type: 'typing', from: alice.userId, state: 'composing' });

  const sent = await aliceWs.request('message.send', { to: bob.userId, body: 'hi Bob 👋' });
  const got = (await bobTcp.nextEvent((e) => e.type === 'message')) as Extract<KindredEvent, { type: 'message' }>;
  t.equal(got.message.body, 'hi Bob 👋');
  t.equal(got.message.messageId, sent.messageId);
  await bobTcp.request('receipt', { to: alice.userId, messageId: sent.messageId, kind: 'delivered' });
  await bobTcp.request('receipt', { to: alice.userId, messageId: sent.messageId, kind: 'read' });
  const receipts = [await aliceWs.nextEvent((e) => e.type === 'receipt'), await aliceWs.nextEvent((e) => e.type === 'receipt')];
  t.same(receipts.map((r) => r.type === 'receipt' && r.kind), ['delivered', 'read']);

  const reply = await bobTcp.request('message.send', { to: alice.userId, body: 'hello Alice' });
  const gotReply = (await aliceWs.nextEvent((e) => e.type === 'message')) as Extract<KindredEvent, { type: 'message' }>;
  t.equal(gotReply.message.messageId, reply.messageId);
  await aliceWs.request('receipt', { to: bob.userId, messageId: reply.messageId, kind: 'delivered' });

  // Bob goes offline; Alice's messages wait for him and arrive when he reconnects.
  bobTcp.close();
  await new Promise((r) => setTimeout(r, 100));
  const missed: string[] = [];
  for (let i = 0; i < 5; i++) missed.push((await aliceWs.request('message.send', { to: bob.userId, body: `while you were away ${i}` })).messageId);
  const bobBack = await connectWs(server, bob);
  const caughtUp: string[] = [];
  while (caughtUp.length < missed.length) {
    const e = await bobBack.nextEvent((x) => x.type === 'message');
    if (e.type === 'message') caughtUp.push(e.message.messageId);
  }
  t.same(caughtUp, missed, 'missed messages are delivered on reconnect, in order');
  for (const id of missed) await bobBack.request('receipt', { to: alice.userId, messageId: id, kind: 'delivered' });
  bobBack.close();
  await new Promise((r) => setTimeout(r, 100));
  const third = await connectWs(server, bob);
  await new Promise((r) => setTimeout(r, 200));
  t.same(third.drainEvents().filter((e) => e.type === 'message'), [], 'acknowledged messages are not delivered again');
  third.close();

  // History pages newest first with a cursor, over REST and native alike.
  const all = [sent.messageId, reply.messageId, ...missed];
  const page1 = await api(base, 'GET', `/v1/conversations/${bob.userId}/messages?limit=3`, { token: alice.token });
  t.equal(page1.status, 200);
  t.same(page1.body.messages.map((m: { messageId: string }) => m.messageId), all.slice(-3).reverse());
  const page2 = await aliceWs.request('messages.history', { with: bob.userId, limit: 3, before: page1.body.next });
  t.same(page2.messages.map((m) => m.messageId), all.slice(1, 4).reverse());
  const page3 = await aliceWs.request('messages.history', { with: bob.userId, limit: 3, before: page2.next });
  t.same(page3.messages.map((m) => m.messageId), all.slice(0, 1));
  t.equal(page3.next, null, 'the last page says so');

  aliceWs.close();
});
