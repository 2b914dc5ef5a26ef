import { KindredError } from '../../errors.js';
import type { Swipe, SwipeKind, SwipeStore } from '../types.js';
import { CAS_ATTEMPTS, backoff, isRetryable, isUnknownOutcome, toNum, type Row, type Session } from './client.js';

/** swipedAmong asks for at most this many targets per query (`target_id IN ?`). */
const IN_CHUNK = 100;

function isLike(kind: SwipeKind): boolean {
  return kind === 'like' || kind === 'superlike';
}

/**
 * swipes ((swiper_id), target_id) answers "have I swiped them" (record's idempotency check
 * and swipedAmong) in one partition per swiper; likes_received ((target_id), swiper_id)
 * answers "did they like me", the match check. Both are written USING TTL (90 days by
 * default: the match decision only needs recent likes, and raw swipes are most of the
 * data) and compacted by time window, so expired swipes leave in whole SSTables.
 * A swiper's partition holds at most TTL x swipes-a-day rows (9,000 at 100 a day).
 *
 * record() is `INSERT ... IF NOT EXISTS USING TTL` (a lightweight transaction): exactly
 * one of any number of concurrent swipes on a pair is first, and the rest get the first
 * one back. Only the first writes the like row; a repeat of a like rewrites it (the same
 * values), which repairs a crash between the two writes.
 */
export class CassandraSwipeStore implements SwipeStore {
  private readonly insertQ: string;
  private readonly getQ: string;
  private readonly likeInsertQ: string;
  private readonly likeQ: string;
  private readonly amongQ: string;
  private readonly byQ: string;
  private readonly likersQ: string;
  private readonly likeScanQ: string;

  constructor(
    private readonly s: Session,
    ks: string,
    private readonly ttlSeconds: number,
  ) {
    this.insertQ = `INSERT INTO ${ks}.swipes (swiper_id, target_id, kind, swiped_at) VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?`;
    this.getQ = `SELECT swiper_id, target_id, kind, swiped_at FROM ${ks}.swipes WHERE swiper_id = ? AND target_id = ?`;
    this.likeInsertQ = `INSERT INTO ${ks}.likes_received (target_id, swiper_id, kind, at) VALUES (?, ?, ?, ?) USING TTL ?`;
    this.likeQ = `SELECT target_id, swiper_id, kind, at FROM ${ks}.likes_received WHERE target_id = ? AND swiper_id = ?`;
    this.amongQ = `SELECT target_id FROM ${ks}.swipes WHERE swiper_id = ? AND target_id IN ?`;
    this.byQ = `SELECT target_id FROM ${ks}.swipes WHERE swiper_id = ?`;
    this.likersQ = `SELECT swiper_id, kind FROM ${ks}.likes_received WHERE target_id = ?`;
    this.likeScanQ = `SELECT target_id FROM ${ks}.likes_received`;
  }

  async record(swipe: Swipe): Promise<{ first: boolean; existing?: Swipe }> {
    const stored = await this.claim(swipe);
    const first = stored.kind === swipe.kind && stored.at === swipe.at;
    if (isLike(stored.kind)) {
      await this.s.execute(this.likeInsertQ, [stored.targetId, stored.swiperId, stored.kind, stored.at, this.ttlSeconds], {
        idempotent: true,
      });
    }
    return first ? { first: true } : { first: false, existing: stored };
  }

  /**
   * The swipe stored for the pair after this call: ours if the insert applied, else the one
   * that got there first. After an unknown outcome a SERIAL read tells; a stored swipe equal
   * to ours (same kind and time) is taken as ours, which is what a retry of it is.
   */
  private async claim(swipe: Swipe): Promise<Swipe> {
    if (!Number.isSafeInteger(swipe.at)) throw new KindredError('INVALID_ARGUMENT', 'swipe.at must be an integer');
    for (let attempt = 0; ; attempt++) {
      try {
        const rs = await this.s.execute(this.insertQ, [swipe.swiperId, swipe.targetId, swipe.kind, swipe.at, this.ttlSeconds]);
        if (rs.wasApplied()) return { ...swipe };
        return toSwipe(rs.first());
      } catch (err) {
        if (attempt + 1 >= CAS_ATTEMPTS || !(isUnknownOutcome(err) || isRetryable(err))) throw err;
        const current = await this.s
          .execute(this.getQ, [swipe.swiperId, swipe.targetId], { serial: true, idempotent: true })
          .catch(() => undefined);
        const r = current?.first();
        if (r) return toSwipe(r);
        await backoff(attempt);
      }
    }
  }

  async likeFrom(swiperId: string, targetId: string): Promise<Swipe | undefined> {
    const r = (await this.s.execute(this.likeQ, [targetId, swiperId], { idempotent: true })).first();
    return r ? { swiperId: r.swiper_id, targetId: r.target_id, kind: r.kind as SwipeKind, at: toNum(r.at) } : undefined;
  }

  async swipedBy(swiperId: string): Promise<string[]> {
    return (await this.s.all(this.byQ, [swiperId], { fetchSize: 5000 })).map((r) => r.target_id as string);
  }

  /** One likes_received partition, filtered here (kind is not a key column). */
  async superLikersOf(targetId: string): Promise<string[]> {
    const rows = await this.s.all(this.likersQ, [targetId], { fetchSize: 5000 });
    return rows.filter((r) => r.kind === 'superlike').map((r) => r.swiper_id as string);
  }

  /**
   * A full scan of likes_received: rows arrive grouped by partition (target), so counts are
   * runs of equal target ids; a run cut by a page boundary is carried into the next page.
   */
  async *scanLikeCounts(pageSize: number): AsyncIterable<Array<{ userId: string; likes: number }>> {
    let current: { userId: string; likes: number } | undefined;
    for await (const rows of this.s.pages(this.likeScanQ, [], pageSize)) {
      const out: Array<{ userId: string; likes: number }> = [];
      for (const r of rows) {
        const id = r.target_id as string;
        if (current && current.userId === id) current.likes++;
        else {
          if (current) out.push(current);
          current = { userId: id, likes: 1 };
        }
      }
      if (out.length > 0) yield out;
    }
    if (current) yield [current];
  }

  async swipedAmong(swiperId: string, targetIds: string[]): Promise<Set<string>> {
    const unique = [...new Set(targetIds)];
    const out = new Set<string>();
    const chunks: string[][] = [];
    for (let i = 0; i < unique.length; i += IN_CHUNK) chunks.push(unique.slice(i, i + IN_CHUNK));
    const results = await Promise.all(chunks.map((ids) => this.s.all(this.amongQ, [swiperId, ids])));
    for (const rows of results) for (const r of rows) out.add(r.target_id as string);
    return out;
  }
}

function toSwipe(r: Row): Swipe {
  return { swiperId: r.swiper_id, targetId: r.target_id, kind: r.kind as SwipeKind, at: toNum(r.swiped_at) };
}
