/**
 * Every message acknowledged before a `kill -9` of the server is in history after
 * a restart on the same data directory.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NativeClient } from '../../src/client/native.js';
import { api, matchedPair } from '../helpers/server.js';

interface Spawned {
  child: ChildProcess;
  httpPort: number;
  tcpPort: number;
}

function startServerProcess(dataDir: string, configFile: string): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--config', configFile, '--data-dir', dataDir, '--http-port', '0', '--tcp-port', '0', '--xmpp-port', '0', '--xmpp-tls-port', '0', '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const http = /HTTP \+ REST\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      const tcp = /native TCP\s+127\.0\.0\.1:(\d+)/.exec(out);
      if (http && tcp) {
        clearTimeout(timer);
        resolve({ child, httpPort: Number(http[1]), tcpPort: Number(tcp[1]) });
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
}

t.test('acknowledged messages survive kill -9', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kindred-crash-'));
  const configFile = join(dataDir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ auth: { scryptN: 1024 }, limits: { messagesPerSecond: 100000, messagesBurst: 100000 } }));
  let server = await startServerProcess(dataDir, configFile);
  t.teardown(() => server.child.kill('SIGKILL'));
  const fakeServer = { base: `http://127.0.0.1:${server.httpPort}` } as Parameters<typeof matchedPair>[0];
  const [alice, bob] = await matchedPair(fakeServer, 'crash');

  const client = await NativeClient.connectTcp('127.0.0.1', server.tcpPort);
  await client.request('auth', { token: alice.token });
  const acked: string[] = [];
  let sent = 0;
  let stop = false;
  // Keep 100 messages in flight; kill the server once 1,500 have been acknowledged.
  const sender = async () => {
    while (!stop) {
      const body = `msg ${sent++}`;
      try {
        const r = await client.request('message.send', { to: bob.userId, body });
        acked.push(r.messageId);
      } catch {
        return; // the connection died with the server
      }
    }
  };
  const senders = Array.from({ length: 100 }, sender);
  while (acked.length < 1500) await new Promise((r) => setTimeout(r, 5));
  server.child.kill('SIGKILL');
  stop = true;
  await Promise.all(senders);
  t.ok(sent > acked.length, `some messages were in flight at the kill (${sent} sent, ${acked.length} acked)`);

  server = await startServerProcess(dataDir, configFile);
  const base = `http://127.0.0.1:${server.httpPort}`;
  const inHistory = new Set<string>();
  let before: string | undefined;
  for (;;) {
    const page = await api(base, 'GET', `/v1/conversations/${alice.userId}/messages?limit=200${before ? `&before=${before}` : ''}`, { token: bob.token });
    t.equal(page.status, 200);
    for (const m of page.body.messages) inHistory.add(m.messageId);
    if (!page.body.next) break;
    before = page.body.next;
  }
  const lost = acked.filter((id) => !inHistory.has(id));
  t.equal(lost.length, 0, `all ${acked.length} acknowledged messages are in history after the restart`);
  server.child.kill('SIGTERM');
});
