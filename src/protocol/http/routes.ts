/**
 * The REST route table: each route decodes a request into one typed command (see
 * src/domain/commands.ts), runs it through the CommandGateway, and answers its result
 * as JSON. The plumbing (server.ts) does bearer checks, body reading and error mapping;
 * the OpenAPI document (openapi.ts) is generated from this table, so they cannot drift.
 */
import type { CommandOp, ProfilePatch, UserCommand } from '../../domain/commands.js';
import type { CommandGateway, Principal } from '../../domain/gateway.js';
import { KindredError } from '../../errors.js';
import { isId } from '../../ids.js';
import type { DownloadsApi } from '../../store/orders/downloads.js';
import { ordersRoutes } from './orders-routes.js';
import { GENDERS, type Preferences } from '../../storage/types.js';
import { Fields, invalid, pathId, queryId, queryIdList, queryInteger } from './validate.js';
import type { Bus } from '../../actors/bus.js';
import type { KindredConfig } from '../../config.js';
import { storeRoutes } from './store-routes.js';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** What a route reads as its body: nothing, a JSON object (limits.maxHttpBodyBytes), raw image bytes (images.maxBytes), or raw bytes (limits.maxHttpBodyBytes; e.g. a signed webhook). */
export type BodyKind = 'none' | 'json' | 'image' | 'raw';

export interface RequestContext {
  method: HttpMethod;
  /** path without the query */
  url: string;
  /** decoded path parameters by name */
  params: Record<string, string>;
  query: URLSearchParams;
  /** lowercase header name → value, for the few headers routes read */
  headers: { contentType: string; ifNoneMatch: string; idempotencyKey: string; webhookSignature: string };
  /** the verified caller on `auth: true` routes */
  principal: Principal | undefined;
  /** parsed JSON for 'json' routes, the raw bytes for 'image' routes */
  body: unknown;
}

export type Reply =
  | { status: number; json: unknown; headers?: Record<string, string> }
  | { status: number; body: string | Uint8Array; contentType: string; headers?: Record<string, string> };

export interface RouteDeps {
  gateway: CommandGateway;
  images: { read(imageId: string): Promise<{ data: Buffer | Uint8Array; contentType: string } | undefined> };
  isReady: () => boolean;
  metricsText: () => Promise<string>;
  /** the serialized OpenAPI document */
  openapiJson: () => string;
  /** the bus, for routes that call the book store's services (src/store/contracts.ts) */
  bus?: Bus;
  /** ebook downloads through signed links (the Orders service) */
  downloads?: DownloadsApi;
}

export interface Route {
  /** stable name, also the OpenAPI operationId */
  id: string;
  method: HttpMethod;
  /** uWS pattern: `:name` segments are path parameters */
  path: string;
  /** needs `Authorization: Bearer <token>` */
  auth: boolean;
  body: BodyKind;
  /** the command it runs, if any (documentation) */
  command?: CommandOp;
  /** success status */
  status: number;
  summary: string;
  tag: 'auth' | 'profile' | 'images' | 'discovery' | 'chat' | 'ops' | 'store';
  /** the body cap of a non-JSON body, when not the default of its kind (e.g. an ebook upload) */
  maxBodyBytes?: (config: KindredConfig) => number;
  handle(ctx: RequestContext, deps: RouteDeps): Promise<Reply>;
}

function principalOf(ctx: RequestContext): Principal {
  if (!ctx.principal) throw new KindredError('UNAUTHENTICATED');
  return ctx.principal;
}

/** A bearer route that runs one user command and answers its result. */
function command(
  spec: Omit<Route, 'auth' | 'handle' | 'status' | 'command'> & { status?: number; op: UserCommand['op'] },
  decode: (ctx: RequestContext) => UserCommand,
): Route {
  const status = spec.status ?? 200;
  return {
    id: spec.id,
    method: spec.method,
    path: spec.path,
    body: spec.body,
    summary: spec.summary,
    tag: spec.tag,
    auth: true,
    status,
    command: spec.op,
    async handle(ctx, deps) {
      const cmd = decode(ctx);
      const result = await deps.gateway.execute(principalOf(ctx), cmd);
      return { status, json: result };
    },
  };
}

function credentials(body: unknown): { username: string; password: string } {
  const f = new Fields(body, '', ['username', 'password']);
  return { username: f.string('username'), password: f.string('password') };
}

const PROFILE_FIELDS = ['displayName', 'bio', 'birthDate', 'gender', 'preferences', 'location', 'showPresence'] as const;

export function decodeProfilePatch(body: unknown): ProfilePatch {
  const f = new Fields(body, '', PROFILE_FIELDS);
  const patch: ProfilePatch = {};
  if (f.has('displayName')) patch.displayName = f.string('displayName');
  if (f.has('bio')) patch.bio = f.string('bio');
  if (f.has('birthDate')) {
    const birthDate = f.string('birthDate');
    if (!/^\d{4}-\d{2}-\d{2}$/.test(birthDate)) throw invalid('birthDate', 'must be a date as YYYY-MM-DD');
    patch.birthDate = birthDate;
  }
  if (f.has('gender')) patch.gender = f.oneOf('gender', GENDERS);
  if (f.has('preferences')) {
    const p = f.object('preferences', ['ageMin', 'ageMax', 'genders', 'maxDistanceKm']);
    const preferences: Preferences = {
      ageMin: p.integer('ageMin', 0, 200),
      ageMax: p.integer('ageMax', 0, 200),
      genders: p.arrayOf('genders', GENDERS),
      maxDistanceKm: p.number('maxDistanceKm', 0, 40_075),
    };
    patch.preferences = preferences;
  }
  if (f.raw('location') === null) patch.location = null;
  else if (f.has('location')) {
    const l = f.object('location', ['lat', 'lon']);
    patch.location = { lat: l.number('lat', -90, 90), lon: l.number('lon', -180, 180) };
  }
  if (f.has('showPresence')) patch.showPresence = f.boolean('showPresence');
  return patch;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** `If-None-Match` matches `etag` (a quoted entity tag), per RFC 9110 weak comparison. */
export function etagMatches(ifNoneMatch: string, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((raw) => {
    const tag = raw.trim().replace(/^W\//, '');
    // Bare (unquoted) tags are not RFC 9110, but are accepted: the tag is just the image id.
    return tag === '*' || tag === etag || `"${tag}"` === etag;
  });
}

export const routes: Route[] = [
  // ── auth ──────────────────────────────────────────────────────────────
  {
    id: 'register', method: 'post', path: '/v1/register', auth: false, body: 'json', command: 'register', status: 201, tag: 'auth',
    summary: 'Create an account and get an access token',
    async handle(ctx, deps) {
      const { result } = await deps.gateway.authenticate({ op: 'register', ...credentials(ctx.body) });
      return { status: 201, json: result };
    },
  },
  {
    id: 'login', method: 'post', path: '/v1/login', auth: false, body: 'json', command: 'login', status: 200, tag: 'auth',
    summary: 'Exchange a username and password for an access token',
    async handle(ctx, deps) {
      const { result } = await deps.gateway.authenticate({ op: 'login', ...credentials(ctx.body) });
      return { status: 200, json: result };
    },
  },
  command({ id: 'logout', method: 'post', path: '/v1/logout', body: 'none', op: 'logout', tag: 'auth', summary: 'Revoke the access token used for this request' },
    () => ({ op: 'logout' })),

  // ── profile ───────────────────────────────────────────────────────────
  command({ id: 'getMyProfile', method: 'get', path: '/v1/profile', body: 'none', op: 'profile.get', tag: 'profile', summary: 'Your own profile, with preferences and location' },
    () => ({ op: 'profile.get' })),
  command({ id: 'getUserProfile', method: 'get', path: '/v1/users/:userId/profile', body: 'none', op: 'profile.get', tag: 'profile', summary: "Another user's public profile" },
    (ctx) => ({ op: 'profile.get', userId: pathId(ctx.params, 'userId') })),
  command({ id: 'updateProfile', method: 'patch', path: '/v1/profile', body: 'json', op: 'profile.update', tag: 'profile', summary: 'Change some fields of your profile' },
    (ctx) => ({ op: 'profile.update', patch: decodeProfilePatch(ctx.body) })),

  // ── images ────────────────────────────────────────────────────────────
  command({ id: 'uploadImage', method: 'post', path: '/v1/profile/images', body: 'image', op: 'images.upload', status: 201, tag: 'images', summary: 'Upload a JPEG, PNG or WebP image (raw bytes as the body)' },
    (ctx) => {
      const data = ctx.body as Uint8Array;
      if (data.byteLength === 0) throw new KindredError('BAD_REQUEST', 'the request body is empty: send the image bytes');
      return { op: 'images.upload', data, contentType: ctx.headers.contentType || 'application/octet-stream' };
    }),
  command({ id: 'listMyImages', method: 'get', path: '/v1/profile/images', body: 'none', op: 'images.list', tag: 'images', summary: 'Your images in display order' },
    () => ({ op: 'images.list' })),
  command({ id: 'listUserImages', method: 'get', path: '/v1/users/:userId/images', body: 'none', op: 'images.list', tag: 'images', summary: "Another user's images in display order" },
    (ctx) => ({ op: 'images.list', userId: pathId(ctx.params, 'userId') })),
  command({ id: 'removeImage', method: 'delete', path: '/v1/profile/images/:imageId', body: 'none', op: 'images.remove', tag: 'images', summary: 'Remove one of your images' },
    (ctx) => ({ op: 'images.remove', imageId: pathId(ctx.params, 'imageId') })),
  command({ id: 'reorderImages', method: 'put', path: '/v1/profile/images/order', body: 'json', op: 'images.reorder', tag: 'images', summary: 'Set the display order of your images' },
    (ctx) => ({ op: 'images.reorder', imageIds: new Fields(ctx.body, '', ['imageIds']).ids('imageIds') })),
  {
    id: 'getImage', method: 'get', path: '/images/:imageId', auth: false, body: 'none', status: 200, tag: 'images',
    summary: 'The bytes of an image (public: image ids are unguessable)',
    async handle(ctx, deps) {
      const imageId = ctx.params.imageId ?? '';
      if (!isId(imageId)) throw new KindredError('NOT_FOUND', 'no such image');
      const etag = `"${imageId}"`;
      const cache = { ETag: etag, 'Cache-Control': 'public, max-age=31536000, immutable' };
      // Image bytes never change under an id, so a matching tag needs no storage read.
      if (etagMatches(ctx.headers.ifNoneMatch, etag)) return { status: 304, body: '', contentType: '', headers: cache };
      const image = await deps.images.read(imageId);
      if (!image) throw new KindredError('NOT_FOUND', 'no such image');
      return { status: 200, body: image.data, contentType: image.contentType, headers: cache };
    },
  },

  // ── discovery ─────────────────────────────────────────────────────────
  command({ id: 'getDeck', method: 'get', path: '/v1/deck', body: 'none', op: 'deck.get', tag: 'discovery', summary: 'Profiles to swipe on: mutual fits nearby, ranked (docs/recommendations.md), paged by cursor' },
    (ctx) => {
      const limit = queryInteger(ctx.query, 'limit', 1, 100);
      const cursor = ctx.query.get('cursor') || undefined;
      return { op: 'deck.get', ...(limit === undefined ? {} : { limit }), ...(cursor === undefined ? {} : { cursor }) };
    }),
  command({ id: 'swipe', method: 'post', path: '/v1/swipes', body: 'json', op: 'swipe', tag: 'discovery', summary: 'Like, pass or super like a profile' },
    (ctx) => {
      const f = new Fields(ctx.body, '', ['targetId', 'kind']);
      return { op: 'swipe', targetId: f.id('targetId'), kind: f.oneOf('kind', ['like', 'pass', 'superlike'] as const) };
    }),
  command({ id: 'listMatches', method: 'get', path: '/v1/matches', body: 'none', op: 'matches.list', tag: 'discovery', summary: 'Your matches, newest first' },
    () => ({ op: 'matches.list' })),
  command({ id: 'unmatch', method: 'delete', path: '/v1/matches/:userId', body: 'none', op: 'unmatch', tag: 'discovery', summary: 'End the match with a user' },
    (ctx) => ({ op: 'unmatch', userId: pathId(ctx.params, 'userId') })),
  command({ id: 'block', method: 'post', path: '/v1/blocks', body: 'json', op: 'block', tag: 'discovery', summary: 'Block a user (ends any match, hides both ways)' },
    (ctx) => ({ op: 'block', userId: new Fields(ctx.body, '', ['userId']).id('userId') })),
  command({ id: 'report', method: 'post', path: '/v1/reports', body: 'json', op: 'report', status: 201, tag: 'discovery', summary: 'Report a user to moderators' },
    (ctx) => {
      const f = new Fields(ctx.body, '', ['userId', 'reason', 'details']);
      const userId = f.id('userId');
      const reason = f.string('reason');
      const details = f.optionalString('details');
      return details === undefined ? { op: 'report', userId, reason } : { op: 'report', userId, reason, details };
    }),

  // ── chat ──────────────────────────────────────────────────────────────
  command({ id: 'sendMessage', method: 'post', path: '/v1/messages', body: 'json', op: 'message.send', status: 201, tag: 'chat', summary: 'Send a message to a match' },
    (ctx) => {
      const f = new Fields(ctx.body, '', ['to', 'body', 'clientId']);
      const to = f.id('to');
      const body = f.string('body');
      const clientId = f.optionalString('clientId');
      return clientId === undefined ? { op: 'message.send', to, body } : { op: 'message.send', to, body, clientId };
    }),
  command({ id: 'getMessages', method: 'get', path: '/v1/conversations/:userId/messages', body: 'none', op: 'messages.history', tag: 'chat', summary: 'Message history with a match, newest first' },
    (ctx) => {
      const cmd: Extract<UserCommand, { op: 'messages.history' }> = { op: 'messages.history', with: pathId(ctx.params, 'userId') };
      const before = queryId(ctx.query, 'before');
      const limit = queryInteger(ctx.query, 'limit', 1, 200);
      if (before !== undefined) cmd.before = before;
      if (limit !== undefined) cmd.limit = limit;
      return cmd;
    }),
  command({ id: 'sendReceipt', method: 'post', path: '/v1/receipts', body: 'json', op: 'receipt', tag: 'chat', summary: 'Acknowledge a message as delivered or read' },
    (ctx) => {
      const f = new Fields(ctx.body, '', ['to', 'messageId', 'kind']);
      return { op: 'receipt', to: f.id('to'), messageId: f.id('messageId'), kind: f.oneOf('kind', ['delivered', 'read'] as const) };
    }),
  command({ id: 'sendTyping', method: 'post', path: '/v1/typing', body: 'json', op: 'typing', tag: 'chat', summary: 'Tell a match you are typing or paused' },
    (ctx) => {
      const f = new Fields(ctx.body, '', ['to', 'state']);
      return { op: 'typing', to: f.id('to'), state: f.oneOf('state', ['composing', 'paused'] as const) };
    }),
  command({ id: 'getPresence', method: 'get', path: '/v1/presence', body: 'none', op: 'presence.get', tag: 'chat', summary: 'Online state and last activity of some of your matches' },
    (ctx) => ({ op: 'presence.get', userIds: queryIdList(ctx.query, 'userIds') })),
  command({ id: 'setPresence', method: 'put', path: '/v1/presence', body: 'json', op: 'presence.set', tag: 'chat', summary: 'Say how available you are (shown to matches while you are online)' },
    (ctx) => {
      const f = new Fields(ctx.body, '', ['show', 'status']);
      const show = f.oneOf('show', ['available', 'away', 'chat', 'dnd', 'xa'] as const);
      const status = f.optionalString('status');
      return status === undefined ? { op: 'presence.set', show } : { op: 'presence.set', show, status };
    }),
  command({ id: 'getArchive', method: 'get', path: '/v1/messages', body: 'none', op: 'messages.history', tag: 'chat', summary: 'All your conversations merged: newest first, or oldest first after a cursor' },
    (ctx) => {
      const cmd: Extract<UserCommand, { op: 'messages.history' }> = { op: 'messages.history' };
      const before = queryId(ctx.query, 'before');
      const after = queryId(ctx.query, 'after');
      const limit = queryInteger(ctx.query, 'limit', 1, 200);
      if (before !== undefined) cmd.before = before;
      if (after !== undefined) cmd.after = after;
      if (limit !== undefined) cmd.limit = limit;
      return cmd;
    }),
  command({ id: 'ackMessages', method: 'post', path: '/v1/messages/ack', body: 'json', op: 'message.ack', tag: 'chat', summary: 'Confirm messages reached this device, without a receipt to the sender' },
    (ctx) => ({ op: 'message.ack', messageIds: new Fields(ctx.body, '', ['messageIds']).ids('messageIds') })),
  command({ id: 'addContact', method: 'post', path: '/v1/contacts', body: 'json', op: 'contact.add', tag: 'chat', summary: 'Add a contact: an existing match, or anyone when messaging is open' },
    (ctx) => ({ op: 'contact.add', userId: new Fields(ctx.body, '', ['userId']).id('userId') })),
  command({ id: 'listBlocks', method: 'get', path: '/v1/blocks', body: 'none', op: 'blocks.list', tag: 'discovery', summary: 'The users you blocked' },
    () => ({ op: 'blocks.list' })),
  command({ id: 'resolveUsers', method: 'get', path: '/v1/users', body: 'none', op: 'users.resolve', tag: 'profile', summary: 'Map usernames to user ids (and back)' },
    (ctx) => {
      const usernames = (ctx.query.get('usernames') ?? '').split(',').filter(Boolean);
      const userIds = (ctx.query.get('userIds') ?? '').split(',').filter(Boolean);
      if (usernames.length === 0 && userIds.length === 0) throw new KindredError('INVALID_ARGUMENT', 'usernames: give usernames or userIds (comma separated)');
      return { op: 'users.resolve', ...(usernames.length ? { usernames } : {}), ...(userIds.length ? { userIds } : {}) };
    }),

  // ── operations ────────────────────────────────────────────────────────
  {
    id: 'health', method: 'get', path: '/healthz', auth: false, body: 'none', status: 200, tag: 'ops',
    summary: 'Readiness: 200 when serving, 503 while starting or draining',
    async handle(_ctx, deps) {
      return deps.isReady()
        ? { status: 200, json: { status: 'ok' }, headers: { 'Cache-Control': 'no-store' } }
        : { status: 503, json: { status: 'unavailable' }, headers: { 'Cache-Control': 'no-store' } };
    },
  },
  {
    id: 'metrics', method: 'get', path: '/metrics', auth: false, body: 'none', status: 200, tag: 'ops',
    summary: 'Prometheus metrics (text exposition format)',
    async handle(_ctx, deps) {
      return { status: 200, body: await deps.metricsText(), contentType: 'text/plain; version=0.0.4; charset=utf-8' };
    },
  },
  {
    id: 'openapi', method: 'get', path: '/openapi.json', auth: false, body: 'none', status: 200, tag: 'ops',
    summary: 'This API as an OpenAPI 3.1 document',
    async handle(_ctx, deps) {
      return { status: 200, body: deps.openapiJson(), contentType: JSON_TYPE };
    },
  },

  // ── book store: cart, orders, payment webhook, downloads (orders-routes.ts) ─
  ...ordersRoutes,

  // ── book store: books, search, customers (store-routes.ts) ─────────────
  ...storeRoutes,
];

/** Names of a pattern's path parameters, in order. */
export function pathParams(pattern: string): string[] {
  return pattern.split('/').filter((s) => s.startsWith(':')).map((s) => s.slice(1));
}
