import { KindredError } from '../../errors.js';
import type { Match, MatchStore } from '../types.js';
import { CAS_ATTEMPTS, backoff, isRetryable, isUnknownOutcome, toNum, toNumOrNull, type Row, type Session } from './client.js';

function sortPair(a: string, b: string): [string, string] {
  return a <= b ? [a, b] : [b, a];
}

function toMatch(r: Row): Match {
  return {
    matchId: r.match_id,
    users: [r.user_a, r.user_b],
    createdAt: toNum(r.created_at),
    endedAt: toNumOrNull(r.ended_at),
    endedBy: (r.ended_by as string | null) ?? null,
    firstBucket: r.first_bucket,
  };
}

/** How many matches listForUser loads at once. */
const LOAD_CONCURRENCY = 32;

/**
 * Exactly one match per pair: matches_by_pair ((user_a, user_b)) is claimed with
 * `INSERT ... IF NOT EXISTS` (a lightweight transaction, LOCAL_SERIAL). Its answer names
 * the winner: either our insert applied, or the row that was there is returned. After a
 * timeout (outcome unknown) the pair is read back with SERIAL consistency, which also
 * finishes any Paxos round in progress, and our match id there means we won.
 *
 * The winner writes the match row and both users' matches_by_user rows in one logged
 * batch. A loser that finds no match row yet (the winner is between its two steps, or
 * crashed there) writes the same rows from the pair row: they hold only the match's
 * immutable columns, so the batch is idempotent and never touches an end.
 *
 * end() is `UPDATE matches ... IF ended_at = null`: the first end wins.
 */
export class CassandraMatchStore implements MatchStore {
  private readonly claimQ: string;
  private readonly pairQ: string;
  private readonly insertQ: string;
  private readonly byUserInsertQ: string;
  private readonly getQ: string;
  private readonly listQ: string;
  private readonly endQ: string;
  private readonly setEndQ: string;

  constructor(
    private readonly s: Session,
    ks: string,
  ) {
    this.claimQ = `INSERT INTO ${ks}.matches_by_pair (user_a, user_b, match_id, created_at, first_bucket) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`;
    this.pairQ = `SELECT user_a, user_b, match_id, created_at, first_bucket FROM ${ks}.matches_by_pair WHERE user_a = ? AND user_b = ?`;
    this.insertQ = `INSERT INTO ${ks}.matches (match_id, user_a, user_b, created_at, first_bucket) VALUES (?, ?, ?, ?, ?)`;
    this.byUserInsertQ = `INSERT INTO ${ks}.matches_by_user (user_id, match_id, other_id) VALUES (?, ?, ?)`;
    this.getQ = `SELECT match_id, user_a, user_b, created_at, ended_at, ended_by, first_bucket FROM ${ks}.matches WHERE match_id = ?`;
    this.listQ = `SELECT match_id FROM ${ks}.matches_by_user WHERE user_id = ?`;
    this.endQ = `UPDATE ${ks}.matches SET ended_at = ?, ended_by = ? WHERE match_id = ? IF ended_at = null`;
    this.setEndQ = `UPDATE ${ks}.matches SET ended_at = ?, ended_by = ? WHERE match_id = ?`;
  }

  async createIfAbsent(m: Match): Promise<{ created: boolean; match: Match }> {
    const [a, b] = sortPair(m.users[0], m.users[1]);
    const claimed = await this.claim(a, b, m);
    if (claimed.match_id === m.matchId) {
      const match: Match = { ...m, users: [a, b] };
      await this.writeRows(match);
      if (m.endedAt !== null) {
        // Not a path the app takes (matches start open), but kept equal to the embedded backend.
        await this.s.execute(this.setEndQ, [m.endedAt, m.endedBy, m.matchId], { idempotent: true });
      }
      return { created: true, match };
    }
    const stored = await this.get(claimed.match_id as string);
    if (stored) return { created: false, match: stored };
    const fromPair: Match = {
      matchId: claimed.match_id,
      users: [a, b],
      createdAt: toNum(claimed.created_at),
      endedAt: null,
      endedBy: null,
      firstBucket: claimed.first_bucket,
    };
    await this.writeRows(fromPair);
    return { created: false, match: (await this.get(fromPair.matchId)) ?? fromPair };
  }

  /** The pair row after our claim: ours if the insert applied, the earlier one otherwise. */
  private async claim(a: string, b: string, m: Match): Promise<Row> {
    for (let attempt = 0; ; attempt++) {
      try {
        const rs = await this.s.execute(this.claimQ, [a, b, m.matchId, m.createdAt, m.firstBucket]);
        if (rs.wasApplied()) return { match_id: m.matchId } as unknown as Row;
        return rs.first();
      } catch (err) {
        if (attempt + 1 >= CAS_ATTEMPTS || !(isUnknownOutcome(err) || isRetryable(err))) throw err;
        const current = await this.s.execute(this.pairQ, [a, b], { serial: true, idempotent: true }).catch(() => undefined);
        const r = current?.first();
        if (r) return r;
        await backoff(attempt);
      }
    }
  }

  private writeRows(m: Match): Promise<unknown> {
    const [a, b] = m.users;
    return this.s.batch(
      [
        { query: this.insertQ, params: [m.matchId, a, b, m.createdAt, m.firstBucket] },
        { query: this.byUserInsertQ, params: [a, m.matchId, b] },
        { query: this.byUserInsertQ, params: [b, m.matchId, a] },
      ],
      { logged: true, idempotent: true },
    );
  }

  async get(matchId: string): Promise<Match | undefined> {
    const r = (await this.s.execute(this.getQ, [matchId], { idempotent: true })).first();
    return r && r.user_a !== null ? toMatch(r) : undefined;
  }

  async byPair(a: string, b: string): Promise<Match | undefined> {
    const [x, y] = sortPair(a, b);
    const pair = (await this.s.execute(this.pairQ, [x, y], { idempotent: true })).first();
    if (!pair) return undefined;
    const stored = await this.get(pair.match_id as string);
    if (stored) return stored;
    // The winner has not written the match row yet (or crashed before): complete it.
    const m: Match = { matchId: pair.match_id, users: [x, y], createdAt: toNum(pair.created_at), endedAt: null, endedBy: null, firstBucket: pair.first_bucket };
    await this.writeRows(m);
    return (await this.get(m.matchId)) ?? m;
  }

  /** Newest first by match id (time-ordered), the clustering order of matches_by_user. */
  async listForUser(userId: string): Promise<Match[]> {
    const ids = (await this.s.all(this.listQ, [userId])).map((r) => r.match_id as string);
    const out: Array<Match | undefined> = [];
    for (let i = 0; i < ids.length; i += LOAD_CONCURRENCY) {
      out.push(...(await Promise.all(ids.slice(i, i + LOAD_CONCURRENCY).map((id) => this.get(id)))));
    }
    return out.filter((m): m is Match => m !== undefined);
  }

  async end(matchId: string, by: string, at: number): Promise<Match | undefined> {
    const current = await this.get(matchId);
    if (!current || current.endedAt !== null) return current;
    for (let attempt = 0; ; attempt++) {
      try {
        const rs = await this.s.execute(this.endQ, [at, by, matchId]);
        if (rs.wasApplied()) return { ...current, endedAt: at, endedBy: by };
      } catch (err) {
        if (attempt + 1 >= CAS_ATTEMPTS || !(isUnknownOutcome(err) || isRetryable(err))) throw err;
      }
      // Someone else's end got in first, or ours may have applied: read the outcome back.
      const r = (await this.s.execute(this.getQ, [matchId], { serial: true, idempotent: true })).first();
      if (r && r.ended_at !== null) return toMatch(r);
      if (attempt + 1 >= CAS_ATTEMPTS) throw new KindredError('UNAVAILABLE', 'matches: could not end the match, retry');
      await backoff(attempt);
    }
  }
}
