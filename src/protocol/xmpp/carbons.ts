/**
 * Message Carbons, XEP-0280 (https://xmpp.org/extensions/xep-0280.html), urn:xmpp:carbons:2.
 *
 * `<enable/>` / `<disable/>` IQs switch carbons per session (off by default). While on, a domain
 * `message` event whose `from` is the user themself — what they sent from another of their
 * devices, XMPP or native (the domain echoes to every session but the sending one) — becomes
 *
 *   <message type='chat' from=own-bare to=own-full>
 *     <sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>
 *       <message xmlns='jabber:client' type='chat' from=own-bare to=peer-bare id=messageId>
 *         <body/><stanza-id xmlns='urn:xmpp:sid:0' id=messageId by=own-bare/>
 *       </message>
 *     </forwarded></sent>
 *   </message>
 *
 * (the sending device's resource is not known to the domain: `from` is the bare JID). With
 * carbons off such echoes are dropped, as before this module.
 *
 * Not done, on purpose:
 *   - "received" carbons: a message from a peer already reaches every bound session of the user
 *     (the domain delivers to all of them), so a copy would be a duplicate.
 *   - `<private xmlns='urn:xmpp:carbons:2'/>` on a message the user sends is ignored: the domain
 *     echoes every message to the user's other sessions (native ones included) and the archive
 *     has it anyway, so there is nothing private to keep. Other sessions with carbons off still
 *     see nothing.
 *   - chat states, receipts and markers sent from another device are not echoed by the domain,
 *     so there is nothing to carbon-copy for them.
 */
import { xml } from '@xmpp/xml';
import { formatJid, jid, type Jid } from './jid.js';
import type { XmppModule } from './module.js';
import { NS } from './ns.js';
import type { XmppSession } from './session.js';
import { StanzaError } from './stanza-errors.js';

export const NS_CARBONS = 'urn:xmpp:carbons:2';
export const NS_FORWARD = 'urn:xmpp:forward:0';
const NS_SID = 'urn:xmpp:sid:0';

export const carbonsModule: XmppModule = {
  name: 'carbons',
  setup(ctx) {
    ctx.disco.addFeature(NS_CARBONS);
    const state = ctx.sessionState<{ enabled: boolean }>(() => ({ enabled: false }));

    /** carbons are a setting of the user's own session: to nobody, the server, or their own account */
    const own = (session: XmppSession, to: Jid | undefined) => {
      if (to && to.local && to.local !== session.username) throw new StanzaError('forbidden', 'carbons are set on your own account');
    };

    ctx.iq('set', NS_CARBONS, 'enable', ({ session, to }) => {
      own(session, to);
      state.get(session).enabled = true;
    });
    ctx.iq('set', NS_CARBONS, 'disable', ({ session, to }) => {
      own(session, to);
      state.get(session).enabled = false;
    });

    ctx.onEvent('message', async (session, event) => {
      const m = event.message;
      if (m.from !== session.userId || !state.peek(session)?.enabled) return;
      const peer = await ctx.directory.usernameOf(session.principal, m.to);
      if (!peer) return;
      const bare = formatJid(session.bareJid);
      session.send(
        xml(
          'message',
          { type: 'chat', from: bare, to: formatJid(session.jid) },
          xml(
            'sent',
            { xmlns: NS_CARBONS },
            xml(
              'forwarded',
              { xmlns: NS_FORWARD },
              event.offline ? xml('delay', { xmlns: NS.delay, from: ctx.domain, stamp: new Date(m.sentAt).toISOString() }) : null,
              xml(
                'message',
                { xmlns: NS.client, type: 'chat', id: m.messageId, from: bare, to: formatJid(jid(peer, ctx.domain)) },
                xml('body', {}, m.body),
                xml('stanza-id', { xmlns: NS_SID, id: m.messageId, by: bare }),
              ),
            ),
          ),
        ),
      );
    });
  },
};
