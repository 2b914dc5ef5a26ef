/**
 * The native protocol over TLS with kindred-tls-front terminating TLS (tls.terminator
 * "front"): login, chat, large frames both ways, bad frames, a client cut mid-frame; and the
 * same listener with tls.terminator "node" (node:tls), which must keep working.
 */
import t from 'tap';
import tls from 'node:tls';
import { NativeClient } from '../../src/client/native.js';
import { decodeMessage, encodeLengthPrefixed, FrameDecoder } from '../../src/protocol/native/codec.js';
import { matchedPair, startTestServer, type TestServer } from '../helpers/server.js';
import { makeCert, requireFrontBinary, waitUntil } from './helpers.js';


requireFrontBinary();
const cert = makeCert();

// REST stays on plain HTTP here (uWS terminates HTTPS on its own); only the TCP port has TLS.
async function server(t: { teardown(fn: () => unknown): void }, terminator: 'front' | 'node'): Promise<TestServer> {
  const s = await startTestServer(t, { tls: cert, tlsTerminator: terminator });
  // startTestServer's REST base is http://; with a certificate the HTTP port speaks HTTPS
  s.base = `https://127.0.0.1:${s.node.httpPort}`;
  return s;
}
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const tcpTls = (s: TestServer, user: { token: string }) =>
  NativeClient.connectTcp('127.0.0.1', s.tcpPort, { tls: true }).then(async (c) => {
    await c.request('auth', { token: user.token });
    return c;
  });

/** A raw TLS connection to the native port, for frames no client would send. */
function rawTls(port: number): Promise<{ socket: tls.TLSSocket; frames: any[]; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    const frames: any[] = [];
    const decoder = new FrameDecoder(16 << 20);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('data', (d: Buffer) => {
      for (const f of decoder.push(d)) frames.push(decodeMessage(f));
    });
    socket.on('error', () => undefined);
    socket.once('secureConnect', () => resolve({ socket, frames, closed }));
    socket.once('error', reject);
  });
}

for (const terminator of ['front', 'node'] as const) {
  t.test(`native TCP over TLS, terminated by ${terminator}`, async (t) => {
    const s = await server(t, terminator);
    t.equal(s.node.tlsFront !== null, terminator === 'front', `tls.terminator "${terminator}" ${terminator === 'front' ? 'runs' : 'does not run'} the front`);
    const [alice, bob] = await matchedPair(s, `nt${terminator}`);
    const a = await tcpTls(s, alice);
    const b = await tcpTls(s, bob);
    t.teardown(() => (a.close(), b.close()));

    const sent = await a.request('message.send', { to: bob.userId, body: 'hello over the front' });
    const got = await b.nextEvent((e) => e.type === 'message', 10_000);
    t.match(got, { type: 'message', message: { messageId: sent.messageId, body: 'hello over the front' } }, 'chat works');

    // a large frame in: far more than one TLS record, answered as a whole (the body is over the message limit)
    const big = 'x'.repeat(50_000);
    await t.rejects(a.request('message.send', { to: bob.userId, body: big }), { code: 'PAYLOAD_TOO_LARGE' }, 'a 50 KB frame arrives whole and is validated');
    // large frames out: a history page of 120 messages of 3,000 characters (~360 KB)
    const body = 'y'.repeat(3000);
    for (let i = 0; i < 120; i++) await a.request('message.send', { to: bob.userId, body: `${i}:${body}` });
    const page = await b.request('messages.history', { with: alice.userId, limit: 150 });
    t.equal(page.messages.length, 121, 'a ~360 KB reply arrives whole');
    t.ok(page.messages.every((m: any) => m.body === 'hello over the front' || m.body.endsWith(body)), 'with every byte intact');

    // bad frames: not msgpack -> an error frame, the connection stays usable
    const raw = await rawTls(s.tcpPort);
    raw.socket.write(Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from([0xc1, 0xc1, 0xc1])]));
    await waitUntil('an error frame', () => raw.frames.some((f) => f.error));
    t.match(raw.frames.find((f) => f.error), { error: { code: 'BAD_REQUEST' } }, 'bad msgpack gets an error frame');
    raw.socket.write(encodeLengthPrefixed({ id: 7, op: 'auth', args: { token: alice.token } }));
    await waitUntil('the auth reply', () => raw.frames.some((f) => f.id === 7));
    t.match(raw.frames.find((f) => f.id === 7), { result: { userId: alice.userId } }, 'and the connection still works');
    // an oversized length: error frame, then the server closes
    raw.socket.write(Buffer.from([0x7f, 0, 0, 0]));
    await raw.closed;
    t.match(raw.frames.at(-1), { error: { code: 'PAYLOAD_TOO_LARGE' } }, 'an oversized frame length gets an error frame and a close');

    // a client cut mid-frame: the server forgets the connection
    // a and b are open; the connection closed above is gone once the count is 2
    const before = 2;
    await waitFor('only a and b connected', async () => (await connectionCount(s)) === before);
    const cut = await rawTls(s.tcpPort);
    await waitFor('the cut client counted', async () => (await connectionCount(s)) === before + 1);
    cut.socket.write(Buffer.from([0, 0, 1, 0, 0x82, 0xa2]));
    cut.socket.destroy();
    await waitFor('the cut connection gone', async () => (await connectionCount(s)) === before);
    t.pass('a client cut mid-frame is cleaned up');
    // and the others did not notice
    const sent2 = await b.request('message.send', { to: alice.userId, body: 'still here' });
    t.ok(sent2.messageId, 'other sessions keep working');
  });
}

// the TCP listener's live connections, from the metrics gauge
async function connectionCount(s: TestServer): Promise<number> {
  const m = /kindred_connections\{transport="tcp"\} (\d+)/.exec(await s.node.metrics.text());
  return m ? Number(m[1]) : 0;
}

async function waitFor(what: string, ok: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
