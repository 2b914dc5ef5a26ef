/**
 * Presence, RFC 6121 §3–4 (https://www.rfc-editor.org/rfc/rfc6121), between matches only.
 *
 * In Kindred the roster is the list of matches, all `subscription='both'` (roster.ts), and the
 * domain decides who sees whose presence: the user's actor announces online / offline to the
 * active matches on the first / last session of any transport, and again on `presence.set`;
 * a user who hides their presence (`showPresence: false`) announces nothing and reads as offline.
 *
 * Outbound (client → server):
 *  - Broadcast available presence (no `to`): `<show>` away/chat/dnd/xa (absent or unknown:
 *    'available') and the first `<status>` (cut to 500 characters) → `presence.set`. The user has
 *    one show/status in the domain, whichever device said it last. On the first available
 *    presence of a session (initial presence, §4.2) the server then sends the session the current
 *    presence of every online match (what §4.2.2's probes would have gathered).
 *  - Broadcast `type='unavailable'` while the stream stays open: not told to the domain (the user
 *    stays online for the matches until the session's last stream closes, which announces
 *    offline); the resource just stops receiving presence until it sends available again (§4.5).
 *  - Broadcast presence is reflected to the user's available resources on this node, including
 *    the sender (§4.2.2, §4.4.2); resources on other nodes do not see it.
 *  - `subscribe` to an account (§3.1): `contact.add`, which accepts an existing match in
 *    `matches` messaging and anyone in `open` messaging (making the contact both ways; the roster
 *    push comes from the roster module's `match` event): answered with `subscribed` from the
 *    contact and its current presence; refused (not a match, blocked, no such user): answered
 *    with `unsubscribed`, the same either way.
 *  - `subscribed`, `unsubscribe`, `unsubscribed`: ignored. Nobody ever waits for an approval
 *    (subscriptions are always mutual), and ending a match is too destructive to hang on a
 *    presence stanza: that is a roster remove (roster.ts) or the app.
 *  - `probe` to a match: answered with its current presence (available or unavailable); to anyone
 *    else: dropped.
 *  - Directed available / unavailable presence (§4.6): dropped. Matches see broadcast presence
 *    already, and nobody else may see any.
 *
 * Inbound (server → client), only to resources that sent available presence:
 *  - domain `presence` events → `<presence from='peer@domain/kindred'>` with show/status when
 *    online, `type='unavailable'` when offline;
 *  - a new match (`match` event) → its current presence if online; an ended match (`unmatch`) →
 *    `unavailable` from it (§3.2.3: the presence of an ex-contact must not stay shown).
 *
 * Each user appears with ONE synthetic resource, `kindred`: the domain tracks presence per user,
 * not per device, so `peer@domain/kindred` stands for all of the peer's sessions (XMPP, native,
 * any node). Messages are still addressed to and sent from bare JIDs (message.ts).
 */
import { xml, type Element } from '@xmpp/xml';
import type { PresenceShow, PresenceView } from '../../domain/commands.js';
import { KindredError, type ErrorCode } from '../../errors.js';
import { bareString, formatJid, jid } from './jid.js';
import type { XmppModule } from './module.js';
import type { XmppSession } from './session.js';

/** the one resource every peer appears with (see the header) */
export const PEER_RESOURCE = 'kindred';

const SHOWS: ReadonlySet<string> = new Set<PresenceShow>(['away', 'chat', 'dnd', 'xa']);
/** presence.set's limit on status (src/domain/validate.ts) */
const MAX_STATUS = 500;
/** presence.get's limit on userIds per call */
const PRESENCE_BATCH = 100;
/** refusals of contact.add that mean "not your contact" (answered with unsubscribed) */
const NOT_A_CONTACT: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['NOT_MATCHED', 'NOT_FOUND', 'FORBIDDEN', 'INVALID_ARGUMENT']);

interface PresenceState {
  /** the resource sent available presence and has not gone unavailable since */
  available: boolean;
  /** while the initial snapshot is fetched: peers whose presence event arrived meanwhile (newer) */
  fresh: Set<string> | undefined;
}

/** At most `max` UTF-16 units, never splitting a surrogate pair. */
function cut(s: string, max: number): string {
  if (s.length <= max) return s;
  const end = s.charCodeAt(max - 1) >= 0xd800 && s.charCodeAt(max - 1) <= 0xdbff ? max - 1 : max;
  return s.slice(0, end);
}

/** A deep copy (the parsed elements have no clone()). */
function deepCopy(el: Element): Element {
  return xml(el.name, { ...el.attrs }, ...el.children.map((c) => (typeof c === 'string' ? c : deepCopy(c))));
}

/** The presence of a peer as a stanza: available with show/status, or unavailable. */
export function peerPresence(from: string, to: string, p: { online: boolean; show?: PresenceShow; status?: string }): Element {
  if (!p.online) return xml('presence', { type: 'unavailable', from, to });
  return xml(
    'presence',
    { from, to },
    p.show && p.show !== 'available' ? xml('show', {}, p.show) : null,
    p.status ? xml('status', {}, p.status) : null,
  );
}

export const presenceModule: XmppModule = {
  name: 'presence',
  setup(ctx) {
    const state = ctx.sessionState<PresenceState>(() => ({ available: false, fresh: undefined }));
    const peerJid = (username: string) => formatJid(jid(username, ctx.domain, PEER_RESOURCE));
    const isAvailable = (s: XmppSession) => state.peek(s)?.available === true;

    /** presence.get in batches (only matches come back: the domain filters) */
    const presenceOf = async (session: XmppSession, userIds: string[]): Promise<PresenceView[]> => {
      const out: PresenceView[] = [];
      for (let i = 0; i < userIds.length; i += PRESENCE_BATCH) {
        const { presence } = await ctx.gateway.execute(session.principal, { op: 'presence.get', userIds: userIds.slice(i, i + PRESENCE_BATCH) }, session.connId);
        out.push(...presence);
      }
      return out;
    };

    /** Sends `views` to the session (only the online ones unless `offlineToo`), skipping `skip`. */
    const deliver = async (session: XmppSession, views: PresenceView[], opts: { offlineToo?: boolean; skip?: Set<string> } = {}) => {
      const shown = views.filter((v) => (v.online || opts.offlineToo) && !opts.skip?.has(v.userId));
      if (shown.length === 0) return;
      const names = await ctx.directory.usernamesOf(session.principal, shown.map((v) => v.userId));
      for (const v of shown) {
        const username = names.get(v.userId);
        if (!username || !isAvailable(session) || opts.skip?.has(v.userId)) continue;
        session.send(peerPresence(peerJid(username), formatJid(session.jid), v));
      }
    };

    /** Initial presence: what probes of every contact would have brought back (RFC 6121 §4.2.2). */
    const sendSnapshot = async (session: XmppSession, st: PresenceState) => {
      const fresh = new Set<string>();
      st.fresh = fresh;
      try {
        const { matches } = await ctx.gateway.execute(session.principal, { op: 'matches.list' }, session.connId);
        const peers = [...new Set(matches.filter((m) => !m.ended).map((m) => m.peer.userId))];
        await deliver(session, await presenceOf(session, peers), { skip: fresh });
      } finally {
        if (st.fresh === fresh) st.fresh = undefined;
      }
    };

    /** RFC 6121 §4.2.2 / §4.4.2 / §4.5.2: the user's own available resources (here) see it too. */
    const reflect = (session: XmppSession, stanza: Element) => {
      for (const other of ctx.sessions.ofUser(session.userId)) {
        if (!isAvailable(other)) continue;
        const copy = deepCopy(stanza);
        copy.attrs.from = formatJid(session.jid);
        copy.attrs.to = formatJid(other.jid);
        other.send(copy);
      }
    };

    const broadcast = async (session: XmppSession, stanza: Element, type: string | undefined) => {
      const st = state.get(session);
      if (type === 'unavailable') {
        // Not told to the domain (see the header): the stream's close announces offline.
        reflect(session, stanza);
        st.available = false;
        st.fresh = undefined;
        return;
      }
      if (type !== undefined) return; // subscribe & co. without a contact: nothing to do
      const rawShow = stanza.getChildText('show')?.trim() ?? '';
      const show: PresenceShow = SHOWS.has(rawShow) ? (rawShow as PresenceShow) : 'available';
      const status = stanza.getChildText('status');
      await ctx.gateway.execute(
        session.principal,
        status === null ? { op: 'presence.set', show } : { op: 'presence.set', show, status: cut(status, MAX_STATUS) },
        session.connId,
      );
      const initial = !st.available;
      st.available = true;
      reflect(session, stanza);
      if (initial) await sendSnapshot(session, st);
    };

    const subscribe = async (session: XmppSession, local: string) => {
      const contact = formatJid(jid(local, ctx.domain));
      const answer = (type: 'subscribed' | 'unsubscribed') => session.send(xml('presence', { type, from: contact, to: bareString(session.bareJid) }));
      const userId = await ctx.directory.userIdOf(session.principal, local);
      if (!userId) return answer('unsubscribed');
      try {
        await ctx.gateway.execute(session.principal, { op: 'contact.add', userId }, session.connId);
      } catch (err) {
        if (err instanceof KindredError && NOT_A_CONTACT.has(err.code)) return answer('unsubscribed');
        throw err;
      }
      answer('subscribed');
      // §3.1.6: the contact's presence follows the approval.
      if (isAvailable(session)) await deliver(session, await presenceOf(session, [userId]));
    };

    const probe = async (session: XmppSession, local: string) => {
      if (!isAvailable(session)) return;
      const userId = await ctx.directory.userIdOf(session.principal, local);
      if (!userId) return;
      await deliver(session, await presenceOf(session, [userId]), { offlineToo: true });
    };

    ctx.onPresence(async ({ session, stanza, to }) => {
      const type = stanza.attrs.type;
      if (type === 'error') return true;
      if (!to) {
        await broadcast(session, stanza, type);
        return true;
      }
      // To the server, to one's own account, or a directed available/unavailable presence
      // (to a match or anyone else): nothing to do (see the header).
      if (!to.local || to.local === session.username) return true;
      if (type === 'subscribe') await subscribe(session, to.local);
      else if (type === 'probe') await probe(session, to.local);
      // 'subscribed', 'unsubscribe', 'unsubscribed': ignored on purpose (see the header).
      return true;
    });

    ctx.onEvent('presence', async (session, event) => {
      const st = state.peek(session);
      if (!st?.available) return;
      st.fresh?.add(event.userId);
      const username = await ctx.directory.usernameOf(session.principal, event.userId);
      if (username && st.available) session.send(peerPresence(peerJid(username), formatJid(session.jid), event));
    });

    // A match made or ended while the initial snapshot is fetched: the event is newer than it.
    ctx.onEvent('match', async (session, event) => {
      if (!isAvailable(session)) return;
      state.peek(session)?.fresh?.add(event.peer.userId);
      await deliver(session, await presenceOf(session, [event.peer.userId]));
    });

    ctx.onEvent('unmatch', async (session, event) => {
      if (!isAvailable(session)) return;
      state.peek(session)?.fresh?.add(event.userId);
      const username = await ctx.directory.usernameOf(session.principal, event.userId);
      if (username && isAvailable(session)) session.send(peerPresence(peerJid(username), formatJid(session.jid), { online: false }));
    });

    ctx.onSessionEnd((session) => {
      const st = state.peek(session);
      if (!st?.available) return;
      st.available = false;
      // The session is already out of the registry: the user's other resources here hear it left.
      reflect(session, xml('presence', { type: 'unavailable' }));
    });
  },
};

