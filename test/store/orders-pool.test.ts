/**
 * The settlement pool: a small order is priced and signed on the calling thread, a large one
 * in a worker (dist/store/orders/worker.js: `npm run build` first). Both paths must give the
 * same answers, since which one runs depends only on the order's size.
 */
import t from 'tap';
import { SettlementPool } from '../../src/store/orders/pool.js';
import { sign, verifyDownloadToken, type PricedBook } from '../../src/store/orders/settlement-tasks.js';

const secret = Buffer.from('11'.repeat(32), 'hex');
const books: PricedBook[] = Array.from({ length: 12 }, (_, i) => ({ bookId: `b${i}`, title: `Book ${i}`, formats: ['ebook', 'print'], priceCents: 1000 + i, currency: 'EUR' }));
const small = { lines: [{ bookId: 'b1', format: 'print' as const, quantity: 2 }, { bookId: 'b2', format: 'ebook' as const, quantity: 1 }], books, taxBasisPoints: 1000 };
const large = { lines: books.map((b) => ({ bookId: b.bookId, format: 'ebook' as const, quantity: 1 })), books, taxBasisPoints: 1000 };
const signSmall = { orderId: 'o1', customerId: 'c1', ebooks: ['b2'], hasPrint: true, expiresAt: 1_900_000_000_000, maxDownloads: 5 };
const signLarge = { ...signSmall, ebooks: books.map((b) => b.bookId) };

t.test('small orders run inline, large ones in the pool, with the same results as the pool', async (t) => {
  const inline = new SettlementPool({ threads: 1, linkSecret: secret, onError: () => undefined });
  const pooled = new SettlementPool({ threads: 1, linkSecret: secret, onError: () => undefined, inlineUpTo: 0 });
  t.teardown(async () => {
    await inline.close();
    await pooled.close();
  });

  const smallInline = await inline.price(small);
  const signedInline = await inline.sign(signSmall);
  t.equal(inline.inlineCompleted, 2, 'both small tasks ran on the calling thread');
  t.equal(inline.completed, 0, 'the pool ran nothing for them');
  t.same(smallInline, await pooled.price(small), 'pricing inline equals pricing in a worker');
  t.same(signedInline, await pooled.sign(signSmall), 'signing inline equals signing in a worker');
  t.equal(pooled.inlineCompleted, 0, 'inlineUpTo 0 sends everything to the pool');
  t.equal(pooled.completed, 2);
  t.match(smallInline, { subtotalCents: 2 * 1001 + 1002, taxCents: Math.round((3004 * 1000) / 10_000) });

  const largePriced = await inline.price(large);
  await inline.sign(signLarge);
  t.equal(inline.completed, 2, 'a 12-line order and 12 ebooks went to the pool');
  t.same(largePriced, await pooled.price(large));
  t.match(await inline.price({ ...small, lines: [{ bookId: 'nope', format: 'ebook', quantity: 1 }] }), { rejected: /no book nope/ }, 'a rejection answers inline too');
});

t.test('a download token verifies only exactly as signed', async (t) => {
  const { downloads } = sign({ kind: 'sign', ...signLarge }, secret);
  t.equal(downloads.length, 12);
  for (const d of downloads) {
    t.match(verifyDownloadToken(d.token, secret), { tokenId: d.tokenId, orderId: 'o1', bookId: d.bookId }, 'the token as issued verifies');
    // The last base64url character of a 32-byte MAC carries 2 spare bits: flipping them keeps the
    // decoded bytes the same, and must still be refused.
    const last = d.token.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sameBytes = alphabet[alphabet.indexOf(last) ^ 1]!;
    t.equal(verifyDownloadToken(d.token.slice(0, -1) + sameBytes, secret), undefined, 'a changed last character is refused');
    t.equal(verifyDownloadToken(d.token.replace('.', '.x'), secret), undefined, 'a changed MAC is refused');
    t.equal(verifyDownloadToken(d.token, Buffer.alloc(32, 7)), undefined, 'another secret does not verify it');
  }
});
