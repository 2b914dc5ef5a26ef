/**
 * XMPP across a three-node cluster, in this process, on a real nats-server (JetStream), a real
 * Cassandra and a real versitygw, with the real @xmpp/client: two users who matched over REST
 * log in on different nodes; the roster shows the match; presence (available, show/status,
 * unavailable), chat states, messages and receipts cross nodes both ways; the archive (MAM)
 * read through the third node is the same; an XMPP user chats with a native one on another
 * node; the same full JID bound on a second node replaces the first session (RFC 6120
 * §7.7.2.2 <conflict/>); a block made on one node is pushed (XEP-0191) to the blocker's
 * resources on the other nodes.
 */
import t from 'tap';
import { NativeClient } from '../../src/client/native.js';
import { sleep } from '../helpers/async.js';
import { startClusterNode, startClusterServices, waitFor, type ClusterNode } from '../helpers/cluster.js';
import { api, likeEachOther, usersWithProfiles, type TestUser } from '../helpers/server.js';
import { xml, xmppLogin, type XClient } from '../xmpp/helpers.js';
import { failOnLingeringHandles } from '../helpers/exit-watch.js';

// first, so its teardown runs last: a socket or timer left after the teardowns fails the file with a report
failOnLingeringHandles(t);

t.setTimeout(240_000);

const ROSTER = 'jabber:iq:roster';
const CHATSTATES = 'http://jabber.org/protocol/chatstates';
const RECEIPTS = 'urn:xmpp:receipts';
const MARKERS = 'urn:xmpp:chat-markers:0';
const MAM = 'urn:xmpp:mam:2';
const DATA = 'jabber:x:data';
const FORWARD = 'urn:xmpp:forward:0';
const BLOCKING = 'urn:xmpp:blocking';

const svc = await startClusterServices(t, 'xmpp');

const healthy = async (n: ClusterNode) => (await fetch(`${n.base}/healthz`)).status === 200;

const started = Date.now();
const nodes = await Promise.all(['x1', 'x2', 'x3'].map((id) => startClusterNode(t, svc, id)));
const [n1, n2, n3] = nodes as [ClusterNode, ClusterNode, ClusterNode];
await waitFor(async () => nodes.every((n) => n.node.cluster!.membership.members().length === 3) && (await Promise.all(nodes.map(healthy))).every(Boolean), 30_000, 'three healthy nodes');
t.comment(`three nodes healthy ${Date.now() - started} ms after starting them`);
const domain = 'localhost';
const bare = (u: TestUser) => `${u.username}@${domain}`;

async function login(n: ClusterNode, u: TestUser, resource: string): Promise<XClient> {
  const c = await xmppLogin({ service: n.xmpp, domain, username: u.username, resource });
  t.teardown(() => c.stop());
  return c;
}

async function nativeOn(n: ClusterNode, u: TestUser): Promise<NativeClient> {
  const c = await NativeClient.connectWs(n.wsUrl);
  await c.request('auth', { token: u.token });
  t.teardown(() => c.close());
  return c;
}

const isPresenceFrom = (u: TestUser, pred: (el: any) => boolean = () => true) => (el: any) =>
  el.is('presence') && typeof el.attrs.from === 'string' && el.attrs.from.startsWith(bare(u) + '/') && pred(el);

/** Waits for the next element matching `pred` that arrives after this call. */
function next(c: XClient, pred: (el: any) => boolean, what: string, ms = 10_000): Promise<any> {
  const seen = c.received.length;
  return c.waitFor((el) => c.received.indexOf(el) >= seen && pred(el), ms, what);
}

t.test('two XMPP users on different nodes: roster, presence, chat states, messages, receipts, shared archive', async (t) => {
  const [alice, bob] = await usersWithProfiles(n1, 'xca', 'xcb');
  await likeEachOther(n2, alice!, bob!);
  const a = await login(n1, alice!, 'phone');
  const b = await login(n2, bob!, 'laptop');
  t.equal(a.jid, `${bare(alice!)}/phone`);

  // roster = the match, fetched on each node
  for (const [c, peer, name] of [[a, bob!, 'alice on x1'], [b, alice!, 'bob on x2']] as Array<[XClient, TestUser, string]>) {
    const roster = await c.xmpp.iqCaller.get(xml('query', { xmlns: ROSTER }));
    t.same(
      roster.getChildren('item').map((i: any) => [i.attrs.jid, i.attrs.subscription]),
      [[bare(peer), 'both']],
      `${name}: the roster shows the match`,
    );
  }

  // presence: Alice is available first; Bob's initial presence (away, with a status) reaches her on x1
  await a.xmpp.send(xml('presence'));
  const bobOnline = next(a, isPresenceFrom(bob!, (el) => el.attrs.type === undefined && el.getChildText('show') === 'away'), "Bob's away presence");
  await b.xmpp.send(xml('presence', {}, xml('show', {}, 'away'), xml('status', {}, 'in a meeting')));
  const p = await bobOnline;
  t.equal(p.getChildText('status'), 'in a meeting', 'show and status cross nodes (x2 → x1)');
  const aliceSeen = await b.waitFor(isPresenceFrom(alice!, (el) => el.attrs.type === undefined), 10_000, "Alice's presence in Bob's snapshot");
  t.equal(aliceSeen.getChild('show'), undefined, 'Bob on x2 sees Alice available (x1 → x2)');
  const dnd = next(b, isPresenceFrom(alice!, (el) => el.getChildText('show') === 'dnd'), "Alice's dnd");
  await a.xmpp.send(xml('presence', {}, xml('show', {}, 'dnd'), xml('status', {}, 'focus')));
  t.equal((await dnd).getChildText('status'), 'focus', 'a change of show/status crosses nodes too');

  // chat states both ways
  const composing = next(b, (el) => el.is('message') && !!el.getChild('composing', CHATSTATES), '<composing/> at Bob');
  await a.xmpp.send(xml('message', { type: 'chat', to: bare(bob!) }, xml('composing', { xmlns: CHATSTATES })));
  t.equal((await composing).attrs.from, bare(alice!), 'composing x1 → x2');
  const paused = next(a, (el) => el.is('message') && !!el.getChild('paused', CHATSTATES), '<paused/> at Alice');
  await b.xmpp.send(xml('message', { type: 'chat', to: bare(alice!) }, xml('paused', { xmlns: CHATSTATES })));
  t.equal((await paused).attrs.from, bare(bob!), 'paused x2 → x1');

  // messages both ways, with receipts naming the sender's own stanza ids
  const sent: string[] = [];
  const toBob = next(b, (el) => el.is('message') && el.getChildText('body') === 'hello from x1', 'the message at Bob');
  await a.xmpp.send(xml('message', { type: 'chat', to: bare(bob!), id: 'a-1' }, xml('body', {}, 'hello from x1'), xml('request', { xmlns: RECEIPTS })));
  sent.push('hello from x1');
  const m1 = await toBob;
  t.equal(m1.attrs.from, bare(alice!), 'x1 → x2 message');
  t.ok(m1.getChild('request', RECEIPTS), 'with a receipt request');
  const receipt = next(a, (el) => el.is('message') && !!el.getChild('received', RECEIPTS), 'a delivery receipt at Alice');
  await b.xmpp.send(xml('message', { to: bare(alice!) }, xml('received', { xmlns: RECEIPTS, id: m1.attrs.id })));
  t.equal((await receipt).getChild('received', RECEIPTS).attrs.id, 'a-1', 'the receipt from x2 names the id Alice gave on x1');

  const toAlice = next(a, (el) => el.is('message') && el.getChildText('body') === 'hi from x2', 'the message at Alice');
  await b.xmpp.send(xml('message', { type: 'chat', to: bare(alice!), id: 'b-1' }, xml('body', {}, 'hi from x2')));
  sent.push('hi from x2');
  const m2 = await toAlice;
  t.equal(m2.attrs.from, bare(bob!), 'x2 → x1 message');
  const displayed = next(b, (el) => el.is('message') && !!el.getChild('displayed', MARKERS), 'a read marker at Bob');
  await a.xmpp.send(xml('message', { type: 'chat', to: bare(bob!) }, xml('displayed', { xmlns: MARKERS, id: m2.attrs.id })));
  t.equal((await displayed).getChild('displayed', MARKERS).attrs.id, 'b-1', 'the read marker crosses back to x2');

  // the archive through the third node: a second resource of Alice on x3
  const a3 = await login(n3, alice!, 'tablet');
  const reply = await a3.xmpp.iqCaller.request(
    xml(
      'iq',
      { type: 'set' },
      xml(
        'query',
        { xmlns: MAM, queryid: 'all' },
        xml('x', { xmlns: DATA, type: 'submit' }, xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, MAM)), xml('field', { var: 'with' }, xml('value', {}, bare(bob!)))),
      ),
    ),
  );
  t.equal(reply.getChild('fin', MAM)?.attrs.complete, 'true');
  const archived = a3.received
    .filter((el: any) => el.is('message') && el.getChild('result', MAM)?.attrs.queryid === 'all')
    .map((el: any) => el.getChild('result', MAM).getChild('forwarded', FORWARD).getChild('message'));
  t.same(
    archived.map((m: any) => [m.attrs.from.split('/')[0], m.getChildText('body')]),
    [
      [bare(alice!), 'hello from x1'],
      [bare(bob!), 'hi from x2'],
    ],
    'MAM on x3 has both messages, in order, with their senders',
  );
  const rest = await api(n3.base, 'GET', `/v1/conversations/${bob!.userId}/messages`, { token: alice!.token });
  t.same(rest.body.messages.map((m: { body: string }) => m.body).reverse(), sent, 'and REST on x3 agrees');

  // unavailable crosses nodes: Bob's only session closes on x2
  await a3.stop();
  const gone = next(a, isPresenceFrom(bob!, (el) => el.attrs.type === 'unavailable'), "Bob's unavailable");
  await b.stop();
  await gone;
  t.pass('Bob going offline on x2 reaches Alice on x1 as unavailable');
  await a.stop();
});

t.test('an XMPP user and a native user on different nodes', async (t) => {
  const [carol, dave] = await usersWithProfiles(n1, 'xcc', 'xcd');
  await likeEachOther(n3, carol!, dave!);
  const d = await nativeOn(n3, dave!);
  const c = await login(n2, carol!, 'desk');
  t.match(await d.nextEvent((e) => e.type === 'presence' && e.userId === carol!.userId), { online: true }, 'the native user on x3 sees the XMPP user on x2 come online');
  await c.xmpp.send(xml('presence', {}, xml('show', {}, 'chat')));
  t.match(await d.nextEvent((e) => e.type === 'presence' && e.userId === carol!.userId), { online: true, show: 'chat' }, 'and her show');
  await c.waitFor(isPresenceFrom(dave!, (el) => el.attrs.type === undefined), 10_000, "Dave's presence");
  t.pass('the XMPP user on x2 sees the native user on x3 available');

  const composing = next(c, (el) => el.is('message') && !!el.getChild('composing', CHATSTATES), '<composing/>');
  await d.request('typing', { to: carol!.userId, state: 'composing' });
  t.equal((await composing).attrs.from, bare(dave!), 'native typing on x3 → XMPP chat state on x2');
  await c.xmpp.send(xml('message', { type: 'chat', to: bare(dave!) }, xml('composing', { xmlns: CHATSTATES })));
  t.match(await d.nextEvent((e) => e.type === 'typing'), { from: carol!.userId, state: 'composing' }, 'and back');

  const inbound = next(c, (el) => el.is('message') && el.getChildText('body') === 'native says hi', 'the native message');
  const { messageId } = await d.request('message.send', { to: carol!.userId, body: 'native says hi' });
  t.equal((await inbound).attrs.id, messageId, 'native → XMPP across nodes, the message id as the stanza id');
  await c.xmpp.send(xml('message', { to: bare(dave!) }, xml('received', { xmlns: RECEIPTS, id: messageId })));
  t.match(await d.nextEvent((e) => e.type === 'receipt'), { from: carol!.userId, messageId, kind: 'delivered' }, 'the XMPP receipt reaches the native sender');
  await c.xmpp.send(xml('message', { type: 'chat', to: bare(dave!), id: 'c-1' }, xml('body', {}, 'xmpp says hi')));
  const got = await d.nextEvent((e) => e.type === 'message');
  t.match(got, { message: { from: carol!.userId, body: 'xmpp says hi' } }, 'XMPP → native across nodes');
  const rcpt = next(c, (el) => el.is('message') && !!el.getChild('displayed', MARKERS), 'a read marker');
  await d.request('receipt', { to: carol!.userId, messageId: (got as any).message.messageId, kind: 'read' });
  t.equal((await rcpt).getChild('displayed', MARKERS).attrs.id, 'c-1', 'the native read receipt reaches the XMPP sender as a marker');

  const offline = next(c, isPresenceFrom(dave!, (el) => el.attrs.type === 'unavailable'), "Dave's unavailable");
  d.close();
  await offline;
  t.pass('the native user leaving x3 is unavailable on x2');
});

t.test('the same full JID bound on another node replaces the older session (<conflict/>)', async (t) => {
  const [erin] = await usersWithProfiles(n1, 'xce');
  const first = await login(n1, erin!, 'same');
  // the client would reconnect by itself and take the resource back: not what this test is about
  first.xmpp.reconnect.stop();
  const conflict = first.waitFor((el) => el.name === 'stream:error', 10_000, 'a stream error on x1');
  const second = await login(n2, erin!, 'same');
  t.equal(second.jid, `${bare(erin!)}/same`, 'bound on x2');
  t.ok((await conflict).getChild('conflict'), 'the session on x1 ended with <conflict/>');
  await second.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }));
  t.pass('the new session on x2 works');

  // another resource on a third node is left alone
  const other = await login(n3, erin!, 'other');
  await sleep(300);
  t.notOk(second.received.some((el: any) => el.name === 'stream:error'), 'a different resource does not conflict');
  await other.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }));
  await first.stop();
});

t.test('a block made on one node is pushed to the blocker’s resources on the others (XEP-0191)', async (t) => {
  const [fay, gus, hal] = await usersWithProfiles(n1, 'xcf', 'xcg', 'xch');
  await likeEachOther(n1, fay!, gus!);
  await likeEachOther(n1, fay!, hal!);
  const f1 = await login(n1, fay!, 'phone');
  const f2 = await login(n2, fay!, 'laptop');
  const f3 = await login(n3, fay!, 'watch');
  for (const c of [f1, f2]) await c.xmpp.iqCaller.get(xml('blocklist', { xmlns: BLOCKING }));
  await f3.xmpp.iqCaller.get(xml('query', { xmlns: ROSTER }));
  const isPush = (el: any) => el.is('iq') && el.attrs.type === 'set' && !!el.getChild('block', BLOCKING);

  const pushes = [f1, f2].map((c, i) => next(c, isPush, `a block push to resource ${i + 1}`));
  const rosterRemove = next(f3, (el) => el.is('iq') && el.attrs.type === 'set' && el.getChild('query', ROSTER)?.getChild('item')?.attrs.subscription === 'remove', 'a roster remove on x3');
  await f1.xmpp.iqCaller.set(xml('block', { xmlns: BLOCKING }, xml('item', { jid: bare(gus!) })));
  for (const [i, push] of (await Promise.all(pushes)).entries()) {
    t.same(push.getChild('block', BLOCKING).getChildren('item').map((it: any) => it.attrs.jid), [bare(gus!)], `the push reaches ${['x1 (the blocking resource)', 'x2'][i]}`);
  }
  t.equal((await rosterRemove).getChild('query', ROSTER).getChild('item').attrs.jid, bare(gus!), 'the resource on x3 sees the match end');
  t.notOk(f3.received.some(isPush), 'no block push to a resource that never asked for the block list');

  // a block made over REST through x3 reaches both XMPP resources too
  const pushes2 = [f1, f2].map((c, i) => next(c, isPush, `a second push to resource ${i + 1}`));
  const res = await api(n3.base, 'POST', '/v1/blocks', { token: fay!.token, json: { userId: hal!.userId } });
  t.equal(res.status, 200, 'REST block on x3');
  for (const push of await Promise.all(pushes2)) t.same(push.getChild('block', BLOCKING).getChildren('item').map((it: any) => it.attrs.jid), [bare(hal!)]);
  t.pass('a REST block on x3 is pushed to the XMPP resources on x1 and x2');
  const list = await f2.xmpp.iqCaller.get(xml('blocklist', { xmlns: BLOCKING }));
  t.same(list.getChildren('item').map((i: any) => i.attrs.jid).sort(), [bare(gus!), bare(hal!)].sort(), 'the block list on x2 has both');
});
