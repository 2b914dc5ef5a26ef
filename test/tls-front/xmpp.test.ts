/**
 * XMPP through kindred-tls-front (and, for @xmpp/client, through node:tls too): STARTTLS (the front relays plaintext until Kindred asks it to
 * hand-shake after <proceed/>) with @xmpp/client and with slixmpp, direct TLS (XEP-0368), and
 * plaintext injected after <starttls/> being dropped.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import tls from 'node:tls';
import { connectWs, matchedPair } from '../helpers/server.js';
import { PASSWORD, RawXmpp, startXmppServer, xml, xmppLogin } from '../xmpp/helpers.js';
import { requireFrontBinary } from './helpers.js';

requireFrontBinary();
const PYTHON = '/usr/bin/python3';
const SLIXMPP = fileURLToPath(new URL('../xmpp/fixtures/slixmpp_client.py', import.meta.url));

for (const terminator of ['front', 'node'] as const) t.test(`@xmpp/client over STARTTLS and direct TLS, terminated by ${terminator}`, async (t) => {
  const server = await startXmppServer(t, { tlsTerminator: terminator });
  t.equal(server.node.tlsFront !== null, terminator === 'front', terminator === 'front' ? 'the front runs' : 'no front: node:tls');
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'xf');
  const a = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain, username: alice.username, resource: 'a' });
  t.teardown(() => a.stop());
  const b = await xmppLogin({ service: `xmpps://127.0.0.1:${server.node.xmppTlsPort}`, domain, username: bob.username, resource: 'b' });
  t.teardown(() => b.stop());
  t.ok(a.jid.startsWith(`${alice.username}@${domain}/`), 'logged in over STARTTLS');
  t.ok(b.jid.startsWith(`${bob.username}@${domain}/`), 'logged in over direct TLS');
  await a.xmpp.send(xml('presence'));
  await b.xmpp.send(xml('presence'));
  const body = 'z'.repeat(3900); // near limits.maxMessageChars
  await a.xmpp.send(xml('message', { to: `${bob.username}@${domain}`, type: 'chat', id: 'm1' }, xml('body', {}, body)));
  const got = await b.waitFor((el) => el.is('message') && el.getChildText('body') === body, 10_000, 'the message');
  t.ok(got, 'a message crosses from a STARTTLS stream to a direct-TLS one intact');
});

t.test('plaintext sent after <starttls/> is dropped, not processed after the upgrade', async (t) => {
  const server = await startXmppServer(t, { tlsTerminator: 'front' });
  const { domain } = server.config;
  const raw = await RawXmpp.connect(server.node.xmppPort);
  t.teardown(() => raw.socket.destroy());
  raw.socket.write(`<?xml version='1.0'?><stream:stream to='${domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
  await raw.waitFor(/<starttls/);
  // the injection: an IQ right behind <starttls/>, in clear, in the same packet
  raw.socket.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get' id='injected'><query xmlns='jabber:iq:version'/></iq>`);
  await raw.waitFor(/<proceed/);
  const secure = tls.connect({ socket: raw.socket, rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => (secure.once('secureConnect', () => resolve()), secure.once('error', reject)));
  let text = '';
  secure.on('data', (d: Buffer) => (text += d.toString('utf8')));
  secure.write(`<?xml version='1.0'?><stream:stream to='${domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
  const deadline = Date.now() + 5000;
  while (!text.includes('</stream:features>') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.match(text, /<mechanisms/, `the encrypted stream offers SASL (got: ${text.slice(0, 600)})`);
  await new Promise((r) => setTimeout(r, 300));
  t.notMatch(text, /injected/, 'the injected IQ was never answered');
  secure.destroy();
});

t.test('slixmpp logs in over STARTTLS through the front and chats', async (t) => {
  const server = await startXmppServer(t, { tlsTerminator: 'front' });
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'sf');
  const bobWs = await connectWs(server, bob);
  t.teardown(() => bobWs.close());
  const child = spawn(PYTHON, [SLIXMPP, `${alice.username}@${domain}/slix`, PASSWORD, '127.0.0.1', String(server.node.xmppPort), `${bob.username}@${domain}`, '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill());
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const events: any[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      events.push(JSON.parse(line));
    } catch {
      /* noise */
    }
  });
  const next = async (name: string) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const e = events.find((x) => x.event === name);
      if (e) return e;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no "${name}" from slixmpp: ${JSON.stringify(events)} ${stderr.slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const ready = await next('ready');
  t.equal(ready.tls, true, 'slixmpp negotiated STARTTLS with the front');
  t.equal(ready.mechanism, 'SCRAM-SHA-256');
  const got = await bobWs.nextEvent((e) => e.type === 'message', 15_000);
  t.match(got, { type: 'message', message: { from: alice.userId, body: 'hello from slixmpp' } }, 'its message arrived');
  await bobWs.request('message.send', { to: alice.userId, body: 'hello back through the front' });
  t.equal((await next('message')).body, 'hello back through the front', 'and the answer reached it');
});
