/**
 * Last Activity, XEP-0012 (https://xmpp.org/extensions/xep-0012.html).
 *
 *  - To a match's bare JID (§4): `presence.get` → `seconds='0'` while the match is online (any
 *    device), else the seconds since their last session ended (`lastActiveAt`).
 *    Refused with `<forbidden/>` when the user is not a match (presence.get leaves them out:
 *    only matches see each other's activity, as with presence, §4's "subscribed" rule) or when
 *    the match hides their presence (`lastActiveAt: null`); an unknown account is
 *    `<item-not-found/>`.
 *  - To one's own bare JID: `seconds='0'` (the asking session is online).
 *  - To the server (no `to`, or the domain, §5): the seconds since this node's XMPP service
 *    started.
 *  - To a full JID (a client's idle time, §3): not answered for clients here
 *    (`<service-unavailable/>`, as for any IQ to another resource).
 */
import { xml } from '@xmpp/xml';
import { isServer } from './jid.js';
import type { XmppModule } from './module.js';
import { StanzaError } from './stanza-errors.js';

export const LAST_NS = 'jabber:iq:last';

const secondsSince = (at: number, now: number) => String(Math.max(0, Math.floor((now - at) / 1000)));

export const lastModule: XmppModule = {
  name: 'last',
  setup(ctx) {
    const startedAt = Date.now();
    ctx.disco.addFeature(LAST_NS);

    ctx.iq('get', LAST_NS, 'query', async ({ session, to }) => {
      const now = Date.now();
      if (!to || isServer(to, ctx.domain)) return xml('query', { xmlns: LAST_NS, seconds: secondsSince(startedAt, now) });
      if (!to.local || to.resource) throw new StanzaError('service-unavailable');
      if (to.local === session.username) return xml('query', { xmlns: LAST_NS, seconds: '0' });
      const userId = await ctx.directory.userIdOf(session.principal, to.local);
      if (!userId) throw new StanzaError('item-not-found', 'no such user');
      const { presence } = await ctx.gateway.execute(session.principal, { op: 'presence.get', userIds: [userId] }, session.connId);
      const p = presence.find((v) => v.userId === userId);
      if (!p) throw new StanzaError('forbidden', 'only matches see each other\'s last activity');
      if (p.lastActiveAt === null) throw new StanzaError('forbidden', 'this user keeps their activity private');
      return xml('query', { xmlns: LAST_NS, seconds: p.online ? '0' : secondsSince(p.lastActiveAt, now) });
    });
  },
};
