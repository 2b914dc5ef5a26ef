/**
 * vcard-temp, XEP-0054 (https://xmpp.org/extensions/xep-0054.html): read-only vCards made from
 * Kindred profiles.
 *
 *  - get without `to` or to one's own JID: the user's own vCard; to a match's bare JID: theirs.
 *    FN = display name (the username when there is none), DESC = bio, PHOTO = the first profile
 *    image (by position; the `images` of `profile.get`, read through `ctx.images`): TYPE and
 *    BINVAL (base64).
 *  - An image up to 64 KiB goes as it is stored; a larger one as a JPEG thumbnail of at most
 *    192×192 (XEP-0084's recommended avatar size), made once per image with sharp and kept in a
 *    small bounded cache (image ids are immutable). A thumbnail still over 64 KiB, or an image
 *    that cannot be read, leaves PHOTO out.
 *  - The vCard of a user who is not a match (now) is `<forbidden/>`, although `profile.get` would
 *    show a profile to anyone: an XMPP contact list is for contacts. Matches come from
 *    `matches.list`, cached per session and dropped on `match` / `unmatch` events. An unknown
 *    account (or one hidden by a block, NOT_FOUND) is `<item-not-found/>`; the server's own vCard
 *    too.
 *  - set → `<not-allowed/>`: profiles are edited in the app (PATCH /v1/profile), whose
 *    validation and moderation an XMPP client would bypass.
 *
 * XEP-0153 (avatar hashes in presence) is not implemented.
 */
import { xml, type Element } from '@xmpp/xml';
import sharp from 'sharp';
import type { PublicProfile } from '../../domain/commands.js';
import type { XmppModule } from './module.js';
import type { XmppSession } from './session.js';
import { StanzaError } from './stanza-errors.js';

export const VCARD_NS = 'vcard-temp';

/** the largest PHOTO sent inline, in bytes before base64 */
export const MAX_PHOTO_BYTES = 64 * 1024;
/** thumbnails fit in this square */
export const THUMBNAIL_PX = 192;
/** thumbnails kept (per server) */
const THUMBNAIL_CACHE = 128;

interface Photo {
  type: string;
  data: Buffer;
}

export const vcardModule: XmppModule = {
  name: 'vcard',
  setup(ctx) {
    ctx.disco.addFeature(VCARD_NS);
    const { maxWidth, maxHeight } = ctx.config.images;

    // ---- who is a match (per session, reloaded after match / unmatch events) ----
    const matched = ctx.sessionState<{ peers: Promise<Set<string>> | undefined }>(() => ({ peers: undefined }));
    const isMatch = async (session: XmppSession, userId: string): Promise<boolean> => {
      const st = matched.get(session);
      if (!st.peers) {
        const loading = ctx.gateway
          .execute(session.principal, { op: 'matches.list' }, session.connId)
          .then(({ matches }) => new Set(matches.filter((m) => !m.ended).map((m) => m.peer.userId)));
        st.peers = loading;
        loading.catch(() => st.peers === loading && (st.peers = undefined));
      }
      return (await st.peers).has(userId);
    };
    const forget = (session: XmppSession) => {
      const st = matched.peek(session);
      if (st) st.peers = undefined;
    };
    ctx.onEvent('match', forget);
    ctx.onEvent('unmatch', forget);

    // ---- photos ----
    const thumbnails = new Map<string, Promise<Photo | undefined>>();
    const thumbnail = (imageId: string, data: Buffer): Promise<Photo | undefined> => {
      let p = thumbnails.get(imageId);
      if (p) return p;
      p = sharp(data, { failOn: 'none', limitInputPixels: Math.max(1, maxWidth * maxHeight) })
        .resize(THUMBNAIL_PX, THUMBNAIL_PX, { fit: 'inside', withoutEnlargement: true })
        .flatten({ background: '#ffffff' })
        .jpeg({ quality: 80 })
        .toBuffer()
        .then((out) => (out.byteLength <= MAX_PHOTO_BYTES ? { type: 'image/jpeg', data: out } : undefined))
        .catch((err) => {
          ctx.log.warn({ err, imageId }, 'vcard: could not make a thumbnail');
          thumbnails.delete(imageId);
          return undefined;
        });
      thumbnails.set(imageId, p);
      if (thumbnails.size > THUMBNAIL_CACHE) thumbnails.delete(thumbnails.keys().next().value!);
      return p;
    };
    const photoOf = async (profile: PublicProfile): Promise<Photo | undefined> => {
      const first = [...profile.images].sort((a, b) => a.position - b.position)[0];
      if (!first) return undefined;
      const stored = await ctx.images.read(first.imageId);
      if (!stored) return undefined;
      const data = Buffer.isBuffer(stored.data) ? stored.data : Buffer.from(stored.data.buffer, stored.data.byteOffset, stored.data.byteLength);
      if (data.byteLength <= MAX_PHOTO_BYTES) return { type: stored.contentType, data };
      return thumbnail(first.imageId, data);
    };

    const vcard = async (profile: PublicProfile, username: string): Promise<Element> => {
      const photo = await photoOf(profile).catch((err) => {
        ctx.log.warn({ err }, 'vcard: could not read the photo');
        return undefined;
      });
      return xml(
        'vCard',
        { xmlns: VCARD_NS },
        xml('FN', {}, profile.displayName || username),
        profile.bio ? xml('DESC', {}, profile.bio) : null,
        photo ? xml('PHOTO', {}, xml('TYPE', {}, photo.type), xml('BINVAL', {}, photo.data.toString('base64'))) : null,
      );
    };

    ctx.iq('get', VCARD_NS, 'vCard', async ({ session, to }) => {
      if (!to || to.local === session.username) {
        const { profile } = await ctx.gateway.execute(session.principal, { op: 'profile.get' }, session.connId);
        return vcard(profile, session.username);
      }
      if (!to.local) throw new StanzaError('item-not-found', 'the server has no vCard');
      const userId = await ctx.directory.userIdOf(session.principal, to.local);
      if (!userId) throw new StanzaError('item-not-found', 'no such user');
      if (!(await isMatch(session, userId))) throw new StanzaError('forbidden', 'only matches see each other\'s vCard');
      const { profile } = await ctx.gateway.execute(session.principal, { op: 'profile.get', userId }, session.connId);
      return vcard(profile, to.local);
    });

    ctx.iq('set', VCARD_NS, 'vCard', () => {
      throw new StanzaError('not-allowed', 'profiles are edited in the Kindred app');
    });
  },
};
