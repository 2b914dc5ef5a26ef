/**
 * The Orders service's embedded store: its own file `<dataDir>/store/orders.db`.
 *
 * orders            (order_id) — current state, version, pending flag, reason and fulfilment;
 *                   the order as JSON as it was created (its lines, prices and address never change)
 * order_transitions (order_id, seq) — append-only log, one row per state change
 * order_keys        (customer_id, idempotency_key) — the checkout idempotency claims
 * carts             (customer_id, book_id, format)
 * downloads         (token_id) — signed ebook links with their use count
 * shipments         (tracking_id)
 *
 * A transition is `UPDATE … WHERE version = ?` plus the log insert, atomic in one SAVEPOINT
 * of a group-committed transaction shared with the other writes of this moment
 * (group-commit.ts); the write resolves only after the WAL is fsynced, so a transition is
 * durable before the service acts on it or answers anyone.
 */
import path from 'node:path';
import { KindredError } from '../../errors.js';
import type { CartLine, OrderState } from '../../store/contracts.js';
import {
  MIDDLE_STATES,
  type DownloadRecord,
  type DownloadUse,
  type OrderRecord,
  type OrderStore,
  type ShipmentRecord,
  type TransitionChange,
  type TransitionRecord,
} from '../../store/orders/storage.js';
import { read } from './common.js';
import { GroupCommit } from './group-commit.js';
import { openServiceDb, type ServiceDb, type ServiceDbOptions } from './store-db.js';

/** 2: reason and fulfilment columns (a transition no longer rewrites the order's JSON) */
export const ORDERS_DB_VERSION = 2;

const DDL = `
CREATE TABLE IF NOT EXISTS orders (
  order_id    TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  state       TEXT NOT NULL,
  version     INTEGER NOT NULL,
  pending     INTEGER NOT NULL,
  doc         TEXT NOT NULL,   -- the OrderRecord as JSON as created; the columns override what changes
  updated_at  INTEGER NOT NULL,
  reason      TEXT,            -- these two are current; doc holds their values at creation
  fulfilment  TEXT             -- JSON
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, order_id);
CREATE INDEX IF NOT EXISTS orders_pending ON orders (pending, updated_at) WHERE pending = 1;

CREATE TABLE IF NOT EXISTS order_transitions (
  order_id   TEXT NOT NULL,
  seq        INTEGER NOT NULL,
  from_state TEXT,
  to_state   TEXT NOT NULL,
  at         INTEGER NOT NULL,
  reason     TEXT,
  PRIMARY KEY (order_id, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS order_keys (
  customer_id     TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  order_id        TEXT NOT NULL,
  PRIMARY KEY (customer_id, idempotency_key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS carts (
  customer_id TEXT NOT NULL,
  book_id     TEXT NOT NULL,
  format      TEXT NOT NULL,
  quantity    INTEGER NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (customer_id, book_id, format)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS downloads (
  token_id    TEXT PRIMARY KEY,
  order_id    TEXT NOT NULL,
  customer_id TEXT NOT NULL,
  book_id     TEXT NOT NULL,
  expires_at  INTEGER NOT NULL,
  max_uses    INTEGER NOT NULL,
  uses        INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS shipments (
  tracking_id TEXT PRIMARY KEY,
  order_id    TEXT NOT NULL,
  doc         TEXT NOT NULL
) WITHOUT ROWID;
`;

interface OrderRow {
  state: OrderState;
  version: number;
  pending: number;
  doc: string;
  updated_at: number;
  reason: string | null;
  fulfilment: string | null;
}

const ROW = 'state, version, pending, doc, updated_at, reason, fulfilment';

function toRecord(row: OrderRow): OrderRecord {
  const doc = JSON.parse(row.doc) as OrderRecord;
  return {
    ...doc,
    state: row.state,
    version: row.version,
    pending: row.pending === 1,
    updatedAt: row.updated_at,
    reason: row.reason,
    fulfilment: row.fulfilment === null ? null : (JSON.parse(row.fulfilment) as OrderRecord['fulfilment']),
  };
}

/**
 * Version 1 files rewrote the whole order JSON on every transition; version 2 keeps what a
 * transition changes in columns. A version 1 file gets the columns, filled from the JSON,
 * and is marked version 2, so an older server refuses it rather than write JSON the columns
 * would then contradict.
 */
function migrate(db: ServiceDb['db']): void {
  db.transaction(() => {
    const version = db.prepare('SELECT version FROM schema_version WHERE id = 1').pluck().get() as number;
    if (version >= 2) return;
    const columns = new Set((db.prepare('PRAGMA table_info(orders)').all() as Array<{ name: string }>).map((c) => c.name));
    if (!columns.has('reason')) db.exec('ALTER TABLE orders ADD COLUMN reason TEXT');
    if (!columns.has('fulfilment')) db.exec('ALTER TABLE orders ADD COLUMN fulfilment TEXT');
    db.exec(`UPDATE orders SET reason = json_extract(doc, '$.reason'), fulfilment = json_extract(doc, '$.fulfilment')`);
    db.prepare('UPDATE schema_version SET version = 2 WHERE id = 1').run();
  }).immediate();
}

export class SqliteOrderStore implements OrderStore {
  private readonly s;
  private readonly tx;
  /** every write goes through here: one transaction and one fsync for the writes of many orders */
  private readonly group: GroupCommit;

  private constructor(private readonly ctx: ServiceDb) {
    const db = ctx.db;
    this.s = {
      cart: db.prepare('SELECT book_id AS bookId, format, quantity FROM carts WHERE customer_id = ? ORDER BY book_id, format'),
      setCart: db.prepare(
        'INSERT INTO carts (customer_id, book_id, format, quantity) VALUES (?, ?, ?, ?) ON CONFLICT (customer_id, book_id, format) DO UPDATE SET quantity = excluded.quantity',
      ),
      delCart: db.prepare('DELETE FROM carts WHERE customer_id = ? AND book_id = ? AND format = ?'),
      clearCart: db.prepare('DELETE FROM carts WHERE customer_id = ?'),
      claim: db.prepare('INSERT OR IGNORE INTO order_keys (customer_id, idempotency_key, order_id) VALUES (?, ?, ?)'),
      keyed: db.prepare('SELECT order_id AS orderId FROM order_keys WHERE customer_id = ? AND idempotency_key = ?'),
      insert: db.prepare('INSERT INTO orders (order_id, customer_id, state, version, pending, doc, updated_at, reason, fulfilment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      get: db.prepare(`SELECT ${ROW} FROM orders WHERE order_id = ?`),
      list: db.prepare(`SELECT ${ROW} FROM orders WHERE customer_id = ? AND order_id < ? ORDER BY order_id DESC LIMIT ?`),
      // what a transition changes (the order's JSON stays as created: re-serialising it per transition cost more than the rest of the write)
      update: db.prepare('UPDATE orders SET state = ?, version = ?, pending = ?, updated_at = ?, reason = ?, fulfilment = ? WHERE order_id = ? AND version = ?'),
      settle: db.prepare('UPDATE orders SET pending = 0 WHERE order_id = ? AND version = ?'),
      log: db.prepare('INSERT INTO order_transitions (order_id, seq, from_state, to_state, at, reason) VALUES (?, ?, ?, ?, ?, ?)'),
      transitions: db.prepare('SELECT order_id AS orderId, seq, from_state AS "from", to_state AS "to", at, reason FROM order_transitions WHERE order_id = ? ORDER BY seq'),
      pending: db.prepare(`SELECT ${ROW} FROM orders WHERE pending = 1 AND updated_at < ? ORDER BY updated_at LIMIT ?`),
      addDownload: db.prepare(
        'INSERT OR IGNORE INTO downloads (token_id, order_id, customer_id, book_id, expires_at, max_uses, uses) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      getDownload: db.prepare(
        'SELECT token_id AS tokenId, order_id AS orderId, customer_id AS customerId, book_id AS bookId, expires_at AS expiresAt, max_uses AS maxUses, uses FROM downloads WHERE token_id = ?',
      ),
      useDownload: db.prepare('UPDATE downloads SET uses = uses + 1 WHERE token_id = ? AND uses < max_uses AND expires_at > ?'),
      addShipment: db.prepare('INSERT OR IGNORE INTO shipments (tracking_id, order_id, doc) VALUES (?, ?, ?)'),
      getShipment: db.prepare('SELECT doc FROM shipments WHERE tracking_id = ?'),
    };
    this.tx = this.transactions();
    this.group = new GroupCommit(ctx);
  }

  /**
   * The multi-statement writes, made once. Each runs inside a savepoint of a group-commit
   * batch (group-commit.ts), which makes it atomic: all of its statements or none.
   */
  private transactions() {
    const s = this.s;
    return {
      create: (order: OrderRecord): { created: boolean; order: OrderRecord } => {
        const claimed = s.claim.run(order.customerId, order.idempotencyKey, order.orderId).changes === 1;
        if (!claimed) {
          const { orderId } = s.keyed.get(order.customerId, order.idempotencyKey) as { orderId: string };
          const existing = toRecord(s.get.get(orderId) as OrderRow);
          if (existing.requestHash !== order.requestHash) {
            throw new KindredError('CONFLICT', 'this Idempotency-Key was used for a different order');
          }
          return { created: false, order: existing };
        }
        const fresh: OrderRecord = { ...order, state: 'created', version: 1, pending: true };
        s.insert.run(fresh.orderId, fresh.customerId, 'created', 1, 1, JSON.stringify(fresh), fresh.updatedAt, fresh.reason, fresh.fulfilment ? JSON.stringify(fresh.fulfilment) : null);
        s.log.run(fresh.orderId, 1, null, 'created', fresh.createdAt, null);
        return { created: true, order: fresh };
      },
      transition: (orderId: string, expectVersion: number, change: TransitionChange, known?: OrderRecord): OrderRecord | undefined => {
        let current: OrderRecord;
        if (known && known.orderId === orderId && known.version === expectVersion) {
          current = known; // the UPDATE below is still conditional on the version
        } else {
          const row = s.get.get(orderId) as OrderRow | undefined;
          if (!row || row.version !== expectVersion) return undefined;
          current = toRecord(row);
        }
        const next: OrderRecord = {
          ...current,
          state: change.to,
          version: expectVersion + 1,
          pending: change.pending ?? MIDDLE_STATES.includes(change.to),
          reason: change.reason !== undefined ? change.reason : current.reason,
          fulfilment: change.fulfilment !== undefined ? change.fulfilment : current.fulfilment,
          updatedAt: change.at,
        };
        const fulfilment = next.fulfilment ? JSON.stringify(next.fulfilment) : null;
        const changed = s.update.run(next.state, next.version, next.pending ? 1 : 0, next.updatedAt, next.reason, fulfilment, orderId, expectVersion).changes;
        if (changed !== 1) return undefined;
        for (const d of change.downloads ?? []) s.addDownload.run(d.tokenId, d.orderId, d.customerId, d.bookId, d.expiresAt, d.maxUses, d.uses);
        if (change.shipment) s.addShipment.run(change.shipment.trackingId, change.shipment.orderId, JSON.stringify(change.shipment));
        s.log.run(orderId, next.version, current.state, next.state, change.at, change.reason ?? null);
        return next;
      },
      useDownload: (tokenId: string, now: number): DownloadUse => {
        const d = s.getDownload.get(tokenId) as DownloadRecord | undefined;
        if (!d) return { ok: false, reason: 'not_found' };
        if (d.expiresAt <= now) return { ok: false, reason: 'expired' };
        if (s.useDownload.run(tokenId, now).changes !== 1) return { ok: false, reason: 'exhausted' };
        return { ok: true, download: { ...d, uses: d.uses + 1 } };
      },
    };
  }

  static open(dataDir: string, opts: ServiceDbOptions = {}): SqliteOrderStore {
    const ctx = openServiceDb(path.join(dataDir, 'store', 'orders.db'), DDL, ORDERS_DB_VERSION, opts);
    try {
      migrate(ctx.db);
    } catch (err) {
      void ctx.close();
      throw err;
    }
    return new SqliteOrderStore(ctx);
  }

  cart(customerId: string): Promise<CartLine[]> {
    return read(() => this.s.cart.all(customerId) as CartLine[]);
  }

  setCartLine(customerId: string, line: CartLine): Promise<void> {
    return this.group.run(() => {
      if (line.quantity <= 0) this.s.delCart.run(customerId, line.bookId, line.format);
      else this.s.setCart.run(customerId, line.bookId, line.format, line.quantity);
    });
  }

  clearCart(customerId: string): Promise<void> {
    return this.group.run(() => {
      this.s.clearCart.run(customerId);
    });
  }

  create(order: OrderRecord): Promise<{ created: boolean; order: OrderRecord }> {
    return this.group.run(() => this.tx.create(order));
  }

  get(orderId: string): Promise<OrderRecord | undefined> {
    return read(() => {
      const row = this.s.get.get(orderId) as OrderRow | undefined;
      return row && toRecord(row);
    });
  }

  byIdempotencyKey(customerId: string, key: string): Promise<OrderRecord | undefined> {
    return read(() => {
      const k = this.s.keyed.get(customerId, key) as { orderId: string } | undefined;
      const row = k && (this.s.get.get(k.orderId) as OrderRow | undefined);
      return row ? toRecord(row) : undefined;
    });
  }

  listForCustomer(customerId: string, limit: number, before?: string): Promise<OrderRecord[]> {
    return read(() => (this.s.list.all(customerId, before ?? '\uffff', limit) as OrderRow[]).map(toRecord));
  }

  transition(orderId: string, expectVersion: number, change: TransitionChange, current?: OrderRecord): Promise<OrderRecord | undefined> {
    return this.group.run(() => this.tx.transition(orderId, expectVersion, change, current));
  }

  settle(orderId: string, expectVersion: number): Promise<boolean> {
    return this.group.run(() => this.s.settle.run(orderId, expectVersion).changes === 1);
  }

  transitions(orderId: string): Promise<TransitionRecord[]> {
    return read(() => this.s.transitions.all(orderId) as TransitionRecord[]);
  }

  listPending(limit: number, updatedBefore = Number.MAX_SAFE_INTEGER): Promise<OrderRecord[]> {
    // the sweeper asks every few seconds; under load most pending orders are young and in hand, not worth parsing
    return read(() => (this.s.pending.all(updatedBefore, limit) as OrderRow[]).map(toRecord));
  }

  createDownload(d: DownloadRecord): Promise<void> {
    return this.group.run(() => {
      this.s.addDownload.run(d.tokenId, d.orderId, d.customerId, d.bookId, d.expiresAt, d.maxUses, d.uses);
    });
  }

  useDownload(tokenId: string, now: number): Promise<DownloadUse> {
    return this.group.run(() => this.tx.useDownload(tokenId, now));
  }

  createShipment(s: ShipmentRecord): Promise<void> {
    return this.group.run(() => {
      this.s.addShipment.run(s.trackingId, s.orderId, JSON.stringify(s));
    });
  }

  shipment(trackingId: string): Promise<ShipmentRecord | undefined> {
    return read(() => {
      const row = this.s.getShipment.get(trackingId) as { doc: string } | undefined;
      return row && (JSON.parse(row.doc) as ShipmentRecord);
    });
  }

  async close(): Promise<void> {
    await this.group.close();
    await this.ctx.close();
  }
}
