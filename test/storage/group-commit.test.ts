/**
 * SQLite group commit while a WAL fsync is running (src/storage/sqlite/messages.ts,
 * wal-sync.ts): appends that arrive meanwhile are held and committed together just
 * before the next fsync starts, and each still resolves only after an fsync that
 * started after its commit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { monthBucket, newId } from '../../src/ids.js';
import { openSqlite } from '../../src/storage/sqlite/index.js';
import { COMMIT_GAP_MS } from '../../src/storage/sqlite/messages.js';
import type { ChatMessage } from '../../src/storage/types.js';

const dir = mkdtempSync(path.join(tmpdir(), 'kindred-group-commit-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function message(matchId: string, i: number): ChatMessage {
  const now = Date.now();
  return { messageId: newId(now), matchId, senderId: 'a', recipientId: 'b', body: `m${i}`, sentAt: now, bucket: monthBucket(now) };
}

const turn = () => new Promise<void>((r) => setImmediate(r));

t.test('appends made while an fsync runs are committed in one transaction after it', async (t) => {
  const sql = openSqlite(path.join(dir, 'k.db'));
  t.teardown(() => sql.close());
  const matchId = newId();
  const first = sql.messages.append(message(matchId, 0));
  // let the first batch commit and its fsync start
  while (!sql.sync.syncing) await turn();
  const batchesAtStart = sql.messages.stats.batches;
  const syncsAtStart = sql.sync.syncs;
  const later: Array<Promise<void>> = [];
  let turns = 0;
  // append a few per event-loop turn for as long as that fsync runs (a fast disk: at least one turn)
  do {
    for (let i = 0; i < 3; i++) later.push(sql.messages.append(message(matchId, later.length + 1)));
    await turn();
    turns++;
  } while (sql.sync.syncs === syncsAtStart && turns < 10_000);
  const resolvedAt: number[] = [];
  later.forEach((p, i) => void p.then(() => (resolvedAt[i] = sql.sync.syncs)));
  await Promise.all([first, ...later]);
  const held = sql.messages.stats.batches - batchesAtStart;
  t.comment(`${later.length} appends over ${turns} event-loop turns during one fsync → ${held} transaction(s)`);
  t.ok(held <= 2, `the appends made during the fsync were not committed one turn at a time (${held} transactions for ${turns} turns)`);
  t.ok(sql.sync.syncs >= syncsAtStart + 2, 'they waited for a later fsync than the one running when they were made');
  t.ok(resolvedAt.every((s) => s >= syncsAtStart + 2), 'every one of them resolved only after that later fsync');
  const stored = await sql.messages.page(matchId, monthBucket(Date.now()), { limit: 10_000 });
  t.equal(stored.length, later.length + 1, 'and all of them are stored');
});

t.test('close() commits a batch held for a running fsync', async (t) => {
  const sql = openSqlite(path.join(dir, 'k2.db'));
  const matchId = newId();
  const first = sql.messages.append(message(matchId, 0));
  while (!sql.sync.syncing) await turn();
  const held = Array.from({ length: 5 }, (_, i) => sql.messages.append(message(matchId, i + 1)));
  await sql.close();
  const results = await Promise.allSettled([first, ...held]);
  t.ok(results.every((r) => r.status === 'fulfilled'), 'every append accepted before close succeeded');
  const reopened = openSqlite(path.join(dir, 'k2.db'));
  t.teardown(() => reopened.close());
  t.equal((await reopened.messages.page(matchId, monthBucket(Date.now()), { limit: 100 })).length, 6, 'all six are in the database');
});

t.test('markDelivered joins the appends\' batch, in call order, and settles only once durable', async (t) => {
  const sql = openSqlite(path.join(dir, 'k3.db'));
  t.teardown(() => sql.close());
  const matchId = newId();
  const delivered = Array.from({ length: 20 }, (_, i) => message(matchId, i));
  await Promise.all(delivered.map((m) => sql.messages.append(m)));
  t.equal((await sql.messages.pendingFor('b', 100)).length, 20, 'twenty messages pending');

  // One turn: acknowledgements of the stored messages between new appends.
  const batchesBefore = sql.messages.stats.batches;
  const syncsBefore = sql.sync.syncs;
  const fresh = Array.from({ length: 4 }, (_, i) => message(matchId, 100 + i));
  const settledAt: number[] = [];
  const ops = [
    sql.messages.append(fresh[0]!),
    sql.messages.markDelivered('b', delivered.slice(0, 10).map((m) => m.messageId)),
    sql.messages.append(fresh[1]!),
    sql.messages.markDelivered('b', delivered.slice(10).map((m) => m.messageId)),
    // an acknowledgement queued before the append of the same message deletes nothing: it stays pending
    sql.messages.markDelivered('b', [fresh[2]!.messageId]),
    sql.messages.append(fresh[2]!),
    sql.messages.append(fresh[3]!),
    sql.messages.markDelivered('b', [fresh[3]!.messageId]),
  ];
  ops.forEach((p, i) => void p.then(() => (settledAt[i] = sql.sync.syncs)));
  t.equal((await sql.messages.pendingFor('b', 100)).length, 20, 'nothing is committed within the turn');
  await Promise.all(ops);
  t.equal(sql.messages.stats.batches - batchesBefore, 1, 'appends and acknowledgements of one turn are one transaction');
  t.ok(settledAt.every((s) => s > syncsBefore), 'each settled after an fsync that followed the commit');
  const pending = (await sql.messages.pendingFor('b', 100)).map((m) => m.messageId);
  t.same(pending, [fresh[0]!.messageId, fresh[1]!.messageId, fresh[2]!.messageId], 'the acknowledged messages left the queue, in call order');

  await t.rejects(sql.messages.markDelivered('b', [42 as unknown as string]), { code: 'INVALID_ARGUMENT' }, 'a non-string id is refused, not queued');
  await sql.messages.markDelivered('b', []);
  t.pass('an empty acknowledgement is fine');
});

t.test('markDelivered after close is refused; one held for a running fsync is committed by close()', async (t) => {
  const sql = openSqlite(path.join(dir, 'k4.db'));
  const matchId = newId();
  const m = message(matchId, 0);
  await sql.messages.append(m);
  const other = sql.messages.append(message(matchId, 1));
  while (!sql.sync.syncing) await turn();
  const ack = sql.messages.markDelivered('b', [m.messageId]);
  await sql.close();
  await Promise.all([other, ack]);
  await t.rejects(sql.messages.markDelivered('b', [m.messageId]), { code: 'UNAVAILABLE' }, 'refused after close');
  const reopened = openSqlite(path.join(dir, 'k4.db'));
  t.teardown(() => reopened.close());
  t.same((await reopened.messages.pendingFor('b', 10)).map((p) => p.matchId), [matchId], 'only the unacknowledged message is pending after reopening');
});

t.test('batches are committed at least COMMIT_GAP_MS apart, and a lone append still resolves soon', async (t) => {
  const sql = openSqlite(path.join(dir, 'k5.db'));
  t.teardown(() => sql.close());
  const matchId = newId();
  const started = performance.now();
  await sql.messages.append(message(matchId, 0));
  t.ok(performance.now() - started < 1000, 'a lone append resolved within a second');

  // One append per event-loop turn for 100 ms: without the gap (and a fast fsync) that is a commit every turn or two.
  const batchesBefore = sql.messages.stats.batches;
  const appends: Array<Promise<void>> = [];
  const until = performance.now() + 100;
  let turns = 0;
  while (performance.now() < until) {
    appends.push(sql.messages.append(message(matchId, appends.length + 1)));
    await turn();
    turns++;
  }
  await Promise.all(appends);
  const elapsed = performance.now() - started;
  const batches = sql.messages.stats.batches - batchesBefore;
  t.comment(`${appends.length} appends over ${turns} turns in ~100 ms: ${batches} transactions`);
  t.ok(batches <= Math.ceil(elapsed / COMMIT_GAP_MS) + 1, `no more than one commit per ${COMMIT_GAP_MS} ms (${batches} in ${elapsed.toFixed(0)} ms)`);
  t.ok(batches < turns, 'fewer commits than turns');
  const stored = await sql.messages.page(matchId, monthBucket(Date.now()), { limit: 10_000 });
  t.equal(stored.length, appends.length + 1, 'every append is stored');
});
