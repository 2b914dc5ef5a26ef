import t from 'tap';
import { ownerFor, place } from '../../src/cluster/placement.js';
import { failOnLingeringHandles } from '../helpers/exit-watch.js';

// first, so its teardown runs last: a socket or timer left after the teardowns fails the file with a report
failOnLingeringHandles(t);

const N = 256;

t.test('deterministic and independent of member order', async (t) => {
  const a = place(N, ['node-1', 'node-2', 'node-3']);
  const b = place(N, ['node-3', 'node-1', 'node-2', 'node-1']);
  t.same(a, b);
  t.equal(ownerFor(7, []), undefined, 'no members, no owner');
  t.ok(place(N, ['x']).every((o) => o === 'x'), 'a single member owns everything');
});

t.test('balanced within ±25% for 256 shards over 3 nodes', async (t) => {
  for (const members of [['node-1', 'node-2', 'node-3'], ['a', 'b', 'c'], ['kindred-7', 'kindred-8', 'kindred-9']]) {
    const counts = new Map<string, number>();
    for (const o of place(N, members)) counts.set(o!, (counts.get(o!) ?? 0) + 1);
    const ideal = N / members.length;
    for (const m of members) {
      const c = counts.get(m) ?? 0;
      t.ok(Math.abs(c - ideal) <= ideal * 0.25, `${m}: ${c} shards (ideal ${ideal.toFixed(1)})`);
    }
  }
});

t.test('minimal movement when a node leaves or joins', async (t) => {
  const three = place(N, ['node-1', 'node-2', 'node-3']);
  const two = place(N, ['node-1', 'node-3']);
  for (let s = 0; s < N; s++) {
    if (three[s] !== 'node-2' && two[s] !== three[s]) t.fail(`shard ${s} moved although its owner stayed`);
  }
  const moved = three.filter((o, s) => o !== two[s]).length;
  t.equal(moved, three.filter((o) => o === 'node-2').length, 'only the leaver’s shards move');
  const four = place(N, ['node-1', 'node-2', 'node-3', 'node-4']);
  for (let s = 0; s < N; s++) {
    if (four[s] !== 'node-4' && four[s] !== three[s]) t.fail(`shard ${s} moved between old members on a join`);
  }
  const taken = four.filter((o) => o === 'node-4').length;
  t.ok(taken > N / 4 * 0.75 && taken < N / 4 * 1.25, `the joiner takes about a quarter (${taken})`);
});
