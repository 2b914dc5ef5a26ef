/**
 * The catalogue over REST on a real node: books added through POST /v1/books are found by a
 * misspelled title and by author, with correct facets and paging; admin-only writes (403),
 * invalid books (422 with the reason), bulk import with per-line errors, cover and ebook
 * uploads checked from their bytes, and the customer's address book.
 */
import t from 'tap';
import sharp from 'sharp';
import { api, registerUser, startTestServer, type TestUser } from '../helpers/server.js';
import { generateBook } from '../../bench/lib/bookgen.js';
import { isbn13CheckDigit } from '../../src/store/books/isbn.js';

t.setTimeout(180_000);

const server = await startTestServer(t, { store: { admins: ['StoreAdmin'] } });
const base = server.base;
const adminRes = await api(base, 'POST', '/v1/register', { json: { username: 'storeadmin', password: 'correct horse battery' } });
if (adminRes.status !== 201) throw new Error(`admin registration failed: ${adminRes.status}`);
const admin: TestUser = { userId: adminRes.body.userId, token: adminRes.body.token, username: 'storeadmin' };
const shopper = await registerUser(base, 'shopper');

function isbn(n: number): string {
  const first12 = `978000${String(n).padStart(6, '0')}`;
  return first12 + isbn13CheckDigit(first12);
}

const leGuin = 'Ursula K. Le Guin';
const named = [
  { title: 'The Left Hand of Darkness', authors: [leGuin], priceCents: 1299, formats: ['ebook', 'print'], stock: 4 },
  { title: 'The Dispossessed', authors: [leGuin], priceCents: 999, formats: ['print'], stock: 2 },
  { title: 'A Wizard of Earthsea', authors: [leGuin], priceCents: 799, formats: ['ebook'], stock: 0 },
  { title: 'Dune', authors: ['Frank Herbert'], priceCents: 1499, formats: ['ebook', 'print'], stock: 9 },
  { title: 'Darkness at Noon', authors: ['Arthur Koestler'], priceCents: 1099, formats: ['print'], stock: 1 },
];
const books: Array<Record<string, any>> = [];

t.test('only admins may add books; invalid books are 422 with the reason', async (t) => {
  const book = { ...named[0], isbn: isbn(1), currency: 'EUR', description: 'x' };
  t.equal((await api(base, 'POST', '/v1/books', { json: book })).status, 401, 'no token: 401');
  const forbidden = await api(base, 'POST', '/v1/books', { token: shopper.token, json: book });
  t.equal(forbidden.status, 403, 'a shopper: 403');
  t.equal(forbidden.body.error.code, 'FORBIDDEN');

  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['bad check digit', { ...book, isbn: '9780441172710' }, /^isbn: the ISBN check digit is wrong/],
    ['not an ISBN', { ...book, isbn: 'hello' }, /^isbn: must be an ISBN/],
    ['no title', { ...book, title: undefined }, /^title: is required/],
    ['empty authors', { ...book, authors: [] }, /^authors: must name at least one author/],
    ['negative price', { ...book, priceCents: -1 }, /^priceCents: must be between 0/],
    ['unknown currency', { ...book, currency: 'XYZ' }, /^currency: XYZ is not an ISO 4217 currency/],
    ['unknown format', { ...book, formats: ['audio'] }, /^formats\[0\]: must be "ebook" or "print"/],
    ['stock without print', { ...book, formats: ['ebook'], stock: 3 }, /^stock: only a book with the print format has stock/],
    ['unknown field', { ...book, Author: 'x' }, /^Author: unknown field/],
  ];
  for (const [what, body, reason] of cases) {
    const res = await api(base, 'POST', '/v1/books', { token: admin.token, json: body });
    t.equal(res.status, 422, `${what}: 422`);
    t.match(res.body?.error?.message, reason, `${what}: says why`);
  }
  const notJson = await api(base, 'POST', '/v1/books', { token: admin.token, body: '{"title":', contentType: 'application/json' });
  t.equal(notJson.status, 400, 'malformed JSON: 400');
});

t.test('books added through POST /v1/books', async (t) => {
  let n = 10;
  for (const b of named) {
    const res = await api(base, 'POST', '/v1/books', { token: admin.token, json: { ...b, isbn: isbn(n++), currency: 'EUR', description: `About ${b.title}.` } });
    t.equal(res.status, 201, `created ${b.title}`);
    books.push(res.body.book);
  }
  // 25 more from the generator: other titles and authors, so the search has to discriminate.
  for (let i = 0; i < 25; i++) {
    const g = generateBook(i, 7);
    const res = await api(base, 'POST', '/v1/books', { token: admin.token, json: { ...g, isbn: isbn(100 + i) } });
    t.equal(res.status, 201);
    books.push(res.body.book);
  }
  const first = books[0]!;
  t.equal(first.isbn, isbn(10), 'the ISBN is stored normalised');
  t.equal(first.stock, 4);
  t.equal(first.hasEbookFile, false);
  const dup = await api(base, 'POST', '/v1/books', { token: admin.token, json: { ...named[1], isbn: isbn(10), currency: 'EUR' } });
  t.equal(dup.status, 409, 'a second book with the same ISBN: 409');
  const got = await api(base, 'GET', `/v1/books/${first.bookId}`);
  t.same(got.body.book, first, 'GET /v1/books/:id (public)');
  t.equal((await api(base, 'GET', '/v1/books/0190b5e0-0000-7000-8000-000000000000')).status, 404, 'unknown book: 404');
});

async function search(query: string): Promise<any> {
  const res = await api(base, 'GET', `/v1/search?${query}`);
  if (res.status !== 200) throw new Error(`search ${query}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** The index is fed by bus events: wait until it holds `n` books. */
async function indexed(n: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const s = await api(base, 'GET', '/v1/search/stats');
    if (s.body.indexed === n && !s.body.building) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the search index did not catch up');
}

t.test('search: misspelled titles, authors, facets and paging', async (t) => {
  await indexed(books.length);
  const byTitle = (title: string) => books.find((b) => b.title === title)!;

  for (const [typo, title] of [
    ['Lefft Hand of Darknes', 'The Left Hand of Darkness'],
    ['dispossesed', 'The Dispossessed'],
    ['wizzard earthsae', 'A Wizard of Earthsea'],
    ['Dume', 'Dune'],
  ] as const) {
    const r = await search(`q=${encodeURIComponent(typo)}`);
    t.equal(r.results[0]?.title, title, `"${typo}" finds ${title} first`);
    t.same(r.results[0], byTitle(title), 'hydrated from the Books service');
  }
  t.equal((await search(`q=${isbn(11)}`)).results[0]?.title, 'The Dispossessed', 'by ISBN');
  t.equal((await search(`q=${encodeURIComponent('978-0-00-000011-')}${isbn(11).slice(-1)}`)).results[0]?.title, 'The Dispossessed', 'by a hyphenated ISBN');
  t.equal((await search('q=darkn')).total >= 2, true, 'prefix: "darkn" matches Darkness and Darkness at Noon');

  const byAuthor = await search('q=le+guin');
  const leGuinBooks = books.filter((b) => b.authors.includes(leGuin));
  t.equal(byAuthor.total, 3, 'three books by Le Guin');
  t.same(byAuthor.results.map((b: any) => b.title).sort(), leGuinBooks.map((b) => b.title).sort(), 'and they are hers');
  t.same(byAuthor.facets.format, { ebook: 2, print: 2 }, 'format facet');
  t.same(byAuthor.facets.author, [{ name: leGuin, count: 3 }], 'author facet');
  const buckets = Object.fromEntries(byAuthor.facets.price.map((b: any) => [b.key, b.count]));
  t.same(buckets, { 'under-5': 0, '5-10': 2, '10-20': 1, '20-50': 0, '50-and-up': 0 }, 'price facet: 7.99 and 9.99 in 5-10, 12.99 in 10-20');

  // Filters narrow the results; each facet still counts without its own filter.
  const print = await search('q=le+guin&format=print');
  t.same(print.results.map((b: any) => b.title).sort(), ['The Dispossessed', 'The Left Hand of Darkness'], 'format=print');
  t.same(print.facets.format, { ebook: 2, print: 2 }, 'the format facet ignores the format filter');
  const cheap = await search('q=le+guin&maxPrice=1000&sort=price');
  t.same(cheap.results.map((b: any) => b.priceCents), [799, 999], 'maxPrice, sorted by price');
  t.same((await search('q=le+guin&sort=-price')).results.map((b: any) => b.priceCents), [1299, 999, 799], 'sort=-price');
  t.same((await search('q=le+guin&sort=title')).results.map((b: any) => b.title), ['The Dispossessed', 'The Left Hand of Darkness', 'A Wizard of Earthsea'], 'sort=title ignores leading articles');
  const onlyHer = await search(`author=${encodeURIComponent(leGuin.toLowerCase())}`);
  t.equal(onlyHer.total, 3, 'author filter without text');

  // Paging: size 2 over the 3 results, no overlap, nothing lost.
  const p1 = await search('q=le+guin&size=2&page=1&sort=price');
  const p2 = await search('q=le+guin&size=2&page=2&sort=price');
  t.equal(p1.pages, 2, 'two pages');
  t.equal(p1.results.length, 2);
  t.equal(p2.results.length, 1);
  t.same([...p1.results, ...p2.results].map((b: any) => b.priceCents), [799, 999, 1299], 'pages continue each other');

  // Everything, newest first, paged through in 7s.
  const all: string[] = [];
  for (let page = 1; ; page++) {
    const r = await search(`size=7&page=${page}&sort=newest`);
    all.push(...r.results.map((b: any) => b.bookId));
    if (page >= r.pages) break;
  }
  t.same(all, [...books].sort((a, b) => b.createdAt - a.createdAt || (a.bookId < b.bookId ? 1 : -1)).map((b) => b.bookId), 'every book once, newest first');

  const sugg = await api(base, 'GET', '/v1/search/suggest?q=wiza');
  t.equal(sugg.body.suggestions[0]?.title, 'A Wizard of Earthsea', 'type-ahead');
  for (const [q, why] of [['size=101', 'size too big'], ['sort=random', 'unknown sort'], ['format=audio', 'unknown format'], ['page=600&size=20', 'beyond 10,000 results'], ['minPrice=-1', 'negative price']]) {
    const res = await api(base, 'GET', `/v1/search?${q}`);
    t.equal(res.status, 422, `${why}: 422 (${res.body?.error?.message})`);
  }
});

t.test('updates and deletes reach the index', async (t) => {
  const dune = books.find((b) => b.title === 'Dune')!;
  t.equal((await api(base, 'PATCH', `/v1/books/${dune.bookId}`, { token: shopper.token, json: { title: 'x' } })).status, 403, 'a shopper cannot edit');
  const patched = await api(base, 'PATCH', `/v1/books/${dune.bookId}`, { token: admin.token, json: { title: 'Dune Messiah', stock: 3 } });
  t.equal(patched.status, 200);
  t.equal(patched.body.book.stock, 3, 'stock set');
  t.ok(patched.body.book.updatedAt > dune.updatedAt, 'updatedAt moves');
  const put = await api(base, 'PUT', `/v1/books/${dune.bookId}`, { token: admin.token, json: { title: 'Dune Messiah' } });
  t.equal(put.status, 422, 'PUT needs every required field');
  let found: any;
  for (let i = 0; i < 100 && found?.results[0]?.title !== 'Dune Messiah'; i++) found = await search('q=messiah');
  t.equal(found.results[0]?.title, 'Dune Messiah', 'the new title is searchable');

  const koestler = books.find((b) => b.title === 'Darkness at Noon')!;
  t.equal((await api(base, 'DELETE', `/v1/books/${koestler.bookId}`, { token: admin.token })).status, 200, 'delete');
  t.equal((await api(base, 'GET', `/v1/books/${koestler.bookId}`)).status, 404, 'gone');
  let after: any;
  for (let i = 0; i < 100; i++) {
    after = await search('q=koestler');
    if (after.total === 0) break;
  }
  t.equal(after.total, 0, 'and no longer found');
});

t.test('bulk import: NDJSON with per-line errors', async (t) => {
  const good = (i: number) => JSON.stringify({ ...generateBook(1000 + i, 9), isbn: isbn(5000 + i) });
  const body = [good(1), '{"title": broken', '', JSON.stringify({ ...generateBook(1, 9), isbn: '9780000000001' }), good(2), JSON.stringify({ ...generateBook(2, 9), isbn: isbn(5001) })].join('\n');
  t.equal((await api(base, 'POST', '/v1/books/import', { token: shopper.token, body, contentType: 'application/x-ndjson' })).status, 403, 'admins only');
  const res = await api(base, 'POST', '/v1/books/import', { token: admin.token, body, contentType: 'application/x-ndjson' });
  t.equal(res.status, 200);
  t.equal(res.body.lines, 5, 'five books (the blank line is skipped)');
  t.same(res.body.created.map((c: any) => c.line), [1, 5], 'lines 1 and 5 created');
  t.same(res.body.failed.map((f: any) => [f.line, f.code]), [[2, 'BAD_REQUEST'], [4, 'INVALID_ARGUMENT'], [6, 'CONFLICT']], 'line 2 not JSON, line 4 a bad ISBN, line 6 a duplicate');
  t.match(res.body.failed[1].message, /^isbn: /);
  const again = await api(base, 'POST', '/v1/books/import', { token: admin.token, json: [JSON.parse(good(1))] });
  t.same(again.body.failed.map((f: any) => f.code), ['CONFLICT'], 'a JSON array too; re-importing adds nothing twice');
});

t.test('cover and ebook files are checked from their bytes', async (t) => {
  const book = books.find((b) => b.title === 'The Left Hand of Darkness')!;
  const png = await sharp({ create: { width: 400, height: 600, channels: 3, background: '#336699' } }).png().toBuffer();
  const cover = await api(base, 'PUT', `/v1/books/${book.bookId}/cover`, { token: admin.token, body: png, contentType: 'image/png' });
  t.equal(cover.status, 200);
  t.match(cover.body.book.coverUrl, /^\/v1\/books\/covers\//);
  const img = await fetch(base + cover.body.book.coverUrl);
  t.equal(img.headers.get('content-type'), 'image/jpeg', 'stored as a JPEG');
  const meta = await sharp(Buffer.from(await img.arrayBuffer())).metadata();
  t.same([meta.format, meta.width, meta.height], ['jpeg', 400, 600], 'decodes to the uploaded size');
  const notImage = await api(base, 'PUT', `/v1/books/${book.bookId}/cover`, { token: admin.token, body: Buffer.from('GIF89a not really'), contentType: 'image/gif' });
  t.equal(notImage.status, 415, 'a GIF: 415');
  const truncated = await api(base, 'PUT', `/v1/books/${book.bookId}/cover`, { token: admin.token, body: png.subarray(0, png.length - 200), contentType: 'image/png' });
  t.equal(truncated.status, 415, 'a truncated PNG: 415');

  const epub = minimalEpub();
  const up = await api(base, 'PUT', `/v1/books/${book.bookId}/ebook`, { token: admin.token, body: epub, contentType: 'application/epub+zip' });
  t.equal(up.status, 200, 'an EPUB is accepted');
  t.equal(up.body.book.hasEbookFile, true);
  const pdf = Buffer.from('%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n');
  t.equal((await api(base, 'PUT', `/v1/books/${book.bookId}/ebook`, { token: admin.token, body: pdf, contentType: 'application/pdf' })).status, 200, 'a PDF too');
  const text = await api(base, 'PUT', `/v1/books/${book.bookId}/ebook`, { token: admin.token, body: 'just text', contentType: 'text/plain' });
  t.equal(text.status, 415, 'plain text: 415');
  const printOnly = books.find((b) => b.title === 'The Dispossessed')!;
  t.equal((await api(base, 'PUT', `/v1/books/${printOnly.bookId}/ebook`, { token: admin.token, body: pdf })).status, 422, 'a print-only book takes no ebook file');
});

t.test('customers: one account, a customer record and an address book', async (t) => {
  const me = await api(base, 'GET', '/v1/customers/me', { token: shopper.token });
  t.equal(me.status, 200);
  t.equal(me.body.customer.customerId, shopper.userId, 'the customer id is the account id');
  t.same(me.body.customer.addresses, []);
  t.equal((await api(base, 'GET', '/v1/customers/me')).status, 401, 'needs a token');

  const bad = await api(base, 'POST', '/v1/customers/me/addresses', { token: shopper.token, json: { name: 'A', line1: 'x', city: 'y', postalCode: '10115', country: 'XX' } });
  t.equal(bad.status, 422);
  t.match(bad.body.error.message, /^country: /);
  const badZip = await api(base, 'POST', '/v1/customers/me/addresses', { token: shopper.token, json: { name: 'A', line1: 'x', city: 'Berlin', postalCode: '1011', country: 'DE' } });
  t.match(badZip.body.error.message, /^postalCode: is not a valid postal code for DE/);
  const home = await api(base, 'POST', '/v1/customers/me/addresses', { token: shopper.token, json: { label: 'Home', name: 'Sam Shopper', line1: 'Unter den Linden 1', city: 'Berlin', postalCode: '10117', country: 'de' } });
  t.equal(home.status, 201);
  t.equal(home.body.address.country, 'DE', 'country upper-cased');
  t.equal(home.body.address.isDefault, true, 'the first address is the default');
  const work = await api(base, 'POST', '/v1/customers/me/addresses', { token: shopper.token, json: { label: 'Work', name: 'Sam Shopper', line1: '1 Main St', city: 'Springfield', postalCode: '12345-6789', country: 'US', default: true } });
  t.equal(work.body.address.isDefault, true, 'default: true moves the default');
  const patched = await api(base, 'PATCH', `/v1/customers/me/addresses/${home.body.address.addressId}`, { token: shopper.token, json: { line2: 'Hinterhaus' } });
  t.equal(patched.body.address.line2, 'Hinterhaus');
  t.equal((await api(base, 'PATCH', '/v1/customers/me', { token: shopper.token, json: { name: 'Sam S.' } })).body.customer.name, 'Sam S.');
  const list = await api(base, 'GET', '/v1/customers/me/addresses', { token: shopper.token });
  t.same(list.body.addresses.map((a: any) => [a.label, a.isDefault]), [['Home', false], ['Work', true]]);
  t.equal((await api(base, 'DELETE', `/v1/customers/me/addresses/${work.body.address.addressId}`, { token: shopper.token })).status, 200);
  const after = await api(base, 'GET', '/v1/customers/me', { token: shopper.token });
  t.equal(after.body.customer.defaultAddressId, home.body.address.addressId, 'deleting the default makes another the default');
  t.equal((await api(base, 'DELETE', `/v1/customers/me/addresses/${work.body.address.addressId}`, { token: shopper.token })).status, 404, 'deleting twice: 404');
  t.equal((await api(base, 'GET', '/v1/customers/me/addresses', { token: admin.token })).body.addresses.length, 0, "another customer does not see them");
  t.ok('orders' in after.body, 'order history is part of /customers/me (from the Orders service)');
});

/** The smallest EPUB container: a stored (uncompressed) "mimetype" entry first, per OCF. */
function minimalEpub(): Buffer {
  const name = Buffer.from('mimetype');
  const content = Buffer.from('application/epub+zip');
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(10, 4);
  header.writeUInt16LE(0, 8); // stored
  header.writeUInt32LE(content.length, 18);
  header.writeUInt32LE(content.length, 22);
  header.writeUInt16LE(name.length, 26);
  header.writeUInt16LE(0, 28);
  return Buffer.concat([header, name, content, Buffer.alloc(64)]);
}
