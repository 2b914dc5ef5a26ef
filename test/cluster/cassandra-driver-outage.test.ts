/**
 * cassandra-driver after an outage, through a TCP proxy in front of a real Cassandra that plays
 * the outage (down: every connection cut and new ones refused; up: accepted again, with every
 * chunk held back up to 400 ms for a while, as a freshly restarted Cassandra on a loaded machine
 * answers). Two driver bugs that src/storage/cassandra/driver-workarounds.ts works around:
 *
 *  - a Session closed shortly after Cassandra came back must leave nothing behind: the driver's
 *    control connection, still reconnecting, used to open a connection and a new host pool after
 *    shutdown(), which then reconnected forever once Cassandra went away (the outage test's
 *    process did not exit; reproduced here on the first attempt without the work-around);
 *  - two overlapping reconnections of the control connection must not end the process with an
 *    unhandled rejection (TypeError in _setHealthListeners), and the session must work after.
 */
import t from 'tap';
import net from 'node:net';
import { Session } from '../../src/storage/cassandra/client.js';
import { startCassandra } from '../helpers/cassandra.js';
import { failOnLingeringHandles, nameService } from '../helpers/exit-watch.js';
import { freePort } from '../helpers/nats.js';
import { sleep } from '../helpers/async.js';

failOnLingeringHandles(t);
t.setTimeout(600_000);

const cassandra = await startCassandra(t);

/** A TCP proxy to Cassandra that can go down and come back on the same port. */
class OutageProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** until then, every chunk is held back 0-400 ms */
  slowUntil = 0;
  constructor(readonly port: number) {}

  async up(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(cassandra.port, '127.0.0.1');
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', end).on('close', end);
      }
      const relay = (from: net.Socket, to: net.Socket) =>
        from.on('data', (chunk) => {
          if (Date.now() >= this.slowUntil) return void to.write(chunk);
          from.pause();
          setTimeout(() => {
            if (!to.destroyed) to.write(chunk);
            from.resume();
          }, Math.random() * 400);
        });
      relay(client, upstream);
      relay(upstream, client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, '127.0.0.1', () => resolve()));
    this.server = server;
  }

  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise((r) => server.close(r));
  }
}

/** Sockets of this process to `port` (the proxy): what the driver still holds open. */
function socketsTo(port: number): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter((h) => h instanceof net.Socket && h.remotePort === port && !h.destroyed).length;
}

/** Timers keeping the loop alive: the driver's reconnection timers show up here. */
const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

async function openSession(port: number): Promise<Session> {
  const s = new Session({ contactPoints: [`127.0.0.1:${port}`], localDataCenter: 'datacenter1', readTimeoutMs: 2000, connectTimeoutMs: 2000 });
  await s.connect();
  return s;
}
const query = (s: Session) => s.execute('SELECT release_version FROM system.local', [], { idempotent: true });

t.test('a session closed soon after Cassandra came back leaves nothing running', async (t) => {
  const rounds = 6;
  for (let round = 0; round < rounds; round++) {
    const proxy = new OutageProxy(await freePort());
    nameService(proxy.port, 'proxy to cassandra');
    const timersBefore = refTimers(); // the runner's own
    await proxy.up();
    const session = await openSession(proxy.port);
    await query(session);
    // the outage, with requests failing meanwhile (they ask the driver to retry at once)
    await proxy.down();
    const outageMs = 1000 + Math.random() * 2500;
    for (const end = Date.now() + outageMs; Date.now() < end; await sleep(50)) await query(session).catch(() => undefined);
    proxy.slowUntil = Date.now() + 3000;
    await proxy.up();
    // requests resume; the session is closed at some moment while the driver is reconnecting
    const closeAfterMs = Math.random() * 1500;
    for (const end = Date.now() + closeAfterMs; Date.now() < end; await sleep(20)) await query(session).catch(() => undefined);
    await session.close();
    await sleep(2500); // Cassandra still up: a connection opened after close() would still be here
    const open = socketsTo(proxy.port);
    await proxy.down(); // then Cassandra goes away, as when a test's teardown kills it
    await sleep(3000); // a pool left behind retries every 2 s at most
    const timersLeft = refTimers();
    const openAfter = socketsTo(proxy.port);
    // Known and bounded (docs/cluster.md): a reconnection that fails part-way can leave one
    // socket open while Cassandra stays up; it is not retried, and it ends with the server. What
    // must not happen is a pool that reconnects forever after close() (the CI hang).
    if (open > 0) t.comment(`round ${round + 1}: ${open} connection(s) still open 2.5 s after close() while Cassandra was up`);
    t.equal(openAfter, 0, `round ${round + 1}: no connection left once Cassandra is gone (outage ${outageMs.toFixed(0)} ms, closed ${closeAfterMs.toFixed(0)} ms after Cassandra came back)`);
    t.ok(timersLeft <= timersBefore, `round ${round + 1}: no timer left once Cassandra is gone (${timersLeft} now, ${timersBefore} before)`);
    if (openAfter > 0 || timersLeft > timersBefore) break;
  }
});

t.test('overlapping reconnections of the control connection neither crash nor stop the session', async (t) => {
  const proxy = new OutageProxy(await freePort());
  await proxy.up();
  const session = await openSession(proxy.port);
  t.teardown(async () => {
    await session.close();
    await proxy.down();
  });
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  const control = (session.client as unknown as { controlConnection: { _refresh(): Promise<void>; connection: unknown } }).controlConnection;
  // What the driver does when a retry timer and a closed connection both start a reconnection:
  // the second starts while the first is between its queries (each slowed by the proxy).
  for (let i = 0; i < 8; i++) {
    proxy.slowUntil = Date.now() + 3000;
    void control._refresh();
    await sleep(100 + Math.random() * 1200);
    void control._refresh();
    await sleep(3000);
    if (unhandled.length > 0) break;
  }
  t.same(unhandled.map(String), [], 'no unhandled rejection');
  t.ok(control.connection, 'the control connection is connected again');
  t.match(await query(session), { rows: [{}] }, 'and the session serves queries');
});
