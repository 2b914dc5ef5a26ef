/**
 * STARTTLS, RFC 6120 §5 (https://www.rfc-editor.org/rfc/rfc6120#section-5): offered on plain TCP
 * when a certificate is available, `<required/>` when `xmpp.requireTls`.
 */
import { xml } from '@xmpp/xml';
import type { XmppModule } from './module.js';
import { NS } from './ns.js';

export const starttlsModule: XmppModule = {
  name: 'starttls',
  setup(ctx) {
    ctx.preAuthFeature((session) =>
      session.canStartTls ? xml('starttls', { xmlns: NS.tls }, ctx.config.xmpp.requireTls ? xml('required') : null) : null,
    );
    ctx.onNonza(
      NS.tls,
      'starttls',
      async (session) => {
        if (!session.canStartTls) {
          // §5.4.2.2: <failure/>, then the stream is closed.
          session.sendNonza(xml('failure', { xmlns: NS.tls }));
          session.close();
          return;
        }
        session.sendNonza(xml('proceed', { xmlns: NS.tls }));
        try {
          await session.startTls();
        } catch (err) {
          ctx.log.debug({ err }, 'TLS negotiation failed');
          session.end();
        }
      },
      { phase: 'preauth' },
    );
  },
};
