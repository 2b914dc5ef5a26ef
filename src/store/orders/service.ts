/**
 * The Orders service: carts, checkout with an idempotency key, and settlement of each order
 * through its state machine (docs/orders.md):
 *
 *   created ──reserve──▶ stock_reserved ──pay──▶ paid ──commit + fulfil──▶ fulfilled
 *      │                     │    │                │                          │
 *      └─ out of stock ─▶ failed ◀─ declined / provider unavailable past the deadline
 *                            │    └─ customer ─▶ cancelled          customer ─▶ refunded
 *
 * Every step is a compare-and-set transition persisted (with its log row) before anything
 * acts on it or anyone is told. Each step's side effect is idempotent per order (Books
 * reservations are keyed by orderId, payments by an idempotency key derived from it,
 * download links and tracking ids are derived from it), so a step can be repeated after a
 * crash, by a sweeper, or by another node, and the order still moves exactly once.
 *
 * The service orchestrates; the piscina pool (pool.ts) prices orders and signs links.
 * It answers OrdersRequest on SUBJECTS.orders (queue group `orders`), reacts to payment
 * webhooks (PAYMENT_EVENTS_SUBJECT), publishes OrderEvent on SUBJECTS.orderEvents after every
 * transition and pushes an `order` event to the customer's open sessions.
 */
import { createHash } from 'node:crypto';
import { handOver, type Bus, type Subscription } from '../../actors/bus.js';
import type { KindredEvent } from '../../domain/commands.js';
import { KindredError, toKindredError } from '../../errors.js';
import { newId } from '../../ids.js';
import type { BlobStore } from '../../storage/types.js';
import {
  PAYMENT_EVENTS_SUBJECT,
  SUBJECTS,
  type CartLine,
  type DownloadLink,
  type OrderEvent,
  type OrdersReplies,
  type OrdersRequest,
  type OrderState,
  type PaymentEvent,
  type PaymentOutcome,
  type ShippingAddress,
} from '../contracts.js';
import { BookCache } from './book-cache.js';
import { BooksClient, PaymentsClient } from './clients.js';
import type { DownloadsApi } from './downloads.js';
import type { SettlementPool } from './pool.js';
import { verifyDownloadToken } from './settlement-tasks.js';
import { TERMINAL_STATES, type DownloadRecord, type Fulfilment, type OrderRecord, type OrderStore, type ShipmentRecord } from './storage.js';
import { validateCartLine, validateCheckout, validateIdempotencyKey } from './validate.js';
import { orderView } from './views.js';

export interface OrdersConfig {
  /** tax in basis points of the subtotal (1000 = 10 %) */
  taxBasisPoints: number;
  downloadTtlSeconds: number;
  maxDownloads: number;
  /** an order still without stock or payment this long after creation fails (stock released) */
  settleDeadlineMs: number;
  /** a pending order untouched this long is driven by the sweeper (lost work, another node's crash) */
  staleMs: number;
  sweepIntervalMs: number;
  /** how long POST /orders waits for a terminal state before answering the current one */
  checkoutWaitMs: number;
}

export const DEFAULT_ORDERS_CONFIG: OrdersConfig = {
  taxBasisPoints: 1000,
  downloadTtlSeconds: 24 * 3600,
  maxDownloads: 5,
  settleDeadlineMs: 60_000,
  staleMs: 30_000,
  sweepIntervalMs: 5_000,
  checkoutWaitMs: 10_000,
};

export type OrderPush = Extract<KindredEvent, { type: 'order' }>;

export interface OrdersServiceDeps {
  bus: Bus;
  store: OrderStore;
  blobs: BlobStore;
  pool: SettlementPool;
  linkSecret: Buffer;
  config: OrdersConfig;
  /** pushes an event to the customer's open sessions (through their actor) */
  notify: (customerId: string, event: OrderPush) => void;
  log: (level: 'info' | 'warn' | 'error', msg: string, extra?: Record<string, unknown>) => void;
  now?: () => number;
  /** settlement outcomes, for metrics */
  onSettled?: (state: OrderState, ms: number) => void;
}

/** What a step did: moved the order (its new record), lost a race or backed off ('again'), or left it resting. */
type StepResult = 'again' | 'rest' | OrderRecord;

const RETRY_BASE_MS = 200;
/** how many orders' last local state onPayment remembers (about a minute of orders at 500/s) */
const RECENT_STATES_MAX = 32_768;
/** States after which a payment webhook changes nothing: the order is paid, or past it (see onPayment). */
const PAST_PAYMENT: readonly OrderState[] = ['paid', 'fulfilled', 'refunded'];
const RETRY_MAX_MS = 5_000;
const PAGE_MAX = 100;

/** Terminal with nothing owed: what a checkout waits for. */
function isAtRest(order: OrderRecord): boolean {
  return !order.pending && TERMINAL_STATES.includes(order.state);
}

function isTransient(err: unknown): boolean {
  const code = toKindredError(err).code;
  return code === 'UNAVAILABLE' || code === 'TIMEOUT' || code === 'OVERLOADED' || code === 'INTERNAL';
}

export function requestHash(lines: CartLine[], address: ShippingAddress | undefined): string {
  const sorted = [...lines].sort((a, b) => (a.bookId + a.format).localeCompare(b.bookId + b.format));
  return createHash('sha256').update(JSON.stringify({ lines: sorted.map((l) => [l.bookId, l.format, l.quantity]), address: address ?? null })).digest('hex');
}

export class OrdersService implements DownloadsApi {
  private readonly books: BooksClient;
  private readonly bookCache: BookCache;
  private readonly payments: PaymentsClient;
  private readonly now: () => number;
  private readonly subs: Subscription[] = [];
  /** orderId → the tail of that order's local work chain: one step at a time per order on this node */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** orderId → callbacks waiting for its next transition */
  private readonly waiters = new Map<string, Set<(order?: OrderRecord) => void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly background = new Set<Promise<unknown>>();
  /**
   * orderId → the state this node last moved the order to. States only move forward, so an
   * order known here to be paid or past it needs nothing from a payment webhook, and the
   * webhook that follows nearly every payment need not read the order (a read and JSON parse
   * per order). Bounded, oldest first out; an order not in it is read as before.
   */
  private readonly recentStates = new Map<string, OrderState>();

  constructor(private readonly deps: OrdersServiceDeps) {
    this.now = deps.now ?? Date.now;
    this.books = new BooksClient(deps.bus);
    // 30 s: Books announces every change, so the TTL only bounds a lost event; at 5 s most lookups over a few thousand books missed
    this.bookCache = new BookCache(this.books, 30_000, this.now);
    this.payments = new PaymentsClient(deps.bus);
  }

  /**
   * Subscribes, then drives every order a previous run left in a middle state (recovery).
   * `recoverOlderThanMs`: 0 when this node is the only one (embedded: every pending order is
   * its own, left by its crash); in a cluster only orders idle that long, so a starting node
   * does not race the live nodes' settlements (harmless, every step is a compare-and-set, but
   * wasted work).
   */
  async start(opts: { recoverOlderThanMs?: number } = {}): Promise<{ recovered: number }> {
    const { bus } = this.deps;
    // Replies are handed over, not copied (bus.ts HandOver): each is built for its request, and
    // the records it shares arrays with are never changed in place (a transition makes a new one).
    this.subs.push(bus.subscribe(SUBJECTS.orders, (p) => this.handle(p as OrdersRequest).then(handOver), { queue: 'orders' }));
    this.subs.push(bus.subscribe(PAYMENT_EVENTS_SUBJECT, (p) => this.onPayment(p as PaymentEvent), { queue: 'orders' }));
    this.bookCache.start(bus);
    const recovered = await this.recover(opts.recoverOlderThanMs ?? 0);
    this.sweepTimer = setInterval(() => void this.recover(this.deps.config.staleMs).catch(() => undefined), this.deps.config.sweepIntervalMs);
    this.sweepTimer.unref();
    return { recovered };
  }

  /** Stops taking requests and waits for the settlements in progress to reach a resting point. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    for (const s of this.subs) s.unsubscribe();
    this.bookCache.stop();
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /**
   * Drives every pending order last touched more than `olderThanMs` ago. At start (0) that
   * is every order a crash left in a middle state, or with a release or refund still owed.
   */
  async recover(olderThanMs: number): Promise<number> {
    let driven = 0;
    const cutoff = this.now() - olderThanMs;
    const pending = await this.deps.store.listPending(10_000, olderThanMs > 0 ? cutoff : undefined);
    for (const o of pending) {
      if (o.updatedAt > cutoff || this.locks.has(o.orderId)) continue;
      driven++;
      this.spawn(this.drive(o.orderId));
    }
    if (driven > 0) this.deps.log('info', 'orders: driving pending orders', { count: driven, olderThanMs });
    return driven;
  }

  private spawn(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.deps.log('error', 'orders: settlement step failed', { err: String(err) }));
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }

  // ── requests ────────────────────────────────────────────────────────────────────────

  async handle(req: OrdersRequest): Promise<OrdersReplies[OrdersRequest['op']]> {
    if (this.stopped) throw new KindredError('UNAVAILABLE', 'orders service is stopping');
    const { store } = this.deps;
    switch (req.op) {
      case 'cart.get':
        return { lines: await store.cart(req.customerId) };
      case 'cart.set': {
        const line = validateCartLine(req.line);
        if (line.quantity > 0) {
          const [book] = await this.bookCache.get([line.bookId]);
          if (!book) throw new KindredError('NOT_FOUND', `no book ${line.bookId}`);
          if (!book.formats.includes(line.format)) throw new KindredError('INVALID_ARGUMENT', `format: "${book.title}" is not sold as ${line.format}`);
        }
        await store.setCartLine(req.customerId, line);
        return { lines: await store.cart(req.customerId) };
      }
      case 'cart.clear':
        await store.clearCart(req.customerId);
        return { ok: true };
      case 'checkout':
        return this.checkout(req);
      case 'list': {
        const limit = Math.min(Math.max(1, req.limit ?? 20), PAGE_MAX);
        const orders = await store.listForCustomer(req.customerId, limit + 1, req.before);
        const page = orders.slice(0, limit);
        return { orders: page.map(orderView), next: orders.length > limit ? page[page.length - 1]!.orderId : null };
      }
      case 'get':
        return { order: orderView(await this.owned(req.customerId, req.orderId)) };
      case 'cancel':
        return { order: orderView(await this.cancel(req.customerId, req.orderId)) };
    }
  }

  private async owned(customerId: string, orderId: string): Promise<OrderRecord> {
    const o = await this.deps.store.get(orderId);
    if (!o || o.customerId !== customerId) throw new KindredError('NOT_FOUND', 'no such order');
    return o;
  }

  private async checkout(req: Extract<OrdersRequest, { op: 'checkout' }>): Promise<OrdersReplies['checkout']> {
    const { store, pool, config } = this.deps;
    const fromCart = req.lines === undefined;
    const key = validateIdempotencyKey(req.idempotencyKey);
    const waitMs = Math.min(Math.max(0, req.waitMs ?? config.checkoutWaitMs), 30_000);
    // A retry of an order that exists answers it without pricing it again (a cart checkout's
    // cart is empty by then, so only explicit lines are compared with the first request).
    const earlier = await store.byIdempotencyKey(req.customerId, key);
    if (earlier && fromCart) return { order: orderView(await this.waitForRest(earlier, waitMs)), created: false };
    const lines = fromCart ? await store.cart(req.customerId) : req.lines!;
    const input = validateCheckout(key, lines, req.shippingAddress);
    const hash = requestHash(input.lines, input.shippingAddress);
    if (earlier) {
      if (earlier.requestHash !== hash) throw new KindredError('CONFLICT', 'this Idempotency-Key was used for a different order');
      return { order: orderView(await this.waitForRest(earlier, waitMs)), created: false };
    }
    const books = await this.bookCache.get([...new Set(input.lines.map((l) => l.bookId))]);
    const priced = await pool.price({ lines: input.lines, books, taxBasisPoints: config.taxBasisPoints });
    if ('rejected' in priced) throw new KindredError('INVALID_ARGUMENT', priced.rejected);
    if (priced.lines.some((l) => l.format === 'print') && !input.shippingAddress) {
      throw new KindredError('INVALID_ARGUMENT', 'shippingAddress: required for print books');
    }
    const now = this.now();
    const { created, order } = await store.create({
      orderId: newId(),
      customerId: req.customerId,
      idempotencyKey: input.idempotencyKey,
      requestHash: hash,
      state: 'created',
      version: 1,
      lines: priced.lines,
      currency: priced.currency,
      subtotalCents: priced.subtotalCents,
      taxCents: priced.taxCents,
      totalCents: priced.totalCents,
      shippingAddress: input.shippingAddress ?? null,
      reason: null,
      fulfilment: null,
      pending: true,
      createdAt: now,
      updatedAt: now,
    });
    if (created) {
      this.announce(order, null);
      if (fromCart) await store.clearCart(req.customerId).catch(() => undefined);
      this.spawn(this.drive(order.orderId, order));
    }
    return { order: orderView(await this.waitForRest(order, waitMs)), created };
  }

  /** The order once it reached a terminal state, or as it is when `waitMs` ran out. */
  private async waitForRest(order: OrderRecord, waitMs: number): Promise<OrderRecord> {
    const deadline = this.now() + waitMs;
    let current = order;
    while (!isAtRest(current) && this.now() < deadline) {
      const { seen, woken } = await new Promise<{ seen?: OrderRecord; woken: boolean }>((resolve) => {
        const set = this.waiters.get(order.orderId) ?? new Set();
        this.waiters.set(order.orderId, set);
        const finish = (seen: OrderRecord | undefined, woken: boolean) => {
          clearTimeout(timer);
          set.delete(done);
          if (set.size === 0) this.waiters.delete(order.orderId);
          resolve({ seen, woken });
        };
        const done = (o?: OrderRecord) => finish(o, true);
        // woken by a local transition (with its record, or without after a cleanup); the timer catches another node's
        const timer = setTimeout(() => finish(undefined, false), Math.min(1000, Math.max(1, deadline - this.now())));
        set.add(done);
      });
      if (seen && seen.version >= current.version) current = seen;
      // While this node is moving the order, its transitions wake us: the timer need not read it.
      // The poll is for an order moved elsewhere (another node, a webhook after a rest); under
      // overload, thousands of waiting checkouts reading their orders every second made it worse.
      else if (woken || !this.locks.has(order.orderId)) current = (await this.deps.store.get(order.orderId)) ?? current;
    }
    // Out of time: answer where the order is now (middle transitions do not wake waiters).
    if (!isAtRest(current)) current = (await this.deps.store.get(order.orderId)) ?? current;
    return current;
  }

  // ── settlement ──────────────────────────────────────────────────────────────────────

  /** Runs `fn` after the order's earlier local work, so one node moves an order one step at a time. */
  private withLock<T>(orderId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(orderId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(orderId, tail);
    void tail.then(() => {
      if (this.locks.get(orderId) === tail) this.locks.delete(orderId);
    });
    return run;
  }

  /** Moves the order forward until it rests: terminal with nothing owed, or waiting for a webhook. */
  drive(orderId: string, known?: OrderRecord): Promise<void> {
    return this.withLock(orderId, async () => {
      let attempt = 0;
      let order = known ?? (await this.deps.store.get(orderId));
      for (;;) {
        if (this.stopped || !order) return;
        let next: StepResult;
        try {
          next = await this.step(order);
          attempt = 0;
        } catch (err) {
          if (!isTransient(err)) throw err;
          // Books, the payment adapter or storage is unavailable: back off and try the step again.
          attempt++;
          this.deps.log('warn', 'orders: step will be retried', { orderId, state: order.state, attempt, err: String(err) });
          await new Promise((r) => setTimeout(r, Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(attempt, 6))));
          next = 'again';
        }
        if (next === 'rest') return;
        // the record a transition returned is current; otherwise read where the order is now
        order = typeof next === 'object' ? next : await this.deps.store.get(orderId);
      }
    });
  }

  private expired(order: OrderRecord): boolean {
    return this.now() - order.createdAt > this.deps.config.settleDeadlineMs;
  }

  /** One step of the state machine. Throws a transient error to be retried with backoff. */
  private async step(order: OrderRecord): Promise<StepResult> {
    switch (order.state) {
      case 'created': {
        const print = order.lines.filter((l) => l.format === 'print').map((l) => ({ bookId: l.bookId, quantity: l.quantity }));
        try {
          if (print.length > 0) await this.books.reserve(order.orderId, print);
        } catch (err) {
          const e = toKindredError(err);
          if (e.code === 'LIMIT_REACHED') return this.move(order, 'failed', { reason: 'out_of_stock', pending: true });
          if (isTransient(err) && this.expired(order)) return this.move(order, 'failed', { reason: 'stock_unavailable', pending: true });
          throw err;
        }
        return this.move(order, 'stock_reserved');
      }
      case 'stock_reserved': {
        let outcome: PaymentOutcome;
        try {
          outcome = await this.payments.request({ op: 'charge', orderId: order.orderId, amountCents: order.totalCents, currency: order.currency });
        } catch (err) {
          if (isTransient(err) && this.expired(order)) {
            // The provider could not be reached in time. The cleanup after `failed` makes sure
            // no charge stands (cancels or refunds whatever the provider may have recorded).
            return this.move(order, 'failed', { reason: 'payment_unavailable', pending: true });
          }
          throw err;
        }
        return this.onOutcome(order, outcome);
      }
      case 'paid': {
        await this.books.commit(order.orderId);
        const { fulfilment, downloads, shipment } = await this.fulfil(order);
        return this.move(order, 'fulfilled', { fulfilment, downloads, shipment, pending: false });
      }
      case 'failed':
      case 'cancelled':
      case 'refunded':
        if (order.pending) return this.cleanUp(order);
        return 'rest';
      case 'fulfilled':
        return 'rest';
    }
  }

  /** Applies a payment outcome to an order waiting for its payment. */
  private onOutcome(order: OrderRecord, outcome: PaymentOutcome): Promise<StepResult> | StepResult {
    switch (outcome.status) {
      case 'succeeded':
        return this.move(order, 'paid');
      case 'declined':
        return this.move(order, 'failed', { reason: `payment_declined: ${outcome.reason}`, pending: true });
      case 'canceled':
        return this.move(order, 'failed', { reason: 'payment_canceled', pending: true });
      case 'processing':
        // The provider confirms later by webhook; the sweeper asks again if none comes.
        if (this.expired(order)) return this.move(order, 'failed', { reason: 'payment_unconfirmed', pending: true });
        return 'rest';
      case 'none':
      case 'refunded':
        return this.move(order, 'failed', { reason: `payment_${outcome.status}`, pending: true });
    }
  }

  /**
   * What a failed, cancelled or refunded order still owes: its reserved copies go back, and
   * a payment that may stand (the provider was unreachable, the customer cancelled while it
   * was in flight, or it succeeded late) is cancelled or refunded. Then `pending` clears.
   */
  private async cleanUp(order: OrderRecord): Promise<StepResult> {
    if (order.lines.some((l) => l.format === 'print')) await this.books.release(order.orderId);
    const mayHavePaid = order.state !== 'failed' || !/^(out_of_stock|stock_unavailable|payment_declined)/.test(order.reason ?? '');
    if (mayHavePaid) {
      const status = await this.payments.request({ op: 'status', orderId: order.orderId });
      if (status.status === 'processing') await this.payments.request({ op: 'cancel', orderId: order.orderId });
      if (status.status === 'succeeded') await this.payments.request({ op: 'refund', orderId: order.orderId });
      if (status.status === 'succeeded' && order.state !== 'refunded') {
        return this.move(order, 'refunded', { reason: `${order.reason ?? order.state}; the payment went through and was refunded`, pending: false });
      }
    }
    await this.deps.store.settle(order.orderId, order.version, this.now());
    this.wake(order.orderId);
    const final = (await this.deps.store.get(order.orderId)) ?? order;
    this.deps.onSettled?.(final.state, this.now() - final.createdAt);
    return 'again';
  }

  /** The fulfilment of a paid order: download links and a shipment, written with the `fulfilled` transition. */
  private async fulfil(order: OrderRecord): Promise<{ fulfilment: Fulfilment; downloads: DownloadRecord[]; shipment?: ShipmentRecord }> {
    const { config, pool } = this.deps;
    const ebooks = order.lines.filter((l) => l.format === 'ebook').map((l) => l.bookId);
    const hasPrint = order.lines.some((l) => l.format === 'print');
    // Expiry counts from the payment, and is the same on every retry of this step.
    const paidAt = order.updatedAt;
    const expiresAt = paidAt + config.downloadTtlSeconds * 1000;
    const signed = await pool.sign({ orderId: order.orderId, customerId: order.customerId, ebooks, hasPrint, expiresAt, maxDownloads: config.maxDownloads });
    const fulfilment: Fulfilment = {};
    const downloads: DownloadRecord[] = [];
    let shipmentRecord: ShipmentRecord | undefined;
    if (signed.downloads.length > 0) {
      const links: DownloadLink[] = [];
      for (const d of signed.downloads) {
        downloads.push({ tokenId: d.tokenId, orderId: order.orderId, customerId: order.customerId, bookId: d.bookId, expiresAt, maxUses: config.maxDownloads, uses: 0 });
        links.push({ bookId: d.bookId, url: `/downloads/${d.token}`, expiresAt, maxDownloads: config.maxDownloads });
      }
      fulfilment.downloads = links;
    }
    if (signed.trackingId && order.shippingAddress) {
      const shipment = { trackingId: signed.trackingId, carrier: 'kindred-post', createdAt: paidAt };
      shipmentRecord = { ...shipment, orderId: order.orderId, address: order.shippingAddress };
      fulfilment.shipment = shipment;
    }
    return { fulfilment, downloads, ...(shipmentRecord ? { shipment: shipmentRecord } : {}) };
  }

  /**
   * One transition, persisted before anyone hears of it. 'again' either way: if another
   * writer moved the order first, the next round sees where it is now.
   */
  private async move(
    order: OrderRecord,
    to: OrderState,
    change: { reason?: string; pending?: boolean; fulfilment?: Fulfilment; downloads?: DownloadRecord[]; shipment?: ShipmentRecord } = {},
  ): Promise<StepResult> {
    const next = await this.deps.store.transition(order.orderId, order.version, { to, at: this.now(), ...change }, order);
    if (!next) return 'again';
    this.announce(next, order.state);
    if (to === 'fulfilled') this.deps.onSettled?.(to, next.updatedAt - next.createdAt);
    return next;
  }

  private announce(order: OrderRecord, from: OrderState | null): void {
    this.remember(order);
    const view = orderView(order);
    const event: OrderEvent = { type: 'order.transition', order: view, from };
    this.deps.bus.publish(SUBJECTS.orderEvents, event);
    this.deps.notify(order.customerId, { type: 'order', order: view, from });
    // Checkouts wait for the order to rest; waking them for a middle state would only re-arm their timers.
    if (isAtRest(order)) this.wake(order.orderId, order);
  }

  private remember(order: OrderRecord): void {
    const states = this.recentStates;
    states.delete(order.orderId); // re-inserted last: the map's order is the eviction order
    states.set(order.orderId, order.state);
    if (states.size > RECENT_STATES_MAX) states.delete(states.keys().next().value as string);
  }

  private wake(orderId: string, order?: OrderRecord): void {
    const set = this.waiters.get(orderId);
    if (set) for (const done of [...set]) done(order);
  }

  /** A verified webhook: moves an order waiting for its payment, or refunds a payment that came too late. */
  private async onPayment(event: PaymentEvent): Promise<void> {
    if (this.stopped) return;
    // Paid or past it on this node: nothing below would act (no state goes back to stock_reserved, failed or cancelled).
    const known = this.recentStates.get(event.orderId);
    if (known && PAST_PAYMENT.includes(known)) return;
    const order = await this.deps.store.get(event.orderId);
    if (!order) return;
    // Most webhooks confirm what the synchronous answer already said: nothing to do.
    const late = (order.state === 'failed' || order.state === 'cancelled') && event.outcome.status === 'succeeded';
    if (order.state !== 'stock_reserved' && !late) return;
    await this.withLock(order.orderId, async () => {
      const current = await this.deps.store.get(order.orderId);
      if (!current) return;
      if (current.state === 'stock_reserved' && event.outcome.status !== 'processing') {
        await this.onOutcome(current, event.outcome);
      } else if ((current.state === 'failed' || current.state === 'cancelled') && event.outcome.status === 'succeeded' && !current.pending) {
        // Succeeded after we gave up on it: owe a refund, done by the cleanup.
        await this.deps.store.transition(current.orderId, current.version, { to: 'refunded', at: this.now(), reason: 'payment succeeded after the order ended', pending: true }).then((n) => {
          if (n) this.announce(n, current.state);
        });
      }
    });
    this.spawn(this.drive(order.orderId));
  }

  private async cancel(customerId: string, orderId: string): Promise<OrderRecord> {
    await this.owned(customerId, orderId);
    const result = await this.withLock(orderId, async () => {
      for (let i = 0; i < 16; i++) {
        const o = await this.deps.store.get(orderId);
        if (!o) throw new KindredError('NOT_FOUND', 'no such order');
        if (o.state === 'created' || o.state === 'stock_reserved') {
          const next = await this.deps.store.transition(orderId, o.version, { to: 'cancelled', at: this.now(), reason: 'cancelled by the customer', pending: true });
          if (next) {
            this.announce(next, o.state);
            return next;
          }
          continue;
        }
        if (o.state === 'paid' || o.state === 'fulfilled') {
          const outcome = await this.payments.request({ op: 'refund', orderId });
          if (outcome.status !== 'refunded') throw new KindredError('UNAVAILABLE', `refund not possible now (payment ${outcome.status})`);
          const next = await this.deps.store.transition(orderId, o.version, { to: 'refunded', at: this.now(), reason: 'refunded at the customer\'s request', pending: o.state === 'paid' });
          if (next) {
            this.announce(next, o.state);
            return next;
          }
          continue;
        }
        if (o.state === 'failed') throw new KindredError('CONFLICT', 'the order already failed: nothing to cancel');
        return o; // cancelled or refunded already: cancelling again changes nothing
      }
      throw new KindredError('UNAVAILABLE', 'the order kept changing; retry');
    });
    this.spawn(this.drive(orderId));
    return result;
  }

  // ── downloads ───────────────────────────────────────────────────────────────────────

  async open(token: string): Promise<{ data: Buffer; contentType: string; filename: string }> {
    const claims = verifyDownloadToken(token, this.deps.linkSecret);
    if (!claims) throw new KindredError('NOT_FOUND', 'no such download link');
    const now = this.now();
    if (claims.expiresAt <= now) throw new KindredError('FORBIDDEN', 'this download link has expired');
    const order = await this.deps.store.get(claims.orderId);
    if (!order || order.state !== 'fulfilled') throw new KindredError('FORBIDDEN', 'this download link is no longer valid (the order was refunded)');
    const use = await this.deps.store.useDownload(claims.tokenId, now);
    if (!use.ok) {
      if (use.reason === 'expired') throw new KindredError('FORBIDDEN', 'this download link has expired');
      if (use.reason === 'exhausted') throw new KindredError('LIMIT_REACHED', 'this download link has been used the most times allowed');
      throw new KindredError('NOT_FOUND', 'no such download link');
    }
    const file = await this.books.ebookFile(claims.bookId);
    const blob = await this.deps.blobs.get(file.blobKey);
    if (!blob) throw new KindredError('NOT_FOUND', 'the ebook file is missing');
    const line = order.lines.find((l) => l.bookId === claims.bookId);
    const ext = file.contentType === 'application/pdf' ? 'pdf' : file.contentType === 'application/epub+zip' ? 'epub' : 'bin';
    const filename = `${(line?.title ?? claims.bookId).replace(/[^A-Za-z0-9 ._-]/g, '').slice(0, 80).trim() || 'ebook'}.${ext}`;
    return { data: blob.data, contentType: file.contentType || blob.contentType, filename };
  }
}
