/** The book store's browsing pages: the landing page, search results and a book's page. */
import { useEffect, useState } from 'preact/hooks';
import { Link, navigate, useLocation } from '../router.js';
import { session } from '../session.js';
import { useStore } from '../store.js';
import { ErrorText, notify } from '../ui/notices.js';
import { Page } from '../ui/page.js';
import { storeApi } from './api.js';
import { reloadCart } from './cart-state.js';
import { SearchBox } from './search-box.js';
import { formatPrice, type Book, type BookFormat, type SearchResult } from './types.js';

const PAGE_SIZE = 10;

export function Cover({ book, size = 'small' }: { book: Pick<Book, 'coverUrl' | 'title'>; size?: 'small' | 'large' }) {
  return book.coverUrl ? (
    <img class={`cover cover-${size}`} src={book.coverUrl} alt={`Cover of ${book.title}`} loading="lazy" />
  ) : (
    <div class={`cover cover-${size} no-cover`} aria-hidden="true">
      {book.title}
    </div>
  );
}

export function LandingPage() {
  return (
    <section class="landing">
      <h1 class="hero-title" tabIndex={-1}>
        Find your next book
      </h1>
      <p class="muted">Ebooks to download at once, printed books to your door.</p>
      <SearchBox big />
    </section>
  );
}

function formatLabel(f: BookFormat): string {
  return f === 'ebook' ? 'Ebook' : 'Print';
}

export function ResultsPage() {
  const { query } = useLocation();
  const q = query.get('q') ?? '';
  const format = query.get('format') ?? '';
  const price = query.get('price') ?? '';
  const sort = query.get('sort') ?? 'relevance';
  const page = Math.max(1, Number(query.get('page') ?? '1') || 1);
  const [result, setResult] = useState<SearchResult | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);

  // a price bucket is [min, max) in minor units; the API's maxPrice is inclusive
  const [minPrice, maxEnd] = price ? price.split('-').map((x) => (x === '' ? undefined : Number(x))) : [undefined, undefined];
  const maxPrice = maxEnd === undefined ? undefined : maxEnd - 1;

  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    storeApi
      .search({ q, format: format || undefined, minPrice, maxPrice, sort, page, size: PAGE_SIZE }, ctl.signal)
      .then((r) => {
        setResult(r);
        setError(null);
      })
      .catch((err) => {
        if ((err as Error).name !== 'AbortError') setError(err);
      })
      .finally(() => setLoading(false));
    return () => ctl.abort();
  }, [q, format, price, sort, page]);

  function go(changes: Record<string, string | undefined>) {
    const next = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) {
      if (v === undefined || v === '') next.delete(k);
      else next.set(k, v);
    }
    if (!('page' in changes)) next.delete('page');
    navigate(`/store/search?${next}`);
  }

  const title = q ? `Results for “${q}”` : 'All books';
  return (
    <Page title={title} wide>
      <SearchBox initial={q} />
      <ErrorText error={error} />
      <div class="results-layout">
        {/* on a phone the filters fold away above the results; on a wide screen they stay open beside them */}
        <details class="filters-box" open={window.matchMedia('(min-width: 720px)').matches}>
        <summary>Filters and sorting</summary>
        <aside class="filters" aria-label="Filters">
          <fieldset>
            <legend>Format</legend>
            {(['', 'ebook', 'print'] as const).map((f) => (
              <label class="check">
                <input type="radio" name="format" checked={format === f} onChange={() => go({ format: f })} />
                {f ? formatLabel(f) : 'Any format'}
                {f && result && <span class="muted"> ({result.facets.format[f] ?? 0})</span>}
              </label>
            ))}
          </fieldset>
          <fieldset>
            <legend>Price</legend>
            <label class="check">
              <input type="radio" name="price" checked={price === ''} onChange={() => go({ price: '' })} />
              Any price
            </label>
            {result?.facets.price.map((b) => {
              const key = `${b.min}-${b.max ?? ''}`;
              const cur = result.results[0]?.currency ?? 'EUR';
              return (
                <label class="check">
                  <input type="radio" name="price" checked={price === key} onChange={() => go({ price: key })} />
                  {b.max === null ? `${formatPrice(b.min, cur)} and more` : `${formatPrice(b.min, cur)} – ${formatPrice(b.max, cur)}`}
                  <span class="muted"> ({b.count})</span>
                </label>
              );
            })}
          </fieldset>
          <div class="field">
            <label for="sort">Sort by</label>
            <select id="sort" value={sort} onChange={(e) => go({ sort: e.currentTarget.value })}>
              <option value="relevance">Relevance</option>
              <option value="price">Price, low to high</option>
              <option value="-price">Price, high to low</option>
              <option value="title">Title</option>
              <option value="newest">Newest</option>
            </select>
          </div>
        </aside>
        </details>
        <div class="results" aria-busy={loading}>
          {result && (
            <p class="muted" role="status">
              {result.total === 0 ? 'No books found. Check the spelling or try fewer words.' : `${result.total} ${result.total === 1 ? 'book' : 'books'}`}
            </p>
          )}
          <ol class="book-list" data-testid="results">
            {result?.results.map((b) => (
              <li class="book-row">
                <Cover book={b} />
                <div>
                  <h2>
                    <Link href={`/store/books/${b.bookId}`}>{b.title}</Link>
                  </h2>
                  <p class="muted">{b.authors.join(', ')}</p>
                  <p>
                    {b.formats.map((f) => (
                      <span class="pill">{formatLabel(f)}</span>
                    ))}
                  </p>
                </div>
                <p class="price">{formatPrice(b.priceCents, b.currency)}</p>
              </li>
            ))}
          </ol>
          {result && result.pages > 1 && (
            <nav class="pagination" aria-label="Pages">
              <button type="button" disabled={page <= 1} onClick={() => go({ page: String(page - 1) })}>
                Previous
              </button>
              <span>
                Page {result.page} of {result.pages}
              </span>
              <button type="button" disabled={page >= result.pages} onClick={() => go({ page: String(page + 1) })}>
                Next
              </button>
            </nav>
          )}
        </div>
      </div>
    </Page>
  );
}

export function BookPage({ bookId }: { bookId: string }) {
  const me = useStore(session);
  const [book, setBook] = useState<Book | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [format, setFormat] = useState<BookFormat>('ebook');
  const [quantity, setQuantity] = useState(1);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    storeApi
      .book(bookId)
      .then(({ book }) => {
        setBook(book);
        setFormat(book.formats.includes('ebook') ? 'ebook' : 'print');
      })
      .catch(setError);
  }, [bookId]);

  async function add(e: Event) {
    e.preventDefault();
    if (!me) {
      navigate(`/login?next=${encodeURIComponent(`/store/books/${bookId}`)}`);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const current = await reloadCart();
      const existing = current.find((l) => l.bookId === bookId && l.format === format);
      const qty = format === 'ebook' ? 1 : (existing?.quantity ?? 0) + quantity;
      await storeApi.setCartLine({ bookId, format, quantity: qty });
      await reloadCart();
      notify(`${book!.title} (${formatLabel(format).toLowerCase()}) is in your cart.`, 'info', <Link href="/store/cart">View cart</Link>);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  if (!book)
    return (
      <Page title={error ? 'Book not found' : 'Loading…'}>
        <ErrorText error={error} />
      </Page>
    );
  const outOfStock = format === 'print' && book.stock <= 0;
  return (
    <Page title={book.title} wide>
      <div class="book-detail">
        <Cover book={book} size="large" />
        <div>
          <p class="authors">by {book.authors.join(', ')}</p>
          <p class="price big">{formatPrice(book.priceCents, book.currency)}</p>
          <form class="form" onSubmit={add}>
            <fieldset>
              <legend>Format</legend>
              {book.formats.map((f) => (
                <label class="check">
                  <input type="radio" name="format" value={f} checked={format === f} onChange={() => setFormat(f)} />
                  {f === 'ebook' ? 'Ebook — download right after paying' : `Print — ${book.stock > 0 ? `${book.stock} in stock` : 'out of stock'}`}
                </label>
              ))}
            </fieldset>
            {format === 'print' && (
              <label>
                Quantity
                <input type="number" min={1} max={Math.max(1, Math.min(book.stock, 10))} value={quantity} onInput={(e) => setQuantity(Math.max(1, Number(e.currentTarget.value) || 1))} />
              </label>
            )}
            <ErrorText error={error} />
            <button type="submit" class="primary" disabled={busy || outOfStock}>
              Add to cart
            </button>
          </form>
          <h2>About this book</h2>
          <p class="description">{book.description}</p>
          <p class="muted">ISBN {book.isbn}</p>
        </div>
      </div>
    </Page>
  );
}
