/**
 * Service Discovery, XEP-0030 (https://xmpp.org/extensions/xep-0030.html): disco#info on the
 * server (identity server/im, the features every module announced) and on account JIDs (identity
 * account/registered, account features); disco#items is empty.
 */
import { xml } from '@xmpp/xml';
import { isServer } from './jid.js';
import type { XmppModule } from './module.js';
import { NS } from './ns.js';
import { StanzaError } from './stanza-errors.js';

export const discoModule: XmppModule = {
  name: 'disco',
  setup(ctx) {
    ctx.disco.addFeature(NS.discoInfo);
    ctx.disco.addFeature(NS.discoItems);
    ctx.disco.addAccountFeature(NS.discoInfo);

    ctx.iq('get', NS.discoInfo, 'query', async ({ session, payload, to }) => {
      const node = payload.attrs.node;
      if (node !== undefined) throw new StanzaError('item-not-found', 'no such node');
      if (!to || isServer(to, ctx.domain)) {
        return xml(
          'query',
          { xmlns: NS.discoInfo },
          xml('identity', { category: 'server', type: 'im', name: 'Kindred' }),
          ...ctx.disco.identities().map((i) => xml('identity', { category: i.category, type: i.type, name: i.name })),
          ...ctx.disco.serverFeatures().map((ns) => xml('feature', { var: ns })),
        );
      }
      if (!to.local) throw new StanzaError('service-unavailable');
      if (to.local !== session.username && !(await ctx.directory.userIdOf(session.principal, to.local))) {
        throw new StanzaError('service-unavailable');
      }
      return xml(
        'query',
        { xmlns: NS.discoInfo },
        xml('identity', { category: 'account', type: 'registered' }),
        ...ctx.disco.accountFeatures().map((ns) => xml('feature', { var: ns })),
      );
    });

    ctx.iq('get', NS.discoItems, 'query', ({ payload }) => xml('query', { xmlns: NS.discoItems, node: payload.attrs.node }));
  },
};
