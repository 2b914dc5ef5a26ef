/** XMPP Ping, XEP-0199 (https://xmpp.org/extensions/xep-0199.html): the server answers. */
import type { XmppModule } from './module.js';
import { NS } from './ns.js';

export const pingModule: XmppModule = {
  name: 'ping',
  setup(ctx) {
    ctx.disco.addFeature(NS.ping);
    ctx.iq('get', NS.ping, 'ping', () => undefined, { phase: 'postauth' });
  },
};
