import type { Match, MatchStore } from '../types.js';
import { read, write, type SqliteContext } from './common.js';

interface MatchRow {
  match_id: string;
  user_a: string;
  user_b: string;
  created_at: number;
  ended_at: number | null;
  ended_by: string | null;
  first_bucket: number;
}

function toMatch(r: MatchRow): Match {
  return {
    matchId: r.match_id,
    users: [r.user_a, r.user_b],
    createdAt: r.created_at,
    endedAt: r.ended_at,
    endedBy: r.ended_by,
    firstBucket: r.first_bucket,
  };
}

function sortPair(a: string, b: string): [string, string] {
  return a <= b ? [a, b] : [b, a];
}

/**
 * Exactly one match per pair: `matches_by_pair` (sorted pair as key) is claimed
 * with INSERT OR IGNORE inside an IMMEDIATE transaction and read back, the way
 * Cassandra does it with `INSERT ... IF NOT EXISTS`. Only the winner writes the
 * match row and both users' `matches_by_user` entries.
 */
export class SqliteMatchStore implements MatchStore {
  private readonly claimPair;
  private readonly pairStmt;
  private readonly insertMatch;
  private readonly insertByUser;
  private readonly getStmt;
  private readonly listStmt;
  private readonly endStmt;
  private readonly createTx;
  private readonly endTx;

  constructor(private readonly ctx: SqliteContext) {
    const { db } = ctx;
    this.claimPair = db.prepare('INSERT OR IGNORE INTO matches_by_pair (user_a, user_b, match_id) VALUES (?, ?, ?)');
    this.pairStmt = db.prepare(
      'SELECT m.* FROM matches_by_pair p JOIN matches m ON m.match_id = p.match_id WHERE p.user_a = ? AND p.user_b = ?',
    );
    this.insertMatch = db.prepare(`INSERT INTO matches (match_id, user_a, user_b, created_at, ended_at, ended_by, first_bucket)
      VALUES (@match_id, @user_a, @user_b, @created_at, @ended_at, @ended_by, @first_bucket)`);
    this.insertByUser = db.prepare('INSERT OR IGNORE INTO matches_by_user (user_id, match_id, other_id) VALUES (?, ?, ?)');
    this.getStmt = db.prepare('SELECT * FROM matches WHERE match_id = ?');
    this.listStmt = db.prepare(
      'SELECT m.* FROM matches_by_user u JOIN matches m ON m.match_id = u.match_id WHERE u.user_id = ? ORDER BY u.match_id DESC',
    );
    this.endStmt = db.prepare('UPDATE matches SET ended_at = ?, ended_by = ? WHERE match_id = ? AND ended_at IS NULL');

    this.createTx = db.transaction((m: Match): { created: boolean; match: Match } => {
      const [a, b] = sortPair(m.users[0], m.users[1]);
      if (this.claimPair.run(a, b, m.matchId).changes === 0) {
        return { created: false, match: toMatch(this.pairStmt.get(a, b) as MatchRow) };
      }
      const row: MatchRow = {
        match_id: m.matchId,
        user_a: a,
        user_b: b,
        created_at: m.createdAt,
        ended_at: m.endedAt,
        ended_by: m.endedBy,
        first_bucket: m.firstBucket,
      };
      this.insertMatch.run(row);
      this.insertByUser.run(a, m.matchId, b);
      this.insertByUser.run(b, m.matchId, a);
      return { created: true, match: toMatch(row) };
    });

    // The first end wins: a later unmatch or block of an ended match leaves it as it was.
    this.endTx = db.transaction((matchId: string, by: string, at: number): Match | undefined => {
      this.endStmt.run(at, by, matchId);
      const r = this.getStmt.get(matchId) as MatchRow | undefined;
      return r && toMatch(r);
    });
  }

  createIfAbsent(match: Match): Promise<{ created: boolean; match: Match }> {
    return write(this.ctx, () => this.createTx.immediate(match));
  }

  get(matchId: string): Promise<Match | undefined> {
    return read(() => {
      const r = this.getStmt.get(matchId) as MatchRow | undefined;
      return r && toMatch(r);
    });
  }

  byPair(a: string, b: string): Promise<Match | undefined> {
    const [x, y] = sortPair(a, b);
    return read(() => {
      const r = this.pairStmt.get(x, y) as MatchRow | undefined;
      return r && toMatch(r);
    });
  }

  /** Newest first by match id (time-ordered), the clustering order of matches_by_user. */
  listForUser(userId: string): Promise<Match[]> {
    return read(() => (this.listStmt.all(userId) as MatchRow[]).map(toMatch));
  }

  end(matchId: string, by: string, at: number): Promise<Match | undefined> {
    return write(this.ctx, () => this.endTx.immediate(matchId, by, at));
  }
}
