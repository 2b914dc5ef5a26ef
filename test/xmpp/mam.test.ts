/**
 * XEP-0313 MAM with XEP-0059 RSM paging, through @xmpp/client: backwards from the last page with
 * `<before/>`, forwards from the first with `<after/>`, no gaps, no duplicates, the right
 * `complete` flags; the `with`, `start` and `end` filters; refusals.
 */
import t from 'tap';
import { api, matchedPair, registerUser, setProfile, type TestServer, type TestUser } from '../helpers/server.js';
import { startXmppServer, xml, xmppLogin, type XClient } from './helpers.js';

const MAM = 'urn:xmpp:mam:2';
const RSM = 'http://jabber.org/protocol/rsm';
const DATA = 'jabber:x:data';
const FORWARD = 'urn:xmpp:forward:0';

interface Page {
  ids: string[];
  complete: string | undefined;
  first: any;
  last: string | null;
  results: any[];
}

let queries = 0;

async function mam(
  c: XClient,
  opts: { with?: string; start?: string; end?: string; fields?: Record<string, string>; max?: number; before?: string | true; after?: string; index?: number; to?: string } = {},
): Promise<Page> {
  const queryid = `q${++queries}`;
  const fields = { ...(opts.with ? { with: opts.with } : {}), ...(opts.start ? { start: opts.start } : {}), ...(opts.end ? { end: opts.end } : {}), ...opts.fields };
  const form = xml(
    'x',
    { xmlns: DATA, type: 'submit' },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, MAM)),
    ...Object.entries(fields).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v))),
  );
  const rsm =
    opts.max !== undefined || opts.before !== undefined || opts.after !== undefined || opts.index !== undefined
      ? xml(
          'set',
          { xmlns: RSM },
          opts.max !== undefined ? xml('max', {}, String(opts.max)) : null,
          opts.before === true ? xml('before') : opts.before !== undefined ? xml('before', {}, opts.before) : null,
          opts.after !== undefined ? xml('after', {}, opts.after) : null,
          opts.index !== undefined ? xml('index', {}, String(opts.index)) : null,
        )
      : null;
  const reply = await request(c, xml('iq', { type: 'set', id: `mam-${queryid}`, to: opts.to }, xml('query', { xmlns: MAM, queryid }, form, rsm)));
  const fin = reply.getChild('fin', MAM);
  const results = c.received.filter((el: any) => el.is('message') && el.getChild('result', MAM)?.attrs.queryid === queryid);
  const set = fin.getChild('set', RSM);
  return {
    ids: results.map((el: any) => el.getChild('result', MAM).attrs.id),
    complete: fin.attrs.complete,
    first: set.getChild('first'),
    last: set.getChildText('last'),
    results,
  };
}

/**
 * iqCaller.request; an IQ never answered fails with its id and what the connection did after it
 * was sent (what the client sent and received, status changes such as a silent reconnect), not
 * with a bare TimeoutError.
 */
async function request(c: XClient, iq: any): Promise<any> {
  const [sent, received, history] = [c.sent.length, c.received.length, c.history.length];
  try {
    return await c.xmpp.iqCaller.request(iq);
  } catch (err: any) {
    if (err?.name !== 'TimeoutError') throw err;
    const list = (els: any[]) => els.map((el) => `  ${String(el).slice(0, 300)}`).join('\n') || '  (nothing)';
    throw new Error(
      `IQ ${iq.attrs.id} (${String(iq.getChild('query')?.attrs.queryid ?? '')}) got no answer in 30 s.\n` +
        `connection since: ${c.history.slice(history).join('; ') || '(no status change)'}\n` +
        `sent from it on:\n${list(c.sent.slice(sent))}\nreceived after it:\n${list(c.received.slice(received))}`,
    );
  }
}

async function matchWith(server: TestServer, a: TestUser, prefix: string): Promise<TestUser> {
  const b = await registerUser(server.base, prefix);
  await setProfile(server.base, b);
  await api(server.base, 'POST', '/v1/swipes', { token: a.token, json: { targetId: b.userId, kind: 'like' } });
  const res = await api(server.base, 'POST', '/v1/swipes', { token: b.token, json: { targetId: a.userId, kind: 'like' } });
  if (!res.body?.matched) throw new Error('expected a match');
  return b;
}

async function send(server: TestServer, from: TestUser, to: TestUser, body: string): Promise<{ messageId: string; sentAt: number }> {
  const res = await api(server.base, 'POST', '/v1/messages', { token: from.token, json: { to: to.userId, body } });
  if (res.status !== 201) throw new Error(`send failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

const condition = (err: any) => err?.condition;

t.test('MAM paging, filters and refusals', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'ma');
  const carol = await matchWith(server, alice, 'mac');
  const dave = await registerUser(server.base, 'mad');
  await setProfile(server.base, dave);
  const bobJid = `${bob.username}@${domain}`;
  const aliceJid = `${alice.username}@${domain}`;

  // 25 messages with bob, both ways; 2 with carol in between.
  const withBob: Array<{ messageId: string; sentAt: number }> = [];
  const all: string[] = [];
  for (let i = 0; i < 25; i++) {
    const m = await send(server, i % 2 === 0 ? alice : bob, i % 2 === 0 ? bob : alice, `bob ${i}`);
    withBob.push(m);
    all.push(m.messageId);
    if (i % 10 === 5) all.push((await send(server, carol, alice, `carol ${i}`)).messageId);
  }
  const ids = withBob.map((m) => m.messageId);

  const a = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: alice.username, resource: 'mam' });
  t.teardown(() => a.stop());

  t.test('backwards from the last page with <before/>', async (t) => {
    const p1 = await mam(a, { with: bobJid, max: 10, before: true });
    t.same(p1.ids, ids.slice(15, 25), 'the last page, oldest first');
    t.equal(p1.complete, 'false');
    t.equal(p1.first.text(), ids[15]);
    t.equal(p1.last, ids[24]);
    const p2 = await mam(a, { with: bobJid, max: 10, before: p1.first.text() });
    t.same(p2.ids, ids.slice(5, 15));
    t.equal(p2.complete, 'false');
    const p3 = await mam(a, { with: bobJid, max: 10, before: p2.first.text() });
    t.same(p3.ids, ids.slice(0, 5));
    t.equal(p3.complete, 'true', 'nothing older');
    const seen = [...p3.ids, ...p2.ids, ...p1.ids];
    t.same(seen, ids, 'no gaps, no duplicates');
    // an exact fit is complete too (no empty extra page)
    const exact = await mam(a, { with: bobJid, max: 5, before: ids[5] });
    t.same(exact.ids, ids.slice(0, 5));
    t.equal(exact.complete, 'true');
  });

  t.test('forwards from the first page with <after/>', async (t) => {
    const p1 = await mam(a, { with: bobJid, max: 10 });
    t.same(p1.ids, ids.slice(0, 10), 'without <before/> the first page');
    t.equal(p1.complete, 'false');
    t.equal(p1.first.attrs.index, '0');
    const p2 = await mam(a, { with: bobJid, max: 10, after: p1.last! });
    t.same(p2.ids, ids.slice(10, 20));
    t.equal(p2.complete, 'false');
    t.equal(p2.first.attrs.index, undefined, 'no index when it is not known');
    const p3 = await mam(a, { with: bobJid, max: 10, after: p2.last! });
    t.same(p3.ids, ids.slice(20, 25));
    t.equal(p3.complete, 'true', 'nothing newer');
    t.same([...p1.ids, ...p2.ids, ...p3.ids], ids, 'no gaps, no duplicates');
    const exact = await mam(a, { with: bobJid, max: 5, after: ids[19] });
    t.same(exact.ids, ids.slice(20, 25));
    t.equal(exact.complete, 'true');
    const none = await mam(a, { with: bobJid, max: 10, after: ids[24] });
    t.same(none.ids, []);
    t.equal(none.complete, 'true');
    t.equal(none.last, null, 'an empty page has no first/last');
  });

  t.test('the result stanzas', async (t) => {
    const p = await mam(a, { with: bobJid, max: 2 });
    const [r0, r1] = p.results;
    t.equal(r0.attrs.to, a.jid);
    const fwd = r0.getChild('result', MAM).getChild('forwarded', FORWARD);
    t.equal(fwd.getChild('delay', 'urn:xmpp:delay').attrs.stamp, new Date(withBob[0]!.sentAt).toISOString());
    const m0 = fwd.getChild('message', 'jabber:client');
    t.same({ type: m0.attrs.type, from: m0.attrs.from, to: m0.attrs.to, id: m0.attrs.id, body: m0.getChildText('body') }, { type: 'chat', from: aliceJid, to: bobJid, id: ids[0], body: 'bob 0' });
    const m1 = r1.getChild('result', MAM).getChild('forwarded', FORWARD).getChild('message', 'jabber:client');
    t.same({ from: m1.attrs.from, to: m1.attrs.to, body: m1.getChildText('body') }, { from: bobJid, to: aliceJid, body: 'bob 1' });
  });

  t.test('without with: the whole archive, in id order', async (t) => {
    const p = await mam(a, { max: 1000, before: true });
    t.same(p.ids, all, 'every conversation, in order');
    t.equal(p.complete, 'true');
    const c = await mam(a, { with: `${carol.username}@${domain}/some-resource`, before: true });
    t.equal(c.ids.length, 2, 'a full JID filters by its bare JID');
    const d = await mam(a, {});
    t.equal(d.ids.length, all.length, 'no RSM at all: from the start, default page size');
    t.equal(d.complete, 'true');
  });

  t.test('start and end', async (t) => {
    const start = new Date(withBob[10]!.sentAt).toISOString();
    const end = new Date(withBob[14]!.sentAt).toISOString();
    const expected = withBob.filter((m) => m.sentAt >= withBob[10]!.sentAt && m.sentAt <= withBob[14]!.sentAt).map((m) => m.messageId);
    const p = await mam(a, { with: bobJid, start, end });
    t.same(p.ids, expected, 'inclusive at both ends');
    t.equal(p.complete, 'true');
    const back = await mam(a, { with: bobJid, start, end, max: 2, before: true });
    t.same(back.ids, expected.slice(-2));
    t.equal(back.complete, 'false');
    const fwd = await mam(a, { with: bobJid, start, max: 100 });
    t.same(fwd.ids, withBob.filter((m) => m.sentAt >= withBob[10]!.sentAt).map((m) => m.messageId));
    const bad = await mam(a, { start: 'yesterday' }).catch((e) => e);
    t.equal(condition(bad), 'bad-request');
  });

  t.test('refusals', async (t) => {
    t.equal(condition(await mam(a, { with: `${dave.username}@${domain}` }).catch((e) => e)), 'forbidden', 'with a non-match');
    t.equal(condition(await mam(a, { with: `nobody-here@${domain}` }).catch((e) => e)), 'item-not-found', 'with an unknown account');
    const unknownId = '01890000-0000-7000-8000-000000000000';
    t.equal(condition(await mam(a, { with: bobJid, after: unknownId }).catch((e) => e)), 'item-not-found', 'after an id not in the archive');
    t.equal(condition(await mam(a, { before: 'garbage' }).catch((e) => e)), 'item-not-found', 'before something that is no id');
    t.equal(
      condition(await mam(a, { with: `${carol.username}@${domain}`, after: ids[3] }).catch((e) => e)),
      'item-not-found',
      'an id from another conversation',
    );
    t.equal(condition(await mam(a, { fields: { ids: ids[0]! } }).catch((e) => e)), 'feature-not-implemented', 'an unsupported field');
    t.equal(condition(await mam(a, { index: 3 }).catch((e) => e)), 'feature-not-implemented', 'RSM index');
    t.equal(condition(await mam(a, { to: bobJid }).catch((e) => e)), 'forbidden', "someone else's archive");

    const form = await a.xmpp.iqCaller.get(xml('query', { xmlns: MAM }));
    t.same(
      form.getChild('x', DATA).getChildren('field').map((f: any) => f.attrs.var),
      ['FORM_TYPE', 'with', 'start', 'end'],
      'the supported fields',
    );
  });

  t.test('all on one connection', async (t) => {
    // a stream the server ended (and the client quietly replaced) would hide lost answers
    t.same(a.history.filter((h) => /disconnect|error/.test(h)), [], 'no disconnect, no error');
  });
});
