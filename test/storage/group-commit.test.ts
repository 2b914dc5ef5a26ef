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
