/** The matches list, newest first; reloads when a match or unmatch event arrives. */
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { onResync } from '../live.js';
import { Link } from '../router.js';
import { useStore } from '../store.js';
import { ErrorText } from '../ui/notices.js';
import { Page } from '../ui/page.js';
import { matchesVersion, unread } from './live.js';
import type { MatchView } from './types.js';

export function MatchesPage() {
  const version = useStore(matchesVersion);
  const unreadCounts = useStore(unread);
  const [matches, setMatches] = useState<MatchView[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  async function load() {
    try {
      const { matches } = await api<{ matches: MatchView[] }>('GET', '/v1/matches');
      setMatches(matches);
      setError(null);
    } catch (err) {
      setError(err);
    }
  }
  useEffect(() => {
    void load();
  }, [version]);
  useEffect(() => onResync(() => void load()), []);

  const active = matches?.filter((m) => !m.ended) ?? [];
  const ended = matches?.filter((m) => m.ended) ?? [];
  return (
    <Page title="Matches">
      <ErrorText error={error} />
      {matches && matches.length === 0 && (
        <p class="card">
          No matches yet. <Link href="/tindr">Start swiping</Link>.
        </p>
      )}
      <ul class="match-list" data-testid="match-list">
        {active.map((m) => (
          <MatchItem match={m} unread={unreadCounts[m.peer.userId] ?? 0} />
        ))}
      </ul>
      {ended.length > 0 && (
        <>
          <h2>Ended</h2>
          <ul class="match-list ended">
            {ended.map((m) => (
              <MatchItem match={m} unread={0} />
            ))}
          </ul>
        </>
      )}
    </Page>
  );
}

function MatchItem({ match, unread }: { match: MatchView; unread: number }) {
  const { peer } = match;
  return (
    <li>
      <Link href={`/tindr/chat/${peer.userId}`} class="match-item">
        {peer.images[0] ? <img src={peer.images[0].url} alt="" /> : <span class="avatar" aria-hidden="true">{peer.displayName.slice(0, 1)}</span>}
        <span class="match-name">
          {peer.displayName}
          <span class="muted"> · matched {new Date(match.createdAt).toLocaleDateString()}</span>
        </span>
        {unread > 0 && (
          <span class="badge" aria-label={`${unread} unread`}>
            {unread}
          </span>
        )}
      </Link>
    </li>
  );
}
