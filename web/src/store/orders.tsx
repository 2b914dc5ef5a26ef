/**
 * Cart, checkout and orders. Checkout sends one idempotency key per attempt (kept in
 * sessionStorage until the order exists), so a double click or a retry after a network error
 * never orders twice. Order status is live: `order` events on the native socket update the
 * list and the order page as the order moves through its states; nothing polls.
 */
import { useEffect, useState } from 'preact/hooks';
import { onLiveEvent, onResync } from '../live.js';
import { Link, navigate } from '../router.js';
import { useStore } from '../store.js';
import { ErrorText, notify } from '../ui/notices.js';
import { Page } from '../ui/page.js';
import { storeApi } from './api.js';
import { cartLines, reloadCart } from './cart-state.js';
import { Cover } from './pages.js';
import { FINAL_STATES, formatPrice, STATE_TEXT, type Book, type OrderState, type OrderView, type SavedAddress, type ShippingAddress } from './types.js';

function useBooks(ids: string[]): Record<string, Book> {
  const [books, setBooks] = useState<Record<string, Book>>({});
  const key = [...new Set(ids)].sort().join(',');
  useEffect(() => {
    const missing = key ? key.split(',').filter((id) => !books[id]) : [];
    if (missing.length === 0) return;
    Promise.all(missing.map((id) => storeApi.book(id).then((r) => r.book).catch(() => null))).then((list) =>
      setBooks((prev) => {
        const next = { ...prev };
        for (const b of list) if (b) next[b.bookId] = b;
        return next;
      }),
    );
  }, [key]);
  return books;
}

export function CartPage() {
  const lines = useStore(cartLines);
  const books = useBooks(lines.map((l) => l.bookId));
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    reloadCart().catch(setError);
  }, []);

  async function setQuantity(bookId: string, format: 'ebook' | 'print', quantity: number) {
    try {
      await storeApi.setCartLine({ bookId, format, quantity });
      await reloadCart();
    } catch (err) {
      setError(err);
    }
  }

  const currency = Object.values(books)[0]?.currency ?? 'EUR';
  const total = lines.reduce((sum, l) => sum + (books[l.bookId]?.priceCents ?? 0) * l.quantity, 0);
  return (
    <Page title="Your cart">
      <ErrorText error={error} />
      {lines.length === 0 ? (
        <p class="card">
          Your cart is empty. <Link href="/">Find a book</Link>.
        </p>
      ) : (
        <>
          <ul class="cart-lines" data-testid="cart">
            {lines.map((l) => {
              const b = books[l.bookId];
              return (
                <li class="book-row">
                  {b && <Cover book={b} />}
                  <div>
                    <h2>
                      <Link href={`/store/books/${l.bookId}`}>{b?.title ?? 'Loading…'}</Link>
                    </h2>
                    <p class="muted">{l.format === 'ebook' ? 'Ebook' : 'Print'}</p>
                    {l.format === 'print' && (
                      <label>
                        Quantity{' '}
                        <input type="number" min={1} max={10} value={l.quantity} onChange={(e) => void setQuantity(l.bookId, l.format, Math.max(1, Number(e.currentTarget.value) || 1))} />
                      </label>
                    )}
                  </div>
                  <div class="line-end">
                    <p class="price">{b ? formatPrice(b.priceCents * l.quantity, b.currency) : ''}</p>
                    <button type="button" class="link-button" onClick={() => void setQuantity(l.bookId, l.format, 0)} aria-label={`Remove ${b?.title ?? 'this book'} from the cart`}>
                      Remove
                    </button>
                  </div>
                </li>
              );
            })}
          </ul>
          <p class="total">
            Total <strong>{formatPrice(total, currency)}</strong> <span class="muted">(taxes are shown at checkout)</span>
          </p>
          <button type="button" class="primary" onClick={() => navigate('/store/checkout')}>
            Go to checkout
          </button>
        </>
      )}
    </Page>
  );
}

/** Countries we ship to, as ISO 3166 codes (what the Orders service takes), named in the reader's language. */
const SHIP_TO = 'AT AU BE BG CA CH CY CZ DE DK EE ES FI FR GB GR HR HU IE IS IT JP LT LU LV MT NL NO NZ PL PT RO SE SI SK US'.split(' ');
function countries(): Array<[string, string]> {
  let names: Intl.DisplayNames | undefined;
  try {
    names = new Intl.DisplayNames([navigator.language, 'en'], { type: 'region' });
  } catch {
    names = undefined;
  }
  return SHIP_TO.map((c): [string, string] => [c, names?.of(c) ?? c]).sort((a, b) => a[1].localeCompare(b[1]));
}

const KEY = 'kindred.checkoutKey';

function checkoutKey(): string {
  let key = sessionStorage.getItem(KEY);
  if (!key) {
    key = typeof crypto.randomUUID === 'function' ? crypto.randomUUID() : [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
    sessionStorage.setItem(KEY, key);
  }
  return key;
}

export function CheckoutPage() {
  const lines = useStore(cartLines);
  const books = useBooks(lines.map((l) => l.bookId));
  const needsAddress = lines.some((l) => l.format === 'print');
  const [address, setAddress] = useState<ShippingAddress>({ name: '', line1: '', line2: '', city: '', postalCode: '', country: '' });
  const [saved, setSaved] = useState<SavedAddress[]>([]);
  /** the chosen saved address, or '' for a new one typed in */
  const [chosen, setChosen] = useState('');
  const [remember, setRemember] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    reloadCart().catch(setError);
    // the address book is a convenience: without it the form still works
    storeApi
      .addresses()
      .then(({ addresses }) => {
        setSaved(addresses);
        setChosen((addresses.find((a) => a.isDefault) ?? addresses[0])?.addressId ?? '');
      })
      .catch(() => undefined);
  }, []);

  async function pay(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      let shippingAddress: ShippingAddress | undefined;
      if (needsAddress) {
        const pick = saved.find((a) => a.addressId === chosen);
        const from = pick ?? address;
        shippingAddress = { name: from.name, line1: from.line1, city: from.city, postalCode: from.postalCode, country: from.country };
        if (from.line2) shippingAddress.line2 = from.line2;
        if (!pick && remember) {
          // saved once: a retry after a failed checkout picks it instead of saving it again
          const { address: added } = await storeApi.saveAddress(shippingAddress);
          setSaved((list) => [...list, added]);
          setChosen(added.addressId);
        }
      }
      const { order } = await storeApi.checkout(checkoutKey(), shippingAddress ? { shippingAddress } : {});
      sessionStorage.removeItem(KEY);
      await reloadCart().catch(() => undefined);
      navigate(`/store/orders/${order.orderId}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const field = (name: keyof ShippingAddress, label: string, opts: { required?: boolean; autoComplete: string }) => (
    <label>
      {label}
      <input
        name={name}
        autoComplete={opts.autoComplete}
        required={opts.required ?? true}
        value={address[name] ?? ''}
        onInput={(e) => setAddress({ ...address, [name]: e.currentTarget.value })}
      />
    </label>
  );
  const currency = Object.values(books)[0]?.currency ?? 'EUR';
  const total = lines.reduce((sum, l) => sum + (books[l.bookId]?.priceCents ?? 0) * l.quantity, 0);

  if (lines.length === 0)
    return (
      <Page title="Checkout">
        <p class="card">
          Your cart is empty. <Link href="/">Find a book</Link>.
        </p>
      </Page>
    );
  return (
    <Page title="Checkout">
      <form class="form" onSubmit={pay}>
        <section class="card">
          <h2>Your order</h2>
          <ul class="summary">
            {lines.map((l) => (
              <li>
                <span>
                  {books[l.bookId]?.title ?? '…'} · {l.format === 'ebook' ? 'Ebook' : `Print × ${l.quantity}`}
                </span>
                <span>{books[l.bookId] ? formatPrice(books[l.bookId]!.priceCents * l.quantity, currency) : ''}</span>
              </li>
            ))}
          </ul>
          <p class="total">
            Total <strong>{formatPrice(total, currency)}</strong> <span class="muted">before tax</span>
          </p>
        </section>
        {needsAddress && (
          <fieldset class="card">
            <legend>Delivery address</legend>
            {saved.length > 0 && (
              <div role="radiogroup" aria-label="Saved addresses" class="saved-addresses">
                {saved.map((a) => (
                  <label class="check">
                    <input type="radio" name="saved-address" checked={chosen === a.addressId} onChange={() => setChosen(a.addressId)} />
                    {a.label ? `${a.label}: ` : ''}
                    {a.name}, {a.line1}, {a.postalCode} {a.city}, {a.country}
                  </label>
                ))}
                <label class="check">
                  <input type="radio" name="saved-address" checked={chosen === ''} onChange={() => setChosen('')} />A new address
                </label>
              </div>
            )}
            {chosen === '' && (
              <>
            {field('name', 'Full name', { autoComplete: 'name' })}
            {field('line1', 'Address', { autoComplete: 'address-line1' })}
            {field('line2', 'Address line 2 (optional)', { autoComplete: 'address-line2', required: false })}
            <div class="row">
              {field('postalCode', 'Postal code', { autoComplete: 'postal-code' })}
              {field('city', 'City', { autoComplete: 'address-level2' })}
            </div>
            <div class="field">
              <label for="country">Country</label>
              <select id="country" name="country" autoComplete="country" required value={address.country} onChange={(e) => setAddress({ ...address, country: e.currentTarget.value })}>
                <option value="">Choose…</option>
                {countries().map(([code, name]) => (
                  <option value={code}>{name}</option>
                ))}
              </select>
            </div>
            <label class="check">
              <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.currentTarget.checked)} />
              Save this address for next time
            </label>
              </>
            )}
          </fieldset>
        )}
        <section class="card">
          <h2>Payment</h2>
          <p>Your payment is taken by our payment provider when you place the order. You will see its progress on the next page.</p>
        </section>
        <ErrorText error={error} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Placing your order…' : 'Place order and pay'}
        </button>
      </form>
    </Page>
  );
}

function StateBadge({ state }: { state: OrderState }) {
  return (
    <span class={`state state-${state}`} data-testid="order-state">
      {STATE_TEXT[state]}
    </span>
  );
}

/** Keeps a set of orders current from `order` events, and reloads after a reconnect. */
function useLiveOrders(apply: (order: OrderView) => void, reload: () => void): void {
  useEffect(() => {
    const off = onLiveEvent((e) => {
      if (e.type === 'order') apply(e.order as OrderView);
    });
    const offResync = onResync(reload);
    return () => {
      off();
      offResync();
    };
  }, []);
}

export function OrdersPage() {
  const [orders, setOrders] = useState<OrderView[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = () =>
    storeApi
      .orders()
      .then((r) => {
        setOrders(r.orders);
        setNext(r.next);
      })
      .catch(setError);
  useEffect(() => void load(), []);
  useLiveOrders(
    (o) => setOrders((list) => (list ? (list.some((x) => x.orderId === o.orderId) ? list.map((x) => (x.orderId === o.orderId ? o : x)) : [o, ...list]) : list)),
    () => void load(),
  );
  async function more() {
    try {
      const r = await storeApi.orders(next!);
      setOrders((list) => [...(list ?? []), ...r.orders]);
      setNext(r.next);
    } catch (err) {
      setError(err);
    }
  }
  return (
    <Page title="Your orders">
      <ErrorText error={error} />
      {orders?.length === 0 && (
        <p class="card">
          No orders yet. <Link href="/">Find a book</Link>.
        </p>
      )}
      <ul class="order-list" data-testid="orders">
        {orders?.map((o) => (
          <li>
            <Link href={`/store/orders/${o.orderId}`} class="order-item">
              <span>
                {o.lines.map((l) => l.title).join(', ')}
                <span class="muted"> · {new Date(o.createdAt).toLocaleDateString()}</span>
              </span>
              <span>{formatPrice(o.totalCents, o.currency)}</span>
              <StateBadge state={o.state} />
            </Link>
          </li>
        ))}
      </ul>
      {next && (
        <button type="button" onClick={() => void more()}>
          Show older orders
        </button>
      )}
    </Page>
  );
}

const STEPS: OrderState[] = ['created', 'stock_reserved', 'paid', 'fulfilled'];

export function OrderPage({ orderId }: { orderId: string }) {
  const [order, setOrder] = useState<OrderView | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = () =>
    storeApi
      .order(orderId)
      .then((r) => setOrder(r.order))
      .catch(setError);
  useEffect(() => void load(), [orderId]);
  useLiveOrders(
    (o) => {
      if (o.orderId !== orderId) return;
      setOrder((prev) => (prev && prev.updatedAt > o.updatedAt ? prev : o));
      if (o.state === 'fulfilled') notify('Your order is complete.');
      if (o.state === 'failed') notify(`Your order failed${o.reason ? `: ${o.reason}` : '.'}`, 'error');
    },
    () => void load(),
  );

  async function cancel() {
    try {
      const r = await storeApi.cancel(orderId);
      setOrder(r.order);
    } catch (err) {
      setError(err);
    }
  }

  if (!order)
    return (
      <Page title="Order">
        <ErrorText error={error} />
      </Page>
    );
  const done = FINAL_STATES.includes(order.state);
  const reached = STEPS.indexOf(order.state);
  return (
    <Page title={`Order ${order.orderId.slice(-8)}`}>
      <ErrorText error={error} />
      <section class="card" aria-live="polite">
        <h2>
          Status: <StateBadge state={order.state} />
        </h2>
        {order.state !== 'failed' && order.state !== 'cancelled' && order.state !== 'refunded' ? (
          <ol class="steps">
            {STEPS.map((s, i) => (
              <li class={i <= reached ? 'done' : ''} aria-current={i === reached ? 'step' : undefined}>
                {STATE_TEXT[s]}
              </li>
            ))}
          </ol>
        ) : (
          order.reason && <p class="error-text">{order.reason}</p>
        )}
        {!done && <p class="muted">This page updates by itself as your order goes through.</p>}
      </section>
      {order.downloads && order.downloads.length > 0 && (
        <section class="card">
          <h2>Your ebooks</h2>
          <ul>
            {order.downloads.map((d) => {
              const line = order.lines.find((l) => l.bookId === d.bookId);
              return (
                <li>
                  <a href={d.url} download data-testid="download">
                    Download {line?.title ?? 'ebook'}
                  </a>{' '}
                  <span class="muted">
                    (up to {d.maxDownloads} downloads, until {new Date(d.expiresAt).toLocaleString()})
                  </span>
                </li>
              );
            })}
          </ul>
        </section>
      )}
      {order.shipment && (
        <section class="card">
          <h2>Delivery</h2>
          <p>
            Sent with {order.shipment.carrier}, tracking number <strong>{order.shipment.trackingId}</strong>.
          </p>
        </section>
      )}
      <section class="card">
        <h2>Items</h2>
        <ul class="summary">
          {order.lines.map((l) => (
            <li>
              <span>
                <Link href={`/store/books/${l.bookId}`}>{l.title}</Link> · {l.format === 'ebook' ? 'Ebook' : `Print × ${l.quantity}`}
              </span>
              <span>{formatPrice(l.unitPriceCents * l.quantity, order.currency)}</span>
            </li>
          ))}
        </ul>
        <p class="total">
          Subtotal {formatPrice(order.subtotalCents, order.currency)} · Tax {formatPrice(order.taxCents, order.currency)} · Total <strong>{formatPrice(order.totalCents, order.currency)}</strong>
        </p>
        {(order.state === 'created' || order.state === 'stock_reserved') && (
          <button type="button" class="danger" onClick={() => void cancel()}>
            Cancel order
          </button>
        )}
      </section>
    </Page>
  );
}
