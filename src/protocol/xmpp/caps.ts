/**
 * Entity Capabilities, XEP-0115 (https://xmpp.org/extensions/xep-0115.html), for the server
 * entity: the verification string of the server's own disco#info (identities and features,
 * §5.1, sha-1) is offered as a stream feature once authenticated (§6.3),
 *
 *   <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://kindred.example/caps' ver='…'/>
 *
 * so a client that has seen this `ver` before can skip the disco#info round trip. A disco#info
 * query to the server with `node='https://kindred.example/caps#<ver>'` is answered by disco.ts
 * (through `isCapsNode`) with the same information and the node echoed; another `ver` is
 * `<item-not-found/>`.
 *
 * The string is computed from what the modules registered (`ctx.disco`), when a stream asks for
 * its features, so it always matches what disco.ts answers. There are no extended service
 * discovery forms (XEP-0128) on the server, so step 6 of §5.1 adds nothing. Client caps in
 * presence (`<c/>` from clients) are not interpreted.
 */
import { createHash } from 'node:crypto';
import { xml } from '@xmpp/xml';
import type { XmppModule } from './module.js';

export const CAPS_NS = 'http://jabber.org/protocol/caps';
/** The node that names this software (XEP-0115 §4: a URI identifying the codebase). */
export const CAPS_NODE = 'https://kindred.example/caps';

export interface CapsIdentity {
  category: string;
  type: string;
  name?: string;
  lang?: string;
}

/** "i;octet" collation (RFC 4790): compare the UTF-8 bytes, which is what XEP-0115 §5.1 sorts by. */
function octet(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The XEP-0115 §5.1 verification string (sha-1, base64) of a disco#info result. */
export function capsVerification(identities: readonly CapsIdentity[], features: readonly string[]): string {
  const ids = [...identities].sort((a, b) => octet(a.category, b.category) || octet(a.type, b.type) || octet(a.lang ?? '', b.lang ?? '') || octet(a.name ?? '', b.name ?? ''));
  let s = '';
  for (const i of ids) s += `${i.category}/${i.type}/${i.lang ?? ''}/${i.name ?? ''}<`;
  for (const f of [...new Set(features)].sort(octet)) s += `${f}<`;
  return createHash('sha1').update(s, 'utf8').digest('base64');
}

/** True if `node` is the caps node#ver of exactly this information (XEP-0115 §6.2). */
export function isCapsNode(node: string, identities: readonly CapsIdentity[], features: readonly string[]): boolean {
  return node === `${CAPS_NODE}#${capsVerification(identities, features)}`;
}

export const capsModule: XmppModule = {
  name: 'caps',
  setup(ctx) {
    let memo: { key: string; ver: string } | undefined;
    const ver = () => {
      const identities = ctx.disco.identities();
      const features = ctx.disco.serverFeatures();
      // Modules may be loaded or unloaded at run time: recompute when what they announced changed.
      const key = JSON.stringify([identities, features]);
      if (memo?.key !== key) memo = { key, ver: capsVerification(identities, features) };
      return memo.ver;
    };
    ctx.streamFeature((session) => (session.phase === 'postauth' ? xml('c', { xmlns: CAPS_NS, hash: 'sha-1', node: CAPS_NODE, ver: ver() }) : null));
  },
};
