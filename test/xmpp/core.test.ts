/**
 * The XMPP core end to end with a real client nobody here wrote (@xmpp/client): STARTTLS + SCRAM
 * over TCP, direct TLS (XEP-0368), WebSocket (RFC 7395); bind, roster = matches, chat with a
 * native-protocol client both ways, disco, ping, errors mapped from the command layer.
 */
import t from 'tap';
import tls from 'node:tls';
import { api, connectWs, matchedPair, registerUser, setProfile } from '../helpers/server.js';
import { PASSWORD, RawXmpp, startXmppServer, xml, xmppLogin } from './helpers.js';

const ROSTER = 'jabber:iq:roster';

t.test('TCP with STARTTLS: SCRAM, bind, roster from REST matches, chat with a native client both ways, roster push', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'xa');

  const a = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: alice.username, resource: 'phone' });
  t.teardown(() => a.stop());
  t.equal(a.jid, `${alice.username}@${domain}/phone`, 'bound the requested resource');
  t.ok(a.xmpp.socket.socket instanceof tls.TLSSocket, 'the stream was upgraded with STARTTLS');
  const auth = a.sent.find((el: any) => el.name === 'auth');
  t.equal(auth?.attrs.mechanism, 'SCRAM-SHA-1', '@xmpp/client picked SCRAM (SHA-1 is the best it implements; SHA-256 is covered by slixmpp and the raw tests)');

  const roster = await a.xmpp.iqCaller.get(xml('query', { xmlns: ROSTER }));
  const items = roster.getChildren('item');
  t.equal(items.length, 1, 'the roster holds the one match');
  t.same(items[0].attrs, { jid: `${bob.username}@${domain}`, name: bob.username, subscription: 'both' });

  // native → XMPP
  const bobWs = await connectWs(server, bob);
  t.teardown(() => bobWs.close());
  const sent = await bobWs.request('message.send', { to: alice.userId, body: 'hi from the native side <&>' });
  const got = await a.waitFor((el) => el.is('message') && el.getChildText('body') !== null, 10_000, 'a chat message');
  t.equal(got.attrs.type, 'chat');
  t.equal(got.attrs.from, `${bob.username}@${domain}`);
  t.equal(got.attrs.to, a.jid);
  t.equal(got.attrs.id, sent.messageId, 'the stanza id is the message id');
  t.equal(got.getChildText('body'), 'hi from the native side <&>');

  // XMPP → native
  await a.xmpp.send(xml('message', { type: 'chat', to: `${bob.username}@${domain}`, id: 'xmpp-1' }, xml('body', {}, 'hello from XMPP')));
  const ev = await bobWs.nextEvent((e) => e.type === 'message');
  t.match(ev, { type: 'message', message: { from: alice.userId, to: bob.userId, body: 'hello from XMPP' } });

  // A second device of the same user does not see the message as incoming (carbons are a module of their own).
  const a2 = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: alice.username, resource: 'laptop' });
  t.teardown(() => a2.stop());
  await a.xmpp.send(xml('message', { type: 'chat', to: `${bob.username}@${domain}`, id: 'xmpp-2' }, xml('body', {}, 'second')));
  await bobWs.nextEvent((e) => e.type === 'message' && e.message.body === 'second');
  await a2.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }));
  t.notOk(a2.received.some((el: any) => el.is('message') && el.getChildText('body') === 'second'), 'own message is not delivered to the other device');

  // Unmatch over REST → roster push to the resource that fetched the roster.
  const res = await api(server.base, 'DELETE', `/v1/matches/${alice.userId}`, { token: bob.token });
  t.equal(res.status, 200);
  const push = await a.waitFor((el) => el.is('iq') && el.attrs.type === 'set' && !!el.getChild('query', ROSTER), 10_000, 'a roster push');
  t.same(push.getChild('query', ROSTER).getChild('item').attrs, { jid: `${bob.username}@${domain}`, subscription: 'remove' });
  t.notOk(a2.received.some((el: any) => el.is('iq') && el.getChild('query', ROSTER)), 'no push to a resource that never fetched the roster');
});

t.test('messages that waited offline arrive with a delay stamp, once', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'xo');
  const res = await api(server.base, 'POST', '/v1/messages', { token: bob.token, json: { to: alice.userId, body: 'while you were away' } });
  t.equal(res.status, 201);
  const a = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: alice.username });
  const msg = await a.waitFor((el) => el.is('message') && el.getChildText('body') === 'while you were away');
  t.ok(msg.getChild('delay', 'urn:xmpp:delay')?.attrs.stamp, 'XEP-0203 delay');
  await a.stop();
  // Delivered (acknowledged on write): not replayed on the next login.
  await new Promise((r) => setTimeout(r, 300));
  const again = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: alice.username });
  t.teardown(() => again.stop());
  await again.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }));
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(again.received.some((el: any) => el.is('message')), 'not replayed');
});

t.test('XEP-0077 registration, then direct TLS (XEP-0368) login, disco and ping', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const raw = await RawXmpp.connect(server.node.xmppTlsPort, { tls: true });
  t.teardown(() => raw.destroy());
  const features = await raw.open(domain);
  t.match(features, /<register xmlns="http:\/\/jabber.org\/features\/iq-register"\/>/);
  t.match(features, /<mechanism>PLAIN<\/mechanism>/, 'PLAIN is offered under TLS');
  await raw.write(`<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>`);
  t.match((await raw.waitFor(/<iq[^>]*id="r1"[\s\S]*?<\/iq>/))[0], /<username\/>[\s\S]*<password\/>/);
  const username = `reg${process.pid}`;
  await raw.write(`<iq type='set' id='r2'><query xmlns='jabber:iq:register'><username>${username}</username><password>${PASSWORD}</password></query></iq>`);
  t.match((await raw.waitFor(/<iq[^>]*id="r2"[^>]*\/?>/))[0], /type="result"/);
  await raw.write(`<iq type='set' id='r3'><query xmlns='jabber:iq:register'><username>${username}</username><password>${PASSWORD}</password></query></iq>`);
  t.match((await raw.waitFor(/<iq[^>]*id="r3"[\s\S]*?<\/iq>/))[0], /<conflict /, 'a taken name is a conflict');

  const c = await xmppLogin({ service: `xmpps://127.0.0.1:${server.node.xmppTlsPort}`, domain, username });
  t.teardown(() => c.stop());
  t.match(c.jid, new RegExp(`^${username}@${domain}/kindred-[0-9a-f]+$`), 'a generated resource');
  const info = await c.xmpp.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), domain);
  t.same(info.getChild('identity').attrs, { category: 'server', type: 'im', name: 'Kindred' });
  const features2 = info.getChildren('feature').map((f: any) => f.attrs.var);
  t.ok(features2.includes('urn:xmpp:ping') && features2.includes('http://jabber.org/protocol/disco#info'));
  const account = await c.xmpp.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), `${username}@${domain}`);
  t.same(account.getChild('identity').attrs, { category: 'account', type: 'registered' });
  await c.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }), domain);
  const unknown = await c.xmpp.iqCaller.get(xml('query', { xmlns: 'urn:example:nothing' })).catch((e: any) => e);
  t.equal(unknown.condition, 'service-unavailable', 'an unknown IQ namespace');
  const roster = await c.xmpp.iqCaller.get(xml('query', { xmlns: ROSTER }));
  t.equal(roster.getChildren('item').length, 0, 'a new account has an empty roster');
});

t.test('WebSocket (RFC 7395): login over loopback, chat with a TCP client', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'xw');
  const a = await xmppLogin({ service: `ws://127.0.0.1:${server.node.httpPort}/xmpp-websocket`, domain, username: alice.username, resource: 'web' });
  t.teardown(() => a.stop());
  t.equal(a.jid, `${alice.username}@${domain}/web`);
  const b = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: bob.username });
  t.teardown(() => b.stop());
  await a.xmpp.send(xml('message', { type: 'chat', to: `${bob.username}@${domain}` }, xml('body', {}, 'over websocket')));
  const m1 = await b.waitFor((el) => el.is('message') && el.getChildText('body') === 'over websocket');
  t.equal(m1.attrs.from, `${alice.username}@${domain}`);
  await b.xmpp.send(xml('message', { type: 'chat', to: `${alice.username}@${domain}` }, xml('body', {}, 'back over tcp')));
  const m2 = await a.waitFor((el) => el.is('message') && el.getChildText('body') === 'back over tcp');
  t.equal(m2.attrs.from, `${bob.username}@${domain}`);
  const roster = await a.xmpp.iqCaller.get(xml('query', { xmlns: ROSTER }));
  t.equal(roster.getChildren('item').length, 1);
});

t.test('refusals from the command layer come back as stanza errors', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const carol = await registerUser(server.base, 'xc');
  const dave = await registerUser(server.base, 'xd');
  await setProfile(server.base, carol);
  await setProfile(server.base, dave);
  const c = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: carol.username });
  t.teardown(() => c.stop());

  await c.xmpp.send(xml('message', { type: 'chat', to: `${dave.username}@${domain}`, id: 'm1' }, xml('body', {}, 'not matched')));
  const err1 = await c.waitFor((el) => el.is('message') && el.attrs.type === 'error' && el.attrs.id === 'm1');
  t.ok(err1.getChild('error').getChild('forbidden', 'urn:ietf:params:xml:ns:xmpp-stanzas'), 'NOT_MATCHED → <forbidden/>');
  t.equal(err1.attrs.from, `${dave.username}@${domain}`);

  await c.xmpp.send(xml('message', { type: 'chat', to: `nobody-here@${domain}`, id: 'm2' }, xml('body', {}, '?')));
  const err2 = await c.waitFor((el) => el.is('message') && el.attrs.type === 'error' && el.attrs.id === 'm2');
  t.ok(err2.getChild('error').getChild('service-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'), 'unknown account → <service-unavailable/>');

  await c.xmpp.send(xml('message', { type: 'chat', to: `someone@elsewhere.example`, id: 'm3' }, xml('body', {}, '?')));
  const err3 = await c.waitFor((el) => el.is('message') && el.attrs.type === 'error' && el.attrs.id === 'm3');
  t.ok(err3.getChild('error').getChild('remote-server-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'), 'no federation');

  const add = await c.xmpp.iqCaller.set(xml('query', { xmlns: ROSTER }, xml('item', { jid: `${dave.username}@${domain}` }))).catch((e: any) => e);
  t.equal(add.condition, 'forbidden', 'adding a non-match to the roster is refused in matches messaging');
});

t.test('open messaging: a roster add creates the contact and pushes it', async (t) => {
  const server = await startXmppServer(t, { messaging: 'open' });
  const { domain } = server.config;
  const erin = await registerUser(server.base, 'xe');
  const finn = await registerUser(server.base, 'xf');
  const e = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: erin.username });
  t.teardown(() => e.stop());
  await e.xmpp.iqCaller.get(xml('query', { xmlns: ROSTER }));
  await e.xmpp.iqCaller.set(xml('query', { xmlns: ROSTER }, xml('item', { jid: `${finn.username}@${domain}` })));
  const push = await e.waitFor((el) => el.is('iq') && el.attrs.type === 'set' && !!el.getChild('query', ROSTER), 10_000, 'a roster push');
  t.equal(push.getChild('query', ROSTER).getChild('item').attrs.jid, `${finn.username}@${domain}`);
  await e.xmpp.send(xml('message', { type: 'chat', to: `${finn.username}@${domain}` }, xml('body', {}, 'hi stranger')));
  const f = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: finn.username });
  t.teardown(() => f.stop());
  const m = await f.waitFor((el) => el.is('message') && el.getChildText('body') === 'hi stranger');
  t.equal(m.attrs.from, `${erin.username}@${domain}`);
});

t.test('binding a resource already in use replaces the old session with <conflict/>', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const user = await registerUser(server.base, 'xr');
  const first = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: user.username, resource: 'same' });
  const errors: any[] = [];
  first.xmpp.on('error', (e: any) => errors.push(e));
  const second = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: user.username, resource: 'same' });
  t.teardown(() => second.stop());
  t.equal(second.jid, `${user.username}@${domain}/same`);
  await first.waitFor((el) => el.name === 'stream:error', 5000, 'a stream error');
  t.ok(first.received.find((el: any) => el.name === 'stream:error').getChild('conflict'), '<conflict/>');
  await second.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }));
  await first.stop();
});
