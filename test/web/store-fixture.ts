/**
 * A small catalogue for the store's browser test and the screenshots: books created through
 * the admin REST routes (POST /v1/books, cover and ebook uploads), then awaited in the
 * search index (which learns of them from Books events on the bus).
 */
import sharp from 'sharp';

export interface SeedBook {
  title: string;
  authors: string[];
  description: string;
  priceCents: number;
  formats: Array<'ebook' | 'print'>;
  stock: number;
  colors: [string, string];
}

export const CATALOGUE: SeedBook[] = [
  { title: 'Dune', authors: ['Frank Herbert'], description: 'On the desert planet Arrakis, a young duke inherits the most dangerous place in the universe.', priceCents: 999, formats: ['ebook', 'print'], stock: 12, colors: ['#e9b872', '#a0522d'] },
  { title: 'Dune Messiah', authors: ['Frank Herbert'], description: 'Twelve years after the desert war, an emperor sees every path and likes none of them.', priceCents: 899, formats: ['ebook', 'print'], stock: 4, colors: ['#d9a05b', '#6b3e26'] },
  { title: 'The Dispossessed', authors: ['Ursula K. Le Guin'], description: 'A physicist crosses the wall between an anarchist moon and its rich mother planet.', priceCents: 1199, formats: ['ebook', 'print'], stock: 7, colors: ['#9ad1d4', '#255c99'] },
  { title: 'A Wizard of Earthsea', authors: ['Ursula K. Le Guin'], description: 'A boy with a gift for magic lets loose a shadow and must hunt it across the archipelago.', priceCents: 799, formats: ['ebook'], stock: 0, colors: ['#b5e48c', '#1e6091'] },
  { title: 'Kindred', authors: ['Octavia E. Butler'], description: 'A writer in 1976 Los Angeles is pulled back in time to a plantation in antebellum Maryland.', priceCents: 1099, formats: ['print'], stock: 3, colors: ['#f4a261', '#9d0208'] },
  { title: 'Parable of the Sower', authors: ['Octavia E. Butler'], description: 'In a collapsing California, a young woman with hyperempathy founds a new faith.', priceCents: 1299, formats: ['ebook', 'print'], stock: 9, colors: ['#ffd166', '#ef476f'] },
  { title: 'The Left Hand of Darkness', authors: ['Ursula K. Le Guin'], description: 'An envoy to the winter world of Gethen, whose people have no fixed sex.', priceCents: 1049, formats: ['ebook', 'print'], stock: 5, colors: ['#caf0f8', '#0077b6'] },
  { title: 'Foundation', authors: ['Isaac Asimov'], description: 'A mathematician predicts the fall of the Galactic Empire and plans for what comes after.', priceCents: 699, formats: ['ebook', 'print'], stock: 20, colors: ['#adb5bd', '#343a40'] },
];

/** A valid ISBN-13 (978 prefix, computed check digit) from a number. */
export function isbn13(n: number): string {
  const body = `978${String(n).padStart(9, '0')}`;
  const sum = [...body].reduce((s, d, i) => s + Number(d) * (i % 2 ? 3 : 1), 0);
  return body + String((10 - (sum % 10)) % 10);
}

/** A minimal PDF: the header, one empty page and the %%EOF trailer the Books service checks for. */
export function tinyPdf(title: string): Buffer {
  return Buffer.from(`%PDF-1.4\n% ${title}\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 300 400]>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n`, 'latin1');
}

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function coverPng(book: SeedBook): Promise<Buffer> {
  const words = book.title.split(' ');
  const lines: string[] = [];
  for (const w of words) {
    const last = lines[lines.length - 1];
    if (last && (last + ' ' + w).length <= 12) lines[lines.length - 1] = last + ' ' + w;
    else lines.push(w);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="600">
    <defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="${book.colors[0]}"/><stop offset="1" stop-color="${book.colors[1]}"/></linearGradient></defs>
    <rect width="400" height="600" fill="url(#g)"/>
    <rect x="24" y="24" width="352" height="552" fill="none" stroke="#ffffffaa" stroke-width="3"/>
    ${lines.map((l, i) => `<text x="200" y="${200 + i * 56}" font-family="DejaVu Serif" font-size="46" font-weight="bold" fill="#fff" text-anchor="middle">${escapeXml(l)}</text>`).join('')}
    <text x="200" y="520" font-family="DejaVu Sans" font-size="24" fill="#fff" text-anchor="middle">${escapeXml(book.authors[0]!)}</text>
  </svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

type Call = (method: string, path: string, opts?: { token?: string; json?: unknown; body?: Uint8Array; contentType?: string }) => Promise<{ status: number; body: any }>;

/** Creates the catalogue as `adminToken` (an account listed in store.admins); resolves with title → bookId and the ebook bytes. */
export async function seedCatalogue(call: Call, adminToken: string, books: SeedBook[] = CATALOGUE): Promise<{ ids: Record<string, string>; ebooks: Record<string, Buffer> }> {
  const ids: Record<string, string> = {};
  const ebooks: Record<string, Buffer> = {};
  let n = 100_000;
  for (const b of books) {
    const created = await call('POST', '/v1/books', {
      token: adminToken,
      json: { title: b.title, authors: b.authors, isbn: isbn13(n++), description: b.description, priceCents: b.priceCents, currency: 'EUR', formats: b.formats, stock: b.stock },
    });
    if (created.status !== 201) throw new Error(`POST /v1/books ${b.title}: ${created.status} ${JSON.stringify(created.body)}`);
    const bookId = (created.body.book?.bookId ?? created.body.bookId) as string;
    ids[b.title] = bookId;
    const cover = await call('PUT', `/v1/books/${bookId}/cover`, { token: adminToken, body: await coverPng(b), contentType: 'image/png' });
    if (cover.status !== 200) throw new Error(`cover ${b.title}: ${cover.status} ${JSON.stringify(cover.body)}`);
    if (b.formats.includes('ebook')) {
      const pdf = tinyPdf(b.title);
      const ebook = await call('PUT', `/v1/books/${bookId}/ebook`, { token: adminToken, body: pdf, contentType: 'application/pdf' });
      if (ebook.status !== 200) throw new Error(`ebook ${b.title}: ${ebook.status} ${JSON.stringify(ebook.body)}`);
      ebooks[b.title] = pdf;
    }
  }
  // the search index is fed by Books events: wait until it has every book with its cover
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await call('GET', `/v1/search?q=&size=100`);
    const found = r.status === 200 ? (r.body.results as Array<{ bookId: string; coverUrl?: string }>) : [];
    if (Object.values(ids).every((id) => found.some((x) => x.bookId === id && x.coverUrl))) break;
    if (Date.now() > deadline) throw new Error(`the search index did not show the catalogue in time: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  return { ids, ebooks };
}
