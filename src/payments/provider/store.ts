/**
 * The provider stand-in's persisted state (one SQLite file), so a restarted provider still
 * knows its payment intents, the responses it gave under each idempotency key, the charges
 * it made and the webhooks it still owes.
 */
import Database from 'better-sqlite3';

export type IntentStatus = 'requires_confirmation' | 'processing' | 'succeeded' | 'declined' | 'canceled' | 'refunded';

export interface Intent {
  id: string;
  amount: number;
  currency: string;
  status: IntentStatus;
  metadata: Record<string, string>;
  lastError: string | null;
  created: number;
  updated: number;
}

export interface StoredResponse {
  bodyHash: string;
  status: number;
  body: string;
}

export interface Charge {
  intentId: string;
  orderId: string;
  amount: number;
  currency: string;
  at: number;
}

export interface OutboxItem {
  id: number;
  body: string;
  attempts: number;
}

export class ProviderStore {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS intents (
        id TEXT PRIMARY KEY, amount INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,
        metadata TEXT NOT NULL, order_id TEXT, last_error TEXT, created INTEGER NOT NULL, updated INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS intents_by_order ON intents(order_id);
      CREATE TABLE IF NOT EXISTS idempotency (
        key TEXT NOT NULL, route TEXT NOT NULL, body_hash TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (key, route));
      CREATE TABLE IF NOT EXISTS charges (
        intent_id TEXT NOT NULL, order_id TEXT, amount INTEGER NOT NULL, currency TEXT NOT NULL, at INTEGER NOT NULL, kind TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS webhook_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    `);
    this.stmts = {
      insertIntent: this.db.prepare(
        'INSERT INTO intents (id, amount, currency, status, metadata, order_id, last_error, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      updateIntent: this.db.prepare('UPDATE intents SET status = ?, last_error = ?, updated = ? WHERE id = ?'),
      getIntent: this.db.prepare('SELECT * FROM intents WHERE id = ?'),
      byOrder: this.db.prepare('SELECT * FROM intents WHERE order_id = ? ORDER BY created'),
      processing: this.db.prepare("SELECT * FROM intents WHERE status = 'processing'"),
      getResponse: this.db.prepare('SELECT body_hash AS bodyHash, status, body FROM idempotency WHERE key = ? AND route = ?'),
      putResponse: this.db.prepare('INSERT INTO idempotency (key, route, body_hash, status, body) VALUES (?, ?, ?, ?, ?)'),
      charge: this.db.prepare('INSERT INTO charges (intent_id, order_id, amount, currency, at, kind) VALUES (?, ?, ?, ?, ?, ?)'),
      charges: this.db.prepare("SELECT intent_id AS intentId, order_id AS orderId, amount, currency, at FROM charges WHERE kind = ? AND (? IS NULL OR order_id = ?) ORDER BY rowid"),
      enqueue: this.db.prepare('INSERT INTO webhook_outbox (body) VALUES (?)'),
      outbox: this.db.prepare('SELECT id, body, attempts FROM webhook_outbox ORDER BY id LIMIT ?'),
      delivered: this.db.prepare('DELETE FROM webhook_outbox WHERE id = ?'),
      attempted: this.db.prepare('UPDATE webhook_outbox SET attempts = attempts + 1 WHERE id = ?'),
      getSetting: this.db.prepare('SELECT value FROM settings WHERE name = ?'),
      putSetting: this.db.prepare('INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value'),
    };
  }

  /** Runs `fn` in one transaction: an intent change, its charge, its webhook and the idempotent response commit together. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  insertIntent(i: Intent): void {
    this.stmts.insertIntent.run(i.id, i.amount, i.currency, i.status, JSON.stringify(i.metadata), i.metadata.orderId ?? null, i.lastError, i.created, i.updated);
  }

  updateIntent(id: string, status: IntentStatus, lastError: string | null, at: number): void {
    this.stmts.updateIntent.run(status, lastError, at, id);
  }

  getIntent(id: string): Intent | undefined {
    const row = this.stmts.getIntent.get(id) as IntentRow | undefined;
    return row && toIntent(row);
  }

  intentsForOrder(orderId: string): Intent[] {
    return (this.stmts.byOrder.all(orderId) as IntentRow[]).map(toIntent);
  }

  processingIntents(): Intent[] {
    return (this.stmts.processing.all() as IntentRow[]).map(toIntent);
  }

  getResponse(key: string, route: string): StoredResponse | undefined {
    return this.stmts.getResponse.get(key, route) as StoredResponse | undefined;
  }

  putResponse(key: string, route: string, r: StoredResponse): void {
    this.stmts.putResponse.run(key, route, r.bodyHash, r.status, r.body);
  }

  recordCharge(c: Charge, kind: 'charge' | 'refund'): void {
    this.stmts.charge.run(c.intentId, c.orderId, c.amount, c.currency, c.at, kind);
  }

  charges(kind: 'charge' | 'refund', orderId?: string): Charge[] {
    return this.stmts.charges.all(kind, orderId ?? null, orderId ?? null) as Charge[];
  }

  enqueueWebhook(body: string): void {
    this.stmts.enqueue.run(body);
  }

  outbox(limit: number): OutboxItem[] {
    return this.stmts.outbox.all(limit) as OutboxItem[];
  }

  webhookDelivered(id: number): void {
    this.stmts.delivered.run(id);
  }

  webhookAttempted(id: number): void {
    this.stmts.attempted.run(id);
  }

  setting(name: string): string | undefined {
    return (this.stmts.getSetting.get(name) as { value: string } | undefined)?.value;
  }

  putSetting(name: string, value: string): void {
    this.stmts.putSetting.run(name, value);
  }

  close(): void {
    this.db.close();
  }
}

interface IntentRow {
  id: string;
  amount: number;
  currency: string;
  status: IntentStatus;
  metadata: string;
  last_error: string | null;
  created: number;
  updated: number;
}

function toIntent(r: IntentRow): Intent {
  return {
    id: r.id,
    amount: r.amount,
    currency: r.currency,
    status: r.status,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    lastError: r.last_error,
    created: r.created,
    updated: r.updated,
  };
}
