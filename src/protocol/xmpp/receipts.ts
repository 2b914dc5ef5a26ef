/**
 * Delivery receipts and read markers: XEP-0184 Message Delivery Receipts
 * (https://xmpp.org/extensions/xep-0184.html) and XEP-0333 Chat Markers
 * (https://xmpp.org/extensions/xep-0333.html), onto the domain's `receipt` command and event;
 * with XEP-0359 stanza ids (https://xmpp.org/extensions/xep-0359.html) so that clients know the
 * server's id of what they received.
 *
 * Outbound: every chat message from a peer (what message.ts sends, id = messageId) gets
 *   `<request xmlns='urn:xmpp:receipts'/>`, `<markable xmlns='urn:xmpp:chat-markers:0'/>` and
 *   `<stanza-id xmlns='urn:xmpp:sid:0' id=messageId by=own-bare-JID/>`, so the client's receipts
 *   and markers name the server's message id.
 * Inbound: `<received xmlns='urn:xmpp:receipts' id/>` and `<received xmlns='…chat-markers:0' id/>`
 *   → `receipt delivered`; `<displayed/>` and `<acknowledged/>` → `receipt read`. Ids that are
 *   not message ids are ignored; a body on the same stanza still goes to message.ts. Like chat
 *   states, receipts to unknown accounts or non-matches are dropped without an error.
 * Domain `receipt` events → to the XMPP sender: delivered → `<received/>` of both XEPs, read →
 *   `<displayed/>`, naming the id the client itself gave the message when it was sent from this
 *   session (a bounded per-session map messageId → stanza id), else the messageId (what other
 *   sessions saw as the id, through carbons or MAM).
 * The server never answers a client's own `<request/>`: it is not the recipient.
 */
import { xml, type Element } from '@xmpp/xml';
import { isId } from '../../ids.js';
import { formatJid, jid, parseJid } from './jid.js';
import { acceptedMessageId, isOwnPeerChat } from './message.js';
import type { XmppModule } from './module.js';
import type { XmppSession } from './session.js';

export const NS_RECEIPTS = 'urn:xmpp:receipts';
export const NS_MARKERS = 'urn:xmpp:chat-markers:0';
export const NS_SID = 'urn:xmpp:sid:0';

/** after chat states (20), before the chat path (0); never stops the chain */
const PRIORITY = 10;
/** outbound: far from the wire (stream management numbers what this produced) */
const OUTBOUND_PRIORITY = 100;
/** messageId → client stanza id, per session */
const MAX_REMEMBERED = 1000;
const MAX_CLIENT_ID = 256;
/** receipts/markers looked at in one stanza */
const MAX_PER_STANZA = 20;

type Kind = 'delivered' | 'read';

function kindOf(el: Element): Kind | undefined {
  const ns = el.getNS();
  const name = el.getName();
  if (ns === NS_RECEIPTS) return name === 'received' ? 'delivered' : undefined;
  if (ns === NS_MARKERS) {
    if (name === 'received') return 'delivered';
    if (name === 'displayed' || name === 'acknowledged') return 'read';
  }
  return undefined;
}

export const receiptsModule: XmppModule = {
  name: 'receipts',
  setup(ctx) {
    ctx.disco.addAccountFeature(NS_SID);
    const clientIds = ctx.sessionState<Map<string, string>>(() => new Map());
    const bareOf = (username: string) => formatJid(jid(username, ctx.domain));

    // The id the client gave each chat message it sent (once message.ts had it accepted).
    ctx.onStanzaHandled((session, el) => {
      if (el.name !== 'message') return;
      const messageId = acceptedMessageId(el);
      const clientId = el.attrs.id;
      if (!messageId || !clientId || clientId === messageId || clientId.length > MAX_CLIENT_ID) return;
      const ids = clientIds.get(session);
      ids.set(messageId, clientId);
      if (ids.size > MAX_REMEMBERED) ids.delete(ids.keys().next().value!);
    });

    /** a peer's chat message with a body, as message.ts makes them */
    const isPeerChat = (session: XmppSession, s: Element): boolean => {
      if (s.name !== 'message' || s.attrs.type !== 'chat' || !isId(s.attrs.id) || !s.getChild('body')) return false;
      const from = parseJid(s.attrs.from ?? '');
      return !!from && !!from.local && from.domain === ctx.domain && from.local !== session.username && !s.getChild('request', NS_RECEIPTS);
    };

    ctx.outbound((session, out, next) => {
      if (!session.isBound) return next(out);
      const s = out.stanza;
      // message.ts's chat messages are built for this one send: decorated in place (the hot path).
      if (isOwnPeerChat(s) && !s.getChild('request', NS_RECEIPTS)) {
        s.append(
          xml('request', { xmlns: NS_RECEIPTS }),
          xml('markable', { xmlns: NS_MARKERS }),
          xml('stanza-id', { xmlns: NS_SID, id: s.attrs.id, by: formatJid(session.bareJid) }),
        );
        return next(out);
      }
      if (!isPeerChat(session, s)) return next(out);
      // A copy, not the caller's element: the same element may go to several sessions.
      const stanza = xml(
        s.name,
        { ...s.attrs },
        ...s.children,
        xml('request', { xmlns: NS_RECEIPTS }),
        xml('markable', { xmlns: NS_MARKERS }),
        xml('stanza-id', { xmlns: NS_SID, id: s.attrs.id, by: formatJid(session.bareJid) }),
      );
      next({ ...out, stanza });
    }, OUTBOUND_PRIORITY);

    ctx.onMessage(async ({ session, stanza, to }) => {
      const type = stanza.attrs.type ?? 'normal';
      if (type !== 'chat' && type !== 'normal') return false;
      const wanted = new Map<string, Kind>();
      for (const el of stanza.getChildElements()) {
        const kind = kindOf(el);
        const id = el.attrs.id;
        if (!kind || !isId(id)) continue;
        if (wanted.get(id) !== 'read') wanted.set(id, kind); // read implies delivered: one command per id
        if (wanted.size >= MAX_PER_STANZA) break;
      }
      if (wanted.size === 0 || !to?.local || to.local === session.username) return false;
      try {
        const peerId = await ctx.directory.userIdOf(session.principal, to.local);
        if (peerId) {
          for (const [messageId, kind] of wanted) {
            await ctx.gateway.execute(session.principal, { op: 'receipt', to: peerId, messageId, kind }, session.connId);
          }
        }
      } catch (err) {
        ctx.log.debug({ err }, 'receipt not passed on');
      }
      return false;
    }, PRIORITY);

    ctx.onEvent('receipt', async (session, event) => {
      const username = await ctx.directory.usernameOf(session.principal, event.from);
      if (!username) return;
      const id = clientIds.peek(session)?.get(event.messageId) ?? event.messageId;
      const markers =
        event.kind === 'delivered'
          ? [xml('received', { xmlns: NS_RECEIPTS, id }), xml('received', { xmlns: NS_MARKERS, id })]
          : [xml('displayed', { xmlns: NS_MARKERS, id })];
      session.send(xml('message', { type: 'chat', from: bareOf(username), to: formatJid(session.jid) }, ...markers));
    });
  },
};
