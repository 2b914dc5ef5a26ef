/**
 * ShardManager against a real nats-server with JetStream: three managers split the
 * shards with no overlap; a clean stop hands its shards over fast; a node cut off from
 * NATS stops hosting (self-fencing) before its leases expire and the others take them.
 */
import t from 'tap';
import { NatsBus } from '../../src/actors/nats-bus.js';
import { ShardMap } from '../../src/actors/shards.js';
import { Membership } from '../../src/cluster/membership.js';
import { ShardManager } from '../../src/cluster/shard-manager.js';
import { startNats } from '../helpers/nats.js';
import { failOnLingeringHandles } from '../helpers/exit-watch.js';

// first, so its teardown runs last: a socket or timer left after the teardowns fails the file with a report
failOnLingeringHandles(t);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// ~8 s alone; more when other test files share the two cores
t.setTimeout(90_000);
const SHARDS = 32;
const nats = await startNats(t, { jetstream: true });

interface TestNode {
  id: string;
  bus: NatsBus;
  shards: ShardMap;
  membership: Membership;
  manager: ShardManager;
  hosted: Set<number>;
}

async function node(id: string): Promise<TestNode> {
  const bus = await NatsBus.connect({ servers: [nats.url], name: id, reconnectWaitMs: 100 });
  const shards = new ShardMap(SHARDS);
  const hosted = new Set<number>();
  shards.onChange((s, prev, next) => {
    if (next === id) hosted.add(s);
    else if (prev === id) hosted.delete(s);
  });
  const membership = new Membership(bus, id);
  const manager = new ShardManager({ nodeId: id, bus, nc: bus.nc, shards, membership, released: async () => { await sleep(5); }, bucket: 'test-leases' });
  membership.start();
  await manager.start();
  return { id, bus, shards, membership, manager, hosted };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
  return Date.now() - start;
}

function coverage(nodes: TestNode[]): { covered: number; overlap: number } {
  let covered = 0;
  let overlap = 0;
  for (let s = 0; s < SHARDS; s++) {
    const n = nodes.filter((x) => x.hosted.has(s)).length;
    if (n >= 1) covered++;
    if (n > 1) overlap++;
  }
  return { covered, overlap };
}

t.test('three managers: split, clean stop, cut-off node fences itself', async (t) => {
  const nodes = await Promise.all(['n1', 'n2', 'n3'].map(node));
  // The nodes stop side by side; a stop that does not finish within 20 s fails the test by
  // name (once a CI run's teardown hung until the file timeout, with nothing to go on).
  t.teardown(async () => {
    const bounded = async (what: string, step: () => Promise<void>): Promise<void> => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(what), 20_000)));
      const hung = await Promise.race([step().then(() => undefined, () => undefined), late]);
      clearTimeout(timer);
      if (hung) t.fail(`${hung} did not finish within 20 s`);
    };
    await Promise.all(
      nodes.map(async (n) => {
        n.membership.stop();
        await bounded(`${n.id}: manager.stop()`, () => n.manager.stop());
        await bounded(`${n.id}: bus.close()`, () => n.bus.close());
      }),
    );
  });
  await until(
    () => nodes.every((n) => n.manager.isReady() && n.membership.members().length === 3 && n.hosted.size > 0) && coverage(nodes).covered === SHARDS && coverage(nodes).overlap === 0,
    15_000,
    'all ready',
  );
  const c = coverage(nodes);
  t.same(c, { covered: SHARDS, overlap: 0 }, 'every shard hosted exactly once');
  t.ok(nodes.every((n) => n.hosted.size > 0), 'each node hosts some');
  t.ok(nodes.every((n) => [...n.hosted].every((s) => n.manager.mayServe(s))), 'each may serve the shards it hosts');
  t.ok(nodes.every((n) => Array.from({ length: SHARDS }, (_, s) => s).every((s) => n.hosted.has(s) || !n.manager.mayServe(s))), 'and no other');

  // clean stop of n3
  const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];
  const start = Date.now();
  n3.membership.stop();
  await n3.manager.stop();
  t.equal(n3.hosted.size, 0, 'the leaver hosts nothing');
  const took = await until(() => coverage([n1, n2]).covered === SHARDS, 10_000, 'survivors to cover');
  t.equal(coverage([n1, n2]).overlap, 0);
  t.comment(`clean stop: shards re-hosted by the survivors in ${Date.now() - start} ms (${took} ms after stop() returned)`);

  // n2 cut off from NATS (its connection closed under it, no clean release)
  const cut = Date.now();
  const n2Had = n2.hosted.size;
  const n2Shards = [...n2.hosted];
  await n2.bus.nc.close();
  await until(() => n2Shards.every((s) => !n2.manager.mayServe(s)), 5000, "n2's lease check to lapse");
  const lapsedAfter = Date.now() - cut;
  t.ok(lapsedAfter <= 4000, `n2 refuses letters for its shards ${lapsedAfter} ms after the cut (renewals stopped)`);
  await until(() => n2.hosted.size === 0, 10_000, 'n2 to fence itself');
  const fenced = Date.now() - cut;
  t.ok(n2Had > 0 && fenced < 5000, `n2 stopped hosting ${n2Had} shards after ${fenced} ms, before the 5 s lease TTL`);
  await until(() => coverage([n1]).covered === SHARDS, 15_000, 'n1 to take everything');
  t.comment(`hard cut: n1 hosts all shards ${Date.now() - cut} ms after the cut`);
  t.equal(coverage([n1, n2]).overlap, 0, 'never two hosts');
});
