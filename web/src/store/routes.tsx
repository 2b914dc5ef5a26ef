/** The book store's pages (filled in as the store's REST API lands). */
import { Link, useLocation } from '../router.js';
import { Page } from '../ui/page.js';

export function StoreNav() {
  const { path } = useLocation();
  return (
    <>
      <Link href="/" aria-current={path === '/' ? 'page' : undefined}>
        Books
      </Link>
    </>
  );
}

export const storeRoutes = [
  {
    pattern: '/',
    auth: false,
    view: () => (
      <Page title="Kindred Books">
        <p>The book store is coming.</p>
      </Page>
    ),
  },
];
