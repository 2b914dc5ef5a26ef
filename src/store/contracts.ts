/**
 * The book store's services talk over the bus (LocalBus embedded, NATS in a cluster), each
 * owning its own data. This file is the one place their request/reply shapes are written
 * down, so a service can be moved to another node (or process) without its callers changing.
 *
 * Every service subscribes to its subject with a queue group named after the service, so in
 * a cluster any one node answers each request. Payloads are plain msgpack-able data.
 * Errors travel as KindredError codes (see src/errors.ts) through the bus reply envelope.
 */

export const SUBJECTS = {
  books: 'kindred.svc.books',
  search: 'kindred.svc.search',
  customers: 'kindred.svc.customers',
  orders: 'kindred.svc.orders',
  payments: 'kindred.svc.payments',
  /** Books publishes a BookEvent here after every committed change; Search indexes from it. */
  bookEvents: 'kindred.evt.books',
  /** Orders publishes an OrderEvent here after every persisted state transition. */
  orderEvents: 'kindred.evt.orders',
} as const;

export type BookFormat = 'ebook' | 'print';

export interface Book {
  bookId: string;
  title: string;
  authors: string[];
  isbn: string;
  description: string;
  /** minor units (cents) */
  priceCents: number;
  /** ISO 4217, e.g. 'EUR' */
  currency: string;
  formats: BookFormat[];
  /** print copies available to reserve (0 when the book has no print format) */
  stock: number;
  /** URL path of the cover image, when one was uploaded */
  coverUrl?: string;
  /** true when an ebook file has been uploaded */
  hasEbookFile: boolean;
  createdAt: number;
  updatedAt: number;
}

export type BookEvent =
  | { type: 'book.upserted'; book: Book }
  | { type: 'book.deleted'; bookId: string };

/** Requests to SUBJECTS.books. */
export type BooksRequest =
  | { op: 'get'; bookIds: string[] }
  /**
   * Reserve print copies for an order, all lines or none. Idempotent per orderId: repeating
   * it returns the first outcome. Never oversells, also under concurrent reservations on
   * several nodes. Fails with LIMIT_REACHED ('out of stock') when any line cannot be met.
   */
  | { op: 'reserve'; orderId: string; lines: Array<{ bookId: string; quantity: number }> }
  /** Give a reservation's copies back (order failed or cancelled). Idempotent; a no-op after commit. */
  | { op: 'release'; orderId: string }
  /** The order was paid: the reserved copies are sold. Idempotent. */
  | { op: 'commit'; orderId: string }
  /** Where the ebook file of a book lives in the blob store (for fulfilment downloads). */
  | { op: 'ebookFile'; bookId: string };

export interface BooksReplies {
  get: { books: Book[] };
  reserve: { reserved: true };
  release: { released: boolean };
  commit: { committed: boolean };
  ebookFile: { blobKey: string; contentType: string; bytes: number };
}

// ── Orders (src/store/orders/) ─────────────────────────────────────────────────────────

/**
 * The order state machine (docs/orders.md): created → stock_reserved → paid → fulfilled on
 * the happy path; failed (out of stock, declined, provider unavailable past its deadline),
 * cancelled (by the customer before payment) and refunded (cancelled after payment) end it.
 */
export type OrderState = 'created' | 'stock_reserved' | 'paid' | 'fulfilled' | 'failed' | 'cancelled' | 'refunded';

export interface OrderLine {
  bookId: string;
  format: BookFormat;
  quantity: number;
  /** minor units, the book's price when the order was placed */
  unitPriceCents: number;
  title: string;
}

export interface ShippingAddress {
  name: string;
  line1: string;
  line2?: string;
  city: string;
  postalCode: string;
  country: string;
}

export interface DownloadLink {
  bookId: string;
  /** path on this server: GET /downloads/<token> */
  url: string;
  expiresAt: number;
  maxDownloads: number;
}

export interface Shipment {
  trackingId: string;
  carrier: string;
  createdAt: number;
}

export interface OrderView {
  orderId: string;
  customerId: string;
  state: OrderState;
  lines: OrderLine[];
  currency: string;
  subtotalCents: number;
  taxCents: number;
  totalCents: number;
  shippingAddress?: ShippingAddress;
  /** why the order failed, was cancelled or refunded */
  reason?: string;
  downloads?: DownloadLink[];
  shipment?: Shipment;
  createdAt: number;
  updatedAt: number;
}

export interface CartLine {
  bookId: string;
  format: BookFormat;
  quantity: number;
}

export type OrderEvent = { type: 'order.transition'; order: OrderView; from: OrderState | null };

/** Requests to SUBJECTS.orders (the REST routes in src/protocol/http/orders-routes.ts use these). */
export type OrdersRequest =
  | { op: 'cart.get'; customerId: string }
  /** quantity 0 removes the line */
  | { op: 'cart.set'; customerId: string; line: CartLine }
  | { op: 'cart.clear'; customerId: string }
  /**
   * Turns the cart (or the given lines) into an order and settles it. Idempotent per
   * (customerId, idempotencyKey): the same key returns the same order; the same key with a
   * different request is CONFLICT. Answers once the order reached a terminal state or
   * `waitMs` passed (then the order is still settling; its progress arrives as `order` events).
   */
  | { op: 'checkout'; customerId: string; idempotencyKey: string; lines?: CartLine[]; shippingAddress?: ShippingAddress; waitMs?: number }
  | { op: 'list'; customerId: string; limit?: number; before?: string }
  | { op: 'get'; customerId: string; orderId: string }
  | { op: 'cancel'; customerId: string; orderId: string };

export interface OrdersReplies {
  'cart.get': { lines: CartLine[] };
  'cart.set': { lines: CartLine[] };
  'cart.clear': { ok: true };
  checkout: { order: OrderView; created: boolean };
  list: { orders: OrderView[]; next: string | null };
  get: { order: OrderView };
  cancel: { order: OrderView };
}

// ── Payments (src/store/payments/) ───────────────────────────────────────────────────

/** What the payment provider said about an order's payment. */
export type PaymentOutcome =
  | { status: 'succeeded'; intentId: string }
  | { status: 'declined'; intentId: string; reason: string }
  /** confirmation is asynchronous: a webhook (or a later status request) tells the result */
  | { status: 'processing'; intentId: string }
  /** no payment exists for the order at the provider */
  | { status: 'none' }
  | { status: 'canceled'; intentId: string }
  | { status: 'refunded'; intentId: string };

/** Requests to SUBJECTS.payments. Every op is idempotent per orderId (keys derived from it). */
export type PaymentsRequest =
  | { op: 'charge'; orderId: string; amountCents: number; currency: string }
  | { op: 'status'; orderId: string }
  | { op: 'cancel'; orderId: string }
  | { op: 'refund'; orderId: string }
  /** a provider webhook as received (raw body and signature header): verified, then published as a PaymentEvent */
  | { op: 'webhook'; body: string; signature: string };

export interface PaymentsReplies {
  webhook: { received: true };
  charge: PaymentOutcome;
  status: PaymentOutcome;
  cancel: PaymentOutcome;
  refund: PaymentOutcome;
}

/** Published on PAYMENT_EVENTS_SUBJECT when a verified provider webhook arrives. */
export interface PaymentEvent {
  type: 'payment.updated';
  orderId: string;
  outcome: PaymentOutcome;
}

/** Payments publishes a PaymentEvent here for each verified webhook; Orders drives the order from it. */
export const PAYMENT_EVENTS_SUBJECT = 'kindred.evt.payments';
