/**
 * The feature-module API on in-memory sessions: IQ routing and error mapping, handler chains,
 * unloading, per-session state, and the hooks a stream-management module needs (counting
 * handled stanzas, wrapping sends, keeping a session whose transport dropped, resuming it on
 * a new transport).
 */
import t from 'tap';
import { xml, type Element } from '@xmpp/xml';
import { KindredError } from '../../src/errors.js';
import { bindModule } from '../../src/protocol/xmpp/bind.js';
import { messageModule } from '../../src/protocol/xmpp/message.js';
import type { XmppModule } from '../../src/protocol/xmpp/module.js';
import { pingModule } from '../../src/protocol/xmpp/ping.js';
import { StanzaError } from '../../src/protocol/xmpp/stanza-errors.js';
import type { XmppSession } from '../../src/protocol/xmpp/session.js';
import { memoryServer, waitUntil } from './memory.js';

const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

const testModule: XmppModule = {
  name: 'test',
  setup(ctx) {
    ctx.disco.addFeature('urn:test');
    ctx.iq('get', 'urn:test', 'echo', ({ payload, from }) => xml('echo', { xmlns: 'urn:test', from: `${from.local}/${from.resource}` }, payload.getText()));
    ctx.iq('get', 'urn:test', 'refuse', () => {
      throw new StanzaError('not-allowed', 'no way');
    });
    ctx.iq('get', 'urn:test', 'limited', () => {
      throw new KindredError('RATE_LIMITED', 'slow down');
    });
    ctx.iq('get', 'urn:test', 'bug', () => {
      throw new Error('secret internals');
    });
  },
};

function errorOf(el: Element | undefined): { type?: string; condition?: string; text?: string | null } {
  const error = el?.getChild('error');
  const condition = error?.getChildElements().find((c) => c.getNS() === STANZAS && c.getName() !== 'text');
  return { type: error?.attrs.type, condition: condition?.getName(), text: error?.getChildText('text', STANZAS) };
}

t.test('IQs: reply, typed errors, mapped domain errors, no handler, unload', async (t) => {
  const srv = memoryServer([bindModule, pingModule, testModule]);
  const { session, transport } = await srv.boundSession('romeo', 'balcony');
  const reply = async (id: string) => {
    await waitUntil(() => transport.out.some((e) => e.attrs.id === id));
    return transport.out.find((e) => e.attrs.id === id)!;
  };
  transport.input(`<iq type='get' id='1'><echo xmlns='urn:test'>hi</echo></iq>`);
  const r1 = await reply('1');
  t.equal(r1.attrs.type, 'result');
  t.equal(r1.attrs.to, 'romeo@example.org/balcony', 'answered to the full JID');
  t.equal(r1.getChild('echo', 'urn:test')?.getText(), 'hi');
  t.equal(r1.getChild('echo', 'urn:test')?.attrs.from, 'romeo/balcony', 'the handler sees the normalised sender');

  transport.input(`<iq type='get' id='2'><refuse xmlns='urn:test'/></iq>`);
  t.same(errorOf(await reply('2')), { type: 'cancel', condition: 'not-allowed', text: 'no way' });
  transport.input(`<iq type='get' id='3'><limited xmlns='urn:test'/></iq>`);
  t.same(errorOf(await reply('3')), { type: 'wait', condition: 'resource-constraint', text: 'slow down' });
  transport.input(`<iq type='get' id='4'><bug xmlns='urn:test'/></iq>`);
  t.same(errorOf(await reply('4')), { type: 'cancel', condition: 'internal-server-error', text: null }, 'no internals leak');
  transport.input(`<iq type='get' id='5'><nothing xmlns='urn:other'/></iq>`);
  t.same(errorOf(await reply('5')).condition, 'service-unavailable');
  transport.input(`<iq type='get' id='6' to='juliet@elsewhere.example'><echo xmlns='urn:test'/></iq>`);
  t.same(errorOf(await reply('6')).condition, 'remote-server-not-found');
  transport.input(`<iq type='get' id='7'><echo xmlns='urn:test'/><echo xmlns='urn:test'/></iq>`);
  t.same(errorOf(await reply('7')).condition, 'bad-request', 'two payloads');
  transport.input(`<iq type='result' id='8'/>`);
  transport.input(`<iq type='get' id='9'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await reply('9');
  t.notOk(transport.out.some((e) => e.attrs.id === '8'), 'a stray result is not answered');

  srv.host.unload('test');
  transport.input(`<iq type='get' id='10'><echo xmlns='urn:test'/></iq>`);
  t.same(errorOf(await reply('10')).condition, 'service-unavailable', 'handlers leave with their module');
  t.notOk(srv.host.serverFeatures().includes('urn:test'), 'and so do disco features');
  t.equal(session.isBound, true);
});

t.test('message handlers: priority, stop on true, errors answer the sender, unhandled is dropped', async (t) => {
  const seen: string[] = [];
  const chain: XmppModule = {
    name: 'chain',
    setup(ctx) {
      ctx.onMessage(({ stanza }) => {
        seen.push('low');
        if (stanza.getChild('boom')) throw new KindredError('NOT_MATCHED');
        return false;
      }, -10);
      ctx.onMessage(({ stanza }) => {
        seen.push('high');
        return stanza.attrs.id === 'stop';
      }, 10);
    },
  };
  const srv = memoryServer([bindModule, chain]);
  const { transport } = await srv.boundSession('juliet');
  transport.input(`<message id='stop' to='romeo@example.org'><x xmlns='urn:x'/></message>`);
  await waitUntil(() => seen.length === 1);
  t.same(seen, ['high'], 'true stops the chain');
  seen.length = 0;
  transport.input(`<message id='pass' to='romeo@example.org'><x xmlns='urn:x'/></message>`);
  await waitUntil(() => seen.length === 2);
  t.same(seen, ['high', 'low'], 'higher priority first');
  transport.input(`<message id='err' to='romeo@example.org'><boom/></message>`);
  await waitUntil(() => transport.out.some((e) => e.attrs.id === 'err'));
  const err = transport.out.find((e) => e.attrs.id === 'err')!;
  t.equal(err.attrs.type, 'error');
  t.equal(err.attrs.from, 'romeo@example.org');
  t.same(errorOf(err).condition, 'forbidden', 'NOT_MATCHED → forbidden');
  t.equal(transport.out.filter((e) => e.name === 'message').length, 1, 'nothing else was answered');
});

t.test('a spoofed from ends the stream with <invalid-from/>; stanzas before bind with <not-authorized/>', async (t) => {
  const srv = memoryServer([bindModule, pingModule]);
  const { transport } = await srv.boundSession('mallory');
  transport.input(`<message from='alice@example.org/x' to='bob@example.org'><body>hi</body></message>`);
  await waitUntil(() => transport.closed);
  t.equal(transport.streamError?.condition, 'invalid-from');

  const { session, transport: t2 } = srv.newSession();
  session.authenticated({ userId: 'id-eve', tokenId: 't', expiresAt: Date.now() + 60_000 }, 'eve');
  t2.header(srv.config.domain);
  t2.input(`<message to='bob@example.org'><body>before bind</body></message>`);
  await waitUntil(() => t2.closed);
  t.equal(t2.streamError?.condition, 'not-authorized');
});

t.test('events are held until the bind result is out, then go to onEvent handlers in order', async (t) => {
  const srv = memoryServer([bindModule, messageModule]);
  srv.gateway.users.set('id-nurse', 'nurse');
  const orig = srv.gateway.openSession.bind(srv.gateway);
  srv.gateway.openSession = async (p, info, sink) => {
    await orig(p, info, sink);
    for (let i = 0; i < 3; i++) {
      sink({ type: 'message', message: { messageId: `m${i}`, matchId: 'x', from: 'id-nurse', to: p.userId, body: `pending ${i}`, sentAt: 0 }, offline: true });
    }
  };
  const { session, transport } = srv.newSession();
  session.authenticated({ userId: 'id-juliet', tokenId: 't', expiresAt: Date.now() + 60_000 }, 'juliet');
  transport.header(srv.config.domain);
  transport.input(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
  await waitUntil(() => transport.out.filter((e) => e.name === 'message').length === 3);
  t.same(
    transport.out.filter((e) => e.name !== 'stream:features').map((e) => (e.name === 'iq' ? `iq:${e.attrs.id}` : e.getChildText('body'))),
    ['iq:bind', 'pending 0', 'pending 1', 'pending 2'],
    'the bind result first, then the events in order',
  );
  await waitUntil(() => srv.gateway.executed.some((c) => c.op === 'message.ack'));
  t.same(srv.gateway.executed.find((c) => c.op === 'message.ack'), { op: 'message.ack', messageIds: ['m0', 'm1', 'm2'] }, 'acknowledged once written');
});

t.test('what stream management needs: count handled stanzas, wrap sends, survive a drop, resume', async (t) => {
  interface SmState {
    handled: number;
    unacked: Element[];
    acks: Array<() => void>;
  }
  let sm!: { get(s: XmppSession): SmState };
  const lost: XmppSession[] = [];
  const toySm: XmppModule = {
    name: 'toy-sm',
    setup(ctx) {
      sm = ctx.sessionState<SmState>(() => ({ handled: 0, unacked: [], acks: [] }));
      ctx.onStanzaHandled((s) => void sm.get(s).handled++);
      ctx.outbound((s, out, next) => {
        const st = sm.get(s);
        st.unacked.push(out.stanza);
        if (out.onAcked) st.acks.push(out.onAcked);
        next({ stanza: out.stanza }); // acked later, by the client's <a/>
      }, -100);
      ctx.onTransportLost((s) => {
        lost.push(s);
        return true;
      });
    },
  };
  const srv = memoryServer([bindModule, pingModule, messageModule, toySm]);
  srv.gateway.users.set('id-nurse', 'nurse');
  const { session, transport } = await srv.boundSession('juliet', 'phone');
  transport.input(`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq><presence/>`);
  await waitUntil(() => sm.get(session).handled === 2);
  t.equal(sm.get(session).handled, 2, 'inbound stanzas counted after handling');

  transport.drop();
  t.same(lost, [session], 'transportLost asked');
  t.equal(session.isDetached, true, 'kept alive');
  t.same(srv.gateway.closed, [], 'the gateway session stays open');
  srv.gateway.emit({ type: 'message', message: { messageId: 'held', matchId: 'x', from: 'id-nurse', to: 'id-juliet', body: 'while away', sentAt: 0 } });
  await waitUntil(() => sm.get(session).unacked.some((e) => e.attrs.id === 'held'));
  t.notOk(srv.gateway.executed.some((c) => c.op === 'message.ack'), 'not acknowledged to the domain while nobody has it');

  // A new stream authenticates as the same user and resumes.
  const fresh = srv.newSession();
  fresh.session.authenticated(session.principal, 'juliet');
  fresh.transport.header(srv.config.domain);
  session.resumeWith(fresh.session);
  t.equal(fresh.session.isClosed, true, 'the resuming stream hands over and ends');
  t.equal(session.isDetached, false);
  t.equal(fresh.transport.receiver, session, 'the old session owns the new transport');
  for (const el of sm.get(session).unacked) fresh.transport.send(el); // what an SM module would do
  t.ok(fresh.transport.out.some((e) => e.attrs.id === 'held'), 'queued stanza re-sent on the new transport');
  for (const ack of sm.get(session).acks.splice(0)) ack();
  await waitUntil(() => srv.gateway.executed.some((c) => c.op === 'message.ack'));
  fresh.transport.input(`<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await waitUntil(() => fresh.transport.out.some((e) => e.attrs.id === 'p2'));
  t.equal(fresh.transport.out.find((e) => e.attrs.id === 'p2')?.attrs.to, 'juliet@example.org/phone', 'same session, same resource');
  session.end();
  t.same(srv.gateway.closed, [session.connId], 'ending it closes the gateway session');
});

t.test('sessionState is per session', async (t) => {
  let key!: { get(s: XmppSession): { n: number } };
  const m: XmppModule = { name: 's', setup: (ctx) => void (key = ctx.sessionState(() => ({ n: 0 }))) };
  const srv = memoryServer([bindModule, m]);
  const a = await srv.boundSession('a');
  const b = await srv.boundSession('b');
  key.get(a.session).n = 5;
  t.equal(key.get(b.session).n, 0);
  t.equal(key.get(a.session).n, 5);
});

t.test('the heartbeat sweep: auth deadline, server pings to an idle client, dead peers, expired logins', async (t) => {
  let clock = 1_000_000;
  const srv = memoryServer([bindModule, pingModule], { limits: { heartbeatSeconds: 10, authTimeoutSeconds: 5 } }, () => clock);

  const pending = srv.newSession();
  clock += 4000;
  pending.session.tick(clock);
  t.equal(pending.transport.closed, false, 'still in time');
  clock += 2000;
  pending.session.tick(clock);
  t.equal(pending.transport.streamError?.condition, 'connection-timeout', 'no login in time');

  const { session, transport } = await srv.boundSession('idle');
  clock += 21_000;
  session.tick(clock);
  const ping = transport.out.find((e) => e.name === 'iq' && e.getChild('ping', 'urn:xmpp:ping'));
  t.ok(ping, 'a quiet client is pinged');
  t.equal(ping?.attrs.to, 'idle@example.org/res');
  transport.input(`<iq type='result' id='${ping!.attrs.id}'/>`);
  clock += 25_000;
  session.tick(clock);
  t.equal(transport.closed, false, 'the answer counted as traffic');
  clock += 41_000;
  session.tick(clock);
  t.equal(transport.streamError?.condition, 'connection-timeout', 'a silent peer is dropped');

  const late = await srv.boundSession('late');
  clock += 3_600_001;
  late.transport.input(`<iq type='result' id='x'/>`); // traffic, so only the expiry matters
  late.session.tick(clock);
  t.equal(late.transport.streamError?.condition, 'not-authorized', 'a session outliving its login ends');
});

t.test('a stalled reader loses its connection (and, without stream management, its session)', async (t) => {
  const srv = memoryServer([bindModule, pingModule]);
  const { session, transport } = await srv.boundSession('slow');
  transport.buffered = srv.config.limits.maxSendBufferBytes + 1;
  transport.input(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await waitUntil(() => session.isClosed);
  t.equal(transport.closed, true, 'destroyed');
  t.same(srv.gateway.closed, [session.connId]);
});
