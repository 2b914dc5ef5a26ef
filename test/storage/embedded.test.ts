import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import t from 'tap';
import { KindredError } from '../../src/errors.js';
import { monthBucket, newId } from '../../src/ids.js';
import { openEmbeddedStorage } from '../../src/storage/embedded.js';
import { openSqlite } from '../../src/storage/sqlite/index.js';
import type { SqliteMessageStore } from '../../src/storage/sqlite/messages.js';
import type { ChatMessage } from '../../src/storage/types.js';
import { storageContract } from './contract.js';

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kindred-storage-'));
  dirs.push(dir);
  return dir;
}
t.teardown(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

storageContract(t, 'embedded', () => openEmbeddedStorage(freshDir()));

function message(matchId: string, i: number, now = Date.now()): ChatMessage {
  return {
    messageId: newId(now),
    matchId,
    senderId: 'sender',
    recipientId: 'recipient',
    body: `body ${i}`,
    sentAt: now,
    bucket: monthBucket(now),
  };
}

t.test('acknowledged appends are in the database file before close (second connection)', async (t) => {
  const dir = freshDir();
  const storage = await openEmbeddedStorage(dir);
  const matchId = newId();
  const msgs = Array.from({ length: 3000 }, (_, i) => message(matchId, i));
  await Promise.all(msgs.map((m) => storage.messages.append(m)));
  // Without closing: another connection on the same file must see every acknowledged message.
  const other = new Database(path.join(dir, 'kindred.db'), { readonly: true });
  try {
    const ids = new Set(
      other.prepare('SELECT message_id FROM messages_by_conversation WHERE match_id = ?').pluck().all(matchId) as string[],
    );
    t.equal(ids.size, msgs.length, 'all acknowledged messages are stored');
    t.ok(msgs.every((m) => ids.has(m.messageId)), 'by id');
    const pending = other.prepare('SELECT count(*) FROM pending_by_recipient WHERE recipient_id = ?').pluck().get('recipient');
    t.equal(pending, msgs.length, 'and queued for the recipient');
  } finally {
    other.close();
    await storage.close();
  }
});

t.test('acknowledged appends survive kill -9 of the writing process', async (t) => {
  const dir = freshDir();
  const embedded = pathToSrc('storage/embedded.ts');
  const ids = pathToSrc('ids.ts');
  // The child appends in concurrent waves and prints each acknowledged id; we kill it mid-stream.
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `
      const { openEmbeddedStorage } = await import(${JSON.stringify(embedded)});
      const { newId, monthBucket } = await import(${JSON.stringify(ids)});
      const s = await openEmbeddedStorage(${JSON.stringify(dir)});
      const matchId = 'kill-test';
      process.stdout.write('ready\\n');
      for (;;) {
        const wave = Array.from({ length: 250 }, () => {
          const now = Date.now();
          return { messageId: newId(now), matchId, senderId: 'a', recipientId: 'b', body: 'x'.repeat(100), sentAt: now, bucket: monthBucket(now) };
        });
        await Promise.all(wave.map((m) => s.messages.append(m).then(() => process.stdout.write(m.messageId + '\\n'))));
      }
      `,
    ],
    { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const acked: string[] = [];
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`child exited early: ${code} ${signal}`))));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) if (line !== 'ready') acked.push(line);
      if (acked.length >= 5000 && !child.killed) child.kill('SIGKILL');
    });
  });
  t.ok(acked.length >= 5000, `the child acknowledged ${acked.length} appends before being killed`);
  const db = new Database(path.join(dir, 'kindred.db'));
  try {
    const stored = new Set(db.prepare("SELECT message_id FROM messages_by_conversation WHERE match_id = 'kill-test'").pluck().all() as string[]);
    const lost = acked.filter((id) => !stored.has(id));
    t.same(lost, [], 'no acknowledged message was lost');
    t.comment(`stored ${stored.size} messages (${stored.size - acked.length} committed but not yet acknowledged when killed)`);
  } finally {
    db.close();
  }
});

t.test('append resolves only after a WAL fsync, and group commits', async (t) => {
  const dir = freshDir();
  const sql = openSqlite(path.join(dir, 'kindred.db'));
  try {
    t.equal(sql.sync.syncs, 0, 'no fsync yet');
    const first = sql.messages.append(message(newId(), 0));
    t.equal(sql.sync.syncs, 0, 'append is queued, not written synchronously');
    await first;
    t.ok(sql.sync.syncs >= 1, 'the append resolved after an fsync completed');

    const matchId = newId();
    const n = 10_000;
    const msgs = Array.from({ length: n }, (_, i) => message(matchId, i));
    const syncsBefore = sql.sync.syncs;
    const batchesBefore = sql.messages.stats.batches;
    const started = performance.now();
    await Promise.all(msgs.map((m) => sql.messages.append(m)));
    const ms = performance.now() - started;
    const rate = Math.round(n / (ms / 1000));
    const batches = sql.messages.stats.batches - batchesBefore;
    const syncs = sql.sync.syncs - syncsBefore;
    t.comment(`10,000 concurrent durable appends in ${ms.toFixed(0)} ms: ${rate} appends/s, ${batches} transactions, ${syncs} WAL fsyncs`);
    t.ok(batches <= Math.ceil(n / 512) + 1, `appends are grouped into few transactions (${batches})`);
    t.ok(syncs <= batches, `and share fsyncs (${syncs})`);
    t.ok(sql.messages.stats.largestBatch <= 512, 'no batch exceeds 512 rows');
    t.ok(rate > 5000, `throughput is well above one fsync per message (${rate}/s)`);
  } finally {
    await sql.close();
  }
});

t.test('close() flushes queued appends and waits for their fsync', async (t) => {
  const dir = freshDir();
  const storage = await openEmbeddedStorage(dir);
  const matchId = newId();
  const msgs = Array.from({ length: 1500 }, (_, i) => message(matchId, i));
  const appends = msgs.map((m) => storage.messages.append(m));
  let settled = 0;
  for (const p of appends) p.then(() => settled++, () => settled++);
  await storage.close();
  t.equal(settled, msgs.length, 'every append accepted before close has settled when close resolves');
  const results = await Promise.allSettled(appends);
  t.ok(results.every((r) => r.status === 'fulfilled'), 'and succeeded');
  try {
    await storage.messages.append(message(matchId, 9999));
    t.fail('append after close should reject');
  } catch (err) {
    t.ok(err instanceof KindredError && err.code === 'UNAVAILABLE', 'append after close is UNAVAILABLE');
  }

  const reopened = await openEmbeddedStorage(dir);
  try {
    const page = await reopened.messages.page(matchId, monthBucket(Date.now()) - 1, { limit: 5000 });
    t.equal(page.length, msgs.length, 'all of them are there after reopening');
  } finally {
    await reopened.close();
  }
});

t.test('a failed group commit rejects its batch with UNAVAILABLE', async (t) => {
  const dir = freshDir();
  const storage = await openEmbeddedStorage(dir, { busyTimeoutMs: 10 });
  const blocker = new Database(path.join(dir, 'kindred.db'));
  try {
    blocker.exec('BEGIN IMMEDIATE'); // holds the write lock
    const matchId = newId();
    const batch = Array.from({ length: 20 }, (_, i) => storage.messages.append(message(matchId, i)));
    const results = await Promise.allSettled(batch);
    t.ok(
      results.every((r) => r.status === 'rejected' && r.reason instanceof KindredError && r.reason.code === 'UNAVAILABLE'),
      'every append of the batch rejects with UNAVAILABLE',
    );
    try {
      await storage.swipes.record({ swiperId: 'a', targetId: 'b', kind: 'like', at: 1 });
      t.fail('a write under a held lock should fail');
    } catch (err) {
      t.ok(err instanceof KindredError && err.code === 'UNAVAILABLE', 'other writes map to UNAVAILABLE too');
    }
    blocker.exec('ROLLBACK');
    await storage.messages.append(message(matchId, 100));
    t.equal((await storage.messages.page(matchId, 0, { limit: 100 })).length, 1, 'later batches work once the lock is gone');
  } finally {
    blocker.close();
    await storage.close();
  }
});

t.test('invalid messages are refused before they can poison a batch', async (t) => {
  const storage = await openEmbeddedStorage(freshDir());
  try {
    const matchId = newId();
    const good = Array.from({ length: 5 }, (_, i) => storage.messages.append(message(matchId, i)));
    const bad = storage.messages.append({ ...message(matchId, 5), body: undefined as unknown as string });
    await t.rejects(bad, { code: 'INVALID_ARGUMENT' }, 'the bad message is INVALID_ARGUMENT');
    await Promise.all(good);
    t.equal((await storage.messages.page(matchId, 0, { limit: 10 })).length, 5, 'the good ones in the same tick are stored');
  } finally {
    await storage.close();
  }
});

t.test('reopening keeps data and the schema version', async (t) => {
  const dir = freshDir();
  const first = await openEmbeddedStorage(dir);
  const userId = newId();
  await first.accounts.create({
    userId,
    username: 'persisted',
    passwordHash: 'x',
    scramSha1: { salt: 's', iterations: 1, storedKey: 'k', serverKey: 'v' },
    scramSha256: { salt: 's', iterations: 1, storedKey: 'k', serverKey: 'v' },
    createdAt: 1,
  });
  await first.blobs.put('images/p', Buffer.from('png'), 'image/png');
  await first.close();
  await first.close(); // idempotent

  const second = await openEmbeddedStorage(dir);
  try {
    t.equal((await second.accounts.byUsername('persisted'))?.userId, userId, 'rows survive a reopen');
    t.equal((await second.blobs.get('images/p'))?.data.toString(), 'png', 'blobs survive a reopen');
  } finally {
    await second.close();
  }
  const db = new Database(path.join(dir, 'kindred.db'), { readonly: true });
  try {
    t.same(db.prepare('SELECT id, version FROM schema_version').all(), [{ id: 1, version: 1 }], 'one schema_version row');
    t.equal(db.pragma('journal_mode', { simple: true }), 'wal', 'the database is in WAL mode');
  } finally {
    db.close();
  }
});

t.test('hot queries use their keys', async (t) => {
  const sql = openSqlite(path.join(freshDir(), 'kindred.db'));
  try {
    const plan = (q: string, ...args: unknown[]) =>
      (sql.db.prepare(`EXPLAIN QUERY PLAN ${q}`).all(...args) as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
    t.match(
      plan('SELECT * FROM profiles WHERE lat BETWEEN ? AND ? AND (lon BETWEEN ? AND ? OR lon BETWEEN ? AND ?)', 1, 2, 3, 4, 5, 6),
      /profiles_by_lat_lon/,
      'candidates prefilter uses the lat/lon index',
    );
    t.match(
      plan('SELECT * FROM messages_by_conversation WHERE match_id = ? AND bucket = ? AND message_id < ? ORDER BY message_id DESC LIMIT 10', 'm', 1, 'x'),
      /SEARCH messages_by_conversation USING PRIMARY KEY \(match_id=\? AND bucket=\? AND message_id<\?\)/,
      'a history page is one primary-key range',
    );
    t.notMatch(plan('SELECT * FROM messages_by_conversation WHERE match_id = ? AND bucket = ? AND message_id < ? ORDER BY message_id DESC LIMIT 10', 'm', 1, 'x'), /TEMP B-TREE/, 'without a sort');
  } finally {
    await sql.close();
  }
});

function repoRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
}
function pathToSrc(rel: string): string {
  return path.join(repoRoot(), 'src', rel);
}
