/**
 * The test harness's @xmpp/client (test/xmpp/helpers.ts, countHandledStanzas) reports the right
 * XEP-0198 `h` when `<enabled/>` arrives in the same read as later stanzas and `<r/>`s: the case
 * that made test/xmpp/mam.test.ts lose an IQ in CI. @xmpp/client 0.14 alone answers such an
 * `<r/>` with every stanza received since the bind (the server then ends the stream, as
 * XEP-0198 says it should) and never counts the IQ results its iqCaller takes.
 *
 * No server: the client's socket writes are captured, and each "read" is a batch of elements
 * handed to the client in one synchronous run, as its parser does with one chunk.
 */
import t from 'tap';
import { countHandledStanzas, xml } from './helpers.js';

const { client } = await import('@xmpp/client');
const SM = 'urn:xmpp:sm:3';
const BIND = 'urn:ietf:params:xml:ns:xmpp-bind';

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
const message = (i: number) => xml('message', { type: 'chat', id: `m${i}`, from: 'bob@localhost' }, xml('body', {}, `hello ${i}`));

/** A client past SASL; `batch()` delivers elements as one read; `acks` lists the `h` of every `<a/>` it wrote. */
async function boundClient(fixed: boolean) {
  const xmpp: any = client({ service: 'xmpp://127.0.0.1:9', domain: 'localhost', username: 'alice', password: 'x', resource: 'r' });
  const written: string[] = [];
  xmpp.Transport = xmpp._findTransport('xmpp://127.0.0.1:9'); // what connect() would pick, without connecting
  xmpp.write = async (s: string) => void written.push(s);
  if (fixed) countHandledStanzas(xmpp);
  const batch = (...els: any[]) => {
    for (const el of els) xmpp._onElement(el);
  };
  const lastWritten = (re: RegExp) => [...written].reverse().find((s) => re.test(s));

  batch(xml('stream:features', { 'xmlns:stream': 'http://etherx.jabber.org/streams' }, xml('bind', { xmlns: BIND }), xml('sm', { xmlns: SM })));
  await settle();
  const bindId = /<iq[^>]* id="([^"]+)"/.exec(lastWritten(/<bind /) ?? '')?.[1];
  if (!bindId) throw new Error(`no bind request written: ${written.join(' ')}`);
  // the bind result and three pending messages in one read, before <enabled/>
  batch(xml('iq', { type: 'result', id: bindId }, xml('bind', { xmlns: BIND }, xml('jid', {}, 'alice@localhost/r'))), message(1), message(2), message(3));
  await settle();
  if (!lastWritten(/<enable /)) throw new Error(`no <enable/> written: ${written.join(' ')}`);
  return {
    xmpp,
    batch,
    acks: () => written.filter((s) => s.startsWith('<a ')).map((s) => Number(/h="(\d+)"/.exec(s)![1])),
  };
}

async function scenario(fixed: boolean): Promise<number[]> {
  const c = await boundClient(fixed);
  // one read: <enabled/>, then 5 stanzas and an <r/>, 2 more and an <r/>
  c.batch(xml('enabled', { xmlns: SM, id: 'sm1', resume: 'true' }), message(4), message(5), message(6), message(7), message(8), xml('r', { xmlns: SM }), message(9), message(10), xml('r', { xmlns: SM }));
  await settle();
  // a later read: an IQ of the client's answered, a message, an <r/>
  const answered = c.xmpp.iqCaller.request(xml('iq', { type: 'get', id: 'ping1' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  await settle();
  c.batch(xml('iq', { type: 'result', id: 'ping1' }), message(11), xml('r', { xmlns: SM }));
  await answered;
  await settle();
  // stop the client's ack timers (on 'disconnect'), with nothing to reconnect
  c.xmpp.reconnect.stop();
  c.xmpp.on('error', () => undefined);
  c.xmpp.emit('disconnect', { clean: true });
  return c.acks();
}

t.test('h counts the stanzas after <enabled/>, IQ results too, also when <enabled/> shares a read', async (t) => {
  t.same(await scenario(true), [5, 7, 9], 'each <r/> answered with the stanzas received since <enabled/>');
});

t.test('without countHandledStanzas, @xmpp/client 0.14 gets it wrong (if this fails, the library was fixed: drop the work-around)', async (t) => {
  const acks = await scenario(false);
  t.not(acks[0], 5, `the library's own first <a/> (h=${acks[0]}) also counts the 3 messages before <enabled/>`);
});
