/** TLS on both listeners: HTTPS/WSS (uWS SSLApp) and native TCP over TLS. */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NativeClient } from '../../src/client/native.js';
import { startTestServer } from '../helpers/server.js';
import { encodeMessage, decodeMessage } from '../../src/protocol/native/codec.js';
import WebSocket from 'ws';
import https from 'node:https';

t.test('TLS on HTTP, WebSocket and TCP', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  const server = await startTestServer(t, { tls: { certFile, keyFile } });

  const register = await new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: server.node.httpPort, path: '/v1/register', method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(data) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ username: 'tlsuser', password: 'password123' }));
  });
  t.equal(register.status, 201, 'HTTPS works');

  const tcp = await NativeClient.connectTcp('127.0.0.1', server.tcpPort, { tls: true });
  const auth = await tcp.request('auth', { token: register.body.token });
  t.equal(auth.userId, register.body.userId, 'native protocol over TLS TCP works');
  tcp.close();

  const ws = new WebSocket(`wss://127.0.0.1:${server.node.httpPort}/ws`, { rejectUnauthorized: false });
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  ws.send(encodeMessage({ id: 1, op: 'auth', args: { token: register.body.token } }));
  const reply = await new Promise<any>((r) => ws.once('message', (d: Buffer) => r(decodeMessage(d))));
  t.equal(reply.result.userId, register.body.userId, 'native protocol over WSS works');
  ws.close();
});
