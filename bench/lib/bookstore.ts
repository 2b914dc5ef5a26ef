/**
 * Book-store setup for scenarios that run the store against a real server: the payment
 * provider stand-in as its own process, the server config that points Orders at it, a store
 * admin, the catalogue imported through the real NDJSON import, waiting for the Search index,
 * and what a customer's checkout looks like. Used by `mixed`; `orders` and `search` do the same
 * steps with their own copies (bench/scenarios/orders.ts, search.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ProviderProcess } from '../../src/payments/provider/process.js';
import { generateBook } from './bookgen.js';
import { api } from './setup.js';

export const STORE_ADMIN = 'benchadmin';
const WEBHOOK_SECRET = 'bench-webhook-secret';
export const SHIPPING_ADDRESS = { name: 'Bench Customer', line1: '1 Load Street', city: 'Benchton', postalCode: '10001', country: 'DE' };

export interface PaymentProvider {
  url: string;
  /** charges the provider recorded */
  chargeCount(): Promise<number>;
  stop(): Promise<void>;
}

/** The payment provider stand-in (its own process, its own SQLite file in a temp dir), answering after `latencyMs` ± `jitterMs`. */
export async function startPaymentProvider(behaviour: { latencyMs: number; jitterMs: number; declineRate: number }): Promise<PaymentProvider> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kindred-bench-psp-'));
  const provider = await ProviderProcess.start({ dbFile: path.join(dir, 'provider.db'), webhookSecret: WEBHOOK_SECRET, behaviour, seed: 1 });
  return {
    url: provider.url,
    chargeCount: async () => (await provider.charges()).charges.length,
    async stop() {
      await provider.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Server config for the store: the bench admin, room for large imports, and Orders paying through `providerUrl`. */
export function storeConfig(providerUrl: string, poolSize: number): Record<string, unknown> {
  return {
    store: { admins: [STORE_ADMIN], importMaxBytes: 64 * 1024 * 1024 },
    orders: { providerUrl, webhookSecret: WEBHOOK_SECRET, poolSize },
  };
}

/** Registers the store admin named in `storeConfig`; its token. */
export async function registerStoreAdmin(base: string): Promise<string> {
  const res = await api(base, 'POST', '/v1/register', { json: { username: STORE_ADMIN, password: 'bench admin password' } });
  if (res.status !== 201) throw new Error(`store admin registration: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.token as string;
}

/**
 * Imports generated books 0..count-1 (bench/lib/bookgen.ts, `seed`) through POST
 * /v1/books/import, `chunk` per request, `concurrency` requests at a time. With
 * `sellable`, every book is in both formats with ample print stock, so orders never fail
 * for want of a format or copies. Answers the book ids in generation order.
 */
export async function importBooks(
  base: string,
  adminToken: string,
  o: { count: number; seed: number; chunk?: number; concurrency?: number; sellable?: boolean },
): Promise<{ bookIds: string[]; seconds: number }> {
  const chunk = o.chunk ?? 5000;
  const started = performance.now();
  const bookIds = new Array<string>(o.count);
  let next = 0;
  const importer = async () => {
    while (next < o.count) {
      const from = next;
      next += chunk;
      const lines: string[] = [];
      for (let i = from; i < Math.min(from + chunk, o.count); i++) {
        const book = generateBook(i, o.seed);
        lines.push(JSON.stringify(o.sellable ? { ...book, formats: ['ebook', 'print'], stock: 10_000_000 } : book));
      }
      const res = await fetch(`${base}/v1/books/import`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/x-ndjson' }, body: lines.join('\n') });
      const body = (await res.json()) as { created?: Array<{ bookId: string }>; failed?: unknown[] };
      if (!res.ok || body.failed?.length || body.created?.length !== lines.length) throw new Error(`book import: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
      body.created.forEach((c, j) => (bookIds[from + j] = c.bookId));
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 4 }, importer));
  return { bookIds, seconds: (performance.now() - started) / 1000 };
}

/** Waits until the answering node's Search index holds `count` books and is not rebuilding; seconds waited. */
export async function waitForSearchIndex(base: string, count: number, timeoutSeconds = 600): Promise<number> {
  const started = performance.now();
  for (;;) {
    const s = (await api(base, 'GET', '/v1/search/stats')).body as { indexed: number; building: boolean };
    if (s.indexed >= count && !s.building) return (performance.now() - started) / 1000;
    if (performance.now() - started > timeoutSeconds * 1000) throw new Error(`search index holds ${s.indexed} of ${count} books after ${timeoutSeconds} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** One checkout's body: a random book as ebook or print (`ebookShare`), 30% of carts with a second, printed one. */
export function checkoutBody(bookIds: readonly string[], random: () => number, ebookShare: number): { lines: Array<{ bookId: string; format: string; quantity: number }>; shippingAddress?: typeof SHIPPING_ADDRESS } {
  const bookA = bookIds[Math.floor(random() * bookIds.length)]!;
  const lines = [{ bookId: bookA, format: random() < ebookShare ? 'ebook' : 'print', quantity: 1 }];
  if (random() < 0.3) {
    const bookB = bookIds[Math.floor(random() * bookIds.length)]!;
    if (bookB !== bookA) lines.push({ bookId: bookB, format: 'print', quantity: 1 + Math.floor(random() * 2) });
  }
  return lines.some((l) => l.format === 'print') ? { lines, shippingAddress: SHIPPING_ADDRESS } : { lines };
}
