/**
 * Messaging beyond the plain chat path, end to end with @xmpp/client and the native protocol:
 * XEP-0085 chat states ⇄ `typing`, XEP-0184/0333 receipts and markers ⇄ `receipt` (with the
 * client's own stanza ids), XEP-0359 stanza ids, XEP-0313 MAM agreeing with `messages.history`,
 * and XEP-0280 carbons across two resources of one account.
 */
import t from 'tap';
import { connectWs, matchedPair } from '../helpers/server.js';
import { startXmppServer, xml, xmppLogin } from './helpers.js';

const CHATSTATES = 'http://jabber.org/protocol/chatstates';
const RECEIPTS = 'urn:xmpp:receipts';
const MARKERS = 'urn:xmpp:chat-markers:0';
const SID = 'urn:xmpp:sid:0';
const CARBONS = 'urn:xmpp:carbons:2';
const FORWARD = 'urn:xmpp:forward:0';
const MAM = 'urn:xmpp:mam:2';
const RSM = 'http://jabber.org/protocol/rsm';
const DATA = 'jabber:x:data';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a native client and an XMPP client exchange messages, typing and read markers both ways and see one history', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'mx');
  const aliceJid = `${alice.username}@${domain}`;
  const bobJid = `${bob.username}@${domain}`;

  const a = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: alice.username, resource: 'phone' });
  t.teardown(() => a.stop());
  const b = await connectWs(server, bob);
  t.teardown(() => b.close());

  // ---- typing ----
  await a.xmpp.send(xml('message', { type: 'chat', to: bobJid }, xml('composing', { xmlns: CHATSTATES })));
  t.match(await b.nextEvent((e) => e.type === 'typing'), { type: 'typing', from: alice.userId, state: 'composing' }, 'XMPP <composing/> → native typing composing');
  await a.xmpp.send(xml('message', { type: 'chat', to: bobJid }, xml('paused', { xmlns: CHATSTATES })));
  t.match(await b.nextEvent((e) => e.type === 'typing'), { type: 'typing', from: alice.userId, state: 'paused' }, 'XMPP <paused/> → native typing paused');

  await b.request('typing', { to: alice.userId, state: 'composing' });
  const composing = await a.waitFor((el) => el.is('message') && !!el.getChild('composing', CHATSTATES), 10_000, '<composing/>');
  t.equal(composing.attrs.from, bobJid);
  t.equal(composing.attrs.type, 'chat');
  t.equal(composing.getChild('body'), undefined, 'a chat state alone, no body');
  await b.request('typing', { to: alice.userId, state: 'paused' });
  await a.waitFor((el) => el.is('message') && !!el.getChild('paused', CHATSTATES), 10_000, '<paused/>');

  // ---- XMPP → native: a body with a chat state is both; the client's id is remembered ----
  await a.xmpp.send(xml('message', { type: 'chat', to: bobJid, id: 'alice-local-1' }, xml('body', {}, 'hello from XMPP'), xml('active', { xmlns: CHATSTATES })));
  t.match(await b.nextEvent((e) => e.type === 'typing'), { state: 'paused' }, '<active/> on a message → typing paused');
  const fromAlice = await b.nextEvent((e) => e.type === 'message');
  t.match(fromAlice, { type: 'message', message: { from: alice.userId, to: bob.userId, body: 'hello from XMPP' } });
  const m1 = (fromAlice as any).message.messageId as string;

  // native read receipt → XMPP <displayed/> naming the id the XMPP client used
  await b.request('receipt', { to: alice.userId, messageId: m1, kind: 'read' });
  const displayed = await a.waitFor((el) => el.is('message') && !!el.getChild('displayed', MARKERS), 10_000, '<displayed/>');
  t.equal(displayed.getChild('displayed', MARKERS).attrs.id, 'alice-local-1', 'the marker names the client stanza id');
  t.equal(displayed.attrs.from, bobJid);
  t.equal(displayed.getChild('body'), undefined);
  await b.request('receipt', { to: alice.userId, messageId: m1, kind: 'delivered' });
  const received = await a.waitFor((el) => el.is('message') && !!el.getChild('received', RECEIPTS), 10_000, 'a delivery receipt');
  t.equal(received.getChild('received', RECEIPTS).attrs.id, 'alice-local-1', 'XEP-0184 receipt with the client id');
  t.equal(received.getChild('received', MARKERS)?.attrs.id, 'alice-local-1', 'and the XEP-0333 received marker');

  // ---- native → XMPP: receipt request, markable, stanza-id; markers back to the native sender ----
  const { messageId: m2 } = await b.request('message.send', { to: alice.userId, body: 'hi from native' });
  const chat = await a.waitFor((el) => el.is('message') && el.getChildText('body') === 'hi from native', 10_000, 'the chat message');
  t.equal(chat.attrs.id, m2);
  t.ok(chat.getChild('request', RECEIPTS), 'XEP-0184 <request/>');
  t.ok(chat.getChild('markable', MARKERS), 'XEP-0333 <markable/>');
  t.same(chat.getChild('stanza-id', SID)?.attrs, { xmlns: SID, id: m2, by: aliceJid }, 'XEP-0359 stanza id by the account');
  t.equal(chat.getChildren('request', RECEIPTS).length, 1, 'decorated once');

  await a.xmpp.send(xml('message', { to: bobJid, id: 'r1' }, xml('received', { xmlns: RECEIPTS, id: m2 })));
  t.match(await b.nextEvent((e) => e.type === 'receipt'), { type: 'receipt', from: alice.userId, messageId: m2, kind: 'delivered' }, 'XEP-0184 <received/> → receipt delivered');
  await a.xmpp.send(xml('message', { type: 'chat', to: bobJid }, xml('displayed', { xmlns: MARKERS, id: m2 })));
  t.match(await b.nextEvent((e) => e.type === 'receipt'), { type: 'receipt', from: alice.userId, messageId: m2, kind: 'read' }, '<displayed/> → receipt read');
  await a.xmpp.send(xml('message', { type: 'chat', to: bobJid }, xml('displayed', { xmlns: MARKERS, id: 'not-a-message-id' })));

  // Nothing of the above became a chat message on the native side.
  await b.request('ping');
  await pause(200);
  t.same(
    b.drainEvents().filter((e) => e.type === 'message'),
    [],
    'chat states and markers never become chat messages',
  );

  // ---- one history: native messages.history and XMPP MAM agree ----
  for (let i = 0; i < 3; i++) await a.xmpp.send(xml('message', { type: 'chat', to: bobJid, id: `more-${i}` }, xml('body', {}, `more ${i}`)));
  for (let i = 0; i < 3; i++) await b.request('message.send', { to: alice.userId, body: `back ${i}` });
  await b.nextEvent((e) => e.type === 'message' && e.message.body === 'more 2');
  await a.waitFor((el) => el.is('message') && el.getChildText('body') === 'back 2', 10_000, 'the last message');

  const hist = await b.request('messages.history', { with: alice.userId, limit: 50 });
  const nativeIds = hist.messages.map((m) => m.messageId).reverse();
  t.equal(nativeIds.length, 8);

  const form = xml('x', { xmlns: DATA, type: 'submit' }, xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, MAM)), xml('field', { var: 'with' }, xml('value', {}, bobJid)));
  const query = xml('query', { xmlns: MAM, queryid: 'h1' }, form, xml('set', { xmlns: RSM }, xml('max', {}, '50'), xml('before')));
  const reply = await a.xmpp.iqCaller.request(xml('iq', { type: 'set' }, query));
  const fin = reply.getChild('fin', MAM);
  t.equal(fin.attrs.complete, 'true');
  const results = a.received.filter((el: any) => el.is('message') && el.getChild('result', MAM)?.attrs.queryid === 'h1').map((el: any) => el.getChild('result', MAM));
  t.same(
    results.map((r: any) => r.attrs.id),
    nativeIds,
    'MAM returns the same message ids, oldest first',
  );
  const first = results[0].getChild('forwarded', FORWARD);
  t.ok(first.getChild('delay', 'urn:xmpp:delay')?.attrs.stamp);
  const orig = first.getChild('message', 'jabber:client');
  t.same(
    { from: orig.attrs.from, to: orig.attrs.to, body: orig.getChildText('body') },
    { from: aliceJid, to: bobJid, body: 'hello from XMPP' },
  );
  t.equal(fin.getChild('set', RSM).getChildText('first'), nativeIds[0]);
  t.equal(fin.getChild('set', RSM).getChildText('last'), nativeIds[7]);

  const account = await a.xmpp.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), aliceJid);
  const features = account.getChildren('feature').map((f: any) => f.attrs.var);
  t.ok(features.includes(MAM) && features.includes(SID), 'MAM and stanza ids on the account');
});

t.test('carbons: two resources of one account, a native device, and the peer', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'mc');
  const aliceJid = `${alice.username}@${domain}`;
  const bobJid = `${bob.username}@${domain}`;
  const service = `xmpp://127.0.0.1:${server.node.xmppPort}`;

  const first = await xmppLogin({ service, domain, username: alice.username, resource: 'first' });
  t.teardown(() => first.stop());
  const second = await xmppLogin({ service, domain, username: alice.username, resource: 'second' });
  t.teardown(() => second.stop());
  const peer = await xmppLogin({ service: `ws://127.0.0.1:${server.node.httpPort}/xmpp-websocket`, domain, username: bob.username });
  t.teardown(() => peer.stop());

  const info = await second.xmpp.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), domain);
  t.ok(
    info.getChildren('feature').some((f: any) => f.attrs.var === CARBONS),
    'the server announces carbons',
  );
  await second.xmpp.iqCaller.set(xml('enable', { xmlns: CARBONS }));

  // sent from the first resource → a <sent/> carbon on the second
  await first.xmpp.send(xml('message', { type: 'chat', to: bobJid, id: 'c1' }, xml('body', {}, 'from the first resource')));
  const carbon = await second.waitFor((el) => el.is('message') && !!el.getChild('sent', CARBONS), 10_000, 'a sent carbon');
  t.equal(carbon.attrs.from, aliceJid, 'from the bare account JID');
  t.equal(carbon.attrs.to, second.jid);
  const inner = carbon.getChild('sent', CARBONS).getChild('forwarded', FORWARD).getChild('message', 'jabber:client');
  t.equal(inner.attrs.from, aliceJid);
  t.equal(inner.attrs.to, bobJid);
  t.equal(inner.getChildText('body'), 'from the first resource');
  const got = await peer.waitFor((el) => el.is('message') && el.getChildText('body') === 'from the first resource');
  t.equal(inner.attrs.id, got.attrs.id, 'the carbon carries the message id the peer got');
  t.equal(inner.getChild('stanza-id', SID)?.attrs.id, got.attrs.id);
  t.notOk(carbon.getChild('request', RECEIPTS), 'the wrapper is not decorated as a chat message');

  // from the peer → both resources
  await peer.xmpp.send(xml('message', { type: 'chat', to: aliceJid, id: 'p1' }, xml('body', {}, 'to both of you')));
  await first.waitFor((el) => el.is('message') && el.getChildText('body') === 'to both of you', 10_000, 'the message on the first');
  await second.waitFor((el) => el.is('message') && el.getChildText('body') === 'to both of you', 10_000, 'the message on the second');

  // a native device of the same user → a carbon on the second, nothing on the first (carbons off)
  const native = await connectWs(server, alice);
  t.teardown(() => native.close());
  await native.request('message.send', { to: bob.userId, body: 'from the native app' });
  const carbon2 = await second.waitFor(
    (el) => el.is('message') && el.getChild('sent', CARBONS)?.getChild('forwarded', FORWARD)?.getChild('message')?.getChildText('body') === 'from the native app',
    10_000,
    'a carbon of the native message',
  );
  t.ok(carbon2);
  await peer.waitFor((el) => el.is('message') && el.getChildText('body') === 'from the native app');

  // disabled again: no more carbons
  await second.xmpp.iqCaller.set(xml('disable', { xmlns: CARBONS }));
  await first.xmpp.send(xml('message', { type: 'chat', to: bobJid }, xml('body', {}, 'after disable')));
  await peer.waitFor((el) => el.is('message') && el.getChildText('body') === 'after disable');
  await second.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }));
  await pause(200);
  const carbons = (c: typeof first) => c.received.filter((el: any) => el.is('message') && el.getChild('sent', CARBONS));
  t.equal(carbons(second).length, 2, 'no carbon once disabled');
  t.equal(carbons(first).length, 0, 'the first resource never enabled carbons');
  t.notOk(
    first.received.some((el: any) => el.is('message') && el.getChildText('body') === 'from the native app'),
    'without carbons, own messages from other devices are not shown',
  );
});
