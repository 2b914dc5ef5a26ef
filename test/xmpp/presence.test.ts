/**
 * RFC 6121 presence between matches, with a real client (@xmpp/client) and a native-protocol
 * client on the other side: show/status both ways, the initial snapshot, offline → unavailable,
 * nothing for non-matches, the presence opt-out, and subscription requests in `matches` and
 * `open` messaging.
 */
import t from 'tap';
import { api, connectWs, likeEachOther, registerUser, usersWithProfiles, type TestServer, type TestUser } from '../helpers/server.js';
import { startXmppServer, xml, xmppLogin, type XClient } from './helpers.js';

const ROSTER = 'jabber:iq:roster';

/** The next element after the `mark`-th one received that matches. */
function next(c: XClient, mark: number, match: (el: any) => boolean, what: string): Promise<any> {
  return c.waitFor((el) => c.received.indexOf(el) >= mark && match(el), 10_000, what);
}

const presenceFrom = (from: string) => (el: any) => el.is('presence') && el.attrs.from === from;
/** a ping round trip: everything the server sent before it has arrived */
const sync = (c: XClient) => c.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }));
const login = (server: TestServer, u: TestUser, resource?: string) =>
  xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain: server.config.domain, username: u.username, resource });

t.test('show and status flow both ways between XMPP and native clients; offline is unavailable; non-matches see nothing', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob, dave, carol] = await usersWithProfiles(server, 'pa', 'pb', 'pd', 'pc');
  await likeEachOther(server, alice, bob);
  await likeEachOther(server, alice, dave);
  const bobPeer = `${bob.username}@${domain}/kindred`;
  const davePeer = `${dave.username}@${domain}/kindred`;
  const alicePeer = `${alice.username}@${domain}/kindred`;

  // Bob (XMPP) is away; Dave (native) is busy.
  const b = await login(server, bob);
  t.teardown(() => b.stop());
  await b.xmpp.send(xml('presence', {}, xml('show', {}, 'away'), xml('status', {}, 'at lunch')));
  const own = await b.waitFor(presenceFrom(b.jid), 10_000, 'own presence reflected');
  t.equal(own.getChildText('show'), 'away', 'initial presence is reflected to the sender (RFC 6121 §4.2.2)');
  const d = await connectWs(server, dave);
  t.teardown(() => d.close());
  await d.request('presence.set', { show: 'dnd', status: 'busy' });

  // Alice logs in: nothing until her initial presence, then the snapshot of her online matches.
  const a = await login(server, alice, 'phone');
  t.teardown(() => a.stop());
  await sync(a);
  t.notOk(a.received.some((el: any) => el.is('presence')), 'no presence before initial presence');
  let mark = a.received.length;
  await a.xmpp.send(xml('presence'));
  const fromBob = await next(a, mark, presenceFrom(bobPeer), "Bob's presence");
  t.equal(fromBob.attrs.type, undefined, 'available');
  t.equal(fromBob.getChildText('show'), 'away');
  t.equal(fromBob.getChildText('status'), 'at lunch');
  t.equal(fromBob.attrs.to, a.jid);
  const fromDave = await next(a, mark, presenceFrom(davePeer), "Dave's presence (native client)");
  t.equal(fromDave.getChildText('show'), 'dnd');
  t.equal(fromDave.getChildText('status'), 'busy');

  // Alice (XMPP) → Bob (XMPP) and Dave (native).
  let bMark = b.received.length;
  await a.xmpp.send(xml('presence', {}, xml('show', {}, 'chat'), xml('status', {}, 'free to talk <&>')));
  const toBob = await next(b, bMark, (el) => presenceFrom(alicePeer)(el) && el.getChildText('show') === 'chat', "Alice's chat presence");
  t.equal(toBob.getChildText('status'), 'free to talk <&>');
  const ev = await d.nextEvent((e) => e.type === 'presence' && e.userId === alice.userId && e.show === 'chat');
  t.match(ev, { type: 'presence', userId: alice.userId, online: true, show: 'chat', status: 'free to talk <&>' });

  // Back to plain available: no <show/>, no <status/>.
  bMark = b.received.length;
  await a.xmpp.send(xml('presence'));
  const plain = await next(b, bMark, presenceFrom(alicePeer), "Alice's plain presence");
  t.equal(plain.getChild('show'), undefined);
  t.equal(plain.getChild('status'), undefined);
  await d.nextEvent((e) => e.type === 'presence' && e.userId === alice.userId && e.show === 'available' && e.status === undefined);

  // Dave (native) → Alice (XMPP).
  mark = a.received.length;
  await d.request('presence.set', { show: 'xa' });
  const xa = await next(a, mark, presenceFrom(davePeer), "Dave's xa");
  t.equal(xa.getChildText('show'), 'xa');
  t.equal(xa.getChild('status'), undefined, 'no status');

  // Carol is nobody's match: she sees nothing and is seen by nobody.
  const c = await login(server, carol);
  t.teardown(() => c.stop());
  await c.xmpp.send(xml('presence', {}, xml('status', {}, 'hello?')));
  await a.xmpp.send(xml('presence', {}, xml('show', {}, 'dnd')));
  await b.xmpp.send(xml('presence', {}, xml('show', {}, 'xa')));
  // Directed presence to a non-match is dropped too.
  await a.xmpp.send(xml('presence', { to: `${carol.username}@${domain}` }));
  await b.waitFor((el) => presenceFrom(alicePeer)(el) && el.getChildText('show') === 'dnd', 10_000, "Alice's dnd");
  await a.waitFor((el) => presenceFrom(bobPeer)(el) && el.getChildText('show') === 'xa', 10_000, "Bob's xa");
  await Promise.all([sync(a), sync(b), sync(c)]);
  t.notOk(
    c.received.some((el: any) => el.is('presence') && el.attrs.from !== c.jid),
    'the non-match receives no presence',
  );
  t.notOk(
    [...a.received, ...b.received].some((el: any) => el.is('presence') && el.attrs.from?.startsWith(`${carol.username}@`)),
    "nobody receives the non-match's presence",
  );

  // Going offline: Bob's stream closes, Dave's socket closes.
  mark = a.received.length;
  await b.stop();
  const gone = await next(a, mark, presenceFrom(bobPeer), 'Bob unavailable');
  t.equal(gone.attrs.type, 'unavailable');
  d.close();
  const gone2 = await next(a, mark, presenceFrom(davePeer), 'Dave unavailable');
  t.equal(gone2.attrs.type, 'unavailable');

  // The client's own unavailable presence (stream still open): it stops receiving presence,
  // and its match still sees it online until the stream closes.
  const b2 = await login(server, bob);
  t.teardown(() => b2.stop());
  await b2.xmpp.send(xml('presence', {}, xml('status', {}, 'back')));
  await b2.waitFor(presenceFrom(alicePeer), 10_000, "Alice's presence for Bob's new session");
  await a.waitFor((el) => presenceFrom(bobPeer)(el) && el.getChildText('status') === 'back', 10_000, 'Bob is back');
  mark = a.received.length;
  await a.xmpp.send(xml('presence', { type: 'unavailable' }));
  const bMark2 = b2.received.length;
  await sync(a);
  await b2.xmpp.send(xml('presence', {}, xml('show', {}, 'away')));
  await sync(b2);
  await new Promise((r) => setTimeout(r, 200));
  await sync(a);
  t.notOk(a.received.slice(mark).some((el: any) => el.is('presence') && el.attrs.from === bobPeer), 'an unavailable resource gets no presence');
  t.notOk(b2.received.slice(bMark2).some((el: any) => el.is('presence') && el.attrs.from === alicePeer), 'an unavailable resource is not announced offline');
  const { presence } = await api(server.base, 'GET', `/v1/presence?userIds=${alice.userId}`, { token: bob.token }).then((r) => r.body);
  t.equal(presence[0].online, true, 'Alice is still online for her matches');
});

t.test('a match who opted out of presence is never shown', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, erin, finn] = await usersWithProfiles(server, 'oa', 'oe', 'of');
  await likeEachOther(server, alice, erin);
  await likeEachOther(server, alice, finn);
  const res = await api(server.base, 'PATCH', '/v1/profile', { token: erin.token, json: { showPresence: false } });
  t.equal(res.status, 200);

  const e = await login(server, erin);
  t.teardown(() => e.stop());
  await e.xmpp.send(xml('presence', {}, xml('show', {}, 'chat'), xml('status', {}, 'secret')));
  const f = await login(server, finn);
  t.teardown(() => f.stop());
  await f.xmpp.send(xml('presence'));

  const a = await login(server, alice);
  t.teardown(() => a.stop());
  await a.xmpp.send(xml('presence'));
  await a.waitFor(presenceFrom(`${finn.username}@${domain}/kindred`), 10_000, "Finn's presence");
  await e.xmpp.send(xml('presence', {}, xml('show', {}, 'away')));
  await sync(e);
  await e.stop();
  await new Promise((r) => setTimeout(r, 300));
  await sync(a);
  t.notOk(a.received.some((el: any) => el.is('presence') && el.attrs.from?.startsWith(`${erin.username}@`)), 'nothing from the hidden match: not online, not away, not offline');
});

t.test('subscription requests: matches are approved, anyone else is refused; unsubscribe is ignored', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob, carol] = await usersWithProfiles(server, 'sa', 'sb', 'sc');
  await likeEachOther(server, alice, bob);
  const b = await login(server, bob);
  t.teardown(() => b.stop());
  await b.xmpp.send(xml('presence', {}, xml('show', {}, 'away')));
  const a = await login(server, alice);
  t.teardown(() => a.stop());
  await a.xmpp.send(xml('presence'));
  await a.waitFor(presenceFrom(`${bob.username}@${domain}/kindred`), 10_000, "Bob's presence");

  const aliceBare = `${alice.username}@${domain}`;
  await a.xmpp.send(xml('presence', { type: 'subscribe', to: `${carol.username}@${domain}` }));
  const no = await a.waitFor((el) => el.is('presence') && el.attrs.from === `${carol.username}@${domain}`, 10_000, 'an answer about Carol');
  t.match(no.attrs, { type: 'unsubscribed', from: `${carol.username}@${domain}`, to: aliceBare }, 'a non-match: unsubscribed');

  await a.xmpp.send(xml('presence', { type: 'subscribe', to: `nobody-${process.pid}@${domain}` }));
  const none = await a.waitFor((el) => el.is('presence') && el.attrs.from === `nobody-${process.pid}@${domain}`, 10_000, 'an answer about nobody');
  t.equal(none.attrs.type, 'unsubscribed', 'no such account: unsubscribed as well');

  const mark = a.received.length;
  await a.xmpp.send(xml('presence', { type: 'subscribe', to: `${bob.username}@${domain}` }));
  const yes = await next(a, mark, (el) => el.is('presence') && el.attrs.from === `${bob.username}@${domain}`, 'an answer about Bob');
  t.equal(yes.attrs.type, 'subscribed', 'a match: subscribed');
  const current = await next(a, mark, presenceFrom(`${bob.username}@${domain}/kindred`), "Bob's presence after the approval");
  t.equal(current.getChildText('show'), 'away');

  await a.xmpp.send(xml('presence', { type: 'unsubscribe', to: `${bob.username}@${domain}` }));
  await a.xmpp.send(xml('presence', { type: 'unsubscribed', to: `${bob.username}@${domain}` }));
  const roster = await a.xmpp.iqCaller.get(xml('query', { xmlns: ROSTER }));
  t.same(roster.getChildren('item').map((i: any) => i.attrs.jid), [`${bob.username}@${domain}`], 'unsubscribe does not unmatch');
});

t.test('open messaging: a subscription request creates the contact', async (t) => {
  const server = await startXmppServer(t, { messaging: 'open' });
  const { domain } = server.config;
  const erin = await registerUser(server.base, 'se');
  const finn = await registerUser(server.base, 'sf');
  const f = await login(server, finn);
  t.teardown(() => f.stop());
  await f.xmpp.send(xml('presence', {}, xml('status', {}, 'here')));
  const e = await login(server, erin);
  t.teardown(() => e.stop());
  await e.xmpp.iqCaller.get(xml('query', { xmlns: ROSTER }));
  await e.xmpp.send(xml('presence'));

  await e.xmpp.send(xml('presence', { type: 'subscribe', to: `${finn.username}@${domain}` }));
  const yes = await e.waitFor((el) => el.is('presence') && el.attrs.from === `${finn.username}@${domain}`, 10_000, 'the answer');
  t.equal(yes.attrs.type, 'subscribed');
  const push = await e.waitFor((el) => el.is('iq') && el.attrs.type === 'set' && !!el.getChild('query', ROSTER), 10_000, 'a roster push');
  t.match(push.getChild('query', ROSTER).getChild('item').attrs, { jid: `${finn.username}@${domain}`, subscription: 'both' });
  const here = await e.waitFor(presenceFrom(`${finn.username}@${domain}/kindred`), 10_000, "Finn's presence");
  t.equal(here.getChildText('status'), 'here');
  // Both ways: Finn sees Erin now.
  const roster = await f.xmpp.iqCaller.get(xml('query', { xmlns: ROSTER }));
  t.same(roster.getChildren('item').map((i: any) => i.attrs.jid), [`${erin.username}@${domain}`]);
  await f.waitFor(presenceFrom(`${erin.username}@${domain}/kindred`), 10_000, "Erin's presence for Finn");
});
