/**
 * Starting and stopping a node: a start that fails part-way (a port in use) releases what it
 * had started — no listener, worker, timer or open database left behind — and the same data
 * directory then starts cleanly; StopStack runs stops newest first, every one of them.
 */
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createLogger } from '../../src/log.js';
import { startNode } from '../../src/node.js';
import { StopStack } from '../../src/stop-stack.js';
import { api, testConfig } from '../helpers/server.js';

t.test('StopStack: newest first, every step even after a failure, the first failure reported', async (t) => {
  const stops = new StopStack();
  const ran: string[] = [];
  stops.push(() => ran.push('storage'));
  stops.push(async () => {
    ran.push('bus');
    throw new Error('bus close failed');
  });
  stops.push(() => {
    ran.push('listeners');
    throw new Error('listener close failed');
  });
  await t.rejects(stops.unwind(), { message: 'listener close failed' }, 'rejects with the first failure');
  t.same(ran, ['listeners', 'bus', 'storage'], 'all three ran, newest first');
  await stops.unwind();
  t.same(ran, ['listeners', 'bus', 'storage'], 'a second unwind runs nothing again');
});

/** Active handles by kind (sockets, servers, timers, workers…), for a before/after comparison. */
function resources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** Files under `dir` this process holds open (databases, their WAL files, blobs). */
function openFilesUnder(dir: string): string[] {
  const open: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) open.push(target.slice(dir.length + 1));
    } catch {
      /* closed while listing */
    }
  }
  return open.sort();
}

/**
 * What is still held, once closes in progress had 5 s to finish: kinds of active handle more
 * numerous than in `before`, and files under the data directory still open.
 */
async function leftOver(before: Map<string, number>, dataDir: string): Promise<Array<[string, number | string]>> {
  const deadline = performance.now() + 5000;
  for (;;) {
    const held: Array<[string, number | string]> = [...resources()].filter(([kind, n]) => n > (before.get(kind) ?? 0));
    for (const file of openFilesUnder(dataDir)) held.push(['open file', file]);
    if (held.length === 0 || performance.now() > deadline) return held;
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('a start that fails on a port in use releases everything it started', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kindred-start-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  t.teardown(() => squatter.close());
  const takenPort = (squatter.address() as net.AddressInfo).port;

  const before = resources();
  // the TCP listener starts after storage, bus, actors, the book store's services, their
  // worker pools and the HTTP listener: all of those must be released again
  await t.rejects(startNode(testConfig(dataDir, { tcpPort: takenPort }), createLogger('silent')), 'the start fails');
  t.same(await leftOver(before, dataDir), [], `no handle or open file left behind (before: ${JSON.stringify([...before])})`);

  const node = await startNode(testConfig(dataDir), createLogger('silent'));
  try {
    const res = await api(`http://127.0.0.1:${node.httpPort}`, 'POST', '/v1/register', { json: { username: 'after-failed-start', password: 'correct horse battery' } });
    t.equal(res.status, 201, `the same data directory then serves (${res.status} ${JSON.stringify(res.body)})`);
  } finally {
    await node.stop();
  }
  t.same(await leftOver(before, dataDir), [], 'and stop() releases everything as well');
});
