/**
 * vcard-temp (XEP-0054) from profiles and images uploaded over REST, the blocking command
 * (XEP-0191) on Kindred's permanent blocks, last activity (XEP-0012) of matches, and the
 * server's entity capabilities (XEP-0115) against an independent computation.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { api, connectWs, likeEachOther, setProfile, usersWithProfiles, type TestServer, type TestUser } from '../helpers/server.js';
import { capsVerification } from '../../src/protocol/xmpp/caps.js';
import { startXmppServer, xml, xmppLogin, type XClient } from './helpers.js';

const VCARD = 'vcard-temp';
const BLOCKING = 'urn:xmpp:blocking';
const LAST = 'jabber:iq:last';
const ROSTER = 'jabber:iq:roster';
const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const CAPS = 'http://jabber.org/protocol/caps';

const login = (server: TestServer, u: TestUser, resource?: string) =>
  xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain: server.config.domain, username: u.username, resource });

/** an IQ get/set that resolves with the error instead of throwing */
const refused = (p: Promise<unknown>) => p.then(() => ({ condition: 'none', text: '' }), (e: any) => e);

async function upload(server: TestServer, u: TestUser, png: Buffer): Promise<void> {
  const res = await api(server.base, 'POST', '/v1/profile/images', { token: u.token, body: png, contentType: 'image/png' });
  if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${JSON.stringify(res.body)}`);
}

t.test('vCard: a match has FN, DESC and the first image as PHOTO; big images are thumbnailed; non-matches are refused', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob, carol] = await usersWithProfiles(server, 'va', 'vb', 'vc');
  await likeEachOther(server, alice, bob);
  await setProfile(server.base, bob, { displayName: 'Bob Bobson', bio: 'jazz <&> tea' });
  const small = await sharp({ create: { width: 80, height: 64, channels: 3, background: '#cc3366' } }).png().toBuffer();
  await upload(server, bob, small);
  await upload(server, bob, await sharp({ create: { width: 64, height: 64, channels: 3, background: '#000000' } }).png().toBuffer());
  // Noise does not compress: far over the inline limit.
  const big = await sharp(randomBytes(600 * 500 * 3), { raw: { width: 600, height: 500, channels: 3 } }).png().toBuffer();
  t.ok(big.byteLength > 64 * 1024, 'a big image');
  await upload(server, alice, big);

  const a = await login(server, alice);
  t.teardown(() => a.stop());
  const card = await a.xmpp.iqCaller.get(xml('vCard', { xmlns: VCARD }), `${bob.username}@${domain}`);
  t.equal(card.getChildText('FN'), 'Bob Bobson');
  t.equal(card.getChildText('DESC'), 'jazz <&> tea');
  const photo = card.getChild('PHOTO');
  t.equal(photo.getChildText('TYPE'), 'image/png');
  const bytes = Buffer.from(photo.getChildText('BINVAL'), 'base64');
  t.ok(bytes.equals(small), 'PHOTO is the first image, byte for byte');
  const meta = await sharp(bytes).metadata();
  t.match(meta, { format: 'png', width: 80, height: 64 }, 'and decodes');

  const mine = await a.xmpp.iqCaller.get(xml('vCard', { xmlns: VCARD }));
  t.equal(mine.getChildText('FN'), alice.username, 'own vCard without a to');
  t.equal(mine.getChild('DESC'), undefined, 'no bio, no DESC');
  t.equal(mine.getChild('PHOTO').getChildText('TYPE'), 'image/jpeg', 'a big image becomes a JPEG thumbnail');
  const thumb = Buffer.from(mine.getChild('PHOTO').getChildText('BINVAL'), 'base64');
  t.ok(thumb.byteLength <= 64 * 1024, `thumbnail within the limit (${thumb.byteLength} bytes)`);
  t.match(await sharp(thumb).metadata(), { format: 'jpeg', width: 192, height: 160 }, 'fits 192x192, aspect kept');
  const again = await a.xmpp.iqCaller.get(xml('vCard', { xmlns: VCARD }), `${alice.username}@${domain}`);
  t.equal(again.getChild('PHOTO').getChildText('BINVAL'), mine.getChild('PHOTO').getChildText('BINVAL'), 'own bare JID: the same (cached) thumbnail');

  const notMatch = await refused(a.xmpp.iqCaller.get(xml('vCard', { xmlns: VCARD }), `${carol.username}@${domain}`));
  t.equal(notMatch.condition, 'forbidden', 'a non-match: forbidden');
  const unknown = await refused(a.xmpp.iqCaller.get(xml('vCard', { xmlns: VCARD }), `nobody-${process.pid}@${domain}`));
  t.equal(unknown.condition, 'item-not-found');
  const set = await refused(a.xmpp.iqCaller.set(xml('vCard', { xmlns: VCARD }, xml('FN', {}, 'Mallory'))));
  t.equal(set.condition, 'not-allowed', 'vCards are read-only');

  // The per-session match cache follows match events.
  await likeEachOther(server, alice, carol);
  let nowMatched: any;
  for (let i = 0; i < 50 && !nowMatched; i++) {
    nowMatched = await a.xmpp.iqCaller.get(xml('vCard', { xmlns: VCARD }), `${carol.username}@${domain}`).catch(() => undefined);
    if (!nowMatched) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(nowMatched?.getChildText('FN'), carol.username, 'a new match: vCard allowed');
});

t.test('blocking command: block list round trip, pushes, roster removal, messages refused; unblock is not allowed', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob, carol] = await usersWithProfiles(server, 'ba', 'bb', 'bc');
  await likeEachOther(server, alice, bob);
  const bobJid = `${bob.username}@${domain}`;

  const a = await login(server, alice, 'phone');
  t.teardown(() => a.stop());
  const a2 = await login(server, alice, 'laptop');
  t.teardown(() => a2.stop());
  const a3 = await login(server, alice, 'watch');
  t.teardown(() => a3.stop());

  const info = await a.xmpp.iqCaller.get(xml('query', { xmlns: DISCO_INFO }), domain);
  t.ok(info.getChildren('feature').some((f: any) => f.attrs.var === BLOCKING), 'disco feature');
  await a.xmpp.iqCaller.get(xml('query', { xmlns: ROSTER }));
  const empty = await a.xmpp.iqCaller.get(xml('blocklist', { xmlns: BLOCKING }));
  t.equal(empty.getChildren('item').length, 0, 'nothing blocked yet');
  await a2.xmpp.iqCaller.get(xml('blocklist', { xmlns: BLOCKING }));

  await a.xmpp.iqCaller.set(xml('block', { xmlns: BLOCKING }, xml('item', { jid: `${bobJid}/anything` })));
  const isBlockPush = (el: any) => el.is('iq') && el.attrs.type === 'set' && !!el.getChild('block', BLOCKING);
  for (const [c, name] of [[a, 'phone'], [a2, 'laptop']] as Array<[XClient, string]>) {
    const push = await c.waitFor(isBlockPush, 10_000, `a block push to the ${name}`);
    t.same(push.getChild('block', BLOCKING).getChildren('item').map((i: any) => i.attrs.jid), [bobJid], `block push to the ${name} (bare JID)`);
  }
  const removed = await a.waitFor((el) => el.is('iq') && el.attrs.type === 'set' && !!el.getChild('query', ROSTER), 10_000, 'a roster push');
  t.match(removed.getChild('query', ROSTER).getChild('item').attrs, { jid: bobJid, subscription: 'remove' }, 'the match ended: roster push remove');
  await a3.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }));
  t.notOk(a3.received.some(isBlockPush), 'no push to a resource that never asked for the block list');

  const list = await a2.xmpp.iqCaller.get(xml('blocklist', { xmlns: BLOCKING }));
  t.same(list.getChildren('item').map((i: any) => i.attrs.jid), [bobJid], 'the block list has Bob');

  await a.xmpp.send(xml('message', { type: 'chat', to: bobJid, id: 'after-block' }, xml('body', {}, 'hello?')));
  const err = await a.waitFor((el) => el.is('message') && el.attrs.type === 'error' && el.attrs.id === 'after-block', 10_000, 'a message error');
  t.ok(err.getChild('error').getChild('forbidden', 'urn:ietf:params:xml:ns:xmpp-stanzas'), 'messages to the blocked user are refused');
  const res = await api(server.base, 'POST', '/v1/messages', { token: bob.token, json: { to: alice.userId, body: 'let me in' } });
  t.equal(res.status, 403, 'and from them');

  const unknown = await refused(a.xmpp.iqCaller.set(xml('block', { xmlns: BLOCKING }, xml('item', { jid: `${carol.username}@${domain}` }), xml('item', { jid: `nobody-${process.pid}@${domain}` }))));
  t.equal(unknown.condition, 'item-not-found', 'an unknown user');
  const after = await a.xmpp.iqCaller.get(xml('blocklist', { xmlns: BLOCKING }));
  t.same(after.getChildren('item').map((i: any) => i.attrs.jid), [bobJid], 'nothing blocked when one JID is unknown');
  t.equal((await refused(a.xmpp.iqCaller.set(xml('block', { xmlns: BLOCKING }, xml('item', { jid: 'someone@elsewhere.example' }))))).condition, 'not-allowed', 'another server');
  t.equal((await refused(a.xmpp.iqCaller.set(xml('block', { xmlns: BLOCKING })))).condition, 'bad-request', 'no items');
  const unblock = await refused(a.xmpp.iqCaller.set(xml('unblock', { xmlns: BLOCKING }, xml('item', { jid: bobJid }))));
  t.equal(unblock.condition, 'not-allowed');
  t.equal(unblock.text, 'blocks in Kindred are permanent');
});

t.test('last activity: seconds since a match was last online; 0 while online; refused for non-matches and hidden matches; server uptime', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob, carol, erin] = await usersWithProfiles(server, 'la', 'lb', 'lc', 'le');
  await likeEachOther(server, alice, bob);
  await likeEachOther(server, alice, erin);
  await api(server.base, 'PATCH', '/v1/profile', { token: erin.token, json: { showPresence: false } });

  const d = await connectWs(server, bob);
  const before = Date.now();
  d.close();
  await new Promise((r) => setTimeout(r, 2100));
  const a = await login(server, alice);
  t.teardown(() => a.stop());
  const last = await a.xmpp.iqCaller.get(xml('query', { xmlns: LAST }), `${bob.username}@${domain}`);
  const elapsed = (Date.now() - before) / 1000;
  const seconds = Number(last.attrs.seconds);
  t.ok(seconds >= 1 && seconds <= elapsed, `seconds since Bob went offline: ${seconds} (≤ ${elapsed.toFixed(1)})`);

  const b = await login(server, bob);
  t.teardown(() => b.stop());
  const online = await a.xmpp.iqCaller.get(xml('query', { xmlns: LAST }), `${bob.username}@${domain}`);
  t.equal(online.attrs.seconds, '0', 'online: 0');

  t.equal((await refused(a.xmpp.iqCaller.get(xml('query', { xmlns: LAST }), `${carol.username}@${domain}`))).condition, 'forbidden', 'a non-match');
  t.equal((await refused(a.xmpp.iqCaller.get(xml('query', { xmlns: LAST }), `${erin.username}@${domain}`))).condition, 'forbidden', 'a match who hides presence');
  t.equal((await refused(a.xmpp.iqCaller.get(xml('query', { xmlns: LAST }), `nobody-${process.pid}@${domain}`))).condition, 'item-not-found', 'nobody');
  const uptime = await a.xmpp.iqCaller.get(xml('query', { xmlns: LAST }), domain);
  t.match(uptime.attrs.seconds, /^\d+$/, 'server uptime in seconds');
  t.ok(Number(uptime.attrs.seconds) >= 2, 'the server has been up a while');
});

/** XEP-0115 §5.1, written out again here from the spec text. */
function independentVer(info: any): string {
  const cmp = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
  const ids = info
    .getChildren('identity')
    .map((i: any) => ({ c: i.attrs.category, t: i.attrs.type, l: i.attrs['xml:lang'] ?? '', n: i.attrs.name ?? '' }))
    .sort((x: any, y: any) => cmp(x.c, y.c) || cmp(x.t, y.t) || cmp(x.l, y.l));
  const features = info.getChildren('feature').map((f: any) => f.attrs.var).sort(cmp);
  const s = ids.map((i: any) => `${i.c}/${i.t}/${i.l}/${i.n}<`).join('') + features.map((f: string) => `${f}<`).join('');
  return createHash('sha1').update(s).digest('base64');
}

t.test('entity capabilities: the stream feature names the server disco#info', async (t) => {
  // XEP-0115 §5.2's example.
  t.equal(
    capsVerification([{ category: 'client', type: 'pc', name: 'Exodus 0.9.1' }], ['http://jabber.org/protocol/disco#info', 'http://jabber.org/protocol/disco#items', 'http://jabber.org/protocol/muc', 'http://jabber.org/protocol/caps']),
    'QgayPKawpkPSDYmwT/WM94uAlu0=',
    'the XEP example',
  );

  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice] = await usersWithProfiles(server, 'ca');
  const a = await login(server, alice);
  t.teardown(() => a.stop());
  const features = a.received.filter((el: any) => el.name === 'stream:features').pop();
  const c = features.getChild('c', CAPS);
  t.ok(c, 'caps in the stream features after authentication');
  t.match(c.attrs, { hash: 'sha-1', node: 'https://kindred.example/caps' });
  const info = await a.xmpp.iqCaller.get(xml('query', { xmlns: DISCO_INFO }), domain);
  t.equal(c.attrs.ver, independentVer(info), 'ver matches an independent computation over disco#info');

  const byNode = await a.xmpp.iqCaller.get(xml('query', { xmlns: DISCO_INFO, node: `${c.attrs.node}#${c.attrs.ver}` }), domain);
  t.equal(byNode.attrs.node, `${c.attrs.node}#${c.attrs.ver}`, 'node echoed');
  t.equal(independentVer(byNode), c.attrs.ver, 'the node answers the same information');
  const wrong = await refused(a.xmpp.iqCaller.get(xml('query', { xmlns: DISCO_INFO, node: `${c.attrs.node}#AAAA` }), domain));
  t.equal(wrong.condition, 'item-not-found', 'another ver: no such node');
});
