/**
 * The roster, RFC 6121 §2 (https://www.rfc-editor.org/rfc/rfc6121#section-2): in Kindred the
 * roster is the list of active matches, each `subscription='both'`, named by display name.
 * A roster set with a new JID asks for a contact (`contact.add`: an existing match in `matches`
 * messaging, anyone in `open` messaging); `subscription='remove'` unmatches. Roster pushes go to
 * every session of the user that has fetched the roster (§2.1.6) on `match` / `unmatch` events.
 */
import { xml, type Element } from '@xmpp/xml';
import { formatJid, jid, parseJid, type Jid } from './jid.js';
import type { XmppModule } from './module.js';
import { NS } from './ns.js';
import type { XmppSession } from './session.js';
import { StanzaError } from './stanza-errors.js';

export const rosterModule: XmppModule = {
  name: 'roster',
  setup(ctx) {
    const requested = ctx.sessionState<{ interested: boolean }>(() => ({ interested: false }));
    const jidOf = (username: string) => formatJid(jid(username, ctx.domain));

    const push = (session: XmppSession, item: Element) => {
      if (!requested.peek(session)?.interested) return;
      session.send(xml('iq', { type: 'set', id: `push-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`, to: formatJid(session.jid) }, xml('query', { xmlns: NS.roster }, item)));
    };

    /** RFC 6121 §2.1.5: a roster is only the user's own to read and change. */
    const ownRoster = (session: XmppSession, to: Jid | undefined) => {
      if (to && (to.local !== session.username || to.resource)) throw new StanzaError('forbidden', 'not your roster');
    };

    ctx.iq('get', NS.roster, 'query', async ({ session, to }) => {
      ownRoster(session, to);
      requested.get(session).interested = true;
      const { matches } = await ctx.gateway.execute(session.principal, { op: 'matches.list' }, session.connId);
      const active = matches.filter((m) => !m.ended);
      const names = await ctx.directory.usernamesOf(session.principal, active.map((m) => m.peer.userId));
      return xml(
        'query',
        { xmlns: NS.roster },
        ...active.flatMap((m) => {
          const username = names.get(m.peer.userId);
          return username ? [xml('item', { jid: jidOf(username), name: m.peer.displayName || undefined, subscription: 'both' })] : [];
        }),
      );
    });

    ctx.iq('set', NS.roster, 'query', async ({ session, payload, to }) => {
      ownRoster(session, to);
      const items = payload.getChildren('item');
      if (items.length !== 1) throw new StanzaError('bad-request', 'a roster set has exactly one item');
      const item = items[0]!;
      const target = parseJid(item.attrs.jid ?? '');
      if (!target || target.resource || !target.local) throw new StanzaError('bad-request', 'the item needs a bare account JID');
      if (target.domain !== ctx.domain) throw new StanzaError('not-allowed', 'contacts on other servers are not supported');
      if (target.local === session.username) throw new StanzaError('not-allowed', 'you cannot add yourself');
      const userId = await ctx.directory.userIdOf(session.principal, target.local);
      if (item.attrs.subscription === 'remove') {
        if (!userId) throw new StanzaError('item-not-found');
        await ctx.gateway.execute(session.principal, { op: 'unmatch', userId }, session.connId);
        return;
      }
      if (!userId) throw new StanzaError('item-not-found', 'no such user');
      // An existing contact (a rename) is accepted as is; a new one needs the domain's consent.
      await ctx.gateway.execute(session.principal, { op: 'contact.add', userId }, session.connId);
    });

    ctx.onEvent('match', async (session, event) => {
      if (!requested.peek(session)?.interested) return;
      const username = await ctx.directory.usernameOf(session.principal, event.peer.userId);
      if (username) push(session, xml('item', { jid: jidOf(username), name: event.peer.displayName || undefined, subscription: 'both' }));
    });

    ctx.onEvent('unmatch', async (session, event) => {
      if (!requested.peek(session)?.interested) return;
      const username = await ctx.directory.usernameOf(session.principal, event.userId);
      if (username) push(session, xml('item', { jid: jidOf(username), subscription: 'remove' }));
    });
  },
};
