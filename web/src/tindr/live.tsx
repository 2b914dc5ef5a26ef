/**
 * Tindr's app-wide live handling, whatever page is open: the "It's a match!" dialog (from a
 * swipe's answer or the live `match` event), super like news, and incoming messages outside
 * their conversation (counted as unread, acknowledged as delivered so they stop replaying).
 */
import { useEffect, useRef } from 'preact/hooks';
import { live, onLiveEvent, type LiveEvent } from '../live.js';
import { location$, navigate } from '../router.js';
import { session } from '../session.js';
import { createStore, useStore } from '../store.js';
import { notify } from '../ui/notices.js';
import type { MessageView, PublicProfile } from './types.js';

/** the match being announced */
const announced = createStore<PublicProfile | null>(null);
/** unread messages per peer userId */
export const unread = createStore<Record<string, number>>({});
/** bumped on every match/unmatch event, so lists reload */
export const matchesVersion = createStore(0);

export function showMatch(peer: PublicProfile): void {
  announced.set(peer);
}

/** The peer of the conversation open on screen, if any. */
export function openConversation(): string | null {
  const m = /^\/tindr\/chat\/([^/]+)$/.exec(location$.get().path);
  return m ? decodeURIComponent(m[1]!) : null;
}

onLiveEvent((e: LiveEvent) => {
  const me = session.get()?.userId;
  switch (e.type) {
    case 'match': {
      matchesVersion.set((v) => v + 1);
      const peer = e.peer as PublicProfile;
      // a match from this tab's own swipe is already on screen
      if (announced.get()?.userId !== peer.userId) showMatch(peer);
      break;
    }
    case 'unmatch':
      matchesVersion.set((v) => v + 1);
      break;
    case 'superlike':
      notify(`${(e.from as PublicProfile).displayName} super liked you!`);
      break;
    case 'message': {
      const m = e.message as MessageView;
      if (m.to !== me || openConversation() === m.from) return; // the chat page handles its own
      unread.set((u) => ({ ...u, [m.from]: (u[m.from] ?? 0) + 1 }));
      live('receipt', { to: m.from, messageId: m.messageId, kind: 'delivered' }).catch(() => undefined);
      break;
    }
  }
});

export function MatchDialog() {
  const peer = useStore(announced);
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (peer && !d.open) d.showModal();
    if (!peer && d.open) d.close();
  }, [peer]);
  return (
    <dialog ref={dialog} class="match-dialog" aria-labelledby="match-title" onClose={() => announced.set(null)} data-testid="match-dialog">
      {peer && (
        <div>
          <h2 id="match-title">It's a match!</h2>
          {peer.images[0] && <img src={peer.images[0].url} alt="" />}
          <p>You and {peer.displayName} like each other.</p>
          <div class="row center">
            <button
              type="button"
              class="primary"
              onClick={() => {
                announced.set(null);
                navigate(`/tindr/chat/${peer.userId}`);
              }}
            >
              Send a message
            </button>
            <button type="button" onClick={() => announced.set(null)}>
              Keep swiping
            </button>
          </div>
        </div>
      )}
    </dialog>
  );
}
