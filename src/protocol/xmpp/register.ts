/**
 * In-band registration before authentication, XEP-0077 (https://xmpp.org/extensions/xep-0077.html),
 * when `auth.registration` is on: the same `register` command as REST and the native protocol.
 * Offered (and accepted) only where SASL is, i.e. after STARTTLS when TLS is required, so that
 * passwords never cross the network in clear. Account changes after login are not supported here.
 */
import { xml } from '@xmpp/xml';
import { KindredError } from '../../errors.js';
import type { XmppModule } from './module.js';
import { NS } from './ns.js';
import { offeredMechanisms } from './sasl.js';
import { StanzaError, StreamError, stanzaErrorFor } from './stanza-errors.js';

export const registerModule: XmppModule = {
  name: 'register',
  setup(ctx) {
    if (!ctx.config.auth.registration) return;
    const requireTls = ctx.config.xmpp.requireTls;
    const usable = (session: Parameters<typeof offeredMechanisms>[0]) => offeredMechanisms(session, requireTls).length > 0;

    ctx.preAuthFeature((session) => (usable(session) ? xml('register', { xmlns: NS.registerFeature }) : null));

    ctx.iq(
      'get',
      NS.register,
      'query',
      ({ session }) => {
        if (!usable(session)) throw new StreamError('not-authorized', 'use STARTTLS first');
        return xml(
          'query',
          { xmlns: NS.register },
          xml('instructions', {}, 'Choose a username (3-32 characters: a-z, 0-9, ".", "_", "-") and a password of at least 8 characters.'),
          xml('username'),
          xml('password'),
        );
      },
      { phase: 'preauth' },
    );

    ctx.iq(
      'set',
      NS.register,
      'query',
      async ({ session, payload }) => {
        if (!usable(session)) throw new StreamError('not-authorized', 'use STARTTLS first');
        if (payload.getChild('remove')) throw new StanzaError('not-allowed', 'log in to cancel a registration');
        const username = payload.getChildText('username');
        const password = payload.getChildText('password');
        if (!username || !password) throw new StanzaError('not-acceptable', 'username and password are required');
        try {
          await ctx.gateway.authenticate({ op: 'register', username, password });
        } catch (err) {
          if (err instanceof KindredError) {
            // XEP-0077 §3.1: a bad field is <not-acceptable/>, a taken name <conflict/>.
            if (err.code === 'INVALID_ARGUMENT') throw new StanzaError('not-acceptable', err.message);
            if (err.code === 'FORBIDDEN') throw new StanzaError('not-allowed', err.message);
            throw stanzaErrorFor(err);
          }
          throw err;
        }
      },
      { phase: 'preauth' },
    );
  },
};
