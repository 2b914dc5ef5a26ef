/**
 * Resource binding, RFC 6120 §7 (https://www.rfc-editor.org/rfc/rfc6120#section-7), and the
 * legacy session establishment IQ (RFC 3921 §3, answered with an empty result as RFC 6121
 * Appendix E allows). A client without a resource gets a generated one; a resource already
 * bound by the same user is taken over (§7.7.2.2, the old session ends with <conflict/>): on
 * this node at once (session.ts), on another node when the user's actor sees the newer session
 * attach and sends the older one a `replaced` event. Binding opens the gateway session that
 * delivers the user's events.
 */
import { randomBytes } from 'node:crypto';
import { xml } from '@xmpp/xml';
import { checkResource, formatJid } from './jid.js';
import type { XmppModule } from './module.js';
import { NS } from './ns.js';
import { StanzaError, StreamError } from './stanza-errors.js';

export const bindModule: XmppModule = {
  name: 'bind',
  setup(ctx) {
    ctx.streamFeature((session) => (session.phase === 'postauth' ? xml('bind', { xmlns: NS.bind }) : null));
    ctx.streamFeature((session) => (session.phase === 'postauth' ? xml('session', { xmlns: NS.session }, xml('optional')) : null));

    ctx.iq(
      'set',
      NS.bind,
      'bind',
      async (iq) => {
        const { session, payload } = iq;
        if (session.phase !== 'postauth') throw new StanzaError('not-allowed', 'a resource is already bound to this stream');
        const requested = payload.getChildText('resource');
        let resource: string | undefined;
        if (requested !== null && requested.trim() !== '') {
          resource = checkResource(requested);
          if (!resource) throw new StanzaError('bad-request', 'this resource cannot be used');
        }
        resource ??= `kindred-${randomBytes(6).toString('hex')}`;
        const full = await session.bind(resource);
        iq.afterReply(() => session.markBound());
        return xml('bind', { xmlns: NS.bind }, xml('jid', {}, formatJid(full)));
      },
      { phase: 'postauth' },
    );

    ctx.iq('set', NS.session, 'session', () => undefined, { phase: 'postauth' });

    // A session on another node bound this resource after us.
    ctx.onEvent('replaced', (session) => session.close(new StreamError('conflict', 'replaced by a new session with the same resource')));
  },
};
