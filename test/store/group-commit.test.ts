/**
 * Group commit of the book-store service files (src/storage/sqlite/group-commit.ts): the
 * writes of many orders share one transaction and one fsync, and batching must not lose,
 * reorder or leak a write:
 * - writes issued together share a batch, run in the order issued, and each resolves only
 *   after an fsync that started after its batch committed;
 * - a write that throws rolls back alone (its savepoint), the rest of its batch stands;
 * - a batch whose transaction fails (disk full) rejects every write in it, none persisted;
 * - stock reservations in one batch never oversell;
 * - SIGKILL mid-run: every acknowledged order transition is in the file, and every order's
 *   log is contiguous with its state (no transition half-written).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { KindredError } from '../../src/errors.js';
import { newId } from '../../src/ids.js';
import { GroupCommit } from '../../src/storage/sqlite/group-commit.js';
import { SqliteBookStore } from '../../src/storage/sqlite/store-books.js';
import { SqliteOrderStore } from '../../src/storage/sqlite/orders.js';
import { openServiceDb } from '../../src/storage/sqlite/store-db.js';
import type { BookRecord } from '../../src/store/books/storage.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const dirs: string[] = [];
t.teardown(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function dir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'kindred-group-commit-'));
  dirs.push(d);
  return d;
}

const DDL = 'CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;';

/** A fresh kv file and its group commit, both closed in the test's teardown. */
function openKv(t: { teardown(fn: () => unknown): void }, fsync: boolean) {
  const ctx = openServiceDb(path.join(dir(), 'kv.db'), DDL, 1, { fsync });
  const group = new GroupCommit(ctx);
  t.teardown(async () => {
    await group.close();
    await ctx.close();
  });
  return { ctx, group };
}

t.test('writes issued together share a batch, run in order, and resolve after an fsync that followed the commit', async (t) => {
  const { ctx, group } = openKv(t, true);
  const insert = ctx.db.prepare('INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v');
  const get = ctx.db.prepare('SELECT v FROM kv WHERE k = ?').pluck();
  const syncsAtCommit: number[] = [];
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      group
        .run(() => {
          insert.run('x', i); // the last writer wins only if they run in the order issued
          syncsAtCommit.push(ctx.sync.syncs);
          return i;
        })
        .then((r) => ({ r, syncsAtResolve: ctx.sync.syncs })),
    ),
  );
  t.same(results.map((x) => x.r), Array.from({ length: 50 }, (_, i) => i), 'each write answers its own result');
  t.equal(get.get('x'), 49, 'applied in the order issued');
  t.equal(group.stats.batches, 1, 'one transaction for the 50 writes issued in one turn');
  const early = results.filter((x, i) => !(x.syncsAtResolve > syncsAtCommit[i]!)).length;
  t.equal(early, 0, 'every write resolved after an fsync that completed after its commit');
});

t.test('a write that throws rolls back alone; the rest of its batch stands', async (t) => {
  const { ctx, group } = openKv(t, false);
  const insert = ctx.db.prepare('INSERT INTO kv (k, v) VALUES (?, ?)');
  const count = ctx.db.prepare('SELECT count(*) FROM kv').pluck();
  const a = group.run(() => insert.run('a', 1));
  const bad = group.run(() => {
    insert.run('b', 2); // written, then the write fails: must be rolled back
    throw new KindredError('CONFLICT', 'no');
  });
  const dup = group.run(() => insert.run('a', 3)); // a duplicate key: CONFLICT from the store's error mapping
  const c = group.run(() => insert.run('c', 4));
  await a;
  await t.rejects(bad, { code: 'CONFLICT' });
  await t.rejects(dup, { code: 'CONFLICT' });
  await c;
  t.equal(group.stats.batches, 1, 'all four in one batch');
  t.equal(group.stats.isolatedRuns, 1, 'run again write by write, once');
  t.same(ctx.db.prepare('SELECT k, v FROM kv ORDER BY k').all(), [
    { k: 'a', v: 1 },
    { k: 'c', v: 4 },
  ]);
  t.equal(count.get(), 2);
});

t.test('a batch whose transaction fails rejects every write in it, and none is persisted', async (t) => {
  const { ctx, group } = openKv(t, false);
  const insert = ctx.db.prepare('INSERT INTO kv (k, v) VALUES (?, ?)');
  await group.run(() => insert.run('before', 0));
  // The file may not grow: the batch below needs new pages, so SQLite fails it with SQLITE_FULL.
  const pages = ctx.db.pragma('page_count', { simple: true }) as number;
  ctx.db.pragma(`max_page_count = ${pages}`);
  const big = 'x'.repeat(3000);
  // (a 3,000-character value in the INTEGER column is kept as TEXT: a page each)
  const writes = Array.from({ length: 20 }, (_, i) => group.run(() => insert.run(`k${i}`, big)));
  const outcomes = await Promise.allSettled(writes);
  t.ok(outcomes.every((o) => o.status === 'rejected' && (o.reason as KindredError).code === 'UNAVAILABLE'), 'every write of the batch rejected UNAVAILABLE');
  t.same(ctx.db.prepare('SELECT k FROM kv ORDER BY k').pluck().all(), ['before'], 'nothing of the failed batch is in the file');
  ctx.db.pragma('max_page_count = 1073741823');
  await group.run(() => insert.run('after', 1));
  t.same(ctx.db.prepare('SELECT k FROM kv ORDER BY k').pluck().all(), ['after', 'before'], 'later batches are unaffected');
});

t.test('reservations batched together never oversell', async (t) => {
  const store = SqliteBookStore.open(dir(), { fsync: false });
  t.teardown(() => store.close());
  const now = Date.now();
  const book: BookRecord = {
    bookId: newId(),
    title: 'Scarce',
    authors: ['A'],
    isbn: '9780306406157',
    description: '',
    priceCents: 100,
    currency: 'EUR',
    formats: ['print'],
    coverImageId: null,
    ebook: null,
    createdAt: now,
    updatedAt: now,
  };
  await store.create(book, 10);
  const orders = Array.from({ length: 300 }, () => newId());
  // issued in one turn: they share batches (up to 256 writes each)
  const outcomes = await Promise.all(orders.map((o) => store.reserve(o, [{ bookId: book.bookId, quantity: 1 }])));
  t.equal(outcomes.filter((o) => o.ok).length, 10, 'exactly the 10 copies reserved');
  t.ok(outcomes.slice(0, 10).every((o) => o.ok), 'the first ten issued got them (issue order kept)');
  t.equal((await store.get(book.bookId))?.stock, 0);
  // releasing and committing in one batch as well
  const released = await Promise.all(orders.slice(0, 5).map((o) => store.release(o)));
  const committed = await Promise.all(orders.slice(5, 10).map((o) => store.commit(o)));
  t.ok(released.every(Boolean) && committed.every(Boolean));
  t.equal((await store.get(book.bookId))?.stock, 5, 'five copies back after five releases');
});

t.test('SIGKILL mid-run: every acknowledged transition is in the file, every log contiguous', async (t) => {
  const d = dir();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'fixtures', 'group-commit-child.ts'), d], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const acked = new Map<string, number>();
  let buf = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const killedAfter = await new Promise<number>((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`child exited early (${code}): ${stderr}`)));
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [word, orderId, version] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (word === 'ack') acked.set(orderId!, Math.max(acked.get(orderId!) ?? 0, Number(version)));
      }
      // kill it in full flow, with batches committing and fsyncs in flight
      if (acked.size >= 1500 && child.exitCode === null && !child.killed) {
        child.removeAllListeners('exit');
        child.kill('SIGKILL');
        resolve(acked.size);
      }
    });
  });
  await new Promise((r) => child.once('close', r));
  t.ok(killedAfter >= 1500, `killed after ${killedAfter} orders acknowledged`);
  const store = SqliteOrderStore.open(d, { fsync: false });
  t.teardown(() => store.close());
  const STATES = ['created', 'stock_reserved', 'paid', 'fulfilled'];
  let missing = 0;
  let broken = 0;
  for (const [orderId, version] of acked) {
    const o = await store.get(orderId);
    if (!o || o.version < version) {
      missing++;
      continue;
    }
    const log = await store.transitions(orderId);
    const contiguous = log.length === o.version && log.every((r, i) => r.seq === i + 1 && r.to === STATES[i]);
    if (!contiguous || o.state !== STATES[o.version - 1] || o.pending !== (o.state !== 'fulfilled')) broken++;
  }
  t.equal(missing, 0, 'no acknowledged transition is missing after the kill');
  t.equal(broken, 0, 'every order state matches its transition log');
  // orders written but never acknowledged (their batch was in flight) are whole too
  const pending = await store.listPending(100_000);
  t.ok(pending.every((o) => STATES.includes(o.state)), `${pending.length} orders left in a middle state, all well-formed`);
});
