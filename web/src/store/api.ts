/**
 * The book store's REST calls, in one place (docs/store.md, docs/orders.md, /openapi.json).
 * Every path the front end uses for the store is here, so the pages never spell one.
 */
import { api } from '../api.js';
import type { Book, CartLine, OrderView, SavedAddress, SearchResult, ShippingAddress, Suggestion } from './types.js';

export interface SearchParams {
  q: string;
  format?: string;
  /** minor units, inclusive */
  minPrice?: number;
  /** minor units, inclusive */
  maxPrice?: number;
  author?: string;
  sort?: string;
  page?: number;
  size?: number;
}

function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  return q.toString();
}

export const storeApi = {
  search: (p: SearchParams, signal?: AbortSignal) => api<SearchResult>('GET', `/v1/search?${query({ ...p })}`, { anonymous: true, ...(signal ? { signal } : {}) }),
  suggest: (q: string, signal?: AbortSignal) => api<{ suggestions: Suggestion[] }>('GET', `/v1/search/suggest?${query({ q })}`, { anonymous: true, ...(signal ? { signal } : {}) }),
  book: (bookId: string) => api<{ book: Book }>('GET', `/v1/books/${encodeURIComponent(bookId)}`, { anonymous: true }),
  /** quantity 0 removes the line */
  cart: () => api<{ lines: CartLine[] }>('GET', '/v1/cart'),
  setCartLine: (line: CartLine) => api<{ lines: CartLine[] }>('PUT', '/v1/cart/lines', { json: line }),
  /** answers at once (waitMs=0): the order page follows the settlement through live `order` events */
  checkout: (idempotencyKey: string, body: { shippingAddress?: ShippingAddress }) =>
    api<{ order: OrderView; created: boolean }>('POST', '/v1/orders?waitMs=0', { json: body, headers: { 'Idempotency-Key': idempotencyKey } }),
  addresses: () => api<{ addresses: SavedAddress[] }>('GET', '/v1/customers/me/addresses'),
  saveAddress: (a: ShippingAddress) => api<{ address: SavedAddress }>('POST', '/v1/customers/me/addresses', { json: { ...a, default: true } }),
  orders: (before?: string) => api<{ orders: OrderView[]; next: string | null }>('GET', `/v1/orders?${query({ before, limit: 20 })}`),
  order: (orderId: string) => api<{ order: OrderView }>('GET', `/v1/orders/${encodeURIComponent(orderId)}`),
  cancel: (orderId: string) => api<{ order: OrderView }>('POST', `/v1/orders/${encodeURIComponent(orderId)}/cancel`),
};
