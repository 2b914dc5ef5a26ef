/**
 * Blocking Command, XEP-0191 (https://xmpp.org/extensions/xep-0191.html), on Kindred's blocks.
 *
 *  - `<blocklist/>` get → `blocks.list` (the users this user blocked) as bare JIDs.
 *  - `<block>` set with one or more `<item jid='user@domain'/>` → `block` for each (a resource is
 *    ignored: Kindred blocks users). All JIDs are checked before anything is blocked: a malformed
 *    one is `<jid-malformed/>`, one on another server or without a localpart `<not-allowed/>`
 *    (only accounts can be blocked), an unknown account `<item-not-found/>`, an empty list
 *    `<bad-request/>`. A block ends the match: the roster push (`subscription='remove'`) comes
 *    from the roster module's `unmatch` event, the `unavailable` from the presence module's.
 *  - After a successful block, the `<block>` push (§3.3) goes to every resource of the user that
 *    has asked for the block list, on any node: to the blocking resource right after its result,
 *    to the others from the domain's `block` event (one per blocked user), which the user's actor
 *    sends to every session but the blocking one. Blocks made over REST or the native protocol
 *    are pushed the same way.
 *  - `<unblock>` → `<not-allowed/>`: blocks in Kindred are permanent (the domain has no unblock).
 */
import { xml, type Element } from '@xmpp/xml';
import { bareString, formatJid, jid, parseJid, type Jid } from './jid.js';
import type { XmppModule } from './module.js';
import type { XmppSession } from './session.js';
import { StanzaError } from './stanza-errors.js';

export const BLOCKING_NS = 'urn:xmpp:blocking';

/** JIDs in one `<block/>` */
const MAX_ITEMS = 100;

export const blockingModule: XmppModule = {
  name: 'blocking',
  setup(ctx) {
    ctx.disco.addFeature(BLOCKING_NS);
    const interested = ctx.sessionState<{ on: boolean }>(() => ({ on: false }));
    let pushSeq = 0;
    const push = (to: XmppSession, jids: string[]): Element =>
      xml('iq', { type: 'set', id: `block-${(++pushSeq).toString(36)}`, to: formatJid(to.jid) }, xml('block', { xmlns: BLOCKING_NS }, ...jids.map((j) => xml('item', { jid: j }))));

    /** Block list IQs are about one's own account (no `to`, or one's own bare JID). */
    const own = (session: XmppSession, to: Jid | undefined) => {
      if (to && (to.local !== session.username || to.resource)) throw new StanzaError('forbidden', 'not your block list');
    };

    ctx.iq('get', BLOCKING_NS, 'blocklist', async ({ session, to }) => {
      own(session, to);
      interested.get(session).on = true;
      const { userIds } = await ctx.gateway.execute(session.principal, { op: 'blocks.list' }, session.connId);
      const names = await ctx.directory.usernamesOf(session.principal, userIds);
      return xml(
        'blocklist',
        { xmlns: BLOCKING_NS },
        ...userIds.flatMap((id) => {
          const username = names.get(id);
          return username ? [xml('item', { jid: bareString(jid(username, ctx.domain)) })] : [];
        }),
      );
    });

    ctx.iq('set', BLOCKING_NS, 'block', async ({ session, payload, to, afterReply }) => {
      own(session, to);
      const items = payload.getChildren('item');
      if (items.length === 0) throw new StanzaError('bad-request', 'name at least one JID to block');
      if (items.length > MAX_ITEMS) throw new StanzaError('policy-violation', `at most ${MAX_ITEMS} JIDs at a time`);
      const targets = new Map<string, string>(); // userId → bare JID
      for (const item of items) {
        const target = parseJid(item.attrs.jid ?? '');
        if (!target) throw new StanzaError('jid-malformed');
        if (target.domain !== ctx.domain || !target.local) throw new StanzaError('not-allowed', 'only accounts on this server can be blocked');
        if (target.local === session.username) throw new StanzaError('bad-request', 'you cannot block yourself');
        const userId = await ctx.directory.userIdOf(session.principal, target.local);
        if (!userId) throw new StanzaError('item-not-found', 'no such user');
        targets.set(userId, bareString(target));
      }
      for (const userId of targets.keys()) await ctx.gateway.execute(session.principal, { op: 'block', userId }, session.connId);

      // the user's other resources get theirs from the `block` events
      afterReply(() => {
        if (interested.peek(session)?.on) session.send(push(session, [...targets.values()]));
      });
    });

    ctx.onEvent('block', async (session, event) => {
      if (!interested.peek(session)?.on) return;
      const username = await ctx.directory.usernameOf(session.principal, event.userId);
      if (username && !session.isClosed) session.send(push(session, [bareString(jid(username, ctx.domain))]));
    });

    ctx.iq('set', BLOCKING_NS, 'unblock', ({ session, to }) => {
      own(session, to);
      throw new StanzaError('not-allowed', 'blocks in Kindred are permanent');
    });
  },
};
