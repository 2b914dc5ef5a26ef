/**
 * OpenAPI documentation of the Orders and Payment routes (orders-routes.ts), merged into
 * the document by openapi.ts.
 */
import type { ErrorCode } from '../../errors.js';

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str = (description?: string): Schema => (description ? { type: 'string', description } : { type: 'string' });
const int = (description?: string): Schema => (description ? { type: 'integer', description } : { type: 'integer' });
const ms: Schema = { type: 'integer', description: 'milliseconds since the Unix epoch' };
const format: Schema = { type: 'string', enum: ['ebook', 'print'] };

export interface OrdersOperationDoc {
  request?: string;
  response: string | { contentType: string; schema: Schema; description: string };
  query?: Array<{ name: string; schema: Schema; description: string; required?: boolean }>;
  errors?: ErrorCode[];
  description?: string;
}

export function ordersSchemas(): Record<string, Schema> {
  const cartLine = { type: 'object', properties: { bookId: str(), format, quantity: int('0 removes the line') }, required: ['bookId', 'format', 'quantity'], additionalProperties: false };
  const address = {
    type: 'object',
    properties: { name: str(), line1: str(), line2: str(), city: str(), postalCode: str(), country: str('ISO 3166 alpha-2') },
    required: ['name', 'line1', 'city', 'postalCode', 'country'],
    additionalProperties: false,
  };
  return {
    CartLine: cartLine,
    Cart: { type: 'object', properties: { lines: { type: 'array', items: ref('CartLine') } }, required: ['lines'] },
    ShippingAddress: address,
    CheckoutRequest: {
      type: 'object',
      properties: {
        lines: { type: 'array', items: ref('CartLine'), description: 'omit to order the cart (which is then emptied)' },
        shippingAddress: ref('ShippingAddress'),
        idempotencyKey: str('alternative to the Idempotency-Key header'),
      },
      additionalProperties: false,
    },
    Order: {
      type: 'object',
      properties: {
        orderId: str(),
        customerId: str(),
        state: { type: 'string', enum: ['created', 'stock_reserved', 'paid', 'fulfilled', 'failed', 'cancelled', 'refunded'] },
        lines: { type: 'array', items: { type: 'object', properties: { bookId: str(), format, quantity: int(), unitPriceCents: int(), title: str() } } },
        currency: str(),
        subtotalCents: int(),
        taxCents: int(),
        totalCents: int(),
        shippingAddress: ref('ShippingAddress'),
        reason: str('why it failed, was cancelled or refunded'),
        downloads: {
          type: 'array',
          items: { type: 'object', properties: { bookId: str(), url: str('GET it: /downloads/<token>'), expiresAt: ms, maxDownloads: int() } },
        },
        shipment: { type: 'object', properties: { trackingId: str(), carrier: str(), createdAt: ms } },
        createdAt: ms,
        updatedAt: ms,
      },
      required: ['orderId', 'state', 'lines', 'currency', 'totalCents', 'createdAt', 'updatedAt'],
    },
    CheckoutResult: { type: 'object', properties: { order: ref('Order'), created: { type: 'boolean', description: 'false when the key named an existing order' } } },
    OrderResult: { type: 'object', properties: { order: ref('Order') } },
    OrderPage: { type: 'object', properties: { orders: { type: 'array', items: ref('Order') }, next: { type: ['string', 'null'] } } },
    WebhookResult: { type: 'object', properties: { received: { const: true } } },
  };
}

export const ordersDocs: Record<string, OrdersOperationDoc> = {
  getCart: { response: 'Cart' },
  setCartLine: { request: 'CartLine', response: 'Cart', errors: ['NOT_FOUND'] },
  removeCartLine: { response: 'Cart' },
  clearCart: { response: 'Ok' },
  checkout: {
    request: 'CheckoutRequest',
    response: 'CheckoutResult',
    query: [{ name: 'waitMs', schema: { type: 'integer', minimum: 0, maximum: 30000 }, description: 'how long to wait for a final state (default 10000)' }],
    errors: ['CONFLICT', 'NOT_FOUND'],
    description:
      'Needs an Idempotency-Key header (or idempotencyKey field): the same key answers the same order (200, created false); ' +
      'the same key with other lines is CONFLICT. 201 with the order once it is fulfilled or failed, or as it stands when waitMs ran out; ' +
      'its later states arrive as `order` events on your open sessions.',
  },
  listOrders: {
    response: 'OrderPage',
    query: [
      { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 100 }, description: 'page size' },
      { name: 'before', schema: { type: 'string' }, description: 'the `next` of the previous page' },
    ],
  },
  getOrder: { response: 'OrderResult', errors: ['NOT_FOUND'] },
  cancelOrder: { response: 'OrderResult', errors: ['NOT_FOUND', 'CONFLICT'], description: 'Before payment the order is cancelled and its stock released; after payment it is refunded.' },
  paymentWebhook: { response: 'WebhookResult', errors: ['FORBIDDEN'], description: 'Called by the payment provider; HMAC-SHA256 signed (Kindred-Signature: t=…,v1=…).' },
  download: {
    response: { contentType: '*/*', schema: { type: 'string', contentMediaType: 'application/octet-stream' }, description: 'the ebook file, as an attachment' },
    errors: ['NOT_FOUND', 'FORBIDDEN', 'LIMIT_REACHED'],
    description: 'FORBIDDEN once the link expired or its order was refunded; LIMIT_REACHED once its downloads are used up.',
  },
};
