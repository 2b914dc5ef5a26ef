/**
 * The swipe deck: one card at a time, swiped with the buttons, the arrow keys or by dragging
 * the card (right = like, left = pass, up = super like). A match shows at once (the swipe's
 * answer says so); the other person learns of it from the live `match` event (tindr/live.tsx).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import { Link } from '../router.js';
import { ErrorText } from '../ui/notices.js';
import { Page } from '../ui/page.js';
import { showMatch } from './live.js';
import type { PublicProfile } from './types.js';

type Kind = 'like' | 'pass' | 'superlike';
const DRAG_THRESHOLD = 90;

export function DeckPage() {
  const [cards, setCards] = useState<PublicProfile[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [needsLocation, setNeedsLocation] = useState(false);
  const [busy, setBusy] = useState(false);
  const [drag, setDrag] = useState<{ x: number; y: number } | null>(null);
  const start = useRef<{ x: number; y: number; id: number } | null>(null);

  async function load() {
    setError(null);
    try {
      const { cards } = await api<{ cards: PublicProfile[] }>('GET', '/v1/deck?limit=20');
      setCards(cards);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'INVALID_ARGUMENT' && /location/.test(err.message)) setNeedsLocation(true);
      else setError(err);
      setCards([]);
    }
  }
  useEffect(() => {
    void load();
  }, []);

  const card = cards?.[0];

  async function swipe(kind: Kind) {
    if (!card || busy) return;
    setBusy(true);
    setError(null);
    try {
      const result = await api<{ matched: boolean; matchId?: string }>('POST', '/v1/swipes', { json: { targetId: card.userId, kind } });
      if (result.matched) showMatch(card);
      const rest = cards!.slice(1);
      setCards(rest);
      if (rest.length === 0) void load();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
      setDrag(null);
    }
  }

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement;
      if (target.closest('input, textarea, select')) return;
      if (e.key === 'ArrowRight') void swipe('like');
      else if (e.key === 'ArrowLeft') void swipe('pass');
      else if (e.key === 'ArrowUp') void swipe('superlike');
      else return;
      e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  function onPointerDown(e: PointerEvent) {
    if ((e.target as HTMLElement).closest('button')) return;
    start.current = { x: e.clientX, y: e.clientY, id: e.pointerId };
    (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
    setDrag({ x: 0, y: 0 });
  }
  function onPointerMove(e: PointerEvent) {
    if (!start.current || start.current.id !== e.pointerId) return;
    setDrag({ x: e.clientX - start.current.x, y: e.clientY - start.current.y });
  }
  function onPointerUp(e: PointerEvent) {
    if (!start.current || start.current.id !== e.pointerId) return;
    const dx = e.clientX - start.current.x;
    const dy = e.clientY - start.current.y;
    start.current = null;
    if (dy < -DRAG_THRESHOLD && Math.abs(dy) > Math.abs(dx)) void swipe('superlike');
    else if (dx > DRAG_THRESHOLD) void swipe('like');
    else if (dx < -DRAG_THRESHOLD) void swipe('pass');
    else setDrag(null);
  }

  const hint = drag && Math.abs(drag.x) + Math.abs(drag.y) > 30 ? (drag.y < -DRAG_THRESHOLD / 2 && Math.abs(drag.y) > Math.abs(drag.x) ? 'superlike' : drag.x > 0 ? 'like' : 'pass') : null;

  return (
    <Page title="Discover">
      <ErrorText error={error} />
      {needsLocation && (
        <p class="card">
          Set your location in <Link href="/tindr/profile">your profile</Link> to see people near you.
        </p>
      )}
      {cards === null && <p aria-busy="true">Loading people near you…</p>}
      {cards && !card && !needsLocation && (
        <div class="card empty">
          <p>No one new nearby right now. Widen your preferences or come back later.</p>
          <button type="button" onClick={() => void load()}>
            Look again
          </button>
        </div>
      )}
      {card && (
        <div class="deck">
          <article
            class={`swipe-card ${hint ? `hint-${hint}` : ''}`}
            aria-label={`${card.displayName}, ${card.age}`}
            data-testid="swipe-card"
            style={drag ? { transform: `translate(${drag.x}px, ${drag.y}px) rotate(${drag.x / 20}deg)`, transition: 'none' } : undefined}
            onPointerDown={onPointerDown}
            onPointerMove={onPointerMove}
            onPointerUp={onPointerUp}
            onPointerCancel={() => {
              start.current = null;
              setDrag(null);
            }}
          >
            {card.images[0] ? <img src={card.images[0].url} alt={`${card.displayName}'s photo`} draggable={false} /> : <div class="no-photo" aria-hidden="true">{card.displayName.slice(0, 1)}</div>}
            {hint && <span class={`stamp stamp-${hint}`}>{hint === 'superlike' ? 'Super like' : hint === 'like' ? 'Like' : 'Nope'}</span>}
            <div class="swipe-info">
              <h2>
                {card.displayName}, {card.age}
              </h2>
              <p class="muted">
                {card.gender}
                {card.distanceKm !== undefined && ` · ${card.distanceKm} km away`}
                {card.images.length > 1 && ` · ${card.images.length} photos`}
              </p>
              {card.bio && <p>{card.bio}</p>}
            </div>
          </article>
          <div class="swipe-buttons" role="group" aria-label="Your answer">
            <button type="button" class="round pass" onClick={() => void swipe('pass')} disabled={busy} aria-keyshortcuts="ArrowLeft">
              <span aria-hidden="true">✕</span> Pass
            </button>
            <button type="button" class="round superlike" onClick={() => void swipe('superlike')} disabled={busy} aria-keyshortcuts="ArrowUp">
              <span aria-hidden="true">★</span> Super like
            </button>
            <button type="button" class="round like" onClick={() => void swipe('like')} disabled={busy} aria-keyshortcuts="ArrowRight">
              <span aria-hidden="true">♥</span> Like
            </button>
          </div>
          <p class="hint center">Drag the card, or use ← pass, → like, ↑ super like.</p>
        </div>
      )}
    </Page>
  );
}
