/**
 * Three Kindred nodes in cluster mode, in this process, on a real nats-server (with
 * JetStream), a real Cassandra and a real versitygw: users on different nodes match,
 * chat, see presence and typing; history is read through a third node; a node that
 * stops cleanly hands its shards to the survivors; a node cut off from NATS fences
 * itself and the survivor takes its shards once the leases lapse. Clients reconnect
 * to another node and keep chatting.
 */
import t from 'tap';
import { NativeClient } from '../../src/client/native.js';
import { covered, startClusterNode, startClusterServices, waitFor, type ClusterNode } from '../helpers/cluster.js';
import { api, registerUser, setProfile, type TestUser } from '../helpers/server.js';
import { failOnLingeringHandles } from '../helpers/exit-watch.js';

// first, so its teardown runs last: a socket or timer left after the teardowns fails the file with a report
failOnLingeringHandles(t);

t.setTimeout(400_000);

const svc = await startClusterServices(t, 'cluster');
// Each node gets its own bus, so the test can cut one off NATS without stopping it.
const addNode = (id: string) => startClusterNode(t, svc, id, { ownBus: true });

const healthy = async (n: ClusterNode) => (await fetch(`${n.base}/healthz`)).status === 200;

async function connect(n: ClusterNode, u: TestUser): Promise<NativeClient> {
  const c = await NativeClient.connectWs(n.wsUrl);
  await c.request('auth', { token: u.token });
  return c;
}

t.test('three nodes share one chat', async (t) => {
  const started = Date.now();
  const n1 = await addNode('node-1');
  const n2 = await addNode('node-2');
  const n3 = await addNode('node-3');
  const nodes = [n1, n2, n3];
  await waitFor(
    async () => nodes.every((n) => n.node.cluster!.membership.members().length === 3) && covered(nodes) && (await Promise.all(nodes.map(healthy))).every(Boolean),
    30_000,
    'three healthy nodes splitting the shards',
  );
  t.pass(`three nodes up and holding their leases ${Date.now() - started} ms after the first start`);
  t.comment(`shards held: ${nodes.map((n) => `${n.id}=${n.node.cluster!.shardManager.held().length}`).join(' ')}`);

  // a and b register and swipe through different nodes
  const a = await registerUser(n1.base, 'cla');
  const b = await registerUser(n2.base, 'clb');
  await setProfile(n1.base, a);
  await setProfile(n2.base, b);
  await api(n1.base, 'POST', '/v1/swipes', { token: a.token, json: { targetId: b.userId, kind: 'like' } });
  const swipe = await api(n2.base, 'POST', '/v1/swipes', { token: b.token, json: { targetId: a.userId, kind: 'like' } });
  t.equal(swipe.body?.matched, true, 'a like on node-1 and one on node-2 make a match');

  // Y owns a's actor; a connects to X (another node), b to Y; Z is the third node.
  const shardOfA = n1.node.cluster!.shards.shardOf(a.userId);
  const Y = nodes.find((n) => n.node.cluster!.shardManager.held().includes(shardOfA))!;
  const [X, Z] = nodes.filter((n) => n !== Y) as [ClusterNode, ClusterNode];
  t.comment(`a's actor on ${Y.id}; a connects to ${X.id}, b to ${Y.id}; ${Z.id} is the third`);

  const aWs = await connect(X, a);
  t.teardown(() => aWs.close());
  let bWs = await connect(Y, b);
  t.match(await aWs.nextEvent((e) => e.type === 'presence' && e.userId === b.userId), { online: true }, 'presence crosses nodes');
  await bWs.request('typing', { to: a.userId, state: 'composing' });
  t.match(await aWs.nextEvent((e) => e.type === 'typing'), { from: b.userId, state: 'composing' }, 'typing crosses nodes');
  await aWs.request('message.send', { to: b.userId, body: 'hello from ' + X.id });
  t.match(await bWs.nextEvent((e) => e.type === 'message'), { message: { from: a.userId, body: 'hello from ' + X.id } });
  await bWs.request('message.send', { to: a.userId, body: 'hi from ' + Y.id });
  t.match(await aWs.nextEvent((e) => e.type === 'message'), { message: { from: b.userId, body: 'hi from ' + Y.id } }, 'messages both ways');
  const history = await api(Z.base, 'GET', `/v1/conversations/${b.userId}/messages`, { token: a.token });
  t.equal(history.status, 200);
  t.same(
    history.body.messages.map((m: { body: string }) => m.body).sort(),
    ['hello from ' + X.id, 'hi from ' + Y.id].sort(),
    'the history is shared: read through the third node',
  );

  // 1. Y stops cleanly: its shards (a's actor among them) move to X and Z.
  const stopAt = Date.now();
  await Y.stop();
  const stopMs = Date.now() - stopAt;
  await waitFor(() => covered([X, Z]), 10_000, 'X and Z to serve every shard');
  const cleanMs = Date.now() - stopAt;
  t.ok(cleanMs < 10_000, `after a clean stop the survivors serve all shards ${cleanMs} ms after stop() began (stop took ${stopMs} ms)`);
  bWs.close();
  bWs = await connect(Z, b);
  await bWs.request('message.send', { to: a.userId, body: 'back on ' + Z.id });
  t.match(
    await aWs.nextEvent((e) => e.type === 'message' && e.message.body === 'back on ' + Z.id),
    { message: { from: b.userId } },
    "b reconnected to another node and a's session followed its actor to its new owner",
  );
  await aWs.request('message.send', { to: b.userId, body: 'still here' });
  t.match(await bWs.nextEvent((e) => e.type === 'message' && e.message.body === 'still here'), { message: { from: a.userId } });

  // 2. Z is cut off from NATS (connection closed under it, no clean hand-over).
  const cutAt = Date.now();
  await Z.bus!.nc.close();
  const fencedMs = await waitFor(() => Z.node.cluster!.shardManager.held().length === 0, 10_000, 'Z to stop hosting');
  t.ok(fencedMs < 5000, `the cut-off node stopped hosting after ${fencedMs} ms, before its leases could lapse (5 s)`);
  await waitFor(() => covered([X]), 15_000, 'X to serve every shard');
  const hardMs = Date.now() - cutAt;
  t.ok(hardMs < 10_000, `after a hard cut the survivor serves all shards ${hardMs} ms later`);
  bWs.close();
  bWs = await connect(X, b);
  t.teardown(() => bWs.close());
  await bWs.request('message.send', { to: a.userId, body: 'now on ' + X.id });
  t.match(await aWs.nextEvent((e) => e.type === 'message' && e.message.body === 'now on ' + X.id), { message: { from: b.userId } }, 'chat continues on the survivor');
  const all = await api(X.base, 'GET', `/v1/conversations/${a.userId}/messages`, { token: b.token });
  t.equal(all.body.messages.length, 5, 'nothing lost from the history');
  t.comment(`recovery: clean stop ${cleanMs} ms, hard cut ${hardMs} ms (fenced after ${fencedMs} ms)`);
});
