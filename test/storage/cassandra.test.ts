/**
 * The storage contract on the Cassandra backend, against a real Cassandra 5.0 started for
 * this file (test/helpers/cassandra.ts), plus what only a cluster backend has to show: the
 * 1,000-pair match race through swipes and lightweight transactions, the durable commitlog
 * mode, fast UNAVAILABLE on an unreachable cluster, and idempotent migrations.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import cassandra from 'cassandra-driver';
import t from 'tap';
import { KindredError } from '../../src/errors.js';
import { monthBucket, newId } from '../../src/ids.js';
import { CassandraAccountStore } from '../../src/storage/cassandra/accounts.js';
import { Session, type CqlParams, type ExecOptions } from '../../src/storage/cassandra/client.js';
import { CassandraImageStore } from '../../src/storage/cassandra/images.js';
import { CassandraMatchStore } from '../../src/storage/cassandra/matches.js';
import { CassandraSwipeStore } from '../../src/storage/cassandra/swipes.js';
import { openCassandraStorage } from '../../src/storage/cluster.js';
import { FileBlobStore } from '../../src/storage/files.js';
import type { Match, Storage } from '../../src/storage/types.js';
import { freePort, freeze, startCassandra } from '../helpers/cassandra.js';
import { storageContract } from './contract.js';

// Installing Cassandra (first run only, ~1 min), starting it (5-20 s) and a keyspace per subtest: more than the default file timeout.
t.setTimeout(400_000);

// Its own node: the last test freezes and kills it.
const node = await startCassandra(t, { own: true });
t.comment(`Cassandra accepting CQL on ${node.contactPoint} after ${node.startSeconds.toFixed(1)} s`);

const dirs: string[] = [];
t.teardown(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function blobDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kindred-cblobs-'));
  dirs.push(dir);
  return dir;
}

let keyspaces = 0;
/** A fresh keyspace (so an empty store) and a fresh local blob dir per open. */
async function open(keyspace = `kindred_t${++keyspaces}`): Promise<Storage> {
  const dir = blobDir();
  const started = performance.now();
  const storage = await openCassandraStorage({
    contactPoints: [node.contactPoint],
    localDataCenter: 'datacenter1',
    keyspace,
    blobs: await FileBlobStore.open(dir),
  });
  opens.push(performance.now() - started);
  return storage;
}
const opens: number[] = [];

storageContract(t, 'cassandra', () => open());

t.test('1,000 pairs like each other concurrently: exactly 1,000 matches', async (t) => {
  const s = await open();
  try {
    const pairs = Array.from({ length: 1000 }, () => [newId(), newId()] as const);
    // 2,000 requests at once can be more than a slow machine's Cassandra does in the queue
    // timeout: the session then refuses some at once with OVERLOADED (load shedding, nothing
    // was sent). A client retries those after a pause, and so does this one; retries are counted.
    let shed = 0;
    const retryShed = async <T>(step: () => Promise<T>): Promise<T> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await step();
        } catch (err) {
          if (!(err instanceof KindredError && err.code === 'OVERLOADED') || attempt >= 50) throw err;
          shed++;
          await new Promise((r) => setTimeout(r, 200 + Math.random() * 800));
        }
      }
    };
    const side = async (me: string, other: string): Promise<{ created: boolean; match: Match } | undefined> => {
      const now = Date.now();
      const swipe = await retryShed(() => s.swipes.record({ swiperId: me, targetId: other, kind: 'like', at: now }));
      if (!swipe.first) return undefined;
      if (!(await retryShed(() => s.swipes.likeFrom(other, me)))) return undefined;
      return retryShed(() => s.matches.createIfAbsent({ matchId: newId(), users: [me, other], createdAt: now, endedAt: null, endedBy: null, firstBucket: monthBucket(now) }));
    };
    const started = performance.now();
    const results = await Promise.all(pairs.flatMap(([a, b]) => [side(a, b), side(b, a)]));
    const ms = performance.now() - started;
    const created = results.filter((r) => r?.created);
    t.comment(`2,000 concurrent like + match checks in ${ms.toFixed(0)} ms (${results.filter(Boolean).length} createIfAbsent calls, ${shed} steps shed and retried)`);
    t.equal(created.length, 1000, 'exactly one match created per pair');
    t.equal(new Set(created.map((r) => r!.match.matchId)).size, 1000, 'with 1,000 distinct match ids');

    // Both sides that reached createIfAbsent got the same match, and storage agrees.
    const byPair = new Map<string, string>();
    let agree = true;
    for (let i = 0; i < pairs.length; i++) {
      for (const r of [results[2 * i], results[2 * i + 1]]) {
        if (!r) continue;
        const key = [...pairs[i]!].sort().join();
        const seen = byPair.get(key);
        if (seen !== undefined && seen !== r.match.matchId) agree = false;
        byPair.set(key, r.match.matchId);
      }
    }
    t.ok(agree, 'both sides of a pair see the same match id');
    t.equal(byPair.size, 1000, 'every pair reached a match');
    const sample = pairs.filter((_, i) => i % 50 === 0);
    const stored = await Promise.all(sample.map(([a, b]) => s.matches.byPair(b, a)));
    t.ok(stored.every((m, i) => m && m.matchId === byPair.get([...sample[i]!].sort().join())), 'byPair returns the winning match');
    const lists = await Promise.all(sample.flatMap(([a, b]) => [s.matches.listForUser(a), s.matches.listForUser(b)]));
    t.ok(lists.every((l) => l.length === 1), 'each user lists exactly one match');
  } finally {
    await s.close();
  }
});

/**
 * A session whose next lightweight transaction times out: `applied` runs it first (the
 * write landed, the answer was lost), otherwise it never reaches the server. Either way the
 * store must settle the outcome with a SERIAL read and answer as if nothing went wrong.
 */
function flakySession(): { session: Session; failNext(applied: boolean): void; injected(): number } {
  const session = new Session({ contactPoints: [node.contactPoint], localDataCenter: 'datacenter1' });
  let pending: boolean | undefined;
  let injected = 0;
  const timeout = () => new cassandra.errors.ResponseError(cassandra.types.responseErrorCodes.writeTimeout, 'injected CAS write timeout');
  const isLwt = (q: string) => / IF (NOT EXISTS|version = \?|ended_at = null)/.test(q);
  const execute = session.execute.bind(session);
  const batch = session.batch.bind(session);
  session.execute = async (query: string, params?: CqlParams, opts?: ExecOptions) => {
    if (pending === undefined || !isLwt(query)) return execute(query, params, opts);
    const applied = pending;
    pending = undefined;
    injected++;
    if (applied) await execute(query, params, opts);
    throw timeout();
  };
  session.batch = async (queries, opts) => {
    if (pending === undefined || !queries.some((q) => isLwt(q.query))) return batch(queries, opts);
    const applied = pending;
    pending = undefined;
    injected++;
    if (applied) await batch(queries, opts);
    throw timeout();
  };
  return { session, failNext: (applied) => (pending = applied), injected: () => injected };
}

t.test('a lightweight transaction with an unknown outcome is settled by a SERIAL read', async (t) => {
  const storage = await open(); // creates the keyspace
  await storage.close();
  const ks = `kindred_t${keyspaces}`;
  const flaky = flakySession();
  await flaky.session.connect();
  try {
    const swipes = new CassandraSwipeStore(flaky.session, ks, 3600);
    const matches = new CassandraMatchStore(flaky.session, ks);
    const accounts = new CassandraAccountStore(flaky.session, ks);
    const images = new CassandraImageStore(flaky.session, ks);
    for (const applied of [true, false]) {
      const how = applied ? 'applied, answer lost' : 'not applied';
      const [a, b] = [newId(), newId()];
      flaky.failNext(applied);
      t.same(await swipes.record({ swiperId: a, targetId: b, kind: 'like', at: 5 }), { first: true }, `swipe (${how}): still first`);
      t.equal((await swipes.record({ swiperId: a, targetId: b, kind: 'pass', at: 6 })).first, false, 'and a repeat is not');
      t.equal((await swipes.likeFrom(a, b))?.kind, 'like', 'the like row is there');

      const m: Match = { matchId: newId(), users: [a, b], createdAt: 7, endedAt: null, endedBy: null, firstBucket: 202601 };
      flaky.failNext(applied);
      const created = await matches.createIfAbsent(m);
      t.same(created, { created: true, match: { ...m, users: [a, b].sort() } }, `match (${how}): created once`);
      t.equal((await matches.createIfAbsent({ ...m, matchId: newId() })).created, false, 'and not again');
      flaky.failNext(applied);
      t.equal((await matches.end(m.matchId, a, 8))?.endedBy, a, `end (${how}): ended by us`);

      const username = `flaky${applied ? 1 : 0}`;
      const account = {
        userId: newId(),
        username,
        passwordHash: 'x',
        scramSha1: { salt: 's', iterations: 1, storedKey: 'k', serverKey: 'v' },
        scramSha256: { salt: 's', iterations: 1, storedKey: 'k', serverKey: 'v' },
        createdAt: 1,
      };
      flaky.failNext(applied);
      await accounts.create(account);
      t.equal((await accounts.byId(account.userId))?.username, username, `account (${how}): created`);
      await t.rejects(accounts.create({ ...account, userId: newId() }), { code: 'CONFLICT' }, 'and the name is taken');

      const owner = newId();
      const img = { profileId: owner, imageId: newId(), url: '/x', position: 0, contentType: 'image/png', width: 1, height: 1, bytes: 1, createdAt: 1 };
      flaky.failNext(applied);
      t.equal(await images.addIfUnder(img, 1), true, `image (${how}): added`);
      t.equal((await images.list(owner)).length, 1, 'exactly once');
      t.equal(await images.addIfUnder({ ...img, imageId: newId() }, 1), false, 'and the limit holds');
      flaky.failNext(applied);
      t.equal(await images.remove(owner, img.imageId), true, `image removal (${how}): true`);
      t.same(await images.list(owner), [], 'and it is gone');
    }
    t.equal(flaky.injected(), 12, 'every injected timeout was hit');
  } finally {
    await flaky.session.close();
  }
});

t.test('the test node acknowledges writes only after a commitlog fsync (group commit)', async (t) => {
  const client = new cassandra.Client({ contactPoints: [node.contactPoint], localDataCenter: 'datacenter1' });
  try {
    await client.connect();
    const rs = await client.execute("SELECT name, value FROM system_views.settings WHERE name IN ('commitlog_sync', 'commitlog_sync_group_window', 'paxos_variant')");
    const settings = Object.fromEntries(rs.rows.map((r) => [r.name as string, r.value as string]));
    t.equal(settings.commitlog_sync, 'group', 'commitlog_sync: group');
    t.match(settings.commitlog_sync_group_window, /^\d+ms$/, `group window ${settings.commitlog_sync_group_window}`);
    t.equal(settings.paxos_variant, 'v2', 'Paxos v2 for lightweight transactions');
  } finally {
    await client.shutdown();
  }
});

t.test('an unreachable cluster is UNAVAILABLE, quickly', async (t) => {
  const port = await freePort(); // nothing listens there
  const started = performance.now();
  try {
    await openCassandraStorage({
      contactPoints: [`127.0.0.1:${port}`],
      localDataCenter: 'datacenter1',
      keyspace: 'kindred_nowhere',
      blobs: await FileBlobStore.open(blobDir()),
    });
    t.fail('open should reject');
  } catch (err) {
    t.ok(err instanceof KindredError && err.code === 'UNAVAILABLE', 'UNAVAILABLE', { found: err });
  }
  t.ok(performance.now() - started < 6000, `within the connect timeout (${(performance.now() - started).toFixed(0)} ms)`);
});

t.test('reopening a keyspace keeps its data and schema version', async (t) => {
  const first = await open('kindred_reopen');
  const userId = newId();
  await first.accounts.create({
    userId,
    username: 'persisted',
    passwordHash: 'x',
    scramSha1: { salt: 's', iterations: 1, storedKey: 'k', serverKey: 'v' },
    scramSha256: { salt: 's', iterations: 1, storedKey: 'k', serverKey: 'v' },
    createdAt: 1,
  });
  await first.close();
  await first.close(); // idempotent
  await t.rejects(first.accounts.byId(userId), { code: 'UNAVAILABLE' }, 'a closed store refuses requests');

  const second = await open('kindred_reopen');
  try {
    t.equal((await second.accounts.byUsername('persisted'))?.userId, userId, 'rows survive a reopen');
  } finally {
    await second.close();
  }
  const client = new cassandra.Client({ contactPoints: [node.contactPoint], localDataCenter: 'datacenter1' });
  try {
    await client.connect();
    const rs = await client.execute('SELECT id, version FROM kindred_reopen.schema_version');
    t.same(rs.rows.map((r) => [r.id, r.version]), [[1, 1]], 'one schema_version row');
  } finally {
    await client.shutdown();
  }
});

// Last, because it takes the node down: a frozen node times out, a dead one fails at once.
t.test('a hung or stopped node gives UNAVAILABLE, not a hang', async (t) => {
  const s = await open();
  try {
    await s.accounts.byId(newId());
    await freeze(node.pid);
    let started = performance.now();
    try {
      await s.accounts.byId(newId());
      t.fail('a read from a frozen node should reject');
    } catch (err) {
      t.ok(err instanceof KindredError && err.code === 'UNAVAILABLE', 'frozen node: UNAVAILABLE', { found: err });
    }
    let ms = performance.now() - started;
    t.ok(ms < 7000, `after the 5 s read timeout (${ms.toFixed(0)} ms)`);

    await node.stop(); // SIGKILL works on a stopped process
    started = performance.now();
    try {
      await s.accounts.byId(newId());
      t.fail('a read from a dead node should reject');
    } catch (err) {
      t.ok(err instanceof KindredError && err.code === 'UNAVAILABLE', 'dead node: UNAVAILABLE', { found: err });
    }
    ms = performance.now() - started;
    t.ok(ms < 7000, `quickly (${ms.toFixed(0)} ms)`);
  } finally {
    await s.close();
  }
});

t.teardown(() => {
  if (opens.length > 0) {
    const sorted = [...opens].sort((a, b) => a - b);
    console.log(`# ${opens.length} opens (keyspace + schema): median ${sorted[sorted.length >> 1]!.toFixed(0)} ms, max ${sorted[sorted.length - 1]!.toFixed(0)} ms`);
  }
});
