import type { BlockStore, Report, ReportStore } from '../types.js';
import { read, write, type SqliteContext } from './common.js';

/** Blocks are written to `blocks` (by blocker) and `blocked_by` (by blocked) together, so "either way" is two key lookups. */
export class SqliteBlockStore implements BlockStore {
  private readonly insertBlock;
  private readonly insertBlockedBy;
  private readonly blockedStmt;
  private readonly blockersStmt;
  private readonly blockTx;

  constructor(private readonly ctx: SqliteContext) {
    const { db } = ctx;
    this.insertBlock = db.prepare('INSERT OR IGNORE INTO blocks (blocker_id, blocked_id, at) VALUES (?, ?, ?)');
    this.insertBlockedBy = db.prepare('INSERT OR IGNORE INTO blocked_by (blocked_id, blocker_id, at) VALUES (?, ?, ?)');
    this.blockedStmt = db.prepare('SELECT blocked_id FROM blocks WHERE blocker_id = ?').pluck();
    this.blockersStmt = db.prepare('SELECT blocker_id FROM blocked_by WHERE blocked_id = ?').pluck();
    this.blockTx = db.transaction((blockerId: string, blockedId: string, at: number) => {
      this.insertBlock.run(blockerId, blockedId, at);
      this.insertBlockedBy.run(blockedId, blockerId, at);
    });
  }

  block(blockerId: string, blockedId: string, at: number): Promise<void> {
    return write(this.ctx, () => this.blockTx.immediate(blockerId, blockedId, at));
  }

  blockedBy(blockerId: string): Promise<string[]> {
    return read(() => this.blockedStmt.all(blockerId) as string[]);
  }

  blockedEitherWay(userId: string): Promise<Set<string>> {
    return read(() => new Set([...(this.blockedStmt.all(userId) as string[]), ...(this.blockersStmt.all(userId) as string[])]));
  }
}

interface ReportRow {
  reported_id: string;
  report_id: string;
  reporter_id: string;
  reason: string;
  details: string;
  created_at: number;
}

export class SqliteReportStore implements ReportStore {
  private readonly insert;
  private readonly listStmt;

  constructor(private readonly ctx: SqliteContext) {
    const { db } = ctx;
    this.insert = db.prepare(`INSERT OR IGNORE INTO reports_by_reported (reported_id, report_id, reporter_id, reason, details, created_at)
      VALUES (?, ?, ?, ?, ?, ?)`);
    this.listStmt = db.prepare('SELECT * FROM reports_by_reported WHERE reported_id = ? ORDER BY report_id');
  }

  add(r: Report): Promise<void> {
    return write(this.ctx, () => {
      this.insert.run(r.reportedId, r.reportId, r.reporterId, r.reason, r.details, r.createdAt);
    });
  }

  /** Oldest first (report ids are time-ordered). */
  listForReported(reportedId: string): Promise<Report[]> {
    return read(() =>
      (this.listStmt.all(reportedId) as ReportRow[]).map((r) => ({
        reportId: r.report_id,
        reporterId: r.reporter_id,
        reportedId: r.reported_id,
        reason: r.reason,
        details: r.details,
        createdAt: r.created_at,
      })),
    );
  }
}
