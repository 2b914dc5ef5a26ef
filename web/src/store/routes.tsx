/** The book store's routes and its part of the header. */
import { Link, useLocation } from '../router.js';
import { useStore } from '../store.js';
import { cartLines } from './cart-state.js';
import { CartPage, CheckoutPage, OrderPage, OrdersPage } from './orders.js';
import { BookPage, LandingPage, ResultsPage } from './pages.js';

export function StoreNav() {
  const { path } = useLocation();
  const lines = useStore(cartLines);
  const count = lines.reduce((n, l) => n + l.quantity, 0);
  return (
    <>
      <Link href="/store/cart" aria-current={path === '/store/cart' ? 'page' : undefined}>
        Cart{count > 0 && <span class="badge" aria-label={`${count} items`}>{count}</span>}
      </Link>
      <Link href="/store/orders" aria-current={path.startsWith('/store/orders') ? 'page' : undefined}>
        Orders
      </Link>
    </>
  );
}

export const storeRoutes = [
  { pattern: '/', auth: false, view: () => <LandingPage /> },
  { pattern: '/store/search', auth: false, view: () => <ResultsPage /> },
  { pattern: '/store/books/:bookId', auth: false, view: (p: Record<string, string>) => <BookPage bookId={p.bookId!} /> },
  { pattern: '/store/cart', auth: true, view: () => <CartPage /> },
  { pattern: '/store/checkout', auth: true, view: () => <CheckoutPage /> },
  { pattern: '/store/orders', auth: true, view: () => <OrdersPage /> },
  { pattern: '/store/orders/:orderId', auth: true, view: (p: Record<string, string>) => <OrderPage orderId={p.orderId!} /> },
];
