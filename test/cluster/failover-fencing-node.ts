/**
 * A minimal cluster node for test/cluster/failover-fencing.test.ts: NatsBus, Membership,
 * ShardManager and an ActorSystem of probe actors, without storage or listeners. Each
 * letter an actor processes is published on `test.processed`, each shard this node starts
 * hosting on `test.hosted` (with this process's wall-clock time), so the test can check
 * that no letter ran here while another node held the shard.
 *
 * A message on `test.stall.<nodeId>` ({ms}) blocks this node's event loop for that long
 * inside the message handler: a slow node (GC pause, CPU starvation). Whatever NATS
 * delivered in the same read is dispatched right after the stall, before any timer runs.
 *
 * Run as a child process (`node --import tsx failover-fencing-node.ts`) it reads NODE_ID
 * and NATS_URL from the environment and prints "ready" once it hosts its shards.
 * PROBE_UNFENCED=1 leaves out the per-letter lease check (`mayServe`), to see the test
 * fail without it.
 */
import { fileURLToPath } from 'node:url';
import { NatsBus } from '../../src/actors/nats-bus.js';
import { ShardMap } from '../../src/actors/shards.js';
import { ActorSystem } from '../../src/actors/system.js';
import { systemClock } from '../../src/actors/clock.js';
import { Membership } from '../../src/cluster/membership.js';
import { ShardManager } from '../../src/cluster/shard-manager.js';

export const PROBE_SHARDS = 32;

export interface ProbeEvent {
  node: string;
  id: string;
  shard: number;
  at: number;
}

export interface ProbeNode {
  bus: NatsBus;
  shards: ShardMap;
  membership: Membership;
  manager: ShardManager;
  users: ActorSystem<{ n: number }, string>;
  stop(): Promise<void>;
}

export async function startProbeNode(nodeId: string, natsUrl: string): Promise<ProbeNode> {
  const bus = await NatsBus.connect({ servers: [natsUrl], name: nodeId, reconnectWaitMs: 100, onStatus: (s) => console.log(`${Date.now()} nats ${JSON.stringify(s)}`) });
  const shards = new ShardMap(PROBE_SHARDS);
  shards.onChange((shard, _prev, next) => {
    if (next === nodeId) bus.publish('test.hosted', { node: nodeId, id: '', shard, at: Date.now() } satisfies ProbeEvent);
  });
  const membership = new Membership(bus, nodeId);
  let manager: ShardManager | undefined;
  const users = new ActorSystem<{ n: number }, string>({
    kind: 'probe',
    bus,
    shards,
    owner: nodeId,
    create: (id) => ({
      activate: async () => undefined,
      receive: () => {
        bus.publish('test.processed', { node: nodeId, id, shard: shards.shardOf(id), at: Date.now() } satisfies ProbeEvent);
        return nodeId;
      },
      canPassivate: () => true,
      passivate: async () => undefined,
    }),
    mailboxLimit: 10_000,
    idleMs: 600_000,
    askTimeoutMs: 10_000,
    clock: systemClock,
    waitForOwner: true,
    ...(process.env.PROBE_UNFENCED === '1' ? {} : { mayServe: (shard: number) => manager?.mayServe(shard) ?? false }),
  });
  bus.subscribe(`test.stall.${nodeId}`, (p) => {
    bus.publish('test.stalled', { node: nodeId, id: '', shard: -1, at: Date.now() } satisfies ProbeEvent);
    const end = Date.now() + (p as { ms: number }).ms;
    while (Date.now() < end) {
      /* the node is stuck */
    }
  });
  users.start();
  manager = new ShardManager({ nodeId, bus, nc: bus.nc, shards, membership, released: (s) => users.whenReleased(s), bucket: 'fencing-test-leases', log: (msg, extra) => console.log(`${Date.now()} ${msg} ${JSON.stringify(extra ?? {})}`) });
  membership.start();
  await manager.start();
  await manager.whenReady();
  const m = manager;
  return {
    bus,
    shards,
    membership,
    manager: m,
    users,
    async stop() {
      membership.stop();
      await m.stop();
      await users.stop();
      await bus.close();
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await startProbeNode(process.env.NODE_ID!, process.env.NATS_URL!);
  console.log('ready');
}
