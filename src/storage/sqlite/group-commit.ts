/**
 * Group commit for the book-store service files (orders.db, books.db): many
 * small writes from different orders share one SQLite transaction and one WAL fsync.
 *
 * A settlement makes about six small writes (four order transitions, a stock reservation
 * and its commit), each of which used to be its own IMMEDIATE transaction. At hundreds of
 * orders a second the COMMITs (writing every dirtied page to the WAL, again and again for
 * the same hot pages: the transition log's and the pending index's right edge) were the
 * largest single cost on the event loop. Batched, a hot page is written once per batch.
 *
 * How a write goes (the same discipline as the chat log, messages.ts):
 * 1. `run(op)` queues the synchronous write `op` and returns a promise. The first write of
 *    a batch schedules a flush with setImmediate, so every write issued in this turn of the
 *    event loop joins it; a batch of `maxBatch` writes is flushed at once.
 * 2. If a WAL fsync is running at flush time, the batch keeps collecting until it finishes
 *    and is committed just before the next fsync starts: committed earlier, it would have
 *    waited for that same fsync, so the latency is the same and the commits fewer.
 * 3. The batch runs in ONE IMMEDIATE transaction, its writes in the order they were queued.
 *    Each write sees the effects of the writes before it (one connection, serial), so a
 *    check-and-decrement (stock) or a compare-and-set (an order's version) is as atomic as
 *    it was in its own transaction. A write that throws (a CONFLICT, a constraint) must not
 *    leave half of itself behind, nor take the others down: the batch is rolled back and
 *    run again with each write in its own SAVEPOINT, so the failing one is undone alone and
 *    the others stand. Nothing was acknowledged before the first run rolled back, and a
 *    write is a function of the database (run twice, it does the same). Savepoints are not
 *    used on the first run because they cost more than the writes: SQLite copies every page
 *    a savepoint touches to a statement journal first.
 * 4. Nothing is settled before the batch is durable: every promise of the batch (results
 *    and errors alike, as an error may be an answer derived from another write of the
 *    batch) settles after an fsync that started after the COMMIT. If the COMMIT or the
 *    fsync fails, every write of the batch rejects with UNAVAILABLE: none was acknowledged,
 *    and a crash mid-batch loses only writes nobody was told about.
 *
 * Reads (common.ts `read`) are not queued: they see what is committed, so a write is not
 * visible to them until its batch commits (a moment before its promise resolves). The
 * services act on a write only once its promise resolved, as before.
 */
import type Database from 'better-sqlite3';
import { KindredError } from '../../errors.js';
import { storageError, type SqliteContext } from './common.js';

interface Queued {
  op: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

interface Outcome {
  entry: Queued;
  ok: boolean;
  value: unknown;
}

export class GroupCommit {
  private queue: Queued[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  /** the open batch waits for the running fsync (see step 2) */
  private held = false;
  private closed = false;
  private readonly outstanding = new Set<Promise<void>>();
  private readonly batchTx: Database.Transaction<(entries: Queued[], isolated: boolean) => Outcome[]>;
  private readonly savepoint: Database.Transaction<(op: () => unknown) => unknown>;
  /** Batches committed, writes in them, batches run again write by write (metrics, tests). */
  readonly stats = { batches: 0, writes: 0, largestBatch: 0, isolatedRuns: 0 };

  constructor(
    private readonly ctx: SqliteContext,
    private readonly maxBatch = 256,
  ) {
    const { db } = ctx;
    // Called inside batchTx, a better-sqlite3 transaction function runs as a SAVEPOINT.
    this.savepoint = db.transaction((op: () => unknown) => op());
    this.batchTx = db.transaction((entries: Queued[], isolated: boolean): Outcome[] => {
      const out: Outcome[] = new Array(entries.length);
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]!;
        // a throw here rolls the whole batch back (see commit)
        if (!isolated) {
          out[i] = { entry, ok: true, value: entry.op() };
          continue;
        }
        try {
          out[i] = { entry, ok: true, value: this.savepoint(entry.op) };
        } catch (err) {
          const mapped = storageError(err);
          // A failing disk or a lost lock dooms the whole batch: let the transaction roll back.
          if (mapped instanceof KindredError && mapped.code === 'UNAVAILABLE') throw err;
          out[i] = { entry, ok: false, value: mapped };
        }
      }
      return out;
    });
  }

  /** Queues `op` (synchronous statements); resolves with its result once its batch is durable. */
  run<T>(op: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new KindredError('UNAVAILABLE', 'storage is closing'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (value: unknown) => void, reject });
      if (this.queue.length >= this.maxBatch) this.commit();
      else if (this.scheduled === undefined && !this.held) this.scheduled = setImmediate(this.flush);
    });
  }

  /** Stops taking writes, commits what is queued and waits until all of it is settled. */
  async close(): Promise<void> {
    this.closed = true;
    this.commit();
    while (this.outstanding.size > 0 || this.held || this.queue.length > 0) {
      if (this.queue.length > 0 && !this.held) this.commit();
      await Promise.allSettled([...this.outstanding]);
      if (this.held) await this.ctx.sync.idle();
    }
  }

  private readonly flush = (): void => {
    this.scheduled = undefined;
    if (this.queue.length === 0) return;
    if (this.ctx.sync.syncing) {
      if (!this.held) {
        this.held = true;
        this.ctx.sync.whenSyncDone(this.commitHeld);
      }
      return;
    }
    this.commit();
  };

  private readonly commitHeld = (): void => {
    this.held = false;
    this.commit();
  };

  private commit(): void {
    if (this.scheduled !== undefined) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    const entries = this.queue;
    if (entries.length === 0) return;
    this.queue = [];
    let outcomes: Outcome[];
    try {
      try {
        outcomes = this.batchTx.immediate(entries, false);
      } catch (err) {
        // Rolled back. A failing disk or lock fails the batch; a write that threw is undone alone (step 3).
        const mapped = storageError(err);
        if (mapped instanceof KindredError && mapped.code === 'UNAVAILABLE') throw err;
        this.stats.isolatedRuns++;
        outcomes = this.batchTx.immediate(entries, true);
      }
    } catch (err) {
      // Rolled back: none of these writes happened.
      const mapped = storageError(err);
      const failure = new KindredError('UNAVAILABLE', mapped instanceof Error ? mapped.message : `storage: ${String(err)}`);
      for (const e of entries) e.reject(failure);
      return;
    }
    this.stats.batches++;
    this.stats.writes += entries.length;
    if (entries.length > this.stats.largestBatch) this.stats.largestBatch = entries.length;
    const done = this.ctx.sync.durable().then(
      () => {
        for (const o of outcomes) (o.ok ? o.entry.resolve : o.entry.reject)(o.value);
      },
      (err: unknown) => {
        for (const e of entries) e.reject(err);
      },
    );
    this.outstanding.add(done);
    void done.finally(() => this.outstanding.delete(done));
  }
}
