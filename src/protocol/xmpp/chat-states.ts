/**
 * Chat State Notifications, XEP-0085 (https://xmpp.org/extensions/xep-0085.html), mapped onto
 * the domain's two typing states:
 *
 *   inbound  `<composing/>`                                  → `typing {to, state: 'composing'}`
 *            `<paused/>`, `<active/>`, `<inactive/>`, `<gone/>` → `typing {to, state: 'paused'}`
 *   outbound domain `typing` event → `<message type='chat' from=peer><composing|paused/></message>`
 *
 * A chat state rides on its own body-less message (never a chat message: message.ts only takes
 * messages with a body) or on a message with a body (then both happen: the state first, then the
 * message). States are best-effort notifications: one to an unknown account or to someone the
 * user may not write to is dropped without an error (RFC 6121 §8.5.2 allows silently ignoring).
 */
import { xml } from '@xmpp/xml';
import { formatJid, jid } from './jid.js';
import type { XmppModule } from './module.js';

export const NS_CHATSTATES = 'http://jabber.org/protocol/chatstates';

/** before receipts (10) and the chat path (0); never stops the chain */
const PRIORITY = 20;

const STATES: Record<string, 'composing' | 'paused'> = {
  composing: 'composing',
  paused: 'paused',
  active: 'paused',
  inactive: 'paused',
  gone: 'paused',
};

export const chatStatesModule: XmppModule = {
  name: 'chat-states',
  setup(ctx) {
    ctx.onMessage(async ({ session, stanza, to }) => {
      const type = stanza.attrs.type ?? 'normal';
      if (type !== 'chat' && type !== 'normal') return false;
      const el = stanza.getChildElements().find((c) => c.getNS() === NS_CHATSTATES && Object.hasOwn(STATES, c.getName()));
      if (!el) return false;
      if (!to?.local || to.local === session.username) return false;
      try {
        const peerId = await ctx.directory.userIdOf(session.principal, to.local);
        if (peerId) await ctx.gateway.execute(session.principal, { op: 'typing', to: peerId, state: STATES[el.getName()]! }, session.connId);
      } catch (err) {
        ctx.log.debug({ err }, 'chat state not passed on');
      }
      // A body (or a receipt, a marker…) is for the modules after this one.
      return false;
    }, PRIORITY);

    ctx.onEvent('typing', async (session, event) => {
      const username = await ctx.directory.usernameOf(session.principal, event.from);
      if (!username) return;
      session.send(
        xml('message', { type: 'chat', from: formatJid(jid(username, ctx.domain)), to: formatJid(session.jid) }, xml(event.state, { xmlns: NS_CHATSTATES })),
      );
    });
  },
};
