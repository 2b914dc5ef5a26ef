/**
 * Two pieces of failover that need no cluster to check:
 * - SessionFailover (src/cluster/session-failover.ts) over LocalBus with a controllable
 *   clock: a node whose heartbeats lapse is reported gone once; when the same run of it
 *   (same startedAt) is heard again it is asked to re-attach its sessions, a restarted or
 *   new node is not; resync requests arriving together are served once.
 * - message.send retries recognised from storage: a fresh actor (here: after a restart
 *   of an embedded node, which empties every actor's memory just like a failover) answers
 *   a resend under a known clientId with the stored message instead of a second copy.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalBus } from '../../src/actors/bus.js';
import { HEARTBEAT_SUBJECT, LEAVE_SUBJECT, Membership } from '../../src/cluster/membership.js';
import { SessionFailover, resyncSubject } from '../../src/cluster/session-failover.js';
import { startNode } from '../../src/node.js';
import { createLogger } from '../../src/log.js';
import { NativeClient } from '../../src/client/native.js';
import { sleep, until } from '../helpers/async.js';
import { likeEachOther, registerUser, setProfile, testConfig } from '../helpers/server.js';
import { failOnLingeringHandles } from '../helpers/exit-watch.js';

// first, so its teardown runs last: a socket or timer left after the teardowns fails the file with a report
failOnLingeringHandles(t);

t.test('dead nodes are reported once; the same run coming back is asked to re-attach', async (t) => {
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  let now = 1_000_000;
  const membership = new Membership(bus, 'node-a', { heartbeatMs: 20, liveMs: 3000, now: () => now });
  const gone: string[] = [];
  let reattached = 0;
  const failover = new SessionFailover({ bus, membership, nodeGone: (id, lapsed) => gone.push(`${id} ${lapsed ? 'lapsed' : 'left'}`), reattachAll: () => reattached++, resyncDebounceMs: 50 });
  const resyncs: string[] = [];
  for (const id of ['node-b', 'node-c']) bus.subscribe(resyncSubject(id), () => void resyncs.push(id));
  membership.start();
  failover.start();
  t.teardown(() => {
    failover.stop();
    membership.stop();
  });
  const beat = (nodeId: string, startedAt: number) => bus.publish(HEARTBEAT_SUBJECT, { nodeId, startedAt });

  beat('node-b', 1);
  await until(() => membership.members().includes('node-b'), 'node-b to join');
  await sleep(60);
  t.same(resyncs, [], 'a node seen for the first time is not asked to resync');

  now += 4000; // node-b silent for longer than liveMs
  await until(() => gone.length > 0, 'node-b to be declared gone');
  await sleep(60);
  t.same(gone, ['node-b lapsed'], 'reported gone once, as lapsed');

  beat('node-b', 1); // the same run: it was cut off or stalled, its connections may be alive
  await until(() => resyncs.length > 0, 'a resync request');
  t.same(resyncs, ['node-b'], 'asked to re-attach its sessions');

  now += 4000;
  await until(() => gone.length > 1, 'node-b gone again');
  beat('node-b', 2); // restarted: a new run holds no sessions from before
  await until(() => membership.members().includes('node-b'), 'node-b to rejoin');
  await sleep(60);
  t.same(resyncs, ['node-b'], 'a restarted node is not asked');

  beat('node-c', 7);
  await until(() => membership.members().includes('node-c'), 'node-c to join');
  bus.publish(LEAVE_SUBJECT, { nodeId: 'node-c' });
  await until(() => gone.length > 2, 'node-c to leave');
  t.same(gone.slice(2), ['node-c left'], 'a clean leave is reported as such (its asks are not given up)');

  for (let i = 0; i < 3; i++) bus.publish(resyncSubject('node-a'), { from: 'node-b' });
  await sleep(150);
  t.equal(reattached, 1, 'resync requests arriving together re-attach once');
});

t.test('a clientId resent to a fresh actor gets the stored message back', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kindred-retry-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const start = async () => {
    const node = await startNode(testConfig(dataDir), createLogger('silent'));
    return { node, base: `http://127.0.0.1:${node.httpPort}`, wsUrl: `ws://127.0.0.1:${node.httpPort}/ws` };
  };
  let s = await start();
  const a = await registerUser(s.base, 'rta');
  const b = await registerUser(s.base, 'rtb');
  await setProfile(s.base, a);
  await setProfile(s.base, b);
  await likeEachOther(s, a, b);
  const connect = async (u: typeof a) => {
    const c = await NativeClient.connectWs(s.wsUrl);
    await c.request('auth', { token: u.token });
    return c;
  };
  let aWs = await connect(a);
  const first = await aWs.request('message.send', { to: b.userId, body: 'only once', clientId: 'retry-1' });
  await aWs.request('message.send', { to: b.userId, body: 'another', clientId: 'retry-2' });
  t.equal((await aWs.request('message.send', { to: b.userId, body: 'only once', clientId: 'retry-1' })).messageId, first.messageId, 'same actor: answered from memory');
  aWs.close();
  await s.node.stop(); // every actor's memory is gone, as after a failover

  s = await start();
  t.teardown(() => s.node.stop());
  aWs = await connect(a);
  t.teardown(() => aWs.close());
  const again = await aWs.request('message.send', { to: b.userId, body: 'only once', clientId: 'retry-1' });
  t.same(again, first, 'a fresh actor answers with the stored message');
  const fresh = await aWs.request('message.send', { to: b.userId, body: 'new one', clientId: 'retry-3' });
  t.not(fresh.messageId, first.messageId, 'a new clientId is a new message');
  const history = await aWs.request('messages.history', { with: b.userId, limit: 50 });
  t.same(
    history.messages.map((m) => m.body),
    ['new one', 'another', 'only once'],
    'history holds each message once',
  );
});
