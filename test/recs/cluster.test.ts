/**
 * The ranked deck in cluster mode: two Kindred nodes on a real nats-server, Cassandra and
 * versitygw. Profiles written through one node reach the other's index over NATS; a swipe
 * on one node leaves the deck served by the other; a cursor from one node continues on the
 * other; a node started later builds its index from Cassandra. Also the deck's storage
 * queries on the Cassandra backend (the embedded run is storage-embedded.test.ts).
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCassandraStorage } from '../../src/storage/cluster.js';
import { FileBlobStore } from '../../src/storage/files.js';
import { startClusterNode, startClusterServices, waitFor } from '../helpers/cluster.js';
import { api, registerUser, setProfile, type TestUser } from '../helpers/server.js';
import { recsStorageQueries } from './storage-queries.js';

t.setTimeout(600_000);

const svc = await startClusterServices(t, 'recs');
const { cassandra } = svc;

recsStorageQueries(t, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-recs-cblobs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return openCassandraStorage({
    contactPoints: [cassandra.contactPoint],
    localDataCenter: 'datacenter1',
    keyspace: `kindred_recsq_${process.pid}`,
    blobs: await FileBlobStore.open(dir),
  });
});

// one worker thread per node: three nodes share two cores
const addNode = (id: string) => startClusterNode(t, svc, id, { config: { recs: { threads: 1 } } });

const deckIds = async (base: string, u: TestUser, query = '') =>
  ((await api(base, 'GET', `/v1/deck${query}`, { token: u.token })).body.cards as Array<{ userId: string }>).map((c) => c.userId);

t.test('decks across two cluster nodes', async (t) => {
  const n1 = await addNode('recs-1');
  const n2 = await addNode('recs-2');
  await waitFor(async () => (await fetch(`${n1.base}/healthz`)).status === 200 && (await fetch(`${n2.base}/healthz`)).status === 200, 30_000, 'two healthy nodes');

  const here = { lat: 41.39, lon: 2.17 };
  const seeker = await registerUser(n1.base, 'rseek');
  await setProfile(n1.base, seeker, { gender: 'woman', preferences: { ageMin: 18, ageMax: 60, genders: ['man'], maxDistanceKm: 30 }, location: here });
  const men: TestUser[] = [];
  for (let i = 0; i < 12; i++) {
    const m = await registerUser(n2.base, 'rman');
    // written through node 2: node 1 learns of them only over NATS
    await setProfile(n2.base, m, { gender: 'man', preferences: { ageMin: 18, ageMax: 60, genders: ['woman'], maxDistanceKm: 30 }, location: { lat: here.lat + i * 0.01, lon: here.lon } });
    men.push(m);
  }
  const all = men.map((m) => m.userId);
  await waitFor(async () => (await deckIds(n1.base, seeker, '?limit=50')).length === 12, 10_000, 'node 1 to see the 12 profiles written on node 2');
  t.same(new Set(await deckIds(n2.base, seeker, '?limit=50')), new Set(all), 'both nodes serve the same people');

  // a swipe through node 2 leaves the deck served by node 1
  await api(n2.base, 'POST', '/v1/swipes', { token: seeker.token, json: { targetId: men[0]!.userId, kind: 'pass' } });
  t.notOk((await deckIds(n1.base, seeker, '?limit=50')).includes(men[0]!.userId), 'a swipe on node 2 excludes on node 1 at once');

  // a cursor from node 1 continues on node 2, without duplicates
  const page1 = await api(n1.base, 'GET', '/v1/deck?limit=5', { token: seeker.token });
  t.equal(page1.body.cards.length, 5);
  t.type(page1.body.next, 'string');
  const page2 = await api(n2.base, 'GET', `/v1/deck?limit=5&cursor=${page1.body.next}`, { token: seeker.token });
  const page3 = await api(n1.base, 'GET', `/v1/deck?limit=5&cursor=${page2.body.next}`, { token: seeker.token });
  const paged = [...page1.body.cards, ...page2.body.cards, ...page3.body.cards].map((c: { userId: string }) => c.userId);
  t.equal(paged.length, 11, 'eleven people over three pages on alternating nodes');
  t.same(new Set(paged), new Set(all.slice(1)), 'each once');
  t.equal(page3.body.next, null, 'and the end is marked');
  const bad = await api(n2.base, 'GET', '/v1/deck?cursor=garbage!', { token: seeker.token });
  t.equal(bad.status, 422, 'a bad cursor is a 422');

  // a node started now builds its index from Cassandra
  const n3 = await addNode('recs-3');
  await waitFor(async () => (await fetch(`${n3.base}/healthz`)).status === 200, 30_000, 'node 3 healthy');
  t.same(new Set(await deckIds(n3.base, seeker, '?limit=50')), new Set(all.slice(1)), 'a new node scanned the profiles from Cassandra');
});
