/**
 * A conversation, live over the native protocol: history pages loaded as you scroll up,
 * messages pushed as they arrive, typing indicators both ways, and read receipts (a message
 * of theirs shown on a visible page is acknowledged `read`; yours show Sent → Delivered → Read).
 * Also the match's end: unmatch, block and report.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { live, onLiveEvent, onResync } from '../live.js';
import { navigate } from '../router.js';
import { session } from '../session.js';
import { ErrorText, notify, notifyError } from '../ui/notices.js';
import { Page } from '../ui/page.js';
import { matchesVersion, unread } from './live.js';
import type { MatchView, MessageView } from './types.js';

type Status = 'sending' | 'sent' | 'delivered' | 'read' | 'failed';
interface Line extends MessageView {
  clientId?: string;
  status?: Status;
}

const PAGE = 30;
const TYPING_REFRESH_MS = 4000;
const TYPING_IDLE_MS = 5000;

function newClientId(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function byId(a: Line, b: Line): number {
  return a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0;
}

export function ChatPage({ userId: peerId }: { userId: string }) {
  const me = session.get()!.userId;
  const [match, setMatch] = useState<MatchView | null>(null);
  const [lines, setLines] = useState<Line[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [peerTyping, setPeerTyping] = useState(false);
  const [presence, setPresence] = useState<{ online: boolean; lastActiveAt: number | null } | null>(null);
  const [draft, setDraft] = useState('');
  const [reporting, setReporting] = useState(false);
  const list = useRef<HTMLOListElement>(null);
  const keepBottom = useRef(true);
  const anchor = useRef<{ height: number; top: number } | null>(null);
  const typingSent = useRef(0);
  const typingTimer = useRef<ReturnType<typeof setTimeout>>(undefined);
  const peerTypingTimer = useRef<ReturnType<typeof setTimeout>>(undefined);
  const lastRead = useRef('');

  const ended = match?.ended ?? false;
  const name = match?.peer.displayName ?? 'Conversation';

  /** merges messages into the list, de-duplicated by messageId (or by clientId for our own pending ones) */
  function merge(incoming: Line[]) {
    setLines((prev) => {
      const out = [...prev];
      for (const m of incoming) {
        const i = out.findIndex((x) => x.messageId === m.messageId || (m.clientId && x.clientId === m.clientId));
        if (i >= 0) out[i] = { ...out[i], ...m, status: mergeStatus(out[i]!.status, m.status) };
        else out.push(m);
      }
      return out.sort(byId);
    });
  }

  /** tells them we read their newest message, when the page is visible */
  function markRead(all: Line[]) {
    if (document.visibilityState !== 'visible') return;
    const theirs = all.filter((m) => m.from === peerId);
    const newest = theirs[theirs.length - 1];
    if (!newest || newest.messageId <= lastRead.current) return;
    lastRead.current = newest.messageId;
    live('receipt', { to: peerId, messageId: newest.messageId, kind: 'read' }).catch(() => undefined);
  }

  async function loadMatch() {
    const { matches } = await api<{ matches: MatchView[] }>('GET', '/v1/matches');
    const m = matches.find((x) => x.peer.userId === peerId);
    if (!m) throw new Error('You have no match with this person.');
    setMatch(m);
    return m;
  }

  async function loadLatest() {
    try {
      await loadMatch();
      const { messages, next } = await live<{ messages: MessageView[]; next: string | null }>('messages.history', { with: peerId, limit: PAGE });
      keepBottom.current = true;
      merge(messages.map((m) => ({ ...m, status: m.from === me ? 'sent' : undefined })));
      setCursor(next);
      const { presence } = await live<{ presence: Array<{ userId: string; online: boolean; lastActiveAt: number | null }> }>('presence.get', { userIds: [peerId] });
      setPresence(presence[0] ?? null);
      setError(null);
    } catch (err) {
      setError(err);
    }
  }

  async function loadOlder() {
    if (!cursor || loadingOlder) return;
    setLoadingOlder(true);
    try {
      const el = list.current;
      if (el) anchor.current = { height: el.scrollHeight, top: el.scrollTop };
      keepBottom.current = false;
      const { messages, next } = await live<{ messages: MessageView[]; next: string | null }>('messages.history', { with: peerId, before: cursor, limit: PAGE });
      merge(messages.map((m) => ({ ...m, status: m.from === me ? 'sent' : undefined })));
      setCursor(next);
    } catch (err) {
      setError(err);
    } finally {
      setLoadingOlder(false);
    }
  }

  useEffect(() => {
    setLines([]);
    setCursor(null);
    lastRead.current = '';
    unread.set((u) => ({ ...u, [peerId]: 0 }));
    void loadLatest();
    const offResync = onResync(() => void loadLatest());
    const offEvents = onLiveEvent((e) => {
      if (e.type === 'message') {
        const m = e.message as MessageView;
        const mine = m.from === me && m.to === peerId;
        if (!mine && !(m.from === peerId && m.to === me)) return;
        keepBottom.current = true;
        merge([{ ...m, status: mine ? 'sent' : undefined }]);
        if (!mine) {
          setPeerTyping(false);
          if (document.visibilityState === 'visible') {
            if (m.messageId > lastRead.current) {
              lastRead.current = m.messageId;
              live('receipt', { to: peerId, messageId: m.messageId, kind: 'read' }).catch(() => undefined);
            }
          } else live('receipt', { to: peerId, messageId: m.messageId, kind: 'delivered' }).catch(() => undefined);
        }
      } else if (e.type === 'receipt' && e.from === peerId) {
        const id = e.messageId as string;
        const kind = e.kind as 'delivered' | 'read';
        setLines((prev) =>
          prev.map((m) => {
            if (m.from !== me) return m;
            if (kind === 'read' && m.messageId <= id) return { ...m, status: 'read' };
            if (kind === 'delivered' && m.messageId === id) return { ...m, status: mergeStatus(m.status, 'delivered') };
            return m;
          }),
        );
      } else if (e.type === 'typing' && e.from === peerId) {
        clearTimeout(peerTypingTimer.current);
        const composing = e.state === 'composing';
        setPeerTyping(composing);
        // a lost `paused` must not leave the indicator on forever
        if (composing) peerTypingTimer.current = setTimeout(() => setPeerTyping(false), 15_000);
      } else if (e.type === 'presence' && e.userId === peerId) {
        setPresence({ online: e.online as boolean, lastActiveAt: (e.lastActiveAt as number | null) ?? null });
      } else if (e.type === 'unmatch' && e.userId === peerId) {
        setMatch((m) => (m ? { ...m, ended: true } : m));
      }
    });
    const onVisible = () => setLines((l) => (markRead(l), l));
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      offResync();
      offEvents();
      document.removeEventListener('visibilitychange', onVisible);
      clearTimeout(typingTimer.current);
      clearTimeout(peerTypingTimer.current);
    };
  }, [peerId]);

  useEffect(() => markRead(lines), [lines]);

  // keep the view at the bottom for new messages, and in place when older ones are added above
  useLayoutEffect(() => {
    const el = list.current;
    if (!el) return;
    if (anchor.current) {
      el.scrollTop = el.scrollHeight - anchor.current.height + anchor.current.top;
      anchor.current = null;
    } else if (keepBottom.current) el.scrollTop = el.scrollHeight;
  }, [lines, peerTyping]);

  function onScroll() {
    const el = list.current;
    if (!el) return;
    keepBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 60) void loadOlder();
  }

  function sendTyping(state: 'composing' | 'paused') {
    live('typing', { to: peerId, state }).catch(() => undefined);
  }

  function onDraft(value: string) {
    setDraft(value);
    clearTimeout(typingTimer.current);
    if (value.trim() === '') {
      if (typingSent.current) sendTyping('paused');
      typingSent.current = 0;
      return;
    }
    const now = Date.now();
    if (now - typingSent.current > TYPING_REFRESH_MS) {
      typingSent.current = now;
      sendTyping('composing');
    }
    typingTimer.current = setTimeout(() => {
      typingSent.current = 0;
      sendTyping('paused');
    }, TYPING_IDLE_MS);
  }

  async function send(body: string, clientId = newClientId()) {
    const pendingId = `~${clientId}`; // sorts after every real id until the server's id replaces it
    keepBottom.current = true;
    merge([{ messageId: pendingId, clientId, matchId: match?.matchId ?? '', from: me, to: peerId, body, sentAt: Date.now(), status: 'sending' }]);
    try {
      const { messageId, sentAt } = await live<{ messageId: string; sentAt: number }>('message.send', { to: peerId, body, clientId });
      setLines((prev) => {
        // the server's echo may already have added it under its real id
        const rest = prev.filter((m) => m.messageId !== messageId);
        return rest.map((m) => (m.clientId === clientId ? { ...m, messageId, sentAt, status: mergeStatus(m.status === 'sending' ? undefined : m.status, 'sent') } : m)).sort(byId);
      });
    } catch (err) {
      setLines((prev) => prev.map((m) => (m.clientId === clientId ? { ...m, status: 'failed' } : m)));
      notifyError(err);
    }
  }

  function submit(e: Event) {
    e.preventDefault();
    const body = draft.trim();
    if (!body) return;
    setDraft('');
    clearTimeout(typingTimer.current);
    if (typingSent.current) sendTyping('paused');
    typingSent.current = 0;
    void send(body);
  }

  async function unmatch() {
    if (!confirm(`Unmatch ${name}? You will not be able to message each other any more.`)) return;
    try {
      await api('DELETE', `/v1/matches/${peerId}`);
      matchesVersion.set((v) => v + 1);
      notify(`You unmatched ${name}.`);
      navigate('/tindr/matches');
    } catch (err) {
      notifyError(err);
    }
  }

  async function block() {
    if (!confirm(`Block ${name}? You will not see each other again.`)) return;
    try {
      await api('POST', '/v1/blocks', { json: { userId: peerId } });
      matchesVersion.set((v) => v + 1);
      notify(`You blocked ${name}.`);
      navigate('/tindr/matches');
    } catch (err) {
      notifyError(err);
    }
  }

  const lastMine = [...lines].reverse().find((m) => m.from === me);
  return (
    <Page
      title={name}
      wide
      actions={
        <div class="chat-actions">
          <button type="button" onClick={() => setReporting(true)}>
            Report
          </button>
          <button type="button" onClick={block} class="danger">
            Block
          </button>
          {!ended && (
            <button type="button" onClick={unmatch}>
              Unmatch
            </button>
          )}
        </div>
      }
    >
      <p class="muted presence" data-testid="presence">
        {presence ? (presence.online ? 'Online' : presence.lastActiveAt ? `Last seen ${new Date(presence.lastActiveAt).toLocaleString()}` : 'Offline') : ''}
      </p>
      <ErrorText error={error} />
      <div class="chat">
        <ol class="messages" ref={list} onScroll={onScroll} aria-label={`Messages with ${name}`} tabIndex={0} data-testid="messages">
          <li class="older">
            {cursor ? (
              <button type="button" class="link-button" onClick={() => void loadOlder()} disabled={loadingOlder}>
                {loadingOlder ? 'Loading…' : 'Load older messages'}
              </button>
            ) : (
              lines.length > 0 && <span class="muted">Start of your conversation</span>
            )}
          </li>
          {lines.map((m) => (
            <li key={m.clientId ?? m.messageId} class={m.from === me ? 'msg mine' : 'msg theirs'} data-testid="message">
              <span class="sr-only">{m.from === me ? 'You' : name}: </span>
              <span class="body">{m.body}</span>
              <span class="meta">
                <time dateTime={new Date(m.sentAt).toISOString()}>{new Date(m.sentAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}</time>
                {m.from === me && (m === lastMine || m.status === 'failed' || m.status === 'sending') && (
                  <span class={`status status-${m.status}`} data-testid="message-status">
                    {' · '}
                    {statusText(m.status)}
                    {m.status === 'failed' && (
                      <button
                        type="button"
                        class="link-button"
                        onClick={() => {
                          setLines((prev) => prev.filter((x) => x.clientId !== m.clientId));
                          void send(m.body, m.clientId);
                        }}
                      >
                        Retry
                      </button>
                    )}
                  </span>
                )}
              </span>
            </li>
          ))}
        </ol>
        <p class="typing" aria-live="polite" data-testid="typing">
          {peerTyping ? `${name} is typing…` : ''}
        </p>
        {ended ? (
          <p class="card">This match has ended: the conversation is read-only.</p>
        ) : (
          <form class="composer" onSubmit={submit}>
            <label class="sr-only" for="composer-input">
              Message to {name}
            </label>
            <textarea
              id="composer-input"
              rows={1}
              placeholder={`Message ${name}`}
              value={draft}
              maxLength={4000}
              onInput={(e) => onDraft(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter' && !e.shiftKey) submit(e);
              }}
            />
            <button type="submit" class="primary" disabled={!draft.trim()}>
              Send
            </button>
          </form>
        )}
      </div>
      {reporting && <ReportDialog peerId={peerId} name={name} onClose={() => setReporting(false)} />}
    </Page>
  );
}

function mergeStatus(a: Status | undefined, b: Status | undefined): Status | undefined {
  const rank: Record<Status, number> = { failed: 0, sending: 1, sent: 2, delivered: 3, read: 4 };
  if (!a) return b;
  if (!b) return a;
  return rank[a] >= rank[b] ? a : b;
}

function statusText(s: Status | undefined): string {
  switch (s) {
    case 'sending':
      return 'Sending…';
    case 'failed':
      return 'Not sent';
    case 'delivered':
      return 'Delivered';
    case 'read':
      return 'Read';
    default:
      return 'Sent';
  }
}

const REASONS = ['spam', 'harassment', 'fake profile', 'inappropriate content', 'underage', 'other'];

function ReportDialog({ peerId, name, onClose }: { peerId: string; name: string; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState(REASONS[0]!);
  const [details, setDetails] = useState('');
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  async function submit(e: Event) {
    e.preventDefault();
    try {
      await api('POST', '/v1/reports', { json: details.trim() ? { userId: peerId, reason, details: details.trim() } : { userId: peerId, reason } });
      notify(`Thank you: ${name} was reported to our moderators.`);
      onClose();
    } catch (err) {
      setError(err);
    }
  }
  return (
    <dialog ref={dialog} aria-labelledby="report-title" onClose={onClose}>
      <form class="form" onSubmit={submit}>
        <h2 id="report-title">Report {name}</h2>
        <div class="field">
          <label for="report-reason">Reason</label>
          <select id="report-reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)}>
            {REASONS.map((r) => (
              <option value={r}>{r}</option>
            ))}
          </select>
        </div>
        <label>
          What happened? (optional)
          <textarea rows={4} maxLength={2000} value={details} onInput={(e) => setDetails(e.currentTarget.value)} />
        </label>
        <ErrorText error={error} />
        <div class="row">
          <button type="submit" class="primary">
            Send report
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}
