/**
 * Memory per idle authenticated session over TLS, counting Kindred AND kindred-tls-front.
 * Not a test: a measuring script (the bench scenarios `idle` and `connections` measure one
 * process and have no TLS option yet).
 *
 *   npm run build
 *   node --import tsx native/tls-front/measure-sessions.ts --protocol native-tcp --sessions 2000 --terminator front
 *
 * --protocol native-tcp | xmpp-tcp (STARTTLS) | native-ws (wss) | xmpp-ws (wss)
 * --terminator front | node | auto (which terminates TLS on the TCP listeners)
 * --entry FILE: the Kindred to run (default dist/cli.js; e.g. a snapshot built with
 *   `npx tsc -p tsconfig.json --outDir <dir>`); the front is dist/bin/kindred-tls-front
 *   unless KINDRED_TLS_FRONT_BIN says otherwise
 * Kindred runs as `node dist/cli.js start` with the bench config (cheap password hashing),
 * a throwaway P-256 certificate, and --inspect for a forced GC. RSS is read after a settle,
 * before and after the sessions, each time with and without a forced collection (Kindred:
 * V8 full GC through the inspector; the front: SIGUSR1 = runtime.GC + FreeOSMemory).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import WebSocket from 'ws';
import { REPO_ROOT, startServer } from '../../bench/lib/server.js';
import { registerUsers, type BenchUser } from '../../bench/lib/setup.js';
import { gcAndMeasure } from '../../bench/lib/inspector.js';
import { XmppSession } from '../../bench/lib/xmpp-client.js';
import { decodeMessage, encodeLengthPrefixed, encodeMessage, FrameDecoder } from '../../src/protocol/native/codec.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
process.removeAllListeners('warning');

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const protocol = args.get('protocol') ?? 'native-tcp';
const sessions = Number(args.get('sessions') ?? 2000);
const terminator = args.get('terminator') ?? 'front';
const concurrency = Number(args.get('concurrency') ?? 100);
const settleMs = Number(args.get('settle') ?? 5) * 1000;
if (!['native-tcp', 'xmpp-tcp', 'native-ws', 'xmpp-ws'].includes(protocol)) throw new Error('--protocol native-tcp|xmpp-tcp|native-ws|xmpp-ws');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const source = (i: number) => `127.0.0.${2 + (i % 8)}`;

function rssKiB(pid: number | undefined): number {
  if (!pid) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function frontPid(serverPid: number): number | undefined {
  const kids = readFileSync(`/proc/${serverPid}/task/${serverPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return kids.find((k) => readFileSync(`/proc/${k}/comm`, 'utf8').trim().startsWith('kindred-tls-fro'));
}

function makeCert(): { certFile: string; keyFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-measure-cert-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  return { certFile, keyFile };
}

/** a native-protocol session over TLS TCP: connect, auth, answer heartbeats */
function nativeTcp(port: number, token: string, localAddress: string): Promise<{ close(): void }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, localAddress, rejectUnauthorized: false } as tls.ConnectionOptions);
    const decoder = new FrameDecoder(16 << 20);
    socket.once('secureConnect', () => socket.write(encodeLengthPrefixed({ id: 1, op: 'auth', args: { token } })));
    socket.on('data', (d: Buffer) => {
      for (const f of decoder.push(d)) {
        const m = decodeMessage(f) as any;
        if (typeof m.ping === 'number') socket.write(encodeLengthPrefixed({ pong: m.ping }));
        else if (m.id === 1) (m.error ? reject(new Error(m.error.code)) : resolve({ close: () => socket.destroy() }));
      }
    });
    socket.on('error', reject);
  });
}

function nativeWs(url: string, token: string, localAddress: string): Promise<{ close(): void }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress, perMessageDeflate: false, rejectUnauthorized: false });
    ws.once('open', () => ws.send(encodeMessage({ id: 1, op: 'auth', args: { token } })));
    ws.on('message', (d: Buffer) => {
      const m = decodeMessage(d) as any;
      if (typeof m.ping === 'number') ws.send(encodeMessage({ pong: m.ping }));
      else if (m.id === 1) (m.error ? reject(new Error(m.error.code)) : resolve({ close: () => ws.terminate() }));
    });
    ws.on('error', reject);
  });
}

async function main(): Promise<void> {
  const cert = makeCert();
  process.env.KINDRED_TLS_FRONT_BIN ??= join(REPO_ROOT, 'dist/bin/kindred-tls-front');
  const server = await startServer({ entry: args.get('entry'), config: { tls: cert, tlsTerminator: terminator }, inspect: true });
  const base = `https://127.0.0.1:${server.httpPort}`;
  try {
    const front = frontPid(server.pid);
    console.error(`kindred pid ${server.pid}, front pid ${front ?? 'none'}; registering ${sessions} users`);
    const { users } = await registerUsers(base, sessions, { prefix: 'tls', concurrency: 50 });

    const measure = async () => {
      await sleep(settleMs);
      const noGc = { kindred: rssKiB(server.pid), front: rssKiB(front) };
      const heap = await gcAndMeasure(server.inspectorUrl!);
      if (front) process.kill(front, 'SIGUSR1');
      await sleep(1000);
      return { noGc, gc: { kindred: rssKiB(server.pid), front: rssKiB(front) }, heapUsedKiB: Math.round(heap.heapUsed / 1024) };
    };
    const before = await measure();
    console.error(`before: ${JSON.stringify(before)}; opening ${sessions} ${protocol} sessions, ${concurrency} at a time`);

    const open: Array<{ close(): void }> = [];
    const failures: Record<string, number> = {};
    let next = 0;
    const t0 = performance.now();
    const connectOne = (u: BenchUser, i: number): Promise<{ close(): void }> => {
      switch (protocol) {
        case 'native-tcp':
          return nativeTcp(server.tcpPort, u.token, source(i));
        case 'native-ws':
          return nativeWs(`wss://127.0.0.1:${server.httpPort}/ws`, u.token, source(i));
        default: {
          const ep = { transport: protocol === 'xmpp-tcp' ? ('tcp' as const) : ('ws' as const), host: '127.0.0.1', port: server.xmppPort, wsUrl: `wss://127.0.0.1:${server.httpPort}/xmpp-websocket`, domain: server.domain };
          return XmppSession.open(ep, { username: u.username, password: 'correct horse battery' }, { localAddress: source(i), timeoutMs: 60_000 });
        }
      }
    };
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < sessions) {
          const i = next++;
          try {
            open.push(await connectOne(users[i]!, i));
          } catch (err) {
            const k = (err as Error).message.slice(0, 80);
            failures[k] = (failures[k] ?? 0) + 1;
          }
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const after = await measure();
    const n = Math.max(1, open.length);
    const per = (a: number, b: number) => Math.round(((b - a) / n) * 100) / 100;
    const result = {
      protocol,
      terminator,
      sessions: open.length,
      failures,
      connectLoginPerSecond: Math.round(open.length / seconds),
      frontPid: front ?? null,
      rssKiB: { before, after },
      perSessionKiB: {
        kindredGc: per(before.gc.kindred, after.gc.kindred),
        frontGc: per(before.gc.front, after.gc.front),
        totalGc: per(before.gc.kindred + before.gc.front, after.gc.kindred + after.gc.front),
        kindredNoGc: per(before.noGc.kindred, after.noGc.kindred),
        frontNoGc: per(before.noGc.front, after.noGc.front),
        totalNoGc: per(before.noGc.kindred + before.noGc.front, after.noGc.kindred + after.noGc.front),
        kindredHeap: per(before.heapUsedKiB, after.heapUsedKiB),
      },
      problems: server.problems(),
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    };
    console.log(JSON.stringify(result));
    for (const c of open) c.close();
  } finally {
    await server.stop();
  }
}

await main();
