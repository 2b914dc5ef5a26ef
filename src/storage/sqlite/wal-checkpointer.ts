/**
 * Checkpoints the write-ahead logs of the book-store service databases (store-db.ts) on one
 * worker thread, instead of on the event loop.
 *
 * By default SQLite checkpoints inside the COMMIT that pushes the WAL past 1,000 pages: that
 * COMMIT copies the pages into the database file and (synchronous = NORMAL) fsyncs the WAL and
 * the database, all on the calling thread. Under the orders bench (four to six small write
 * transactions per order) that blocked the server's event loop on the disk for tens of
 * milliseconds several times a second. The service connections therefore run with
 * `wal_autocheckpoint = 0`, and this thread, with its own connection to each file, runs
 * `PRAGMA wal_checkpoint(PASSIVE)` every `intervalMs`. PASSIVE never waits for the writer and
 * never blocks it (see RESTART_AT_FRAMES for how the WAL is kept bounded). Durability is unchanged: a commit is still durable once its WAL frames are fsynced
 * (wal-sync.ts), and a checkpoint only copies frames that are already durable and syncs the
 * database before the WAL may be reused (SQLite's own rule, whichever connection checkpoints).
 *
 * The worker is evaluated from a string (it only needs better-sqlite3), so it also runs when
 * this module is loaded from src/ under tsx. It is unref'd: it never keeps a process alive.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqliteModule);
const dbs = new Map();
setInterval(() => {
  for (const [file, db] of dbs) {
    try {
      const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
      if (r && r.log >= workerData.restartFrames) db.pragma('wal_checkpoint(RESTART)');
    } catch (err) {
      parentPort.postMessage({ op: 'error', file, message: String((err && err.message) || err) });
    }
  }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m.op === 'add') {
    try {
      const db = new Database(m.file, { fileMustExist: true });
      db.pragma('busy_timeout = 1000');
      db.pragma('wal_autocheckpoint = 0');
      dbs.set(m.file, db);
    } catch (err) {
      parentPort.postMessage({ op: 'error', file: m.file, message: String((err && err.message) || err) });
    }
  } else if (m.op === 'remove') {
    const db = dbs.get(m.file);
    dbs.delete(m.file);
    try {
      if (db) db.close();
    } catch {}
    parentPort.postMessage({ op: 'removed', id: m.id });
  }
});
`;

export const CHECKPOINT_INTERVAL_MS = 100;
/**
 * A PASSIVE checkpoint cannot let the WAL be rewound while the writer keeps appending (it
 * never catches up with the last frame), so once the WAL holds this many frames (~32 MiB) the
 * thread runs a RESTART checkpoint: it waits for the writer's current transaction, copies the
 * few frames the PASSIVE ones left, syncs, and the next transaction starts the WAL over. The
 * writer waits for that (one fsync of the database) about once a second at full load, where
 * an automatic checkpoint made it copy 1,000 pages and fsync twice several times a second.
 */
export const RESTART_AT_FRAMES = 8000;

type Message = { op: 'removed'; id: number } | { op: 'error'; file: string; message: string };

class Checkpointer {
  private readonly worker: Worker;
  private readonly removals = new Map<number, () => void>();
  private nextId = 1;
  /** the last error the worker reported per file (a failing checkpoint only lets the WAL grow) */
  readonly errors = new Map<string, string>();

  constructor(intervalMs: number) {
    const sqliteModule = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { sqliteModule, intervalMs, restartFrames: RESTART_AT_FRAMES } });
    this.worker.on('message', (m: Message) => {
      if (m.op === 'removed') {
        this.removals.get(m.id)?.();
        this.removals.delete(m.id);
        if (this.removals.size === 0) this.worker.unref();
      } else this.errors.set(m.file, m.message);
    });
    // If the thread dies, commits still work: the WAL just grows until the next start checkpoints it.
    this.worker.on('error', (err) => {
      for (const done of this.removals.values()) done();
      this.removals.clear();
      shared = undefined;
      this.errors.set('*', String(err));
    });
    // After the listeners: adding one refs the worker again.
    this.worker.unref();
  }

  add(file: string): void {
    this.worker.postMessage({ op: 'add', file });
  }

  /** Resolves once the worker closed its connection to `file` (or after `timeoutMs`). */
  remove(file: string, timeoutMs = 5000): Promise<void> {
    const id = this.nextId++;
    // Referenced while a removal is pending, so a closing process waits for the answer.
    this.worker.ref();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.removals.delete(id);
        if (this.removals.size === 0) this.worker.unref();
        resolve();
      }, timeoutMs);
      this.removals.set(id, () => {
        clearTimeout(timer);
        resolve();
      });
      this.worker.postMessage({ op: 'remove', file, id });
    });
  }
}

let shared: Checkpointer | undefined;

/** The process's checkpointer thread, started on first use. */
export function walCheckpointer(): Checkpointer {
  shared ??= new Checkpointer(CHECKPOINT_INTERVAL_MS);
  return shared;
}
