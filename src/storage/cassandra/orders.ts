/**
 * The Orders service's cluster store: its own keyspace `<base>_orders` (store-schema.ts).
 *
 * orders             (order_id) seq         — one partition per order: static columns hold the
 *                                            current state, version, pending flag and the order
 *                                            as JSON; each clustering row (seq) is one transition
 * order_keys         (customer_id, key)     — checkout idempotency claims, INSERT IF NOT EXISTS;
 *                                            the claim carries the order as created (doc)
 * orders_by_customer (customer_id) order_id — newest first (ids are time-ordered)
 * orders_pending     (bucket) order_id      — orders with work left, for recovery
 * carts              (customer_id) book_id, format
 * downloads          (token_id)             — use count changed by compare-and-set
 * shipments          (tracking_id)
 *
 * A transition is one conditional batch on the order's partition: `UPDATE … IF version = ?`
 * on the static columns plus the INSERT of the transition row. Paxos applies both or
 * neither, so the log and the current state always agree and only one writer wins a step.
 * An unknown outcome (write timeout) is resolved by a SERIAL read of the order.
 *
 * Lightweight transactions (Paxos rounds, the bulk of Cassandra's CPU per order) are spent
 * only where two writers can disagree: the idempotency claim and each transition. An order's
 * creation row, its download links and its shipment are plain writes, because every writer
 * of them writes the same cells (see create() and transition() for why).
 */
import { createHash } from 'node:crypto';
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
import { CAS_ATTEMPTS, backoff, isRetryable, isUnknownOutcome, toNum, type Row, type Session } from './client.js';
import { openServiceKeyspace, type ServiceKeyspaceOptions } from './store-schema.js';

/** 2: order_keys.doc (the claim carries the order, so the order row is a plain write). */
export const ORDERS_KEYSPACE_VERSION = 2;
/**
 * The order's creation row is written with this much less than its createdAt as its
 * timestamp: every transition after it is a Paxos write timestamped by Cassandra's clock
 * when it runs, so even with the app's clock this far ahead, a creation row that arrives
 * late (a slow or retried write) can never overwrite a later state.
 */
const CREATION_TIMESTAMP_MARGIN_MS = 60_000;
const PENDING_BUCKETS = 8;

const TABLES: Array<[string, string]> = [
  [
    'orders',
    `(order_id text, seq int, customer_id text static, state text static, version int static, pending boolean static,
      doc text static, updated_at bigint static, from_state text, to_state text, at bigint, reason text,
      PRIMARY KEY (order_id, seq))`,
  ],
  ['order_keys', '(customer_id text, idempotency_key text, order_id text, request_hash text, doc text, PRIMARY KEY ((customer_id, idempotency_key)))'],
  ['orders_by_customer', '(customer_id text, order_id text, PRIMARY KEY (customer_id, order_id)) WITH CLUSTERING ORDER BY (order_id DESC)'],
  ['orders_pending', '(bucket int, order_id text, PRIMARY KEY (bucket, order_id))'],
  ['carts', '(customer_id text, book_id text, format text, quantity int, PRIMARY KEY (customer_id, book_id, format))'],
  ['downloads', '(token_id text PRIMARY KEY, order_id text, customer_id text, book_id text, expires_at bigint, max_uses int, uses int)'],
  ['shipments', '(tracking_id text PRIMARY KEY, order_id text, doc text)'],
];

const ADDED_COLUMNS: Array<[string, string, string]> = [['order_keys', 'doc', 'text']];

function bucketOf(orderId: string): number {
  return createHash('sha1').update(orderId).digest().readUInt32BE(0) % PENDING_BUCKETS;
}

function toRecord(r: Row): OrderRecord {
  const doc = JSON.parse(r.doc as string) as OrderRecord;
  return { ...doc, state: r.state as OrderState, version: toNum(r.version), pending: r.pending === true, updatedAt: toNum(r.updated_at) };
}

function toDownload(r: Row): DownloadRecord {
  return {
    tokenId: r.token_id,
    orderId: r.order_id,
    customerId: r.customer_id,
    bookId: r.book_id,
    expiresAt: toNum(r.expires_at),
    maxUses: toNum(r.max_uses),
    uses: r.uses === null || r.uses === undefined ? 0 : toNum(r.uses),
  };
}

export class CassandraOrderStore implements OrderStore {
  private readonly q;

  private constructor(
    private readonly s: Session,
    ks: string,
  ) {
    this.q = {
      cart: `SELECT book_id, format, quantity FROM ${ks}.carts WHERE customer_id = ?`,
      setCart: `INSERT INTO ${ks}.carts (customer_id, book_id, format, quantity) VALUES (?, ?, ?, ?)`,
      delCart: `DELETE FROM ${ks}.carts WHERE customer_id = ? AND book_id = ? AND format = ?`,
      clearCart: `DELETE FROM ${ks}.carts WHERE customer_id = ?`,
      claim: `INSERT INTO ${ks}.order_keys (customer_id, idempotency_key, order_id, request_hash, doc) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`,
      keyed: `SELECT order_id, request_hash, doc FROM ${ks}.order_keys WHERE customer_id = ? AND idempotency_key = ?`,
      insert: `INSERT INTO ${ks}.orders (order_id, seq, customer_id, state, version, pending, doc, updated_at, from_state, to_state, at, reason)
               VALUES (?, 1, ?, 'created', 1, true, ?, ?, null, 'created', ?, null) IF NOT EXISTS`,
      insertPlain: `INSERT INTO ${ks}.orders (order_id, seq, customer_id, state, version, pending, doc, updated_at, from_state, to_state, at, reason)
               VALUES (?, 1, ?, 'created', 1, true, ?, ?, null, 'created', ?, null) USING TIMESTAMP ?`,
      get: `SELECT state, version, pending, doc, updated_at FROM ${ks}.orders WHERE order_id = ? LIMIT 1`,
      byCustomer: `INSERT INTO ${ks}.orders_by_customer (customer_id, order_id) VALUES (?, ?)`,
      list: `SELECT order_id FROM ${ks}.orders_by_customer WHERE customer_id = ? AND order_id < ? LIMIT ?`,
      update: `UPDATE ${ks}.orders SET state = ?, version = ?, pending = ?, doc = ?, updated_at = ? WHERE order_id = ? IF version = ?`,
      log: `INSERT INTO ${ks}.orders (order_id, seq, from_state, to_state, at, reason) VALUES (?, ?, ?, ?, ?, ?)`,
      settle: `UPDATE ${ks}.orders SET pending = false WHERE order_id = ? IF version = ?`,
      transitions: `SELECT order_id, seq, from_state, to_state, at, reason FROM ${ks}.orders WHERE order_id = ?`,
      addPending: `INSERT INTO ${ks}.orders_pending (bucket, order_id) VALUES (?, ?)`,
      delPending: `DELETE FROM ${ks}.orders_pending WHERE bucket = ? AND order_id = ?`,
      pending: `SELECT order_id FROM ${ks}.orders_pending WHERE bucket = ? LIMIT ?`,
      addDownload: `INSERT INTO ${ks}.downloads (token_id, order_id, customer_id, book_id, expires_at, max_uses, uses) VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
      getDownload: `SELECT token_id, order_id, customer_id, book_id, expires_at, max_uses, uses FROM ${ks}.downloads WHERE token_id = ?`,
      writeDownload: `INSERT INTO ${ks}.downloads (token_id, order_id, customer_id, book_id, expires_at, max_uses) VALUES (?, ?, ?, ?, ?, ?)`,
      useDownload: `UPDATE ${ks}.downloads SET uses = ? WHERE token_id = ? IF uses = ?`,
      firstUse: `UPDATE ${ks}.downloads SET uses = 1 WHERE token_id = ? IF uses = null`,
      addShipment: `INSERT INTO ${ks}.shipments (tracking_id, order_id, doc) VALUES (?, ?, ?) IF NOT EXISTS`,
      writeShipment: `INSERT INTO ${ks}.shipments (tracking_id, order_id, doc) VALUES (?, ?, ?)`,
      getShipment: `SELECT doc FROM ${ks}.shipments WHERE tracking_id = ?`,
    };
  }

  static async open(opts: ServiceKeyspaceOptions): Promise<CassandraOrderStore> {
    const { session, ks } = await openServiceKeyspace(opts, 'orders', TABLES, ORDERS_KEYSPACE_VERSION, ADDED_COLUMNS);
    return new CassandraOrderStore(session, ks);
  }

  async cart(customerId: string): Promise<CartLine[]> {
    const rows = await this.s.all(this.q.cart, [customerId]);
    return rows.map((r) => ({ bookId: r.book_id, format: r.format, quantity: toNum(r.quantity) }));
  }

  async setCartLine(customerId: string, line: CartLine): Promise<void> {
    if (line.quantity <= 0) await this.s.execute(this.q.delCart, [customerId, line.bookId, line.format], { idempotent: true });
    else await this.s.execute(this.q.setCart, [customerId, line.bookId, line.format, line.quantity], { idempotent: true });
  }

  async clearCart(customerId: string): Promise<void> {
    await this.s.execute(this.q.clearCart, [customerId], { idempotent: true });
  }

  /** An LWT, retried on contention or an unknown outcome; `check` reads the outcome back. */
  private async lwt<T>(run: () => Promise<T>, check: () => Promise<T | undefined>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        if (attempt + 1 >= CAS_ATTEMPTS || !(isUnknownOutcome(err) || isRetryable(err))) throw err;
        const seen = await check().catch(() => undefined);
        if (seen !== undefined) return seen;
        await backoff(attempt);
      }
    }
  }

  /**
   * One LWT: the claim of (customer, key), which carries the order as created. Whoever holds
   * the claim can write the order's creation row, and every such writer (the claimant, or a
   * retry that finds the claim but not yet the order, e.g. after the claimant crashed) writes
   * the same cells with the same timestamp, from the claim. So that row needs no Paxos round:
   * a plain write is idempotent, and its timestamp (before createdAt) loses to every
   * transition. Exactly one caller, the claimant, reports `created` and drives settlement; a
   * rescued order is driven by recovery (it is in orders_pending before its row exists).
   */
  async create(order: OrderRecord): Promise<{ created: boolean; order: OrderRecord }> {
    const fresh: OrderRecord = { ...order, state: 'created', version: 1, pending: true };
    const claim = await this.lwt(
      async () => {
        const rs = await this.s.execute(this.q.claim, [order.customerId, order.idempotencyKey, order.orderId, order.requestHash, JSON.stringify(fresh)]);
        return rs.wasApplied() ? { order_id: order.orderId, request_hash: order.requestHash, doc: null } : (rs.first() as Row);
      },
      async () => (await this.s.execute(this.q.keyed, [order.customerId, order.idempotencyKey], { serial: true, idempotent: true })).first() ?? undefined,
    );
    if (claim.request_hash !== order.requestHash) throw new KindredError('CONFLICT', 'this Idempotency-Key was used for a different order');
    const orderId = claim.order_id as string;
    // Our fresh id is in the claim only if our claim applied (or an unknown outcome did).
    if (orderId === order.orderId) {
      await this.writeCreated(fresh);
      return { created: true, order: fresh };
    }
    const existing = await this.get(orderId);
    if (existing) return { created: false, order: existing };
    if (claim.doc) {
      // The claimant has not written its order yet, or never will: write it from the claim.
      const claimed = JSON.parse(claim.doc as string) as OrderRecord;
      await this.writeCreated(claimed);
      return { created: false, order: (await this.get(orderId)) ?? claimed };
    }
    return this.rescueLegacyClaim({ ...fresh, orderId });
  }

  /** The creation row and its indexes; idempotent (the same cells, the same timestamp). Pending first, so recovery finds the order. */
  private async writeCreated(o: OrderRecord): Promise<void> {
    await this.s.execute(this.q.addPending, [bucketOf(o.orderId), o.orderId], { idempotent: true });
    const timestampUs = (o.createdAt - CREATION_TIMESTAMP_MARGIN_MS) * 1000;
    await Promise.all([
      this.s.execute(this.q.insertPlain, [o.orderId, o.customerId, JSON.stringify(o), o.updatedAt, o.createdAt, timestampUs], { idempotent: true }),
      this.s.execute(this.q.byCustomer, [o.customerId, o.orderId], { idempotent: true }),
    ]);
  }

  /**
   * A claim written by version 1 of this keyspace (no doc) whose order row is missing: insert
   * ours under the claimed id, conditionally, as version 1 did.
   */
  private async rescueLegacyClaim(fresh: OrderRecord): Promise<{ created: boolean; order: OrderRecord }> {
    const orderId = fresh.orderId;
    await this.s.execute(this.q.addPending, [bucketOf(orderId), orderId], { idempotent: true });
    const inserted = await this.lwt(
      async () => {
        const rs = await this.s.execute(this.q.insert, [orderId, fresh.customerId, JSON.stringify(fresh), fresh.updatedAt, fresh.createdAt]);
        return rs.wasApplied();
      },
      async () => ((await this.readSerial(orderId)) ? false : undefined),
    );
    await this.s.execute(this.q.byCustomer, [fresh.customerId, orderId], { idempotent: true });
    if (inserted) return { created: true, order: fresh };
    const now = await this.readSerial(orderId);
    if (!now) throw new KindredError('UNAVAILABLE', 'order vanished while being created');
    return { created: false, order: now };
  }

  private async readSerial(orderId: string): Promise<OrderRecord | undefined> {
    const r = (await this.s.execute(this.q.get, [orderId], { serial: true, idempotent: true })).first();
    return r && r.doc ? toRecord(r) : undefined;
  }

  async get(orderId: string): Promise<OrderRecord | undefined> {
    const r = (await this.s.execute(this.q.get, [orderId], { idempotent: true })).first();
    return r && r.doc ? toRecord(r) : undefined;
  }

  async byIdempotencyKey(customerId: string, key: string): Promise<OrderRecord | undefined> {
    const k = (await this.s.execute(this.q.keyed, [customerId, key], { idempotent: true })).first();
    return k ? this.get(k.order_id as string) : undefined;
  }

  async listForCustomer(customerId: string, limit: number, before?: string): Promise<OrderRecord[]> {
    const ids = (await this.s.execute(this.q.list, [customerId, before ?? '\uffff', limit], { idempotent: true })).rows.map((r) => r.order_id as string);
    const orders = await Promise.all(ids.map((id) => this.get(id)));
    return orders.filter((o): o is OrderRecord => o !== undefined);
  }

  async transition(orderId: string, expectVersion: number, change: TransitionChange, known?: OrderRecord): Promise<OrderRecord | undefined> {
    // The caller's record at expectVersion saves a SERIAL read (a Paxos round): the batch below is conditional on the version anyway.
    const current = known && known.orderId === orderId && known.version === expectVersion ? known : await this.readSerial(orderId);
    if (!current || current.version !== expectVersion) return undefined;
    const next: OrderRecord = {
      ...current,
      state: change.to,
      version: expectVersion + 1,
      pending: change.pending ?? MIDDLE_STATES.includes(change.to),
      reason: change.reason !== undefined ? change.reason : current.reason,
      fulfilment: change.fulfilment !== undefined ? change.fulfilment : current.fulfilment,
      updatedAt: change.at,
    };
    // Pending since creation (or since a transition into a pending state wrote it): already indexed.
    if (next.pending && !current.pending) await this.s.execute(this.q.addPending, [bucketOf(orderId), orderId], { idempotent: true });
    // Other partitions, written first so they exist when the transition is seen. Plain writes,
    // not insert-once LWTs: their ids and contents derive from the order at this version (the
    // token id and tracking id from the order id, expiry from the payment's time), so a
    // retry or a racing writer that loses the transition writes the very same cells. A
    // download's use count is not among them (useDownload counts from null), so a late
    // writer cannot reset it.
    await Promise.all([
      ...(change.downloads ?? []).map((d) =>
        this.s.execute(this.q.writeDownload, [d.tokenId, d.orderId, d.customerId, d.bookId, d.expiresAt, d.maxUses], { idempotent: true }),
      ),
      ...(change.shipment ? [this.s.execute(this.q.writeShipment, [change.shipment.trackingId, change.shipment.orderId, JSON.stringify(change.shipment)], { idempotent: true })] : []),
    ]);
    const applied = await this.lwt(
      async () => {
        const rs = await this.s.batch([
          { query: this.q.update, params: [next.state, next.version, next.pending, JSON.stringify(next), next.updatedAt, orderId, expectVersion] },
          { query: this.q.log, params: [orderId, next.version, current.state, next.state, change.at, change.reason ?? null] },
        ]);
        return rs.wasApplied();
      },
      async () => {
        const seen = await this.readSerial(orderId);
        if (!seen || seen.version === expectVersion) return undefined; // not applied yet: retry
        return seen.version === next.version && seen.state === next.state && seen.updatedAt === next.updatedAt;
      },
    );
    if (!applied) return undefined;
    if (!next.pending) await this.s.execute(this.q.delPending, [bucketOf(orderId), orderId], { idempotent: true }).catch(() => undefined);
    return next;
  }

  async settle(orderId: string, expectVersion: number): Promise<boolean> {
    const applied = await this.lwt(
      async () => (await this.s.execute(this.q.settle, [orderId, expectVersion])).wasApplied(),
      async () => {
        const seen = await this.readSerial(orderId);
        return seen && seen.version === expectVersion && !seen.pending ? true : undefined;
      },
    );
    if (applied) await this.s.execute(this.q.delPending, [bucketOf(orderId), orderId], { idempotent: true }).catch(() => undefined);
    return applied;
  }

  async transitions(orderId: string): Promise<TransitionRecord[]> {
    const rows = await this.s.all(this.q.transitions, [orderId]);
    return rows.map((r) => ({
      orderId: r.order_id,
      seq: toNum(r.seq),
      from: (r.from_state as OrderState | null) ?? null,
      to: r.to_state as OrderState,
      at: toNum(r.at),
      reason: (r.reason as string | null) ?? null,
    }));
  }

  async listPending(limit: number): Promise<OrderRecord[]> {
    const buckets = await Promise.all(
      Array.from({ length: PENDING_BUCKETS }, (_, b) => this.s.execute(this.q.pending, [b, limit], { idempotent: true })),
    );
    const ids = buckets.flatMap((rs) => rs.rows.map((r) => r.order_id as string));
    const orders = await Promise.all(ids.map((id) => this.get(id)));
    const out: OrderRecord[] = [];
    orders.forEach((o, i) => {
      if (o?.pending) out.push(o);
      // a leftover index row (its order finished, the delete was lost): drop it
      else if (o) void this.s.execute(this.q.delPending, [bucketOf(ids[i]!), ids[i]!], { idempotent: true }).catch(() => undefined);
    });
    return out.sort((a, b) => a.updatedAt - b.updatedAt).slice(0, limit);
  }

  async createDownload(d: DownloadRecord): Promise<void> {
    await this.lwt(
      async () => {
        await this.s.execute(this.q.addDownload, [d.tokenId, d.orderId, d.customerId, d.bookId, d.expiresAt, d.maxUses, d.uses]);
        return true;
      },
      async () => ((await this.s.execute(this.q.getDownload, [d.tokenId], { serial: true, idempotent: true })).first() ? true : undefined),
    );
  }

  async useDownload(tokenId: string, now: number): Promise<DownloadUse> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS * 4; attempt++) {
      const r = (await this.s.execute(this.q.getDownload, [tokenId], { serial: true, idempotent: true })).first();
      if (!r) return { ok: false, reason: 'not_found' };
      const d = toDownload(r);
      if (d.expiresAt <= now) return { ok: false, reason: 'expired' };
      if (d.uses >= d.maxUses) return { ok: false, reason: 'exhausted' };
      try {
        // A link written with its transition has no use count yet (null): the first use sets it.
        const rs = r.uses === null || r.uses === undefined
          ? await this.s.execute(this.q.firstUse, [tokenId])
          : await this.s.execute(this.q.useDownload, [d.uses + 1, tokenId, d.uses]);
        if (rs.wasApplied()) return { ok: true, download: { ...d, uses: d.uses + 1 } };
      } catch (err) {
        // An unknown outcome may have counted this use: the next round reads it back, so
        // at worst a use is counted without its download (never a download without its use).
        if (!(isUnknownOutcome(err) || isRetryable(err))) throw err;
      }
      await backoff(attempt);
    }
    throw new KindredError('UNAVAILABLE', 'download link is too contended, retry');
  }

  async createShipment(s: ShipmentRecord): Promise<void> {
    await this.lwt(
      async () => {
        await this.s.execute(this.q.addShipment, [s.trackingId, s.orderId, JSON.stringify(s)]);
        return true;
      },
      async () => ((await this.s.execute(this.q.getShipment, [s.trackingId], { serial: true, idempotent: true })).first() ? true : undefined),
    );
  }

  async shipment(trackingId: string): Promise<ShipmentRecord | undefined> {
    const r = (await this.s.execute(this.q.getShipment, [trackingId], { idempotent: true })).first();
    return r ? (JSON.parse(r.doc as string) as ShipmentRecord) : undefined;
  }

  close(): Promise<void> {
    return this.s.close();
  }
}
