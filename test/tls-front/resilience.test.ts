/**
 * kindred-tls-front under stress: a client that does not read (the front's memory must stay
 * bounded, Kindred drops the slow consumer), the front killed with SIGKILL (Kindred restarts
 * it on the same ports, the sessions it held are closed, clients reconnect), and the config.
 */
import t from 'tap';
import { NativeClient } from '../../src/client/native.js';
import { loadConfig } from '../../src/config.js';
import { encodeLengthPrefixed } from '../../src/protocol/native/codec.js';
import { matchedPair, startTestServer } from '../helpers/server.js';
import { xmppLogin } from '../xmpp/helpers.js';
import { makeCert, requireFrontBinary, rssKiB, waitUntil } from './helpers.js';

requireFrontBinary();
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const cert = makeCert();

async function tlsServer(t: { teardown(fn: () => unknown): void }) {
  const s = await startTestServer(t, { tls: cert, tlsTerminator: 'front' });
  s.base = `https://127.0.0.1:${s.node.httpPort}`;
  return s;
}

t.test('a client that never reads: the front holds at most its queue limit, Kindred drops the client', async (t) => {
  const s = await tlsServer(t);
  const front = s.node.tlsFront!;
  const [alice, bob] = await matchedPair(s, 'slow');
  const a = await NativeClient.connectTcp('127.0.0.1', s.tcpPort, { tls: true });
  await a.request('auth', { token: alice.token });
  const body = 'q'.repeat(3900);
  for (let i = 0; i < 200; i++) await a.request('message.send', { to: bob.userId, body });
  a.close();

  const b = await NativeClient.connectTcp('127.0.0.1', s.tcpPort, { tls: true });
  await b.request('auth', { token: bob.token });
  const before = rssKiB(front.pid!);
  // stop reading, then ask for ~780 KB history pages, 50 at a time, until the server gives up on us
  b.rawSocket!.pause();
  let asked = 0;
  let peak = before;
  while (!b.closed && asked < 400) {
    for (let i = 0; i < 50; i++) b.rawSocket!.write(encodeLengthPrefixed({ id: 1000 + asked++, op: 'messages.history', args: { with: alice.userId, limit: 200 } }));
    await new Promise((r) => setTimeout(r, 100));
    peak = Math.max(peak, rssKiB(front.pid!));
    if (b.rawSocket!.destroyed) break;
    // the server closes us once its buffer for us is full; our own socket only notices when we read again
    const m = /kindred_disconnects_total\{reason="slow_consumer"\} (\d+)/.exec(await s.node.metrics.text());
    if (m && Number(m[1]) > 0) break;
  }
  const produced = asked * 780;
  t.ok(asked >= 50, `asked for ${asked} pages (~${Math.round(produced / 1024)} MiB of replies)`);
  const m = /kindred_disconnects_total\{reason="slow_consumer"\} (\d+)/.exec(await s.node.metrics.text());
  t.ok(m && Number(m[1]) >= 1, 'Kindred disconnected the slow consumer');
  t.ok(peak - before < 8 * 1024, `the front grew by ${peak - before} KiB (bounded by its 64 KiB queue and pooled buffers, not by the ${Math.round(produced / 1024)} MiB asked for)`);
  b.rawSocket!.destroy();
});

t.test('the front killed with SIGKILL: Kindred restarts it on the same ports and clients reconnect', async (t) => {
  const s = await tlsServer(t);
  const front = s.node.tlsFront!;
  const firstPid = front.pid!;
  const [alice, bob] = await matchedPair(s, 'kill');
  const a = await NativeClient.connectTcp('127.0.0.1', s.tcpPort, { tls: true });
  await a.request('auth', { token: alice.token });
  const x = await xmppLogin({ service: `xmpp://127.0.0.1:${s.node.xmppPort}`, domain: s.config.domain, username: bob.username, resource: 'k' });
  await x.xmpp.stop().catch(() => undefined); // no auto-reconnect noise: we reconnect by hand below
  const x2 = await xmppLogin({ service: `xmpp://127.0.0.1:${s.node.xmppPort}`, domain: s.config.domain, username: bob.username, resource: 'k2' });
  let xmppOffline = false;
  x2.xmpp.on('disconnect', () => (xmppOffline = true));
  x2.xmpp.reconnect?.stop?.();

  process.kill(firstPid, 'SIGKILL');
  await waitUntil('the native client sees the close', () => a.closed, 10_000);
  await waitUntil('the XMPP client sees the close', () => xmppOffline, 10_000);
  await waitUntil('a new front', () => front.restarts === 1 && front.pid !== undefined && front.pid !== firstPid, 15_000);
  t.not(front.pid, firstPid, 'a new front process');

  // reconnect on the same ports
  let again: NativeClient | undefined;
  const deadline = Date.now() + 10_000;
  while (!again) {
    try {
      again = await NativeClient.connectTcp('127.0.0.1', s.tcpPort, { tls: true });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  t.teardown(() => again!.close());
  const auth = await again.request('auth', { token: alice.token });
  t.equal(auth.userId, alice.userId, 'native TLS clients log in again');
  const y = await xmppLogin({ service: `xmpp://127.0.0.1:${s.node.xmppPort}`, domain: s.config.domain, username: bob.username, resource: 'k3' });
  t.teardown(() => y.stop());
  t.ok(y.jid.startsWith(bob.username), 'XMPP clients log in again (STARTTLS)');
  await again.request('message.send', { to: bob.userId, body: 'after the restart' });
  const got = await y.waitFor((el) => el.is('message') && el.getChildText('body') === 'after the restart', 10_000, 'the message');
  t.ok(got, 'and chat works across both');
  await x2.stop();
});

t.test('tls.terminator in the config', async (t) => {
  t.equal(loadConfig([], {}).tlsTerminator, 'auto', 'auto by default');
  t.equal(loadConfig(['--tls-terminator', 'node'], {}).tlsTerminator, 'node', 'a flag');
  t.equal(loadConfig([], { KINDRED_TLS_TERMINATOR: 'front' }).tlsTerminator, 'front', 'an environment variable');
  const c = loadConfig(['--tls-terminator', 'front', '--tls-cert', 'c.pem', '--tls-key', 'k.pem'], {});
  t.same([c.tlsTerminator, c.tls], ['front', { certFile: 'c.pem', keyFile: 'k.pem' }], 'next to a certificate, which stays the only content of tls');
  t.equal(loadConfig(['--tls-terminator', 'node'], {}).tls, null, 'a terminator alone configures no certificate');
  t.throws(() => loadConfig(['--tls-terminator', 'stunnel'], {}), /tls.terminator must be/, 'anything else is refused');
});
