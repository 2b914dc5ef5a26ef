import fs from 'node:fs';
import { KindredError } from '../../errors.js';

/**
 * Power-loss durability for a WAL-mode connection running `synchronous = NORMAL`.
 *
 * Commits on that connection append frames to the `-wal` file without fsync.
 * This class owns a second file descriptor on the same `-wal` file and runs
 * `fs.fsync` on it asynchronously (libuv threadpool: the event loop never waits
 * for the disk). `durable()` is called right after a commit and resolves once an
 * fsync that *started after* that commit has completed; since fsync flushes the
 * file's dirty pages whatever descriptor wrote them, that makes the commit (and
 * every commit before it, as the WAL is append-only) durable.
 *
 * One fsync is in flight at a time. Commits that land while one runs wait for
 * the next, which then covers all of them: group commit across every writer of
 * the connection.
 *
 * After a failed fsync the page cache state of the file is unknown (Linux may
 * drop the dirty pages and report success next time), so the syncer latches the
 * failure: every later durable() rejects with UNAVAILABLE until restart.
 */
export class WalSync {
  private fd: number | undefined;
  private waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private inFlight = false;
  private failed: Error | undefined;
  private idleWaiters: Array<() => void> = [];
  /** run when the running fsync completes, before the next one starts */
  private beforeNext: Array<() => void> = [];
  private runningHooks = false;
  /** fsyncs completed so far (for metrics and tests). */
  syncs = 0;

  /** `walPath` must exist (it does once the connection is in WAL mode); `enabled: false` skips fsync (tests, tmpfs). */
  constructor(walPath: string, private readonly enabled: boolean) {
    if (enabled) this.fd = fs.openSync(walPath, 'r');
  }

  /** Resolves once everything committed before this call is on stable storage. */
  durable(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (!this.enabled) return Promise.resolve();
    if (this.fd === undefined) return Promise.reject(new KindredError('UNAVAILABLE', 'storage is closed'));
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.kick();
    });
  }

  /** Whether an fsync is running now: a commit made meanwhile waits for the one after it. */
  get syncing(): boolean {
    return this.inFlight;
  }

  /**
   * Runs `fn` once the running fsync completes and before the next one starts (at once if
   * none is running), so what `fn` commits is covered by that next fsync. A writer that
   * would otherwise commit now, only to wait for that same next fsync, can instead gather
   * more into one commit at no cost in latency (group commit, messages.ts).
   */
  whenSyncDone(fn: () => void): void {
    if (!this.inFlight) fn();
    else this.beforeNext.push(fn);
  }

  /** Resolves when no fsync is running or waiting. */
  idle(): Promise<void> {
    if (!this.inFlight && this.waiting.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Waits for outstanding fsyncs, then closes the descriptor. */
  async close(): Promise<void> {
    // Re-check after each wait: a commit may have queued another fsync before this continuation ran.
    while (this.inFlight || this.waiting.length > 0) await this.idle();
    if (this.fd !== undefined) {
      const fd = this.fd;
      this.fd = undefined;
      fs.closeSync(fd);
    }
  }

  private kick(): void {
    if (this.inFlight || this.runningHooks || this.waiting.length === 0 || this.fd === undefined) return;
    const batch = this.waiting;
    this.waiting = [];
    this.inFlight = true;
    fs.fsync(this.fd, (err) => {
      this.inFlight = false;
      if (err && !this.failed) {
        this.failed = new KindredError('UNAVAILABLE', `could not sync the write-ahead log: ${err.code ?? err.message}`);
      }
      if (this.failed) {
        for (const w of batch) w.reject(this.failed);
        for (const w of this.waiting.splice(0)) w.reject(this.failed);
      } else {
        this.syncs++;
        for (const w of batch) w.resolve();
      }
      // Writers that held back while this fsync ran commit now (after a failure their
      // durable() rejects at once); the next fsync then covers all of them.
      this.runningHooks = true;
      for (const hook of this.beforeNext.splice(0)) {
        try {
          hook();
        } catch {
          /* a writer's failure is its own (it rejects its callers); syncing goes on */
        }
      }
      this.runningHooks = false;
      if (!this.failed) this.kick();
      if (!this.inFlight && this.waiting.length === 0) {
        for (const wake of this.idleWaiters.splice(0)) wake();
      }
    });
  }
}
