/**
 * Client State Indication, XEP-0352 (https://xmpp.org/extensions/xep-0352.html), urn:xmpp:csi:0.
 *
 * While a client says `<inactive/>` (a phone in a pocket), an outbound middleware far from the
 * wire (before stream-management numbering) holds back what is not worth waking it for:
 * chat-state-only messages (carbon copies included) are dropped, presence updates are queued keeping only the latest per
 * sender. Anything with a body, receipts, chat markers, errors, subscription requests and IQs go
 * through at once. `<active/>` flushes the queued presences, in order.
 */
import { xml, type Element } from '@xmpp/xml';
import type { Outbound, XmppModule } from './module.js';

export const NS_CSI = 'urn:xmpp:csi:0';
const NS_CHATSTATES = 'http://jabber.org/protocol/chatstates';
const NS_CARBONS = 'urn:xmpp:carbons:2';
const NS_FORWARD = 'urn:xmpp:forward:0';
/** distinct senders whose presence may wait; beyond it everything is flushed */
const MAX_HELD = 500;

interface CsiState {
  inactive: boolean;
  held: Map<string, { out: Outbound; next: (out: Outbound) => void }>;
}

/** A message that only says "typing…": no body, a chat state, nothing else that matters (also as a carbon copy). */
function chatStateOnly(stanza: Element): boolean {
  if (stanza.attrs.type === 'error' || stanza.getChild('body')) return false;
  const carbon = stanza.getChild('sent', NS_CARBONS) ?? stanza.getChild('received', NS_CARBONS);
  const copied = carbon?.getChild('forwarded', NS_FORWARD)?.getChild('message');
  if (copied) return chatStateOnly(copied);
  const children = stanza.getChildElements();
  return (
    children.some((c) => c.getNS() === NS_CHATSTATES) &&
    children.every((c) => c.getNS() === NS_CHATSTATES || c.name === 'thread' || c.name === 'delay' || c.name === 'no-store' || c.name === 'no-permanent-store')
  );
}

/** Presence that can wait: availability updates (not subscriptions, probes or errors). */
function deferrable(stanza: Element): boolean {
  const type = stanza.attrs.type;
  return type === undefined || type === 'unavailable';
}

export const csiModule: XmppModule = {
  name: 'csi',
  setup(ctx) {
    const states = ctx.sessionState<CsiState>(() => ({ inactive: false, held: new Map() }));

    const flush = (st: CsiState) => {
      const held = [...st.held.values()];
      st.held.clear();
      for (const { out, next } of held) next(out);
    };

    ctx.streamFeature((session) => (session.phase === 'postauth' ? xml('csi', { xmlns: NS_CSI }) : null));

    // Accepted once authenticated (some clients say it right before binding).
    ctx.onNonza(NS_CSI, 'inactive', (session) => void (states.get(session).inactive = true), { phase: 'postauth' });
    ctx.onNonza(
      NS_CSI,
      'active',
      (session) => {
        const st = states.get(session);
        st.inactive = false;
        flush(st);
      },
      { phase: 'postauth' },
    );

    ctx.outbound((session, out, next) => {
      const st = states.peek(session);
      if (!st?.inactive) return next(out);
      const { stanza } = out;
      if (stanza.name === 'message' && chatStateOnly(stanza)) {
        out.onAcked?.(); // nothing to deliver
        return;
      }
      if (stanza.name === 'presence' && deferrable(stanza)) {
        const sender = stanza.attrs.from ?? '';
        const replaced = st.held.get(sender);
        if (replaced) {
          st.held.delete(sender); // re-inserted at the end: flushed in the order of the latest updates
          replaced.out.onAcked?.();
        }
        st.held.set(sender, { out, next });
        if (st.held.size > MAX_HELD) flush(st);
        return;
      }
      next(out);
    }, 1000);

    ctx.onSessionEnd((session) => {
      states.peek(session)?.held.clear();
    });
  },
};
