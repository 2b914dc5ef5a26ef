/**
 * What the Orders service stores, behind one interface with an embedded (SQLite,
 * src/storage/sqlite/orders.ts) and a cluster (Cassandra, src/storage/cassandra/orders.ts)
 * implementation, both passing test/store/orders-contract.ts. Only the Orders service opens
 * it: its own file `<dataDir>/store/orders.db`, or its own keyspace `<base>_orders`.
 *
 * Every state change is a compare-and-set on the order's version that appends one row to
 * the order's transition log in the same atomic step, so the log and the current state can
 * never disagree, and two nodes (or a webhook racing a settlement) cannot both win a step.
 */
import type { CartLine, DownloadLink, OrderLine, OrderState, Shipment, ShippingAddress } from '../contracts.js';

export interface Fulfilment {
  downloads?: DownloadLink[];
  shipment?: Shipment;
}

export interface OrderRecord {
  orderId: string;
  customerId: string;
  idempotencyKey: string;
  /** hash of the checkout request: the same key with another request is CONFLICT */
  requestHash: string;
  state: OrderState;
  /** 1 at creation, +1 per transition; equals the seq of the last transition */
  version: number;
  lines: OrderLine[];
  currency: string;
  subtotalCents: number;
  taxCents: number;
  totalCents: number;
  shippingAddress: ShippingAddress | null;
  reason: string | null;
  fulfilment: Fulfilment | null;
  /** work is left (a middle state, or a stock release or refund after a terminal one): recovery drives it */
  pending: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface TransitionRecord {
  orderId: string;
  seq: number;
  from: OrderState | null;
  to: OrderState;
  at: number;
  reason: string | null;
}

export interface TransitionChange {
  to: OrderState;
  at: number;
  reason?: string | null;
  fulfilment?: Fulfilment | null;
  /** default: true for middle states, false for terminal ones */
  pending?: boolean;
  /** fulfilment records written with the transition (SQLite: same transaction; Cassandra: just before it, each insert-once) */
  downloads?: DownloadRecord[];
  shipment?: ShipmentRecord;
}

export interface DownloadRecord {
  tokenId: string;
  orderId: string;
  customerId: string;
  bookId: string;
  expiresAt: number;
  maxUses: number;
  uses: number;
}

export type DownloadUse =
  | { ok: true; download: DownloadRecord }
  | { ok: false; reason: 'not_found' | 'expired' | 'exhausted' };

export interface ShipmentRecord extends Shipment {
  orderId: string;
  address: ShippingAddress;
}

export const MIDDLE_STATES: readonly OrderState[] = ['created', 'stock_reserved', 'paid'];
export const TERMINAL_STATES: readonly OrderState[] = ['fulfilled', 'failed', 'cancelled', 'refunded'];

export interface OrderStore {
  cart(customerId: string): Promise<CartLine[]>;
  /** Sets a line's quantity (0 removes it). */
  setCartLine(customerId: string, line: CartLine): Promise<void>;
  clearCart(customerId: string): Promise<void>;

  /**
   * Claims (customerId, idempotencyKey) and inserts the order (state `created`, version 1,
   * pending) with its first transition. If the key was claimed before, nothing is written and
   * the earlier order is returned (`created: false`); CONFLICT if its requestHash differs.
   */
  create(order: OrderRecord): Promise<{ created: boolean; order: OrderRecord }>;
  get(orderId: string): Promise<OrderRecord | undefined>;
  /** The order a customer's idempotency key names, if any. */
  byIdempotencyKey(customerId: string, key: string): Promise<OrderRecord | undefined>;
  /** Newest first; `before` is an orderId cursor (exclusive). */
  listForCustomer(customerId: string, limit: number, before?: string): Promise<OrderRecord[]>;
  /**
   * Moves the order to `change.to` if its version is still `expectVersion`, appending the
   * transition in the same atomic step. Returns the new record, or undefined when another
   * writer got there first (re-read and decide again). `current`, when given, is the order as
   * the caller read it at `expectVersion`: a store may build the new record from it instead of
   * reading the order again (a record's content is fixed per version, and the compare-and-set
   * still refuses a stale one).
   */
  transition(orderId: string, expectVersion: number, change: TransitionChange, current?: OrderRecord): Promise<OrderRecord | undefined>;
  /** Clears `pending` (the work after a terminal state is done) if the version is still `expectVersion`. */
  settle(orderId: string, expectVersion: number, at: number): Promise<boolean>;
  transitions(orderId: string): Promise<TransitionRecord[]>;
  /**
   * Orders with work left, oldest update first; with `updatedBefore`, only those last updated
   * before it (a backend may ignore it and return newer ones too: callers filter as well).
   */
  listPending(limit: number, updatedBefore?: number): Promise<OrderRecord[]>;

  /** Inserts a download link once (a repeat with the same tokenId keeps the first). */
  createDownload(d: DownloadRecord): Promise<void>;
  /** Counts one use of a link that exists, has not expired and has uses left; atomic. */
  useDownload(tokenId: string, now: number): Promise<DownloadUse>;
  /** Inserts a shipment once (a repeat with the same trackingId keeps the first). */
  createShipment(s: ShipmentRecord): Promise<void>;
  shipment(trackingId: string): Promise<ShipmentRecord | undefined>;

  close(): Promise<void>;
}
