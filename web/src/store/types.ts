/** The book store's shapes, as in src/store/contracts.ts and src/store/search/. */
export type BookFormat = 'ebook' | 'print';

export interface Book {
  bookId: string;
  title: string;
  authors: string[];
  isbn: string;
  description: string;
  priceCents: number;
  currency: string;
  formats: BookFormat[];
  stock: number;
  coverUrl?: string;
  hasEbookFile: boolean;
}

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

export type OrderState = 'created' | 'stock_reserved' | 'paid' | 'fulfilled' | 'failed' | 'cancelled' | 'refunded';

export interface OrderLine {
  bookId: string;
  format: BookFormat;
  quantity: number;
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

/** an entry of the customer's address book (Customers service) */
export interface SavedAddress extends Required<ShippingAddress> {
  addressId: string;
  label: string;
  isDefault: boolean;
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
  reason?: string;
  downloads?: Array<{ bookId: string; url: string; expiresAt: number; maxDownloads: number }>;
  shipment?: { trackingId: string; carrier: string; createdAt: number };
  createdAt: number;
  updatedAt: number;
}

export interface CartLine {
  bookId: string;
  format: BookFormat;
  quantity: number;
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
