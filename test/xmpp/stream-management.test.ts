/**
 * XEP-0198 stream management end to end.
 *  - with @xmpp/client (its built-in stream management) over TCP + STARTTLS: the TCP connection
 *    is cut under it, it reconnects and resumes; nothing a native peer sent — before, around or
 *    during the cut — is lost or duplicated, and no fresh bind happened.
 *  - with raw XML over TLS: <r/> → <a h/> counts what was handled (messages only once durable),
 *    resumption by hand, a bad resumption id, h too high, enable before bind, legacy SM without
 *    resumption, and an expired resumption window whose unacknowledged messages come back with
 *    delay stamps at the next login.
 *  - in memory: a client that never acknowledges hits the bound on the unacknowledged queue; a
 *    user keeps only a few sessions waiting for resumption.
 */
import t from 'tap';
import tls from 'node:tls';
import { api, connectWs, matchedPair, type TestServer, type TestUser } from '../helpers/server.js';
import { bindModule } from '../../src/protocol/xmpp/bind.js';
import { messageModule } from '../../src/protocol/xmpp/message.js';
import { MAX_HIBERNATING_PER_USER, MAX_UNACKED, streamManagementModule } from '../../src/protocol/xmpp/stream-management.js';
import { PASSWORD, RawXmpp, startXmppServer, xml, xmppLogin, type XClient } from './helpers.js';
import { memoryServer, waitUntil } from './memory.js';

const SM = 'urn:xmpp:sm:3';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every chat body `c` received so far, in order (duplicates included). */
const bodies = (c: XClient) => c.received.filter((el: any) => el.is('message') && el.getChildText('body') !== null).map((el: any) => el.getChildText('body'));

/** A raw stream over direct TLS, authenticated (SCRAM-SHA-256), not bound yet; returns the post-auth features. */
async function rawAuth(server: TestServer, user: TestUser): Promise<{ raw: RawXmpp; features: string }> {
  const raw = await RawXmpp.connect(server.node.xmppTlsPort, { tls: true });
  await raw.open(server.config.domain);
  const result = await raw.scram('SCRAM-SHA-256', user.username, PASSWORD);
  if (result !== 'success') throw new Error(`login failed: ${result}`);
  const features = await raw.open(server.config.domain);
  return { raw, features };
}

async function rawBound(server: TestServer, user: TestUser, resource: string): Promise<RawXmpp> {
  const { raw } = await rawAuth(server, user);
  await raw.bind(resource);
  return raw;
}

/** Stanzas (message, iq, presence) in what `raw` received after the first `marker`. */
function stanzasAfter(raw: RawXmpp, marker: RegExp, upTo?: RegExp): number {
  const text = raw.text;
  const from = text.search(marker);
  const end = upTo ? text.slice(from).search(upTo) : -1;
  const part = end >= 0 ? text.slice(from, from + end) : text.slice(from);
  return (part.match(/<(message|iq|presence)[\s>\/]/g) ?? []).length - (part.match(/<forwarded /g) ?? []).length;
}

/** The attributes of the next `<name xmlns=SM …/>` from the server. */
async function nonza(raw: RawXmpp, name: string, timeoutMs = 5000): Promise<Record<string, string>> {
  const m = await raw.waitFor(new RegExp(`<${name} xmlns="${SM}"([^>]*?)/?>`), timeoutMs);
  return Object.fromEntries([...m[1]!.matchAll(/([\w:-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!]));
}

t.test('@xmpp/client: the TCP connection is cut, the client resumes, nothing is lost or duplicated', async (t) => {
  const server = await startXmppServer(t, { xmpp: { resumeTimeoutSeconds: 30 } });
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'sm');
  const a = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: alice.username, resource: 'phone' });
  t.teardown(() => a.stop());
  const enabled = await a.waitFor((el) => el.is('enabled', SM), 5000, '<enabled/>');
  t.equal(enabled.attrs.resume, 'true', 'resumption granted');
  t.equal(enabled.attrs.max, '30', 'max = xmpp.resumeTimeoutSeconds');
  t.ok(enabled.attrs.id, 'with an id');
  const sm = a.xmpp.streamManagement;
  for (let i = 0; i < 100 && !sm.enabled; i++) await sleep(10);
  t.equal(sm.enabled, true, "the client's SM is on");
  t.equal(sm.id, enabled.attrs.id);
  const events: string[] = [];
  sm.on('resumed', () => events.push('resumed'));
  a.xmpp.on('online', () => events.push('online'));

  const bobWs = await connectWs(server, bob);
  t.teardown(() => bobWs.close());
  const send = (body: string) => bobWs.request('message.send', { to: alice.userId, body });
  for (const body of ['before 1', 'before 2', 'before 3']) await send(body);
  await a.waitFor((el) => el.is('message') && el.getChildText('body') === 'before 3');
  // Let the server's <r/> and the client's <a/> go round once.
  await a.waitFor((el) => el.is('r', SM), 5000, "the server's <r/>");

  // The client stops reading; two messages are written to it and sit unread in its buffers when
  // the TCP connection is cut under it: written by the server, never seen by the client.
  const socket = a.xmpp.socket.socket as tls.TLSSocket;
  t.ok(socket instanceof tls.TLSSocket, 'the STARTTLS socket');
  socket.pause();
  await send('in flight 1');
  await send('in flight 2');
  await sleep(200);
  socket.destroy();
  // While the client is away (it reconnects after ~1 s), the peer keeps writing.
  for (const body of ['away 1', 'away 2', 'away 3', 'away 4', 'away 5', 'away 6']) await send(body);

  await a.waitFor((el) => el.is('resumed', SM), 10_000, '<resumed/>');
  t.equal(a.received.filter((el: any) => el.is('resumed', SM)).length, 1, 'resumed once');
  t.equal(a.received.find((el: any) => el.is('resumed', SM)).attrs.previd, enabled.attrs.id, 'the session it enabled');
  await a.waitFor((el) => el.is('message') && el.getChildText('body') === 'away 6', 10_000, 'the messages sent during the cut');
  await send('after');
  await a.waitFor((el) => el.is('message') && el.getChildText('body') === 'after');
  t.same(
    bodies(a),
    ['before 1', 'before 2', 'before 3', 'in flight 1', 'in flight 2', 'away 1', 'away 2', 'away 3', 'away 4', 'away 5', 'away 6', 'after'],
    'every message once, in order',
  );
  t.same(events, ['resumed'], 'resumed, not a fresh session');
  t.equal(a.sent.filter((el: any) => el.is('iq') && el.getChild('bind', 'urn:ietf:params:xml:ns:xmpp-bind')).length, 1, 'bound only once');
  t.equal(a.sent.filter((el: any) => el.is('resume', SM)).length, 1, 'one <resume/>');
  const delayed = a.received.filter((el: any) => el.is('message') && el.getChild('delay', 'urn:xmpp:delay')).map((el: any) => el.getChildText('body'));
  t.same(delayed, ['in flight 1', 'in flight 2', 'away 1', 'away 2', 'away 3', 'away 4', 'away 5', 'away 6'], 're-sent on resumption, with a delay stamp');

  // The resumed stream works both ways.
  await a.xmpp.send(xml('message', { type: 'chat', to: `${bob.username}@${domain}` }, xml('body', {}, 'back again')));
  const ev = await bobWs.nextEvent((e) => e.type === 'message' && e.message.body === 'back again');
  t.equal((ev as any).message.from, alice.userId);
  t.equal(a.xmpp.jid.toString(), `${alice.username}@${domain}/phone`, 'same resource');

  // Everything was acknowledged by the client (SM acks → message.ack): nothing is replayed at the next login.
  await a.waitFor((el) => el.is('r', SM) && a.received.indexOf(el) > a.received.findIndex((x: any) => x.is('resumed', SM)), 5000, "an <r/> after resuming");
  await sleep(300);
  await a.stop();
  await sleep(200);
  const again = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: alice.username, resource: 'laptop' });
  t.teardown(() => again.stop());
  await again.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }));
  await sleep(300);
  t.same(bodies(again), [], 'all acknowledged: nothing pending');
});

t.test('raw: <r/> counts handled stanzas, messages once durable; the server asks for acks; h too high', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'sr');
  const { raw, features } = await rawAuth(server, alice);
  t.teardown(() => raw.destroy());
  t.match(features, /<sm xmlns="urn:xmpp:sm:3"\/>/, 'offered after authentication');

  await raw.write(`<enable xmlns='${SM}'/>`);
  t.same(await nonza(raw, 'failed'), {}, 'not before bind…');
  t.match(raw.text, /<failed xmlns="urn:xmpp:sm:3"><unexpected-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/><\/failed>/, '…<unexpected-request/>');
  await raw.bind('desk');
  await raw.write(`<enable xmlns='${SM}' resume='true'/>`);
  const enabled = await nonza(raw, 'enabled');
  t.equal(enabled.resume, 'true');
  t.equal(enabled.max, '300', 'the default window');
  await raw.write(`<r xmlns='${SM}'/>`);
  t.same(await nonza(raw, 'a'), { h: '0' }, 'nothing handled yet');

  // Five stanzas of three kinds; the answer to <r/> comes after all were handled, so h = 5 and
  // the three messages are in storage by then.
  const to = `${bob.username}@${domain}`;
  await raw.write(
    `<message type='chat' to='${to}' id='c1'><body>one</body></message>` +
      `<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>` +
      `<message type='chat' to='${to}' id='c2'><body>two</body></message>` +
      `<presence/>` +
      `<message type='chat' to='${to}' id='c3'><body>three</body></message>` +
      `<r xmlns='${SM}'/>`,
  );
  t.same(await nonza(raw, 'a'), { h: '5' }, 'h counts every handled stanza');
  const history = await api(server.base, 'GET', '/v1/messages?limit=10', { token: bob.token });
  t.same(history.body.messages.map((m: any) => m.body).sort(), ['one', 'three', 'two'], 'acknowledged messages are durable');
  await raw.write(`<enable xmlns='${SM}'/>`);
  await nonza(raw, 'failed');
  t.pass('a second <enable/> fails');

  // Outbound: the server numbers what it sends and asks for acks.
  const bobWs = await connectWs(server, bob);
  t.teardown(() => bobWs.close());
  await bobWs.request('message.send', { to: alice.userId, body: 'for the desk' });
  await raw.waitFor(/<body>for the desk<\/body>/);
  t.same(await nonza(raw, 'r', 3000), {}, 'the server asks for an ack after a short while');
  // The ping reply, then the message (and whatever else modules sent): acknowledge them all.
  const acked = stanzasAfter(raw, /<enabled /);
  t.ok(acked >= 2, 'the ping reply and the message were numbered');
  await raw.write(`<a xmlns='${SM}' h='${acked}'/>`);
  await raw.write(`<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await raw.waitFor(/<iq[^>]*id="p2"/);
  for (let i = 0; i < 5; i++) await bobWs.request('message.send', { to: alice.userId, body: `burst ${i}` });
  await raw.waitFor(/<body>burst 4<\/body>/);
  await nonza(raw, 'r', 3000);
  t.pass('and after a burst');

  // Then the p2 reply and 5 messages: claiming one more than was sent is an error (beyond the
  // slack for what came between bind and <enabled/>, none here; see the next test).
  const sendCount = stanzasAfter(raw, /<enabled /);
  t.ok(sendCount >= acked + 6);
  const early = stanzasAfter(raw, /<jid>/, /<enabled /);
  const claimed = sendCount + early + 1;
  await raw.write(`<a xmlns='${SM}' h='${claimed}'/>`);
  const err = await raw.waitFor(/<stream:error>([\s\S]*?)<\/stream:error>/);
  t.match(err[1], /<undefined-condition xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/, '<undefined-condition/>');
  t.match(err[1], new RegExp(`<handled-count-too-high xmlns="urn:xmpp:sm:3" h="${claimed}" send-count="${sendCount}"/>`), 'with <handled-count-too-high/>');
  t.ok(await raw.waitClosed(), 'closed');
});

t.test("raw: @xmpp/client 0.14's miscounts are tolerated: h that also counts what came before <enabled/>, h that falls back", async (t) => {
  const server = await startXmppServer(t);
  const [alice, bob] = await matchedPair(server, 'sl');
  const bobWs = await connectWs(server, bob);
  t.teardown(() => bobWs.close());
  for (let i = 1; i <= 3; i++) await bobWs.request('message.send', { to: alice.userId, body: `pending ${i}` });
  const raw = await rawBound(server, alice, 'web');
  t.teardown(() => raw.destroy());
  await raw.waitFor(/<body>pending 3<\/body>/);
  const early = stanzasAfter(raw, /<jid>/);
  t.ok(early >= 3, 'the pending messages came between bind and <enabled/>');
  await raw.write(`<enable xmlns='${SM}'/>`);
  await nonza(raw, 'enabled');
  const ping = async (id: string) => {
    await raw.write(`<iq type='get' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await raw.waitFor(new RegExp(`<iq[^>]*id="${id}"`));
  };
  await ping('l1');
  // One stanza sent since <enabled/>; the client claims it plus everything before <enabled/>.
  await raw.write(`<a xmlns='${SM}' h='${1 + early}'/>`);
  await ping('l2');
  t.notMatch(raw.text, /<stream:error>/, 'an h too high by the stanzas before <enabled/> is taken as "all of them"');
  // Its count then restarts from zero: behind what it acknowledged, it acknowledges nothing new.
  await raw.write(`<a xmlns='${SM}' h='0'/>`);
  await ping('l3');
  t.notMatch(raw.text, /<stream:error>/, 'an h behind the last one is ignored');
  await raw.write(`<a xmlns='${SM}' h='3'/>`);
  await ping('l4');
  t.notMatch(raw.text, /<stream:error>/, 'and acks go on from there');
  // Beyond that slack it is still an error.
  const sent = stanzasAfter(raw, /<enabled /);
  await raw.write(`<a xmlns='${SM}' h='${sent + early + 1}'/>`);
  const err = await raw.waitFor(/<stream:error>([\s\S]*?)<\/stream:error>/);
  t.match(err[1], new RegExp(`<handled-count-too-high xmlns="urn:xmpp:sm:3" h="${sent + early + 1}" send-count="${sent}"/>`), 'too high by more than that: <handled-count-too-high/>');
});

t.test('raw: resumption by hand, a bad id, an expired window whose messages come back with delay stamps', async (t) => {
  const server = await startXmppServer(t, { xmpp: { resumeTimeoutSeconds: 1 } });
  const [alice, bob] = await matchedPair(server, 'sx');
  const bobWs = await connectWs(server, bob);
  t.teardown(() => bobWs.close());

  // A bad id: <failed/>, and the stream can still bind.
  const { raw: r0, features } = await rawAuth(server, alice);
  t.match(features, /<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"\/>/);
  await r0.write(`<resume xmlns='${SM}' previd='no-such-session' h='0'/>`);
  await r0.waitFor(/<failed xmlns="urn:xmpp:sm:3"[^>]*><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/><\/failed>/);
  t.pass('<failed><item-not-found/></failed>');
  t.match(await r0.bind('after-failed'), /\/after-failed$/, 'then binds normally');
  r0.destroy();

  // Enable with resumption, receive two messages, acknowledge one, cut; resume by hand.
  const r1 = await rawBound(server, alice, 'one');
  await r1.write(`<enable xmlns='${SM}' resume='true'/>`);
  const { id, max } = await nonza(r1, 'enabled');
  t.equal(max, '1', 'max follows xmpp.resumeTimeoutSeconds');
  await r1.write(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await r1.waitFor(/id="p"/);
  const m1 = await bobWs.request('message.send', { to: alice.userId, body: 'first' });
  const m2 = await bobWs.request('message.send', { to: alice.userId, body: 'second' });
  await r1.waitFor(/<body>second<\/body>/);
  // Acknowledge up to "first" (the ping reply, "first", and whatever else came in between).
  const upToFirst = stanzasAfter(r1, /<enabled /, /<body>first<\/body>/);
  await r1.write(`<a xmlns='${SM}' h='${upToFirst}'/>`);
  await sleep(50);
  r1.destroy();
  await sleep(100);
  const m3 = await bobWs.request('message.send', { to: alice.userId, body: 'third, while away' });

  const { raw: r2 } = await rawAuth(server, alice);
  await r2.write(`<resume xmlns='${SM}' previd='${id}' h='${upToFirst}'/>`);
  t.same(await nonza(r2, 'resumed'), { previd: id, h: '1' }, '<resumed/> with the h of the old stream (one ping)');
  const resent = await r2.waitFor(new RegExp(`<message[^>]*id="${m3.messageId}"[^>]*>[\\s\\S]*?</message>`));
  t.notMatch(r2.text, /<body>first<\/body>/, 'the acknowledged message is not re-sent');
  t.match(r2.text, new RegExp(`<message[^>]*id="${m2.messageId}"`), 'the unacknowledged one is');
  t.match(resent[0], /<body>third, while away<\/body>/, 'and what came while away');
  t.match(resent[0], /<delay xmlns="urn:xmpp:delay"/, 'with a delay stamp');
  await r2.write(`<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>`);
  t.match((await r2.waitFor(/<iq[^>]*id="p2"[^>]*>/))[0], /to="[^"]+\/one"/, 'the same session, same resource, no bind');

  // A second cut, nothing acknowledged this time, and the 1 s window runs out.
  r2.destroy();
  await sleep(2200);
  const { raw: r3 } = await rawAuth(server, alice);
  await r3.write(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
  await r3.waitFor(/<failed xmlns="urn:xmpp:sm:3"[^>]*><item-not-found /);
  t.pass('an expired session cannot be resumed');
  // The unacknowledged messages were never confirmed to the domain: they are pending, and come
  // back at this login with delay stamps; the acknowledged one does not.
  await r3.bind('two');
  const m = await r3.waitFor(new RegExp(`<message[^>]*id="${m3.messageId}"[\\s\\S]*?</message>`));
  t.match(m[0], /<delay xmlns="urn:xmpp:delay" from="[^"]+" stamp="[^"]+"/, 'delivered with a delay stamp');
  t.match(r3.text, new RegExp(`<message[^>]*id="${m2.messageId}"[\\s\\S]*?<delay `), 'the other unacknowledged one too');
  t.notMatch(r3.text, new RegExp(`id="${m1.messageId}"`), 'not the acknowledged one');
  r3.destroy();
});

t.test('raw: SM without resumption (legacy): acks work, a cut ends the session at once', async (t) => {
  const server = await startXmppServer(t);
  const [alice, bob] = await matchedPair(server, 'sl');
  const bobWs = await connectWs(server, bob);
  t.teardown(() => bobWs.close());
  const r1 = await rawBound(server, alice, 'old');
  await r1.write(`<enable xmlns='${SM}'/>`);
  const enabled = await nonza(r1, 'enabled');
  t.same(enabled, {}, 'no id, no resume, no max');
  const sent = await bobWs.request('message.send', { to: alice.userId, body: 'unacked' });
  await r1.waitFor(/<body>unacked<\/body>/);
  await r1.write(`<r xmlns='${SM}'/>`);
  t.same(await nonza(r1, 'a'), { h: '0' });
  r1.destroy();
  await sleep(100);
  // No window: the message was never acknowledged, so the next login gets it again.
  const r2 = await rawBound(server, alice, 'new');
  const m = await r2.waitFor(new RegExp(`<message[^>]*id="${sent.messageId}"[\\s\\S]*?</message>`));
  t.match(m[0], /<delay xmlns="urn:xmpp:delay"/);
  r2.destroy();
});

t.test('in memory: a client that never acknowledges: the queue is bounded, nothing is confirmed to the domain', async (t) => {
  const srv = memoryServer([bindModule, messageModule, streamManagementModule]);
  srv.gateway.users.set('id-romeo', 'romeo');
  const { session, transport } = await srv.boundSession('juliet');
  transport.input(`<enable xmlns='${SM}' resume='true'/>`);
  await waitUntil(() => transport.out.some((e) => e.name === 'enabled'));
  for (let i = 0; i <= MAX_UNACKED; i++) {
    srv.gateway.emit({ type: 'message', message: { messageId: `m${i}`, matchId: 'x', from: 'id-romeo', to: 'id-juliet', body: `n${i}`, sentAt: 0 } });
  }
  await waitUntil(() => session.isClosed, 10_000);
  t.equal(transport.streamError?.condition, 'policy-violation');
  t.equal(transport.out.filter((e) => e.name === 'message').length, MAX_UNACKED, 'what fitted was sent');
  t.ok(transport.out.filter((e) => e.name === 'r').length >= MAX_UNACKED / 5, 'acks were asked for');
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(srv.gateway.executed.some((c) => c.op === 'message.ack'), 'never acknowledged: all still pending in the domain');
  t.same(srv.gateway.closed, [session.connId], 'the session ended, not kept for resumption');
});

t.test('in memory: only a few sessions per user wait for resumption; the oldest goes', async (t) => {
  const srv = memoryServer([bindModule, messageModule, streamManagementModule]);
  const sessions: Array<Awaited<ReturnType<typeof srv.boundSession>>> = [];
  for (let i = 0; i <= MAX_HIBERNATING_PER_USER; i++) {
    const s = await srv.boundSession('juliet', `r${i}`);
    s.transport.input(`<enable xmlns='${SM}' resume='true'/>`);
    await waitUntil(() => s.transport.out.some((e) => e.name === 'enabled'));
    sessions.push(s);
  }
  for (const s of sessions) {
    s.transport.drop();
    await new Promise((r) => setTimeout(r, 2));
  }
  t.equal(sessions[0]!.session.isClosed, true, 'the first to leave is dropped');
  t.same(sessions.slice(1).map((s) => s.session.isDetached), Array(MAX_HIBERNATING_PER_USER).fill(true), 'the others wait');
  for (const s of sessions) s.session.end();
});
