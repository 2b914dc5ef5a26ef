import type { BlockStore, Report, ReportStore } from '../types.js';
import { toNum, type Session } from './client.js';

/** blocks ((blocker_id), blocked_id) and blocked_by ((blocked_id), blocker_id), written in one logged batch: "either way" is two partition reads. */
export class CassandraBlockStore implements BlockStore {
  private readonly blockQ: string;
  private readonly blockedByQ: string;
  private readonly listBlockedQ: string;
  private readonly listBlockersQ: string;

  constructor(
    private readonly s: Session,
    ks: string,
  ) {
    this.blockQ = `INSERT INTO ${ks}.blocks (blocker_id, blocked_id, at) VALUES (?, ?, ?)`;
    this.blockedByQ = `INSERT INTO ${ks}.blocked_by (blocked_id, blocker_id, at) VALUES (?, ?, ?)`;
    this.listBlockedQ = `SELECT blocked_id FROM ${ks}.blocks WHERE blocker_id = ?`;
    this.listBlockersQ = `SELECT blocker_id FROM ${ks}.blocked_by WHERE blocked_id = ?`;
  }

  async block(blockerId: string, blockedId: string, at: number): Promise<void> {
    await this.s.batch(
      [
        { query: this.blockQ, params: [blockerId, blockedId, at] },
        { query: this.blockedByQ, params: [blockedId, blockerId, at] },
      ],
      { logged: true, idempotent: true },
    );
  }

  async blockedBy(blockerId: string): Promise<string[]> {
    return (await this.s.all(this.listBlockedQ, [blockerId])).map((r) => r.blocked_id as string);
  }

  async blockedEitherWay(userId: string): Promise<Set<string>> {
    const [blocked, blockers] = await Promise.all([this.s.all(this.listBlockedQ, [userId]), this.s.all(this.listBlockersQ, [userId])]);
    return new Set([...blocked.map((r) => r.blocked_id as string), ...blockers.map((r) => r.blocker_id as string)]);
  }
}

/** reports_by_reported ((reported_id), report_id): a re-sent report (same id) overwrites itself. */
export class CassandraReportStore implements ReportStore {
  private readonly insertQ: string;
  private readonly listQ: string;

  constructor(
    private readonly s: Session,
    ks: string,
  ) {
    this.insertQ = `INSERT INTO ${ks}.reports_by_reported (reported_id, report_id, reporter_id, reason, details, created_at)
      VALUES (?, ?, ?, ?, ?, ?)`;
    this.listQ = `SELECT reported_id, report_id, reporter_id, reason, details, created_at FROM ${ks}.reports_by_reported WHERE reported_id = ?`;
  }

  async add(r: Report): Promise<void> {
    await this.s.execute(this.insertQ, [r.reportedId, r.reportId, r.reporterId, r.reason, r.details, r.createdAt], { idempotent: true });
  }

  /** Oldest first (report ids are time-ordered). */
  async listForReported(reportedId: string): Promise<Report[]> {
    return (await this.s.all(this.listQ, [reportedId])).map((r) => ({
      reportId: r.report_id,
      reporterId: r.reporter_id,
      reportedId: r.reported_id,
      reason: r.reason,
      details: r.details,
      createdAt: toNum(r.created_at),
    }));
  }
}
