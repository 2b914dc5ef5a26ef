import type { Swipe, SwipeKind, SwipeStore } from '../types.js';
import { jsonList, read, write, type SqliteContext } from './common.js';

interface SwipeRow {
  swiper_id: string;
  target_id: string;
  kind: SwipeKind;
  swiped_at: number;
}

function toSwipe(r: SwipeRow): Swipe {
  return { swiperId: r.swiper_id, targetId: r.target_id, kind: r.kind, at: r.swiped_at };
}

/**
 * `swipes` (by swiper) answers "have I swiped them"; `likes_received` (by target)
 * answers "did they like me", which is what the match check asks. A swipe is
 * written once: INSERT OR IGNORE keeps the first (IF NOT EXISTS on Cassandra),
 * and the like row is only written by the call that inserted the swipe, in the
 * same transaction.
 */
export class SqliteSwipeStore implements SwipeStore {
  private readonly insertSwipe;
  private readonly getSwipe;
  private readonly insertLike;
  private readonly likeStmt;
  private readonly amongStmt;
  private readonly recordTx;
  private readonly byStmt;
  private readonly superLikersStmt;
  private readonly likeCountsStmt;

  constructor(private readonly ctx: SqliteContext) {
    const { db } = ctx;
    this.insertSwipe = db.prepare('INSERT OR IGNORE INTO swipes (swiper_id, target_id, kind, swiped_at) VALUES (?, ?, ?, ?)');
    this.getSwipe = db.prepare('SELECT * FROM swipes WHERE swiper_id = ? AND target_id = ?');
    this.insertLike = db.prepare('INSERT OR IGNORE INTO likes_received (target_id, swiper_id, kind, at) VALUES (?, ?, ?, ?)');
    this.likeStmt = db.prepare('SELECT target_id, swiper_id, kind, at AS swiped_at FROM likes_received WHERE target_id = ? AND swiper_id = ?');
    this.amongStmt = db
      .prepare('SELECT target_id FROM swipes WHERE swiper_id = ? AND target_id IN (SELECT value FROM json_each(?))')
      .pluck();
    this.byStmt = db.prepare('SELECT target_id FROM swipes WHERE swiper_id = ?').pluck();
    this.superLikersStmt = db.prepare("SELECT swiper_id FROM likes_received WHERE target_id = ? AND kind = 'superlike'").pluck();
    this.likeCountsStmt = db.prepare('SELECT target_id, count(*) AS likes FROM likes_received WHERE target_id > ? GROUP BY target_id ORDER BY target_id LIMIT ?');
    this.recordTx = db.transaction((s: Swipe): { first: boolean; existing?: Swipe } => {
      if (this.insertSwipe.run(s.swiperId, s.targetId, s.kind, s.at).changes === 0) {
        const existing = this.getSwipe.get(s.swiperId, s.targetId) as SwipeRow;
        return { first: false, existing: toSwipe(existing) };
      }
      if (s.kind === 'like' || s.kind === 'superlike') this.insertLike.run(s.targetId, s.swiperId, s.kind, s.at);
      return { first: true };
    });
  }

  record(swipe: Swipe): Promise<{ first: boolean; existing?: Swipe }> {
    return write(this.ctx, () => this.recordTx.immediate(swipe));
  }

  likeFrom(swiperId: string, targetId: string): Promise<Swipe | undefined> {
    return read(() => {
      const r = this.likeStmt.get(targetId, swiperId) as SwipeRow | undefined;
      return r && toSwipe(r);
    });
  }

  swipedBy(swiperId: string): Promise<string[]> {
    return read(() => this.byStmt.all(swiperId) as string[]);
  }

  superLikersOf(targetId: string): Promise<string[]> {
    return read(() => this.superLikersStmt.all(targetId) as string[]);
  }

  async *scanLikeCounts(pageSize: number): AsyncIterable<Array<{ userId: string; likes: number }>> {
    let after = '';
    for (;;) {
      const rows = await read(() => this.likeCountsStmt.all(after, pageSize) as Array<{ target_id: string; likes: number }>);
      if (rows.length === 0) return;
      yield rows.map((r) => ({ userId: r.target_id, likes: r.likes }));
      after = rows[rows.length - 1]!.target_id;
    }
  }

  swipedAmong(swiperId: string, targetIds: string[]): Promise<Set<string>> {
    if (targetIds.length === 0) return Promise.resolve(new Set());
    return read(() => new Set(this.amongStmt.all(swiperId, jsonList(targetIds)) as string[]));
  }
}
