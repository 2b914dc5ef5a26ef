/**
 * The BookStore contract: the embedded (SQLite) and cluster (Cassandra) stores of the Books
 * service must both pass it. `open` returns an empty store; each subtest closes its own.
 * The race subtests are the never-oversell proof: 200 concurrent reservations for 10 copies.
 */
import type { Test } from 'tap';
import { newId } from '../../src/ids.js';
import type { BookRecord, BookStore } from '../../src/store/books/storage.js';
import { isbn13CheckDigit } from '../../src/store/books/isbn.js';

let isbnSeq = 0;
/** A valid ISBN-13 unique in this process. */
export function uniqueIsbn(): string {
  const first12 = `979${String(process.pid % 1000).padStart(3, '0')}${String(++isbnSeq).padStart(6, '0')}`;
  return first12 + isbn13CheckDigit(first12);
}

export function record(overrides: Partial<BookRecord> = {}): BookRecord {
  const now = 1_764_000_000_000 + isbnSeq;
  return {
    bookId: newId(),
    title: 'The Left Hand of Darkness',
    authors: ['Ursula K. Le Guin'],
    isbn: uniqueIsbn(),
    description: 'A human envoy on a planet of ambisexual people.',
    priceCents: 1299,
    currency: 'EUR',
    formats: ['ebook', 'print'],
    coverImageId: null,
    ebook: null,
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}

async function rejects(t: Test, p: Promise<unknown>, code: string, msg: string): Promise<void> {
  try {
    await p;
    t.fail(`${msg}: expected ${code}`);
  } catch (err) {
    t.equal((err as { code?: string }).code, code, msg);
  }
}

export function booksContract(t: Test, name: string, open: () => Promise<BookStore>): void {
  const withStore = (title: string, fn: (t: Test, s: BookStore) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const s = await open();
      try {
        await fn(t, s);
      } finally {
        await s.close();
      }
    });

  withStore('create, get, getMany, byIsbn, update, remove', async (t, s) => {
    const a = record({ ebook: { blobKey: 'store/ebooks/x', contentType: 'application/epub+zip', bytes: 1234 }, coverImageId: newId() });
    const b = record({ title: 'Dune', authors: ['Frank Herbert'], formats: ['print'] });
    await s.create(a, 0);
    await s.create(b, 7);
    t.same(await s.get(a.bookId), { record: a, stock: 0 }, 'a reads back whole');
    t.same(await s.get(b.bookId), { record: b, stock: 7 }, 'b with its stock');
    t.equal(await s.get(newId()), undefined, 'unknown id: undefined');
    const many = await s.getMany([b.bookId, newId(), a.bookId]);
    t.same(many.map((x) => x.record.bookId).sort(), [a.bookId, b.bookId].sort(), 'getMany returns the existing ones');
    t.equal((await s.byIsbn(b.isbn))?.record.bookId, b.bookId, 'byIsbn');

    await rejects(t, s.create(record({ isbn: a.isbn }), 1), 'CONFLICT', 'a second book with the same ISBN');
    await rejects(t, s.create({ ...b, isbn: uniqueIsbn() }, 1), 'CONFLICT', 'the same bookId again');

    const changed = { ...b, title: 'Dune Messiah', isbn: uniqueIsbn(), priceCents: 999, updatedAt: b.updatedAt + 1 };
    await s.update(changed);
    t.same(await s.get(b.bookId), { record: changed, stock: 7 }, 'update replaces the record and keeps the stock');
    t.equal(await s.byIsbn(b.isbn), undefined, 'the old ISBN is free');
    await s.create(record({ isbn: b.isbn }), 0); // and can be used again
    await rejects(t, s.update({ ...changed, isbn: a.isbn }), 'CONFLICT', 'update to an ISBN of another book');
    await rejects(t, s.update(record()), 'NOT_FOUND', 'update of an unknown book');

    await s.setStock(b.bookId, 3);
    t.equal((await s.get(b.bookId))?.stock, 3, 'setStock');
    await rejects(t, s.setStock(newId(), 3), 'NOT_FOUND', 'setStock of an unknown book');

    t.equal(await s.remove(a.bookId), true, 'remove');
    t.equal(await s.remove(a.bookId), false, 'twice: false');
    t.equal(await s.get(a.bookId), undefined, 'gone');
    await s.create(record({ isbn: a.isbn }), 0); // its ISBN is free again
    t.pass('the removed book\'s ISBN can be reused');
  });

  withStore('createMany: each book on its own', async (t, s) => {
    const existing = record();
    await s.create(existing, 1);
    const a = record();
    const b = record({ isbn: existing.isbn });
    const c = record();
    const d = record({ isbn: c.isbn });
    const out = await s.createMany([{ record: a, stock: 2 }, { record: b, stock: 0 }, { record: c, stock: 3 }, { record: d, stock: 0 }]);
    t.equal(out[0], undefined, 'a created');
    t.equal((out[1] as { code?: string } | undefined)?.code, 'CONFLICT', 'b: ISBN of an existing book');
    t.equal(out[2], undefined, 'c created');
    t.equal((out[3] as { code?: string } | undefined)?.code, 'CONFLICT', 'd: ISBN of c, earlier in the same batch');
    t.same(await s.get(a.bookId), { record: a, stock: 2 }, 'a stored with its stock');
    t.same(await s.get(c.bookId), { record: c, stock: 3 }, 'c too');
    t.equal(await s.get(b.bookId), undefined, 'b not stored');
    t.equal(await s.get(d.bookId), undefined, 'd not stored');
  });

  withStore('page visits every book once', async (t, s) => {
    const ids = new Set<string>();
    for (let i = 0; i < 23; i++) {
      const r = record();
      ids.add(r.bookId);
      await s.create(r, i);
    }
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await s.page(after, 5);
      if (page.length === 0) break;
      t.ok(page.length <= 5, 'at most the limit');
      seen.push(...page.map((b) => b.record.bookId));
      after = page[page.length - 1]!.record.bookId;
    }
    t.equal(seen.length, 23, 'every book');
    t.same(new Set(seen), ids, 'each once');
  });

  withStore('reserve, release, commit are idempotent per order', async (t, s) => {
    const a = record();
    const b = record();
    await s.create(a, 5);
    await s.create(b, 2);
    const o1 = newId();
    t.same(await s.reserve(o1, [{ bookId: a.bookId, quantity: 2 }, { bookId: b.bookId, quantity: 1 }, { bookId: a.bookId, quantity: 1 }]), { ok: true }, 'reserve');
    t.equal((await s.get(a.bookId))?.stock, 2, 'a: 5 - 3 (lines of one book add up)');
    t.equal((await s.get(b.bookId))?.stock, 1, 'b: 2 - 1');
    t.same(await s.reserve(o1, [{ bookId: a.bookId, quantity: 2 }]), { ok: true }, 'a repeat answers the first outcome');
    t.equal((await s.get(a.bookId))?.stock, 2, 'and takes nothing');

    const o2 = newId();
    t.same(await s.reserve(o2, [{ bookId: a.bookId, quantity: 1 }, { bookId: b.bookId, quantity: 2 }]), { ok: false, reason: 'out_of_stock', bookId: b.bookId }, 'all or none: b is short');
    t.equal((await s.get(a.bookId))?.stock, 2, 'a untouched by the failed reservation');
    t.same(await s.reserve(o2, [{ bookId: a.bookId, quantity: 1 }]), { ok: false, reason: 'out_of_stock', bookId: b.bookId }, 'the failure is remembered');
    t.equal(await s.release(o2), false, 'releasing a failed reservation: false');
    t.equal((await s.get(a.bookId))?.stock, 2, 'and gives nothing back');

    t.equal(await s.release(o1), true, 'release');
    t.equal(await s.release(o1), true, 'twice: still released');
    t.equal((await s.get(a.bookId))?.stock, 5, 'a back to 5, once');
    t.equal((await s.get(b.bookId))?.stock, 2, 'b back to 2, once');
    t.equal(await s.commit(o1), false, 'a released reservation cannot be committed');
    t.same(await s.reserve(o1, [{ bookId: a.bookId, quantity: 1 }]), { ok: false, reason: 'released' }, 'nor reserved again');

    const o3 = newId();
    t.same(await s.reserve(o3, [{ bookId: a.bookId, quantity: 5 }]), { ok: true }, 'every copy');
    t.equal(await s.commit(o3), true, 'commit');
    t.equal(await s.commit(o3), true, 'commit twice');
    t.equal(await s.release(o3), false, 'release after commit is a no-op');
    t.equal((await s.get(a.bookId))?.stock, 0, 'the sold copies stay sold');

    const unknown = newId();
    const r = await s.reserve(newId(), [{ bookId: unknown, quantity: 1 }]);
    t.same(r, { ok: false, reason: 'out_of_stock', bookId: unknown }, 'an unknown book is short');
    t.equal(await s.release(newId()), false, 'release of an unknown order: false');
    t.equal(await s.commit(newId()), false, 'commit of an unknown order: false');
  });

  withStore('200 concurrent reservations for 10 copies: exactly 10 succeed', async (t, s) => {
    const book = record({ formats: ['print'] });
    await s.create(book, 10);
    const orders = Array.from({ length: 200 }, () => newId());
    const started = performance.now();
    const results = await Promise.all(orders.map((o) => s.reserve(o, [{ bookId: book.bookId, quantity: 1 }])));
    t.comment(`200 concurrent reserves in ${(performance.now() - started).toFixed(0)} ms`);
    const won = orders.filter((_, i) => results[i]!.ok);
    t.equal(won.length, 10, 'exactly 10 reservations');
    t.equal((await s.get(book.bookId))?.stock, 0, 'stock is 0, not negative');
    // Retries of every order, concurrently, change nothing.
    const again = await Promise.all(orders.map((o) => s.reserve(o, [{ bookId: book.bookId, quantity: 1 }])));
    t.same(again.map((r) => r.ok), results.map((r) => r.ok), 'repeats answer the first outcomes');
    t.equal((await s.get(book.bookId))?.stock, 0, 'still 0');
    // Half the winners release, half commit, each twice and concurrently.
    const releasers = won.slice(0, 5);
    const committers = won.slice(5);
    await Promise.all([...releasers, ...releasers].map((o) => s.release(o)));
    await Promise.all([...committers, ...committers].map((o) => s.commit(o)));
    t.equal((await s.get(book.bookId))?.stock, 5, 'the 5 released copies are back, once');
    // The 5 copies go to exactly 5 of 100 new concurrent orders.
    const second = await Promise.all(Array.from({ length: 100 }, () => s.reserve(newId(), [{ bookId: book.bookId, quantity: 1 }])));
    t.equal(second.filter((r) => r.ok).length, 5, 'exactly 5 more');
    t.equal((await s.get(book.bookId))?.stock, 0, 'and stock is 0 again');
  });

  withStore('concurrent multi-book reservations never oversell either book', async (t, s) => {
    const a = record();
    const b = record();
    await s.create(a, 6);
    await s.create(b, 6);
    // Orders want a+b, a only, or b only, two copies each line; interleaved and concurrent.
    const wants = Array.from({ length: 60 }, (_, i) =>
      i % 3 === 0 ? [{ bookId: a.bookId, quantity: 2 }, { bookId: b.bookId, quantity: 2 }] : i % 3 === 1 ? [{ bookId: a.bookId, quantity: 2 }] : [{ bookId: b.bookId, quantity: 2 }],
    );
    const results = await Promise.all(wants.map((w) => s.reserve(newId(), w)));
    const used = { a: 0, b: 0 };
    results.forEach((r, i) => {
      if (!r.ok) return;
      for (const l of wants[i]!) used[l.bookId === a.bookId ? 'a' : 'b'] += l.quantity;
    });
    const sa = (await s.get(a.bookId))!.stock;
    const sb = (await s.get(b.bookId))!.stock;
    t.ok(used.a <= 6 && used.b <= 6, `granted a=${used.a}, b=${used.b} of 6 each`);
    t.equal(sa, 6 - used.a, 'a: stock + granted = 6');
    t.equal(sb, 6 - used.b, 'b: stock + granted = 6');
    t.ok(sa >= 0 && sb >= 0, 'no negative stock');
  });
}
