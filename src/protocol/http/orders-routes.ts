/**
 * REST routes of the book store's Orders and Payment services: the cart, orders, the
 * payment provider's webhook and ebook downloads. Each route turns the request into one
 * OrdersRequest or PaymentsRequest (src/store/contracts.ts) and sends it over the bus, so
 * the transport never touches the services' storage; downloads stream the file the Orders
 * service hands back.
 */
import { KindredError } from '../../errors.js';
import { SUBJECTS, type OrdersRequest, type PaymentsRequest } from '../../store/contracts.js';
import type { Reply, RequestContext, Route, RouteDeps } from './routes.js';
import { Fields, isObject, pathId, queryId, queryInteger } from './validate.js';

const ORDERS_TIMEOUT_MS = 40_000;

function customerOf(ctx: RequestContext): string {
  if (!ctx.principal) throw new KindredError('UNAUTHENTICATED');
  return ctx.principal.userId;
}

function busOf(deps: RouteDeps): NonNullable<RouteDeps['bus']> {
  if (!deps.bus) throw new KindredError('UNAVAILABLE', 'the book store is not running on this server');
  return deps.bus;
}

async function orders(deps: RouteDeps, req: OrdersRequest): Promise<unknown> {
  return busOf(deps).request(SUBJECTS.orders, req, ORDERS_TIMEOUT_MS);
}

function json(status: number, body: unknown): Reply {
  return { status, json: body };
}

function cartLine(body: unknown): { bookId: string; format: 'ebook' | 'print'; quantity: number } {
  const f = new Fields(body, '', ['bookId', 'format', 'quantity']);
  return { bookId: f.string('bookId'), format: f.oneOf('format', ['ebook', 'print'] as const), quantity: f.integer('quantity', 0, 100) };
}

export const ordersRoutes: Route[] = [
  {
    id: 'getCart', method: 'get', path: '/v1/cart', auth: true, body: 'none', status: 200, tag: 'store',
    summary: 'The lines in your cart',
    handle: async (ctx, deps) => json(200, await orders(deps, { op: 'cart.get', customerId: customerOf(ctx) })),
  },
  {
    id: 'setCartLine', method: 'put', path: '/v1/cart/lines', auth: true, body: 'json', status: 200, tag: 'store',
    summary: 'Add a book to your cart or change its quantity (0 removes it)',
    handle: async (ctx, deps) => json(200, await orders(deps, { op: 'cart.set', customerId: customerOf(ctx), line: cartLine(ctx.body) })),
  },
  {
    id: 'removeCartLine', method: 'delete', path: '/v1/cart/lines/:bookId/:format', auth: true, body: 'none', status: 200, tag: 'store',
    summary: 'Remove a book (in one format) from your cart',
    handle: async (ctx, deps) => {
      const format = ctx.params.format;
      if (format !== 'ebook' && format !== 'print') throw new KindredError('INVALID_ARGUMENT', 'format: must be ebook or print');
      const line = { bookId: ctx.params.bookId ?? '', format, quantity: 0 } as const;
      return json(200, await orders(deps, { op: 'cart.set', customerId: customerOf(ctx), line }));
    },
  },
  {
    id: 'clearCart', method: 'delete', path: '/v1/cart', auth: true, body: 'none', status: 200, tag: 'store',
    summary: 'Empty your cart',
    handle: async (ctx, deps) => json(200, await orders(deps, { op: 'cart.clear', customerId: customerOf(ctx) })),
  },
  {
    id: 'checkout', method: 'post', path: '/v1/orders', auth: true, body: 'json', status: 201, tag: 'store',
    summary: 'Order your cart (or the given lines) and settle it; idempotent per Idempotency-Key',
    handle: async (ctx, deps) => {
      const f = new Fields(ctx.body, '', ['lines', 'shippingAddress', 'idempotencyKey']);
      const key = ctx.headers.idempotencyKey || (f.has('idempotencyKey') ? f.string('idempotencyKey') : '');
      if (!key) throw new KindredError('INVALID_ARGUMENT', 'idempotencyKey: send an Idempotency-Key header (or an idempotencyKey field)');
      const lines = f.has('lines') ? f.raw('lines') : undefined;
      if (lines !== undefined && !Array.isArray(lines)) throw new KindredError('INVALID_ARGUMENT', 'lines: must be an array');
      const address = f.raw('shippingAddress');
      if (address !== undefined && !isObject(address)) throw new KindredError('INVALID_ARGUMENT', 'shippingAddress: must be an object');
      const waitMs = queryInteger(ctx.query, 'waitMs', 0, 30_000);
      const req: OrdersRequest = {
        op: 'checkout',
        customerId: customerOf(ctx),
        idempotencyKey: key,
        ...(lines !== undefined ? { lines: lines as never } : {}),
        ...(address !== undefined ? { shippingAddress: address as never } : {}),
        ...(waitMs !== undefined ? { waitMs } : {}),
      };
      const result = (await orders(deps, req)) as { created: boolean; order: unknown };
      return json(result.created ? 201 : 200, result);
    },
  },
  {
    id: 'listOrders', method: 'get', path: '/v1/orders', auth: true, body: 'none', status: 200, tag: 'store',
    summary: 'Your orders, newest first',
    handle: async (ctx, deps) => {
      const limit = queryInteger(ctx.query, 'limit', 1, 100);
      const before = queryId(ctx.query, 'before');
      return json(200, await orders(deps, { op: 'list', customerId: customerOf(ctx), ...(limit ? { limit } : {}), ...(before ? { before } : {}) }));
    },
  },
  {
    id: 'getOrder', method: 'get', path: '/v1/orders/:orderId', auth: true, body: 'none', status: 200, tag: 'store',
    summary: 'One of your orders, with its download links or shipment',
    handle: async (ctx, deps) => json(200, await orders(deps, { op: 'get', customerId: customerOf(ctx), orderId: pathId(ctx.params, 'orderId') })),
  },
  {
    id: 'cancelOrder', method: 'post', path: '/v1/orders/:orderId/cancel', auth: true, body: 'none', status: 200, tag: 'store',
    summary: 'Cancel an order (before payment) or have it refunded (after)',
    handle: async (ctx, deps) => json(200, await orders(deps, { op: 'cancel', customerId: customerOf(ctx), orderId: pathId(ctx.params, 'orderId') })),
  },
  {
    id: 'paymentWebhook', method: 'post', path: '/webhooks/payments', auth: false, body: 'raw', status: 200, tag: 'store',
    summary: "The payment provider's signed webhook (Kindred-Signature header)",
    handle: async (ctx, deps) => {
      const body = Buffer.from(ctx.body as Uint8Array).toString('utf8');
      const req: PaymentsRequest = { op: 'webhook', body, signature: ctx.headers.webhookSignature };
      return json(200, await busOf(deps).request(SUBJECTS.payments, req, 10_000));
    },
  },
  {
    id: 'download', method: 'get', path: '/downloads/:token', auth: false, body: 'none', status: 200, tag: 'store',
    summary: 'An ebook through its signed, expiring, count-limited link',
    handle: async (ctx, deps) => {
      if (!deps.downloads) throw new KindredError('UNAVAILABLE', 'the book store is not running on this server');
      const file = await deps.downloads.open(ctx.params.token ?? '');
      return {
        status: 200,
        body: file.data,
        contentType: file.contentType,
        headers: { 'Content-Disposition': `attachment; filename="${file.filename}"`, 'Cache-Control': 'private, no-store' },
      };
    },
  },
];
