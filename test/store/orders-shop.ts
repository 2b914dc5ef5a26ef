/**
 * A book shop for the order tests: the payment provider stand-in as a real child process
 * (dist/payments/provider/main.js: run `npm run build` first), a real Kindred node wired to
 * it, a store admin, and helpers to add books and place orders over REST.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KindredConfig } from '../../src/config.js';
import type { Behaviour } from '../../src/payments/provider/behaviour.js';
import { ProviderProcess } from '../../src/payments/provider/process.js';
import { isbn13CheckDigit } from '../../src/store/books/isbn.js';
import { api, startTestServer, type TestServer, type TestUser } from '../helpers/server.js';

export const WEBHOOK_SECRET = 'test-webhook-secret-0123456789';
export const ADDRESS = { name: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' };
export const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export interface Shop {
  server: TestServer;
  provider: ProviderProcess;
  admin: TestUser;
  base: string;
  addBook(book: { title: string; formats: Array<'ebook' | 'print'>; stock?: number; priceCents?: number; ebook?: Buffer }): Promise<string>;
  stockOf(bookId: string): Promise<number>;
}

let isbnSeq = Math.floor(Math.random() * 100_000);

export function nextIsbn(): string {
  const first12 = `979${String(process.pid % 1000).padStart(3, '0')}${String(++isbnSeq).padStart(6, '0')}`;
  return first12 + isbn13CheckDigit(first12);
}

export async function startShop(
  t: { teardown(fn: () => unknown): void },
  opts: { behaviour?: Partial<Behaviour>; config?: DeepPartial<KindredConfig> } = {},
): Promise<Shop> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kindred-psp-'));
  const provider = await ProviderProcess.start({ dbFile: path.join(dir, 'provider.db'), webhookSecret: WEBHOOK_SECRET, behaviour: opts.behaviour });
  t.teardown(async () => {
    await provider.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  const server = await startTestServer(t, {
    ...opts.config,
    store: { admins: ['shopadmin'], ...(opts.config?.store ?? {}) },
    orders: { providerUrl: provider.url, webhookSecret: WEBHOOK_SECRET, providerTimeoutMs: 1000, ...(opts.config?.orders ?? {}) },
  } as DeepPartial<KindredConfig>);
  const base = server.base;
  const reg = await api(base, 'POST', '/v1/register', { json: { username: 'shopadmin', password: 'correct horse battery' } });
  if (reg.status !== 201) throw new Error(`admin register: ${reg.status} ${JSON.stringify(reg.body)}`);
  const admin: TestUser = { userId: reg.body.userId, token: reg.body.token, username: 'shopadmin' };
  // the node registers its webhook endpoint in the background: wait until the provider has it
  const shop: Shop = {
    server,
    provider,
    admin,
    base,
    async addBook(b) {
      const res = await api(base, 'POST', '/v1/books', {
        token: admin.token,
        json: {
          title: b.title,
          authors: ['Test Author'],
          isbn: nextIsbn(),
          description: `${b.title}, a book for order tests`,
          priceCents: b.priceCents ?? 1000,
          currency: 'EUR',
          formats: b.formats,
          ...(b.formats.includes('print') ? { stock: b.stock ?? 0 } : {}),
        },
      });
      if (res.status !== 201) throw new Error(`add book: ${res.status} ${JSON.stringify(res.body)}`);
      const bookId = res.body.book.bookId as string;
      if (b.formats.includes('ebook')) {
        const up = await api(base, 'PUT', `/v1/books/${bookId}/ebook`, { token: admin.token, body: b.ebook ?? PDF, contentType: 'application/pdf' });
        if (up.status !== 200) throw new Error(`ebook upload: ${up.status} ${JSON.stringify(up.body)}`);
      }
      return bookId;
    },
    async stockOf(bookId) {
      const res = await api(base, 'GET', `/v1/books/${bookId}`);
      if (res.status !== 200) throw new Error(`get book: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.book.stock as number;
    },
  };
  return shop;
}

/** POST /v1/orders with an Idempotency-Key header. */
export async function placeOrder(
  base: string,
  user: TestUser,
  key: string,
  body: Record<string, unknown>,
  waitMs?: number,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/v1/orders${waitMs !== undefined ? `?waitMs=${waitMs}` : ''}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Polls an order until `done` holds (or throws after `ms`). */
export async function waitForOrder(base: string, user: TestUser, orderId: string, done: (o: any) => boolean, ms = 20_000): Promise<any> {
  const until = Date.now() + ms;
  let last: any;
  while (Date.now() < until) {
    const res = await api(base, 'GET', `/v1/orders/${orderId}`, { token: user.token });
    last = res.body?.order;
    if (res.status === 200 && done(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`order ${orderId} did not get there in ${ms} ms: ${JSON.stringify(last)}`);
}

export const settled = (o: any): boolean => ['fulfilled', 'failed', 'cancelled', 'refunded'].includes(o?.state);
