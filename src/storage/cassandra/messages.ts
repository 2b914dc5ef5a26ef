/**
 * Chat messages on Cassandra.
 *
 * Durability. append() resolves when the coordinator has the write acknowledged by
 * LOCAL_QUORUM replicas, and a replica acknowledges only after the commitlog segment
 * holding the write was fsynced: deploy/cassandra/cassandra.yaml runs
 * `commitlog_sync: group`, Cassandra's own group commit (every write waiting at a sync
 * shares it; the sync runs at most every `commitlog_sync_group_window`). With the usual
 * `periodic` mode a replica acknowledges before the fsync and a power cut of all
 * replicas can lose up to `commitlog_sync_period` of acknowledged messages; with RF 3 in
 * separate failure domains that is a trade many clusters accept, but it is not "durable
 * before resolve" on one node, so Kindred's config does not make it.
 * There is therefore no client-side batching: concurrent appends are concurrent requests
 * (the driver pipelines them on its connections) and the server groups their fsyncs.
 *
 * One append is one logged batch: the history row, the recipient's pending row (the whole
 * message, so pendingFor is one partition read) and, once per bucket and process, the
 * conversation's bucket index row. The batchlog makes the three all-or-nothing.
 *
 * Idempotency without a read or a lightweight transaction: the pending row is written
 * USING TIMESTAMP = the message id's time (µs), and markDelivered deletes it with a later
 * timestamp, so a retried append of a delivered message rewrites the history row (the
 * same values) but its pending row stays shadowed by the delivery tombstone (kept for
 * gc_grace_seconds = 3 h on that table, far longer than any retry).
 *
 * History: messages_by_conversation ((match_id, bucket), message_id DESC), bucket = the
 * month. conversation_buckets ((match_id), bucket DESC) lists a conversation's non-empty
 * buckets, so paging jumps between them and stops at the match's firstBucket.
 *
 * Read markers: read_markers ((match_id), user_id) is written with one constant write
 * timestamp. Cassandra resolves cells with equal timestamps by keeping the greater value,
 * so the stored marker is the greatest message id ever written: it only moves forward,
 * with no read and no lightweight transaction.
 */
import { KindredError } from '../../errors.js';
import { idTime, isId, monthBucket } from '../../ids.js';
import { invalidMessageField as invalid } from '../check.js';
import type { ChatMessage, MessageStore } from '../types.js';
import { toNum, type Row, type Session } from './client.js';

/** The write timestamp of every read marker (see the file comment). */
const MARKER_TIMESTAMP = 1;
/** Buckets this process has already recorded in conversation_buckets (bounded; forgetting one only costs a write). */
const KNOWN_BUCKETS_MAX = 100_000;

/** The pending row's write time (µs): from the id when it is a time-ordered id, else the send time. */
function pendingTimestamp(messageId: string, sentAt: number): number {
  return (isId(messageId) ? idTime(messageId) : sentAt) * 1000;
}

function fromHistory(r: Row): ChatMessage {
  return {
    messageId: r.message_id,
    matchId: r.match_id,
    senderId: r.sender_id,
    recipientId: r.recipient_id,
    body: r.body,
    sentAt: toNum(r.sent_at),
    bucket: r.bucket,
  };
}

export class CassandraMessageStore implements MessageStore {
  private closed = false;
  private readonly knownBuckets = new Set<string>();
  private readonly historyQ: string;
  private readonly pendingQ: string;
  private readonly bucketQ: string;
  private readonly bucketsDescQ: string;
  private readonly bucketsAscQ: string;
  private readonly pageQ: string;
  private readonly getQ: string;
  private readonly pageAfterQ: string;
  private readonly pageTopQ: string;
  private readonly pendingForQ: string;
  private readonly deliveredQ: string;
  private readonly markerQ: string;
  private readonly markerGetQ: string;

  constructor(
    private readonly s: Session,
    ks: string,
  ) {
    this.historyQ = `INSERT INTO ${ks}.messages_by_conversation (match_id, bucket, message_id, sender_id, recipient_id, body, sent_at)
      VALUES (?, ?, ?, ?, ?, ?, ?)`;
    this.pendingQ = `INSERT INTO ${ks}.pending_by_recipient (recipient_id, message_id, match_id, bucket, sender_id, body, sent_at)
      VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`;
    this.bucketQ = `INSERT INTO ${ks}.conversation_buckets (match_id, bucket) VALUES (?, ?)`;
    this.bucketsDescQ = `SELECT bucket FROM ${ks}.conversation_buckets WHERE match_id = ? AND bucket >= ?`;
    this.bucketsAscQ = `SELECT bucket FROM ${ks}.conversation_buckets WHERE match_id = ? AND bucket >= ? ORDER BY bucket ASC`;
    const cols = 'match_id, bucket, message_id, sender_id, recipient_id, body, sent_at';
    this.pageQ = `SELECT ${cols} FROM ${ks}.messages_by_conversation WHERE match_id = ? AND bucket = ? AND message_id < ? LIMIT ?`;
    this.getQ = `SELECT ${cols} FROM ${ks}.messages_by_conversation WHERE match_id = ? AND bucket = ? AND message_id = ?`;
    this.pageTopQ = `SELECT ${cols} FROM ${ks}.messages_by_conversation WHERE match_id = ? AND bucket = ? LIMIT ?`;
    this.pageAfterQ = `SELECT ${cols} FROM ${ks}.messages_by_conversation WHERE match_id = ? AND bucket = ? AND message_id > ?
      ORDER BY message_id ASC LIMIT ?`;
    this.pendingForQ = `SELECT recipient_id, message_id, match_id, bucket, sender_id, body, sent_at
      FROM ${ks}.pending_by_recipient WHERE recipient_id = ? LIMIT ?`;
    this.deliveredQ = `DELETE FROM ${ks}.pending_by_recipient USING TIMESTAMP ? WHERE recipient_id = ? AND message_id IN ?`;
    this.markerQ = `INSERT INTO ${ks}.read_markers (match_id, user_id, message_id) VALUES (?, ?, ?) USING TIMESTAMP ${MARKER_TIMESTAMP}`;
    this.markerGetQ = `SELECT message_id FROM ${ks}.read_markers WHERE match_id = ? AND user_id = ?`;
  }

  async append(m: ChatMessage): Promise<void> {
    if (this.closed) throw new KindredError('UNAVAILABLE', 'storage is closing');
    const bad = invalid(m);
    if (bad) throw new KindredError('INVALID_ARGUMENT', `message.${bad} is missing or has the wrong type`);
    const bucketKey = `${m.matchId}\u0000${m.bucket}`;
    const queries = [
      { query: this.historyQ, params: [m.matchId, m.bucket, m.messageId, m.senderId, m.recipientId, m.body, m.sentAt] },
      {
        query: this.pendingQ,
        params: [m.recipientId, m.messageId, m.matchId, m.bucket, m.senderId, m.body, m.sentAt, pendingTimestamp(m.messageId, m.sentAt)],
      },
    ];
    const newBucket = !this.knownBuckets.has(bucketKey);
    if (newBucket) queries.push({ query: this.bucketQ, params: [m.matchId, m.bucket] });
    await this.s.batch(queries, { logged: true, idempotent: true });
    if (newBucket) {
      if (this.knownBuckets.size >= KNOWN_BUCKETS_MAX) this.knownBuckets.clear();
      this.knownBuckets.add(bucketKey);
    }
  }

  async get(matchId: string, messageId: string): Promise<ChatMessage | undefined> {
    if (!isId(messageId)) return undefined;
    const rs = await this.s.execute(this.getQ, [matchId, monthBucket(idTime(messageId)), messageId], { idempotent: true });
    return rs.rows[0] && fromHistory(rs.rows[0]);
  }

  /** Newest first; `before` is an exclusive cursor; walks the non-empty buckets down to firstBucket. */
  async page(matchId: string, firstBucket: number, opts: { before?: string; limit: number }): Promise<ChatMessage[]> {
    const limit = Math.floor(opts.limit);
    if (!(limit > 0)) return [];
    const buckets = (await this.s.all(this.bucketsDescQ, [matchId, firstBucket])).map((r) => r.bucket as number);
    const out: ChatMessage[] = [];
    for (const bucket of buckets) {
      if (out.length >= limit) break;
      const want = limit - out.length;
      const rs =
        opts.before === undefined
          ? await this.s.execute(this.pageTopQ, [matchId, bucket, want], { idempotent: true, fetchSize: want })
          : await this.s.execute(this.pageQ, [matchId, bucket, opts.before, want], { idempotent: true, fetchSize: want });
      for (const r of rs.rows) out.push(fromHistory(r));
    }
    return out;
  }

  /** Oldest first, strictly after the cursor; walks the non-empty buckets up from firstBucket. */
  async pageAfter(matchId: string, firstBucket: number, opts: { after: string; limit: number }): Promise<ChatMessage[]> {
    const limit = Math.floor(opts.limit);
    if (!(limit > 0)) return [];
    const buckets = (await this.s.all(this.bucketsAscQ, [matchId, firstBucket])).map((r) => r.bucket as number);
    const out: ChatMessage[] = [];
    for (const bucket of buckets) {
      if (out.length >= limit) break;
      const want = limit - out.length;
      const rs = await this.s.execute(this.pageAfterQ, [matchId, bucket, opts.after, want], { idempotent: true, fetchSize: want });
      for (const r of rs.rows) out.push(fromHistory(r));
    }
    return out;
  }

  /** Oldest first (the partition's clustering order), whole messages from the pending rows. */
  async pendingFor(recipientId: string, limit: number): Promise<ChatMessage[]> {
    const n = Math.floor(limit);
    if (!(n > 0)) return [];
    const rs = await this.s.execute(this.pendingForQ, [recipientId, n], { idempotent: true, fetchSize: n });
    return rs.rows.map(fromHistory);
  }

  /** One single-partition delete, timestamped after every pending row it removes (see the file comment). */
  async markDelivered(recipientId: string, messageIds: string[]): Promise<void> {
    const ids = [...new Set(messageIds)];
    if (ids.length === 0) return;
    let ts = Date.now() * 1000;
    for (const id of ids) if (isId(id)) ts = Math.max(ts, idTime(id) * 1000 + 1);
    for (let i = 0; i < ids.length; i += 500) {
      await this.s.execute(this.deliveredQ, [ts, recipientId, ids.slice(i, i + 500)], { idempotent: true });
    }
  }

  async setReadMarker(matchId: string, userId: string, messageId: string): Promise<void> {
    await this.s.execute(this.markerQ, [matchId, userId, messageId], { idempotent: true });
  }

  async readMarker(matchId: string, userId: string): Promise<string | undefined> {
    const r = (await this.s.execute(this.markerGetQ, [matchId, userId], { idempotent: true })).first();
    return (r?.message_id as string | null | undefined) ?? undefined;
  }

  /** Refuses new appends; the session's close() then waits for those in flight. */
  close(): void {
    this.closed = true;
  }
}
