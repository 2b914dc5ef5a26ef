/**
 * One-to-one chat messages, RFC 6121 §5 (https://www.rfc-editor.org/rfc/rfc6121#section-5):
 * a `<message type='chat'|'normal'>` with a `<body/>` to an account here becomes `message.send`
 * (the stanza id as the client id, for idempotent retries); a domain `message` event becomes a
 * `<message type='chat'>` whose id is the message id, with a XEP-0203 delay when it waited in
 * offline storage. Delivery is acknowledged to the domain (`message.ack`) once the client has the
 * stanza: on write, or on a stream-management ack when a module holds it.
 *
 * Messages the user sent from another device are not shown here (that is XEP-0280 carbons,
 * carbons.ts). Messages without a body (chat states, receipts, markers) are left to other modules
 * (chat-states.ts, receipts.ts), which see every message first (higher onMessage priorities) and
 * decorate what goes out (outbound middleware); this file stays the plain chat path.
 *
 * The one seam it offers: `acceptedMessageId(stanza)` — the message id the domain gave an
 * inbound chat stanza this module accepted (readable from `onStanzaHandled`), so that XEP-0184 /
 * XEP-0333 can answer with the id the client used.
 */
import { xml, type Element } from '@xmpp/xml';
import { formatJid, jid } from './jid.js';
import type { XmppModule } from './module.js';
import { NS } from './ns.js';
import type { XmppSession } from './session.js';
import { StanzaError } from './stanza-errors.js';

const ACK_BATCH_MS = 50;
const MAX_CLIENT_ID = 64;

/** inbound stanza → the messageId `message.send` answered (weak: gone with the stanza) */
const accepted = new WeakMap<Element, string>();

/** The message id the domain assigned to this inbound chat stanza, once it was accepted. */
export function acceptedMessageId(stanza: Element): string | undefined {
  return accepted.get(stanza);
}

/**
 * Outbound chat messages from a peer that this module built for one session's send alone:
 * nobody else holds them, so outbound middleware (receipts.ts) may add to them in place
 * instead of copying, and need not re-check their shape.
 */
const ownPeerChats = new WeakSet<Element>();

/** Whether `stanza` is a peer's chat message this module built for one session (see ownPeerChats). */
export function isOwnPeerChat(stanza: Element): boolean {
  return ownPeerChats.has(stanza);
}

export const messageModule: XmppModule = {
  name: 'message',
  setup(ctx) {
    const acks = ctx.sessionState<{ ids: string[]; timer: NodeJS.Timeout | undefined }>(() => ({ ids: [], timer: undefined }));

    const flushAcks = (session: XmppSession) => {
      const a = acks.get(session);
      a.timer = undefined;
      const messageIds = a.ids.splice(0, 500);
      if (messageIds.length === 0) return;
      ctx.gateway.execute(session.principal, { op: 'message.ack', messageIds }, session.connId).catch((err) => ctx.log.warn({ err }, 'message.ack failed'));
      if (a.ids.length > 0) a.timer = setTimeout(() => flushAcks(session), ACK_BATCH_MS);
    };

    const acked = (session: XmppSession, messageId: string) => {
      const a = acks.get(session);
      a.ids.push(messageId);
      a.timer ??= setTimeout(() => flushAcks(session), ACK_BATCH_MS);
    };

    ctx.onSessionEnd((session) => {
      const a = acks.peek(session);
      if (a?.timer) clearTimeout(a.timer);
      if (a && a.ids.length > 0) flushAcks(session);
    });

    ctx.onMessage(async ({ session, stanza, to }) => {
      const type = stanza.attrs.type ?? 'normal';
      if (type !== 'chat' && type !== 'normal') {
        if (type === 'groupchat' && stanza.getChild('body')) throw new StanzaError('service-unavailable', 'no group chat here');
        return false;
      }
      const body = stanza.getChildText('body');
      if (body === null) return false;
      if (!to || !to.local) throw new StanzaError('service-unavailable', 'send messages to an account');
      const peerId = await ctx.directory.userIdOf(session.principal, to.local);
      if (!peerId) throw new StanzaError('service-unavailable', 'no such user');
      const id = stanza.attrs.id;
      const clientId = id && id.length <= MAX_CLIENT_ID ? id : undefined;
      const { messageId } = await ctx.gateway.execute(session.principal, { op: 'message.send', to: peerId, body, clientId }, session.connId);
      accepted.set(stanza, messageId);
      return true;
    });

    ctx.onEvent('message', async (session, event) => {
      const m = event.message;
      if (m.from === session.userId) return; // from another of my devices: carbons' business
      const username = await ctx.directory.usernameOf(session.principal, m.from);
      if (!username) return;
      const stanza = xml(
        'message',
        { type: 'chat', id: m.messageId, from: formatJid(jid(username, ctx.domain)), to: formatJid(session.jid) },
        xml('body', {}, m.body),
        event.offline ? xml('delay', { xmlns: NS.delay, from: ctx.domain, stamp: new Date(m.sentAt).toISOString() }) : null,
      );
      ownPeerChats.add(stanza);
      session.send(stanza, { onAcked: () => acked(session, m.messageId) });
    });
  },
};
