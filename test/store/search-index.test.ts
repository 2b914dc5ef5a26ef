/**
 * BookIndex alone (no bus): the catalogue-wide facet counts it keeps up to date on every
 * change agree with counting by hand after adds, updates and removals; paging with the
 * partial (top-k) selection gives exactly the fully sorted order; suggestions are not served
 * stale from their cache after the catalogue changes; typos still find the book; an index
 * file reopened answers as before and is not shared by two indexes at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { newId } from '../../src/ids.js';
import type { Book, BookFormat } from '../../src/store/contracts.js';
import { BookIndex, PRICE_BUCKETS, type Facets, type SearchQuery } from '../../src/store/search/index.js';

const AUTHORS = ['Ann Lee', 'Bo Chen', 'Cy Diaz', 'Di Eze', 'Ed Fox', 'Flo Gray', 'Gus Hale', 'Hal Ito', 'Ivy Jun', 'Jo Kay', 'Kim Lu', 'Lu Ma'];
const WORDS = ['river', 'garden', 'storm', 'harbor', 'lantern', 'orchard', 'valley', 'mirror'];

function makeBook(i: number): Book {
  const at = 1_700_000_000_000 + i * 1000;
  const formats: BookFormat[][] = [['ebook'], ['print'], ['ebook', 'print']];
  return {
    bookId: newId(at),
    title: `${WORDS[i % WORDS.length]} ${WORDS[(i * 7 + 3) % WORDS.length]} volume${i}`,
    authors: i % 5 === 0 ? [AUTHORS[i % AUTHORS.length]!, AUTHORS[(i + 1) % AUTHORS.length]!] : [AUTHORS[(i * 3) % AUTHORS.length]!],
    isbn: String(9790000000000 + i),
    description: `A tale of the ${WORDS[(i * 5) % WORDS.length]}.`,
    priceCents: (i * 397) % 7000,
    currency: 'EUR',
    formats: formats[i % 3]!,
    stock: 0,
    hasEbookFile: false,
    createdAt: at,
    updatedAt: at,
  };
}

/** Facets and hits counted the slow, obvious way. */
function expected(books: Book[], q: Omit<SearchQuery, 'q' | 'sort' | 'page' | 'size'>): { total: number; facets: Facets } {
  const fmt = (b: Book) => !q.format || b.formats.includes(q.format);
  const price = (b: Book) => b.priceCents >= (q.minPriceCents ?? 0) && b.priceCents <= (q.maxPriceCents ?? Infinity);
  const author = (b: Book) => !q.author || b.authors.some((a) => a.toLowerCase() === q.author!.toLowerCase());
  const facets: Facets = { format: { ebook: 0, print: 0 }, price: PRICE_BUCKETS.map((b) => ({ ...b, count: 0 })), author: [] };
  for (const b of books) {
    if (price(b) && author(b)) for (const f of b.formats) facets.format[f]++;
    if (fmt(b) && author(b)) facets.price.find((x) => b.priceCents >= x.min && (x.max === null || b.priceCents < x.max))!.count++;
  }
  // The author facet without text: an author filter alone shows the whole catalogue's
  // authors; with other filters too, the authors of that author's books that pass them.
  const narrowed = q.format !== undefined || q.minPriceCents !== undefined || q.maxPriceCents !== undefined;
  const counted = q.author !== undefined && !narrowed ? books : books.filter((b) => fmt(b) && price(b) && author(b));
  const perAuthor = new Map<string, number>();
  for (const b of counted) for (const a of new Set(b.authors)) perAuthor.set(a, (perAuthor.get(a) ?? 0) + 1);
  facets.author = [...perAuthor].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 10).map(([name, count]) => ({ name, count }));
  return { total: books.filter((b) => fmt(b) && price(b) && author(b)).length, facets };
}

t.test('catalogue facets kept on change agree with counting by hand', async (t) => {
  const index = new BookIndex();
  const books = new Map<string, Book>();
  for (let i = 0; i < 600; i++) {
    const b = makeBook(i);
    books.set(b.bookId, b);
    index.upsert(b);
  }
  const check = (label: string) => {
    for (const filter of [{}, { format: 'ebook' as const }, { format: 'print' as const }, { minPriceCents: 500, maxPriceCents: 2000 }, { author: 'bo chen' }, { author: 'Bo Chen', format: 'print' as const }]) {
      const got = index.search({ q: '', sort: 'newest', page: 1, size: 5, ...filter });
      const want = expected([...books.values()], filter);
      t.equal(got.total, want.total, `${label} ${JSON.stringify(filter)}: total`);
      t.same(got.facets, want.facets, `${label} ${JSON.stringify(filter)}: facets`);
    }
  };
  check('after adding');
  // Updates move books between formats, price buckets and authors; removals take them out.
  let i = 0;
  for (const b of [...books.values()]) {
    if (i % 4 === 0) {
      const changed: Book = { ...b, formats: ['print'], priceCents: b.priceCents + 2500, authors: ['Zed Newcomer'], updatedAt: b.updatedAt + 1 };
      books.set(b.bookId, changed);
      index.upsert(changed);
    } else if (i % 4 === 1) {
      books.delete(b.bookId);
      index.remove(b.bookId);
    }
    i++;
  }
  t.equal(index.size, books.size, 'size follows');
  check('after updates and removals');
  // Freed slots are reused by new books and counted again.
  for (let j = 600; j < 700; j++) {
    const b = makeBook(j);
    books.set(b.bookId, b);
    index.upsert(b);
  }
  check('after reusing freed slots');
});

t.test('paging with partial selection equals the full sort', async (t) => {
  const index = new BookIndex();
  const books: Book[] = [];
  for (let i = 0; i < 900; i++) {
    const b = makeBook(i);
    books.push(b);
    index.upsert(b);
  }
  const byId = (a: Book, b: Book) => (a.bookId < b.bookId ? -1 : 1);
  const orders = {
    newest: (a: Book, b: Book) => b.createdAt - a.createdAt || byId(b, a),
    price: (a: Book, b: Book) => a.priceCents - b.priceCents || byId(a, b),
    '-price': (a: Book, b: Book) => b.priceCents - a.priceCents || byId(a, b),
  } as const;
  for (const [sort, order] of Object.entries(orders) as Array<[keyof typeof orders, (a: Book, b: Book) => number]>) {
    const want = books.filter((b) => b.formats.includes('print')).sort(order).map((b) => b.bookId);
    const got: string[] = [];
    for (let page = 1; got.length < want.length; page++) got.push(...index.search({ q: '', format: 'print', sort, page, size: 7 }).bookIds);
    t.same(got, want, `sort=${sort}, pages of 7, print only`);
  }
  const river = books.filter((b) => /\briver\b/.test(b.title + ' ' + b.description)).sort(orders.price).map((b) => b.bookId);
  const got: string[] = [];
  for (let page = 1; got.length < river.length; page++) got.push(...index.search({ q: 'river', sort: 'price', page, size: 3 }).bookIds);
  t.same(got, river, 'a text query sorted by price, pages of 3');
});

t.test('suggestions and typos', async (t) => {
  const index = new BookIndex();
  for (let i = 0; i < 50; i++) index.upsert(makeBook(i));
  t.same(index.suggest('quie'), [], 'nothing yet');
  const quiet = { ...makeBook(1000), title: 'The Quiet Orchard', authors: ['Mina Park'] };
  index.upsert(quiet);
  t.equal(index.suggest('quie')[0]?.bookId, quiet.bookId, 'a cached answer is dropped when the catalogue changes');
  t.equal(index.suggest('mina pa')[0]?.bookId, quiet.bookId, 'earlier words whole, the last one a prefix');
  t.equal(index.search({ q: 'quiet orchrd', sort: 'relevance', page: 1, size: 5 }).bookIds[0], quiet.bookId, 'a typo in the last word');
  t.equal(index.search({ q: 'quiett orchard', sort: 'relevance', page: 1, size: 5 }).bookIds[0], quiet.bookId, 'a typo in the first word');
  index.remove(quiet.bookId);
  t.same(index.suggest('quie'), [], 'and when a book goes');
});

t.test('an index file survives a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-search-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'search.db');
  const first = new BookIndex({ file });
  const books: Book[] = [];
  for (let i = 0; i < 300; i++) {
    const b = makeBook(i);
    books.push(b);
    first.upsert(b);
  }
  const quiet = { ...makeBook(1000), title: 'The Quiet Orchard', authors: ['Mina Park'] };
  first.upsert(quiet);
  first.remove(books[0]!.bookId);
  const kept = books.slice(1).concat(quiet);
  const before = first.search({ q: 'river', sort: 'price', page: 1, size: 10 });
  first.close();

  const second = new BookIndex({ file });
  t.equal(second.size, kept.length, 'every book is back, the removed one is not');
  t.equal(second.updatedAt(quiet.bookId), quiet.updatedAt, 'with its version');
  t.same(second.search({ q: 'river', sort: 'price', page: 1, size: 10 }), before, 'the same answer as before the restart');
  t.equal(second.search({ q: 'quiet orchrd', sort: 'relevance', page: 1, size: 5 }).bookIds[0], quiet.bookId, 'typos still corrected (the vocabulary is rebuilt)');
  const want = expected(kept, { format: 'print' });
  const got = second.search({ q: '', format: 'print', sort: 'newest', page: 1, size: 5 });
  t.same([got.total, got.facets], [want.total, want.facets], 'catalogue facets recounted from the file');
  // Freed slots are reused after the restart too.
  const more = makeBook(2000);
  second.upsert(more);
  t.equal(second.size, kept.length + 1);
  t.equal(second.search({ q: more.isbn, sort: 'relevance', page: 1, size: 5 }).bookIds[0], more.bookId, 'a new book, found by ISBN');
  second.close();

  // A file another index holds is not shared: the second opener keeps its index in memory.
  const holder = new BookIndex({ file });
  const other = new BookIndex({ file });
  t.equal(other.size, 0, 'the second opener starts empty, in memory');
  t.equal(holder.size, kept.length + 1, 'the holder keeps the file');
  other.close();
  holder.close();
});

t.test('a large match set, kept between searches, follows changes', async (t) => {
  const index = new BookIndex();
  const books: Book[] = [];
  for (let i = 0; i < 20_000; i++) books.push({ ...makeBook(i), description: 'A common tale.' });
  index.upsertMany(books);
  const common = () => index.search({ q: 'common', sort: 'price', page: 1, size: 5 }).total;
  t.equal(common(), 20_000, 'every book');
  t.equal(common(), 20_000, 'again (from the cache)');
  index.upsert({ ...makeBook(30_000), description: 'Another common tale.' });
  t.equal(common(), 20_001, 'a new book is counted');
  index.remove(books[0]!.bookId);
  index.upsert({ ...books[1]!, description: 'Rare now.', updatedAt: books[1]!.updatedAt + 1 });
  t.equal(common(), 19_999, 'a removed and a changed book are not');
});
