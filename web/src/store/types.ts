/**
 * The book store's shapes. Those the REST API returns as they are on the bus come from the
 * server's contract (type-only: nothing of the server is bundled); the rest are views of
 * src/store/search/ and the Customers service.
 */
import type { Book, BookFormat, OrderState, ShippingAddress } from '../../../src/store/contracts.js';

export type { Book, BookFormat, CartLine, OrderLine, OrderState, OrderView, ShippingAddress } from '../../../src/store/contracts.js';

export interface Facets {
  format: Record<BookFormat, number>;
  price: Array<{ key: string; min: number; max: number | null; count: number }>;
  author: Array<{ name: string; count: number }>;
}

export interface SearchResult {
  results: Book[];
  total: number;
  page: number;
  size: number;
  pages: number;
  facets: Facets;
}

export interface Suggestion {
  bookId: string;
  title: string;
  authors: string[];
}

/** an entry of the customer's address book (Customers service) */
export interface SavedAddress extends Required<ShippingAddress> {
  addressId: string;
  label: string;
  isDefault: boolean;
}

export function formatPrice(cents: number, currency: string): string {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

export const STATE_TEXT: Record<OrderState, string> = {
  created: 'Placed',
  stock_reserved: 'Reserved',
  paid: 'Paid',
  fulfilled: 'Ready',
  failed: 'Failed',
  cancelled: 'Cancelled',
  refunded: 'Refunded',
};

export const FINAL_STATES: OrderState[] = ['fulfilled', 'failed', 'cancelled', 'refunded'];
