/** The Kindred web front end: the book store at /, Tindr under /tindr. */
import { render, type JSX } from 'preact';
import { logout } from './auth.js';
import { AuthPage } from './auth.js';
import { liveState } from './live.js';
import { Link, match, navigate, useLocation } from './router.js';
import { session } from './session.js';
import { useStore } from './store.js';
import { ChatPage } from './tindr/chat.js';
import { DeckPage } from './tindr/deck.js';
import { MatchDialog, unread } from './tindr/live.js';
import { MatchesPage } from './tindr/matches.js';
import { ProfilePage } from './tindr/profile.js';
import { storeRoutes, StoreNav } from './store/routes.js';
import { Notices } from './ui/notices.js';
import { Page } from './ui/page.js';
import './styles.css';

interface RouteDef {
  pattern: string;
  auth: boolean;
  view: (params: Record<string, string>) => JSX.Element;
}

const routes: RouteDef[] = [
  { pattern: '/login', auth: false, view: () => <AuthPage /> },
  { pattern: '/tindr', auth: true, view: () => <DeckPage /> },
  { pattern: '/tindr/profile', auth: true, view: () => <ProfilePage /> },
  { pattern: '/tindr/matches', auth: true, view: () => <MatchesPage /> },
  { pattern: '/tindr/chat/:userId', auth: true, view: (p) => <ChatPage userId={p.userId!} /> },
  ...storeRoutes,
];

function Router() {
  const { path, query } = useLocation();
  const me = useStore(session);
  for (const r of routes) {
    const params = match(r.pattern, path);
    if (!params) continue;
    if (r.auth && !me) {
      const next = path + (query.size ? `?${query}` : '');
      queueMicrotask(() => navigate(`/login?next=${encodeURIComponent(next)}`, { replace: true }));
      return null;
    }
    return r.view(params);
  }
  return (
    <Page title="Page not found">
      <p>
        There is nothing at this address. <Link href="/">Go to the book store</Link> or <Link href="/tindr">Tindr</Link>.
      </p>
    </Page>
  );
}

function Header() {
  const me = useStore(session);
  const state = useStore(liveState);
  const { path } = useLocation();
  const counts = useStore(unread);
  const unreadTotal = Object.values(counts).reduce((a, b) => a + b, 0);
  const inTindr = path.startsWith('/tindr');
  const current = (href: string) => (path === href ? 'page' : undefined);
  return (
    <header class="site-header">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <nav aria-label="Main">
        <Link href={inTindr ? '/tindr' : '/'} class="brand">
          {inTindr ? 'Tindr' : 'Kindred Books'}
        </Link>
        {inTindr ? (
          <>
            <Link href="/tindr" aria-current={current('/tindr')}>
              Discover
            </Link>
            <Link href="/tindr/matches" aria-current={current('/tindr/matches')}>
              Matches{unreadTotal > 0 && <span class="badge" aria-label={`${unreadTotal} unread`}>{unreadTotal}</span>}
            </Link>
            <Link href="/tindr/profile" aria-current={current('/tindr/profile')}>
              Profile
            </Link>
            <Link href="/">Books</Link>
          </>
        ) : (
          <>
            <StoreNav />
            <Link href="/tindr">Tindr</Link>
          </>
        )}
        <span class="spacer" />
        {me ? (
          <>
            <span class={`live live-${state}`} title={`Live updates: ${state}`} aria-label={`Live updates ${state}`} />
            <span class="whoami">{me.username}</span>
            <button type="button" class="link-button" onClick={() => void logout()}>
              Log out
            </button>
          </>
        ) : (
          <Link href="/login">Log in</Link>
        )}
      </nav>
    </header>
  );
}

/** Says so when live updates stop (the socket is reconnecting), rather than letting a page go quietly stale. */
function LiveBanner() {
  const me = useStore(session);
  const state = useStore(liveState);
  if (!me || state !== 'offline') return null;
  return (
    <p class="live-banner" role="status">
      Live updates are paused: reconnecting…
    </p>
  );
}

function App() {
  return (
    <>
      <Header />
      <LiveBanner />
      <Notices />
      <main id="main">
        <Router />
      </main>
      <MatchDialog />
    </>
  );
}

render(<App />, document.getElementById('app')!);
