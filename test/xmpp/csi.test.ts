/**
 * XEP-0352 client state indication. On in-memory sessions, with a toy module standing in for
 * whatever turns domain events into presence and chat states: while inactive, chat states are
 * dropped (carbon copies too) and presence is coalesced per sender; bodies, receipts, subscription requests and IQs
 * go through; <active/> flushes; what CSI holds back is never numbered by stream management.
 * End to end with @xmpp/client and the real presence / chat-state modules: the feature is
 * offered; typing is dropped and presence coalesced while inactive, messages still arrive.
 */
import t from 'tap';
import { xml, type Element } from '@xmpp/xml';
import { bindModule } from '../../src/protocol/xmpp/bind.js';
import { csiModule } from '../../src/protocol/xmpp/csi.js';
import { messageModule } from '../../src/protocol/xmpp/message.js';
import { formatJid } from '../../src/protocol/xmpp/jid.js';
import type { XmppModule } from '../../src/protocol/xmpp/module.js';
import { pingModule } from '../../src/protocol/xmpp/ping.js';
import { streamManagementModule } from '../../src/protocol/xmpp/stream-management.js';
import { connectWs, matchedPair } from '../helpers/server.js';
import { memoryServer, waitUntil } from './memory.js';
import { startXmppServer, xml as cxml, xmppLogin } from './helpers.js';

const CSI = 'urn:xmpp:csi:0';
const SM = 'urn:xmpp:sm:3';
const CHATSTATES = 'http://jabber.org/protocol/chatstates';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stands in for presence / chat-state / receipt modules: domain events → stanzas. */
const toyStanzas: XmppModule = {
  name: 'toy-stanzas',
  setup(ctx) {
    const from = (userId: string) => `${userId.slice(3)}@${ctx.domain}`;
    ctx.onEvent('typing', (session, e) => session.send(xml('message', { type: 'chat', from: from(e.from), to: formatJid(session.jid) }, xml(e.state, { xmlns: CHATSTATES }))));
    ctx.onEvent('presence', (session, e) =>
      session.send(xml('presence', { from: `${from(e.userId)}/phone`, to: formatJid(session.jid), type: e.online ? undefined : 'unavailable' }, e.show ? xml('show', {}, e.show) : null)),
    );
    ctx.onEvent('receipt', (session, e) => session.send(xml('message', { from: from(e.from), to: formatJid(session.jid) }, xml('received', { xmlns: 'urn:xmpp:receipts', id: e.messageId }))));
  },
};

const describe = (el: Element): string => {
  if (el.name === 'presence') return `presence ${el.attrs.from.split('@')[0]} ${el.attrs.type ?? el.getChildText('show') ?? 'available'}`;
  if (el.name === 'message') return `message ${el.getChildText('body') ?? el.getChildElements()[0]?.name}`;
  return `${el.name} ${el.attrs.id ?? ''}`.trim();
};

t.test('inactive: chat states dropped, presence coalesced per sender, the rest goes through; active flushes', async (t) => {
  const srv = memoryServer([bindModule, pingModule, messageModule, toyStanzas, streamManagementModule, csiModule]);
  srv.gateway.users.set('id-romeo', 'romeo');
  srv.gateway.users.set('id-tybalt', 'tybalt');
  const { session, transport } = await srv.boundSession('juliet', 'phone');
  const stanzas = () => transport.out.filter((e) => ['message', 'presence', 'iq'].includes(e.name));
  transport.input(`<enable xmlns='${SM}'/>`);
  await waitUntil(() => transport.out.some((e) => e.name === 'enabled'));

  // Active (the default): everything is written as it comes.
  srv.gateway.emit({ type: 'typing', from: 'id-romeo', state: 'composing' });
  await waitUntil(() => stanzas().length === 1);
  t.same(stanzas().map(describe), ['message composing'], 'active: chat states are delivered');

  transport.input(`<inactive xmlns='${CSI}'/><iq type='get' id='ping0'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await waitUntil(() => transport.out.some((e) => e.attrs.id === 'ping0'));
  const at = transport.out.length;
  const since = () => transport.out.slice(at).filter((e) => ['message', 'presence', 'iq'].includes(e.name)).map(describe);
  srv.gateway.emit({ type: 'typing', from: 'id-romeo', state: 'composing' });
  srv.gateway.emit({ type: 'presence', userId: 'id-romeo', online: true, lastActiveAt: 1, show: 'away' });
  srv.gateway.emit({ type: 'presence', userId: 'id-tybalt', online: true, lastActiveAt: 1, show: 'chat' });
  srv.gateway.emit({ type: 'typing', from: 'id-romeo', state: 'paused' });
  srv.gateway.emit({ type: 'presence', userId: 'id-romeo', online: true, lastActiveAt: 2, show: 'dnd' });
  srv.gateway.emit({ type: 'message', message: { messageId: 'm1', matchId: 'x', from: 'id-romeo', to: 'id-juliet', body: 'wake up', sentAt: 1 } });
  srv.gateway.emit({ type: 'receipt', from: 'id-romeo', messageId: 'j1', kind: 'delivered' });
  transport.input(`<iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>`);
  session.send(xml('presence', { from: 'tybalt@example.org', to: 'juliet@example.org', type: 'subscribe' }));
  // A carbon copy of "typing…" sent from another of juliet's devices (XEP-0280): dropped as well.
  const copied = xml('message', { xmlns: 'jabber:client', type: 'chat', from: 'juliet@example.org/laptop', to: 'romeo@example.org' }, xml('composing', { xmlns: CHATSTATES }));
  const forwarded = xml('forwarded', { xmlns: 'urn:xmpp:forward:0' }, copied);
  session.send(xml('message', { from: 'juliet@example.org', to: 'juliet@example.org/phone' }, xml('sent', { xmlns: 'urn:xmpp:carbons:2' }, forwarded)));
  await waitUntil(() => since().length === 4);
  await new Promise((r) => setTimeout(r, 50));
  t.same([...since()].sort(), ['iq ping1', 'message received', 'message wake up', 'presence tybalt subscribe'], 'inactive: only what matters goes out');

  transport.input(`<active xmlns='${CSI}'/>`);
  await waitUntil(() => since().length === 6);
  t.same(since().slice(4), ['presence tybalt chat', 'presence romeo dnd'], 'active: the latest presence per sender, in order of their last update');

  // Stream management numbered only what went out: an ack of everything is fine, one more is too many.
  const sent = transport.out.slice(transport.out.findIndex((e) => e.name === 'enabled')).filter((e) => ['message', 'presence', 'iq'].includes(e.name)).length;
  t.equal(sent, 8, 'after <enabled/>: one chat state, two ping replies, three important stanzas, two presences');
  transport.input(`<a xmlns='${SM}' h='${sent}'/>`);
  await waitUntil(() => srv.gateway.executed.some((c) => c.op === 'message.ack'));
  t.same(srv.gateway.executed.find((c) => c.op === 'message.ack'), { op: 'message.ack', messageIds: ['m1'] }, 'the message was acknowledged through SM');
  transport.input(`<a xmlns='${SM}' h='${sent + 1}'/>`);
  await waitUntil(() => transport.closed);
  t.equal(transport.streamError?.condition, 'undefined-condition', 'nothing held back or dropped was numbered');
});

t.test('@xmpp/client with the real modules: typing dropped and presence coalesced while inactive, messages still arrive', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'ci');
  const a = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: alice.username });
  t.teardown(() => a.stop());
  const features = a.received.filter((el: any) => el.is('features', 'http://etherx.jabber.org/streams'));
  t.ok(features.at(-1)?.getChild('csi', CSI), 'offered after authentication');
  await a.xmpp.send(cxml('presence'));
  const bobJid = `${bob.username}@${domain}`;
  const fromBob = (el: any) => el.attrs.from?.split('/')[0] === bobJid;
  const bobWs = await connectWs(server, bob);
  t.teardown(() => bobWs.close());
  await a.waitFor((el) => el.is('presence') && fromBob(el), 10_000, "bob's presence while active");

  await a.xmpp.send(cxml('inactive', { xmlns: CSI }));
  await a.xmpp.iqCaller.get(cxml('ping', { xmlns: 'urn:xmpp:ping' }));
  const mark = a.received.length;
  const since = () => a.received.slice(mark);
  await bobWs.request('typing', { to: alice.userId, state: 'composing' });
  await bobWs.request('presence.set', { show: 'away' });
  await bobWs.request('presence.set', { show: 'xa' });
  await bobWs.request('presence.set', { show: 'dnd' });
  await bobWs.request('message.send', { to: alice.userId, body: 'still there?' });
  const m = await a.waitFor((el) => el.is('message') && el.getChildText('body') === 'still there?');
  t.equal(m.attrs.from, bobJid);
  await sleep(300);
  t.notOk(since().some((el: any) => el.is('message') && el.getChild('composing', CHATSTATES)), 'no typing notification while inactive');
  t.notOk(since().some((el: any) => el.is('presence') && fromBob(el)), 'no presence while inactive');

  await a.xmpp.send(cxml('active', { xmlns: CSI }));
  const p = await a.waitFor((el) => el.is('presence') && fromBob(el) && a.received.indexOf(el) >= mark, 5000, 'the held presence');
  t.equal(p.getChildText('show'), 'dnd', 'the latest one');
  await sleep(200);
  t.equal(since().filter((el: any) => el.is('presence') && fromBob(el)).length, 1, 'only the latest one');
  await bobWs.request('typing', { to: alice.userId, state: 'composing' });
  await a.waitFor((el) => el.is('message') && !!el.getChild('composing', CHATSTATES) && a.received.indexOf(el) >= mark, 5000, 'typing once active again');
  t.pass('chat states flow again once active');
  t.notOk(a.received.some((el: any) => el.is('error', 'http://etherx.jabber.org/streams')), 'no stream error');
});
