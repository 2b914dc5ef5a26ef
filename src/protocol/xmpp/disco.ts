/**
 * Service Discovery, XEP-0030 (https://xmpp.org/extensions/xep-0030.html): disco#info on the
 * server (identity server/im, the features every module announced) and on account JIDs (identity
 * account/registered, account features); disco#items is empty. The server's disco#info is also
 * answered for its XEP-0115 caps node (`node#ver`, see caps.ts); other nodes are item-not-found.
 */
import { xml } from '@xmpp/xml';
import { isCapsNode } from './caps.js';
import { isServer } from './jid.js';
import type { XmppModule } from './module.js';
import { NS } from './ns.js';
import { StanzaError } from './stanza-errors.js';

export const discoModule: XmppModule = {
  name: 'disco',
  setup(ctx) {
    ctx.disco.addIdentity('server', 'im', 'Kindred');
    ctx.disco.addFeature(NS.discoInfo);
    ctx.disco.addFeature(NS.discoItems);
    ctx.disco.addAccountFeature(NS.discoInfo);

    ctx.iq('get', NS.discoInfo, 'query', async ({ session, payload, to }) => {
      const node = payload.attrs.node;
      if (!to || isServer(to, ctx.domain)) {
        const identities = ctx.disco.identities();
        const features = ctx.disco.serverFeatures();
        if (node !== undefined && !isCapsNode(node, identities, features)) throw new StanzaError('item-not-found', 'no such node');
        return xml(
          'query',
          { xmlns: NS.discoInfo, node },
          ...identities.map((i) => xml('identity', { category: i.category, type: i.type, name: i.name })),
          ...features.map((ns) => xml('feature', { var: ns })),
        );
      }
      if (node !== undefined) throw new StanzaError('item-not-found', 'no such node');
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
