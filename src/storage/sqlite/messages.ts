/**
 * Chat messages: group commit, durable before resolve.
 *
 * `append()` must not resolve before the message would survive a power cut, yet
 * one fsync per message caps out at a few hundred messages a second. So:
 *
 * 1. Queue. `append()` validates the message, adds it to the open batch and
 *    returns the batch's promise (its appends settle together, so one promise
 *    serves them all instead of one per message). The first append of a
 *    batch schedules a flush with `setImmediate`, so every append issued in the
 *    same turn of the event loop (plus whatever I/O callbacks run before the
 *    check phase) joins the batch; a queue reaching `maxBatch` (512) rows is
 *    flushed at once to bound transaction size and latency. If a WAL fsync is
 *    running at flush time, the batch keeps collecting until it completes and is
 *    committed just before the next fsync starts: committed earlier it would have
 *    waited for that same fsync, so latency is unchanged and commits are fewer.
 *    And a batch is committed at least COMMIT_GAP_MS (5 ms) after the previous one:
 *    on a fast disk per-batch costs (COMMIT, fsync) otherwise dominate.
 *
 * 2. Commit. A flush writes the whole batch in ONE transaction: each message
 *    into messages_by_conversation and, only if that row is new (a retried
 *    append is a no-op), into pending_by_recipient. `markDelivered()` (a recipient's
 *    acknowledgements, which come about as often as messages) joins the same batch, in call
 *    order, and deletes from pending_by_recipient. The connection runs WAL with
 *    `synchronous = NORMAL`: COMMIT appends the frames to the `-wal` file and
 *    returns without fsync. That is already safe against a process crash or
 *    kill -9 (the bytes are in the OS page cache), and makes the rows visible
 *    to `page()` and `pendingFor()` immediately, which is fine: nobody is told
 *    about a message until its append resolves.
 *
 * 3. Sync. Power-loss durability comes from WalSync (wal-sync.ts): an
 *    asynchronous `fs.fsync` on a descriptor of the `-wal` file, run on the
 *    libuv threadpool, so the event loop never waits for the disk. Every append
 *    of the batch resolves when an fsync that started after the batch committed
 *    completes. One fsync is in flight at a time; batches that commit meanwhile
 *    wait for the next one, which covers all of them. Throughput is therefore
 *    bounded by transaction speed (tens of thousands of rows a second), not by
 *    fsync latency, and each message waits at most about two fsyncs.
 *
 * 4. Failure. If the batch transaction throws (disk full, I/O error, database
 *    locked past busy_timeout), SQLite has rolled it back and every append of
 *    that batch rejects with KindredError('UNAVAILABLE'); later batches are
 *    unaffected. A failed fsync rejects its batches and latches: see WalSync.
 *
 * 5. Close. `close()` stops new appends, flushes the queue and awaits the
 *    final fsync, so every append that was accepted is settled before the
 *    database handle closes.
 *
 * History is partitioned by (match_id, month bucket), clustered by the
 * time-ordered message id, as on Cassandra; `page()` walks buckets newest first
 * down to the match's first bucket.
 */
import { KindredError } from '../../errors.js';
import { idTime, isId, monthBucket } from '../../ids.js';
import { invalidMessageField as invalid } from '../check.js';
import type { ChatMessage, MessageStore } from '../types.js';
import { read, storageError, write, type SqliteContext } from './common.js';

interface MessageRow {
  match_id: string;
  bucket: number;
  message_id: string;
  sender_id: string;
  recipient_id: string;
  body: string;
  sent_at: number;
}

function toMessage(r: MessageRow): ChatMessage {
  return {
    messageId: r.message_id,
    matchId: r.match_id,
    senderId: r.sender_id,
    recipientId: r.recipient_id,
    body: r.body,
    sentAt: r.sent_at,
    bucket: r.bucket,
  };
}

/** Delivered messages to take off a recipient's pending queue (markDelivered), queued with the appends. */
class Delivered {
  constructor(
    readonly recipientId: string,
    readonly messageIds: readonly string[],
  ) {}
}

/**
 * The writes waiting for one transaction, in call order: appends and deliveries. They settle
 * together, so they share one promise.
 */
interface Batch {
  writes: (ChatMessage | Delivered)[];
  /** rows the writes touch (an append one, a delivery one per id): what maxBatch bounds */
  rows: number;
  settled: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const settled = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { writes: [], rows: 0, settled, resolve, reject };
}

/** Sorts after every id ("g" > any hex digit), so "no cursor" is the same statement as a cursor. */
const AFTER_ALL_IDS = 'g';
const MAX_BUCKET = 999_912;

/**
 * WAL pages between automatic checkpoints on this connection (SQLite's default is 1,000).
 * Each chat message dirties about two random leaf pages (its conversation's and its
 * recipient's), so at a few thousand messages a second the default checkpointed every
 * ~0.2 s, copying the same hot pages into the database file again and again. With 8,000
 * (32 MiB of WAL) a hot page is copied once per checkpoint however often it was
 * rewritten: in a micro-benchmark (1,000 conversations, batches of 10, fsync on) the
 * SQLite CPU per message fell by about a fifth. The WAL then peaks near 32 MiB and is cut
 * back to journal_size_limit (64 MiB) after a checkpoint; crash recovery replays at most that.
 */
const AUTO_CHECKPOINT_PAGES = 8000;

/**
 * Least time between two batch commits (so between the WAL fsyncs that follow them). On a
 * fast disk an fsync takes a millisecond or two, so batches committed "whenever no fsync is
 * running" were small (5-10 writes at 3,000 msgs/s) and the per-batch costs dominated: the
 * COMMIT writing each dirty page to the WAL, and the fsync itself (~100 us of kernel CPU
 * each here). With a 5 ms gap a batch holds a few times more writes; measured on the XMPP
 * chat bench at 3,000 msgs/s: server CPU -12 to -20 %, for at most 5 ms more before an ack.
 */
export const COMMIT_GAP_MS = 5;

export class SqliteMessageStore implements MessageStore {
  private batch: Batch | undefined;
  /** the open batch waits for the running WAL fsync to finish (see flush) */
  private heldForSync = false;
  private scheduled: NodeJS.Immediate | undefined;
  private gapTimer: NodeJS.Timeout | undefined;
  private lastCommitAt = -Infinity;
  private closed = false;
  private readonly outstanding = new Set<Promise<void>>();
  /** Batches committed so far and their sizes (metrics, tests). */
  readonly stats = { batches: 0, rows: 0, largestBatch: 0 };

  private readonly insertMessage;
  private readonly insertPending;
  private readonly newestBucket;
  private readonly pageStmt;
  private readonly pageAfterStmt;
  private readonly getStmt;
  private readonly oldestBucketAfter;
  private readonly pendingStmt;
  private readonly deletePending;
  private readonly upsertMarker;
  private readonly markerStmt;
  private readonly batchTx;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly maxBatch = 512,
    private readonly commitGapMs = COMMIT_GAP_MS,
  ) {
    const { db } = ctx;
    // The message log is what writes most WAL pages on this connection, so it sets the pace of checkpoints.
    db.pragma(`wal_autocheckpoint = ${AUTO_CHECKPOINT_PAGES}`);
    this.insertMessage = db.prepare(`INSERT OR IGNORE INTO messages_by_conversation
        (match_id, bucket, message_id, sender_id, recipient_id, body, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)`);
    this.insertPending = db.prepare(
      'INSERT OR IGNORE INTO pending_by_recipient (recipient_id, message_id, match_id, bucket) VALUES (?, ?, ?, ?)',
    );
    this.newestBucket = db
      .prepare(
        `SELECT bucket FROM messages_by_conversation WHERE match_id = ? AND bucket BETWEEN ? AND ?
         ORDER BY bucket DESC LIMIT 1`,
      )
      .pluck();
    this.pageStmt = db.prepare(`SELECT * FROM messages_by_conversation
      WHERE match_id = ? AND bucket = ? AND message_id < ? ORDER BY message_id DESC LIMIT ?`);
    this.getStmt = db.prepare('SELECT * FROM messages_by_conversation WHERE match_id = ? AND bucket = ? AND message_id = ?');
    this.pageAfterStmt = db.prepare(`SELECT * FROM messages_by_conversation
      WHERE match_id = ? AND bucket = ? AND message_id > ? ORDER BY message_id ASC LIMIT ?`);
    this.oldestBucketAfter = db
      .prepare(
        `SELECT bucket FROM messages_by_conversation WHERE match_id = ? AND bucket BETWEEN ? AND ?
         ORDER BY bucket ASC LIMIT 1`,
      )
      .pluck();
    this.pendingStmt = db.prepare(`SELECT m.* FROM pending_by_recipient p
      JOIN messages_by_conversation m ON m.match_id = p.match_id AND m.bucket = p.bucket AND m.message_id = p.message_id
      WHERE p.recipient_id = ? ORDER BY p.message_id LIMIT ?`);
    this.deletePending = db.prepare('DELETE FROM pending_by_recipient WHERE recipient_id = ? AND message_id = ?');
    // Read markers only move forward: a late, older acknowledgement never un-reads messages.
    this.upsertMarker = db.prepare(`INSERT INTO read_markers (match_id, user_id, message_id) VALUES (?, ?, ?)
      ON CONFLICT (match_id, user_id) DO UPDATE SET message_id = excluded.message_id
      WHERE excluded.message_id > read_markers.message_id`);
    this.markerStmt = db.prepare('SELECT message_id FROM read_markers WHERE match_id = ? AND user_id = ?').pluck();

    this.batchTx = db.transaction((writes: (ChatMessage | Delivered)[]) => {
      for (const w of writes) {
        if (w instanceof Delivered) {
          for (const id of w.messageIds) this.deletePending.run(w.recipientId, id);
        } else if (this.insertMessage.run(w.matchId, w.bucket, w.messageId, w.senderId, w.recipientId, w.body, w.sentAt).changes === 1) {
          this.insertPending.run(w.recipientId, w.messageId, w.matchId, w.bucket);
        }
      }
    });
  }

  append(message: ChatMessage): Promise<void> {
    if (this.closed) return Promise.reject(new KindredError('UNAVAILABLE', 'storage is closing'));
    const bad = invalid(message);
    if (bad) return Promise.reject(new KindredError('INVALID_ARGUMENT', `message.${bad} is missing or has the wrong type`));
    return this.enqueue(message, 1);
  }

  /** Adds a write to the open batch (opening one, and scheduling its flush, if there is none). */
  private enqueue(write: ChatMessage | Delivered, rows: number): Promise<void> {
    let batch = this.batch;
    if (batch === undefined) {
      batch = this.batch = newBatch();
      this.scheduled = setImmediate(this.flush);
    }
    batch.writes.push(write);
    batch.rows += rows;
    const { settled } = batch;
    if (batch.rows >= this.maxBatch) this.commit();
    return settled;
  }

  /**
   * The scheduled flush. While a WAL fsync is running, a batch committed now could only be
   * made durable by the fsync after it, so it keeps collecting appends and is committed
   * when the running fsync completes, just before that next one starts: the same
   * durability time, but fewer and larger transactions (most of a commit's cost is per
   * transaction and per dirty page, not per row).
   */
  private readonly flush = (): void => {
    if (this.scheduled !== undefined) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    if (this.gapTimer !== undefined) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    }
    if (this.batch === undefined) return;
    if (this.ctx.sync.syncing) {
      if (!this.heldForSync) {
        this.heldForSync = true;
        this.ctx.sync.whenSyncDone(this.commitHeld);
      }
      return;
    }
    if (this.commitAfterGap()) this.commit();
  };

  private readonly commitHeld = (): void => {
    this.heldForSync = false;
    if (this.commitAfterGap()) this.commit();
  };

  /** Whether the gap since the last commit has passed; if not, a flush is scheduled for when it has. */
  private commitAfterGap(): boolean {
    const wait = this.lastCommitAt + this.commitGapMs - performance.now();
    if (wait <= 0) return true;
    if (this.gapTimer === undefined) this.gapTimer = setTimeout(this.flush, wait);
    return false;
  }

  /** Commits the open batch in one transaction, then resolves it once the WAL fsync covering it completes. */
  private commit(): void {
    if (this.scheduled !== undefined) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    if (this.gapTimer !== undefined) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    }
    const batch = this.batch;
    if (batch === undefined) return;
    this.batch = undefined;
    this.lastCommitAt = performance.now();
    try {
      this.batchTx.immediate(batch.writes);
    } catch (err) {
      const mapped = storageError(err);
      const failure =
        mapped instanceof KindredError
          ? new KindredError('UNAVAILABLE', mapped.message)
          : new KindredError('UNAVAILABLE', `could not store messages: ${(err as Error)?.message ?? String(err)}`);
      batch.reject(failure);
      return;
    }
    this.stats.batches++;
    this.stats.rows += batch.rows;
    if (batch.rows > this.stats.largestBatch) this.stats.largestBatch = batch.rows;
    const done = this.ctx.sync.durable().then(batch.resolve, batch.reject);
    this.outstanding.add(done);
    void done.finally(() => this.outstanding.delete(done));
  }

  page(matchId: string, firstBucket: number, opts: { before?: string; limit: number }): Promise<ChatMessage[]> {
    const limit = Math.floor(opts.limit);
    if (!(limit > 0)) return Promise.resolve([]);
    const before = opts.before ?? AFTER_ALL_IDS;
    return read(() => {
      const out: ChatMessage[] = [];
      // Jump from one non-empty bucket to the next older one (a key seek each), never below firstBucket.
      let bucket = this.newestBucket.get(matchId, firstBucket, MAX_BUCKET) as number | undefined;
      while (bucket !== undefined && out.length < limit) {
        const rows = this.pageStmt.all(matchId, bucket, before, limit - out.length) as MessageRow[];
        for (const r of rows) out.push(toMessage(r));
        bucket = this.newestBucket.get(matchId, firstBucket, bucket - 1) as number | undefined;
      }
      return out;
    });
  }

  get(matchId: string, messageId: string): Promise<ChatMessage | undefined> {
    if (!isId(messageId)) return Promise.resolve(undefined);
    return read(() => {
      const row = this.getStmt.get(matchId, monthBucket(idTime(messageId)), messageId) as MessageRow | undefined;
      return row && toMessage(row);
    });
  }

  pageAfter(matchId: string, firstBucket: number, opts: { after: string; limit: number }): Promise<ChatMessage[]> {
    const limit = Math.floor(opts.limit);
    if (!(limit > 0)) return Promise.resolve([]);
    return read(() => {
      const out: ChatMessage[] = [];
      // Walk non-empty buckets upwards from the first one (a key seek each).
      let bucket = this.oldestBucketAfter.get(matchId, firstBucket, MAX_BUCKET) as number | undefined;
      while (bucket !== undefined && out.length < limit) {
        const rows = this.pageAfterStmt.all(matchId, bucket, opts.after, limit - out.length) as MessageRow[];
        for (const r of rows) out.push(toMessage(r));
        bucket = this.oldestBucketAfter.get(matchId, bucket + 1, MAX_BUCKET) as number | undefined;
      }
      return out;
    });
  }

  pendingFor(recipientId: string, limit: number): Promise<ChatMessage[]> {
    const n = Math.floor(limit);
    if (!(n > 0)) return Promise.resolve([]);
    return read(() => (this.pendingStmt.all(recipientId, n) as MessageRow[]).map(toMessage));
  }

  /**
   * Joins the group commit like an append (acknowledgements come about as often as messages:
   * one transaction each cost as much as all the appends' batches together). Settles with its
   * batch, once durable; until that batch commits, `pendingFor` still returns the messages,
   * which clients de-duplicate anyway.
   */
  markDelivered(recipientId: string, messageIds: string[]): Promise<void> {
    if (this.closed) return Promise.reject(new KindredError('UNAVAILABLE', 'storage is closing'));
    if (typeof recipientId !== 'string' || !Array.isArray(messageIds) || !messageIds.every((id) => typeof id === 'string')) {
      return Promise.reject(new KindredError('INVALID_ARGUMENT', 'recipientId and messageIds must be strings'));
    }
    if (messageIds.length === 0) return Promise.resolve();
    // A copy: the caller may reuse its array before the batch commits.
    return this.enqueue(new Delivered(recipientId, messageIds.slice()), messageIds.length);
  }

  setReadMarker(matchId: string, userId: string, messageId: string): Promise<void> {
    return write(this.ctx, () => {
      this.upsertMarker.run(matchId, userId, messageId);
    });
  }

  readMarker(matchId: string, userId: string): Promise<string | undefined> {
    return read(() => (this.markerStmt.get(matchId, userId) as string | undefined) ?? undefined);
  }

  /** Stops accepting appends, commits what is queued and waits until every accepted append has settled. */
  async close(): Promise<void> {
    this.closed = true;
    this.commit();
    await Promise.allSettled([...this.outstanding]);
  }
}
