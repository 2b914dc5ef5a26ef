/**
 * The OpenAPI 3.1 document of the REST API, generated from the route table so every
 * route is documented (building throws if one is not) and paths cannot drift.
 * Served at GET /openapi.json.
 */
import { defaults, type KindredConfig } from '../../config.js';
import { ErrorCodes, type ErrorCode } from '../../errors.js';
import { GENDERS } from '../../storage/types.js';
import { pathParams, routes, type Route } from './routes.js';
import { ordersDocs, ordersSchemas } from './orders-openapi.js';
import { storeDocs, storeSchemas } from './store-openapi.js';

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties), extra: Schema = {}): Schema => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
  ...extra,
});
const str = (description?: string): Schema => (description ? { type: 'string', description } : { type: 'string' });
const int = (description?: string): Schema => (description ? { type: 'integer', description } : { type: 'integer' });
const epochMs: Schema = { type: 'integer', description: 'milliseconds since the Unix epoch' };
const id: Schema = ref('Id');
const ok: Schema = ref('Ok');

function schemas(): Record<string, Schema> {
  return {
    Id: {
      type: 'string',
      description: 'A time-ordered UUIDv7',
      pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
    },
    Error: obj({
      error: obj({
        code: { type: 'string', enum: Object.keys(ErrorCodes), description: errorCodeTable() },
        message: str('human readable; for INVALID_ARGUMENT it starts with the field, e.g. "kind: must be one of like, pass, superlike"'),
      }),
    }),
    Ok: obj({ ok: { const: true } }),
    Credentials: obj({ username: str(), password: { type: 'string', format: 'password' } }),
    AuthResult: obj({ userId: id, token: str('bearer access token'), expiresAt: epochMs }),
    Gender: { type: 'string', enum: [...GENDERS] },
    Preferences: obj({
      ageMin: int(),
      ageMax: int(),
      genders: { type: 'array', items: ref('Gender') },
      maxDistanceKm: { type: 'number', minimum: 0 },
    }),
    Location: obj({ lat: { type: 'number', minimum: -90, maximum: 90 }, lon: { type: 'number', minimum: -180, maximum: 180 } }),
    ImageRef: obj({ imageId: id, url: str('relative to the server base, e.g. /images/{imageId}'), position: int() }),
    PublicProfile: obj(
      {
        userId: id,
        displayName: str(),
        bio: str(),
        age: int(),
        gender: ref('Gender'),
        images: { type: 'array', items: ref('ImageRef') },
        distanceKm: { type: 'number', description: 'rounded; present in decks' },
      },
      ['userId', 'displayName', 'bio', 'age', 'gender', 'images'],
    ),
    Profile: {
      description: 'A public profile; your own also carries preferences, location, birthDate and showPresence.',
      allOf: [
        ref('PublicProfile'),
        {
          type: 'object',
          properties: {
            preferences: ref('Preferences'),
            location: { anyOf: [ref('Location'), { type: 'null' }] },
            birthDate: { type: 'string', format: 'date' },
            showPresence: { type: 'boolean' },
          },
        },
      ],
    },
    ProfileResult: obj({ profile: ref('Profile') }),
    ProfilePatch: obj(
      {
        displayName: str(),
        bio: str(),
        birthDate: { type: 'string', format: 'date', pattern: '^\\d{4}-\\d{2}-\\d{2}$' },
        gender: ref('Gender'),
        preferences: ref('Preferences'),
        location: { anyOf: [ref('Location'), { type: 'null' }], description: 'null clears it' },
        showPresence: { type: 'boolean', description: 'false hides online state and last activity from matches' },
      },
      [],
    ),
    Image: obj({
      imageId: id,
      url: str('relative to the server base, e.g. /images/{imageId}'),
      position: int('0-based display order'),
      width: int(),
      height: int(),
      contentType: { type: 'string', enum: ['image/jpeg', 'image/png', 'image/webp'] },
    }),
    ImageResult: obj({ image: ref('Image') }),
    ImageList: obj({ images: { type: 'array', items: ref('Image') } }),
    ReorderRequest: obj({ imageIds: { type: 'array', items: id, description: 'each of your images exactly once' } }),
    Deck: obj({
      cards: { type: 'array', items: ref('PublicProfile') },
      next: { anyOf: [{ type: 'string' }, { type: 'null' }], description: 'opaque cursor of the next page; null when nobody else fits' },
      refreshed: { type: 'boolean', description: 'true when the cursor given was for an old location or preferences (or expired), so this page starts a fresh deck' },
    }, ['cards', 'next']),
    SwipeRequest: obj({ targetId: id, kind: { type: 'string', enum: ['like', 'pass', 'superlike'] } }),
    SwipeResult: obj({ matched: { type: 'boolean' }, matchId: id }, ['matched']),
    Match: obj({ matchId: id, peer: ref('PublicProfile'), createdAt: epochMs, ended: { type: 'boolean' } }),
    MatchList: obj({ matches: { type: 'array', items: ref('Match') } }),
    BlockRequest: obj({ userId: id }),
    ReportRequest: obj({ userId: id, reason: str(), details: str() }, ['userId', 'reason']),
    ReportResult: obj({ reportId: id }),
    MessageRequest: obj(
      { to: id, body: str(), clientId: str('your own id for the message, to match the answer or event') },
      ['to', 'body'],
    ),
    MessageSent: obj({ messageId: id, sentAt: epochMs }),
    Message: obj({ messageId: id, matchId: id, from: id, to: id, body: str(), sentAt: epochMs }),
    MessagePage: obj({
      messages: { type: 'array', items: ref('Message'), description: 'newest first' },
      next: { anyOf: [id, { type: 'null' }], description: 'pass as `before` for the next (older) page; null at the start' },
    }),
    ReceiptRequest: obj({ to: id, messageId: id, kind: { type: 'string', enum: ['delivered', 'read'] } }),
    TypingRequest: obj({ to: id, state: { type: 'string', enum: ['composing', 'paused'] } }),
    Presence: obj({
      userId: id,
      online: { type: 'boolean' },
      lastActiveAt: { anyOf: [epochMs, { type: 'null' }], description: 'null when the user hides presence' },
      show: { type: 'string', enum: ['available', 'away', 'chat', 'dnd', 'xa'], description: 'only while online' },
      status: str('only while online, if set'),
    }, ['userId', 'online', 'lastActiveAt']),
    PresenceResult: obj({ presence: { type: 'array', items: ref('Presence') } }),
    PresenceRequest: obj({ show: { type: 'string', enum: ['available', 'away', 'chat', 'dnd', 'xa'] }, status: str() }, ['show']),
    AckRequest: obj({ messageIds: { type: 'array', items: id } }),
    ContactResult: obj({ matchId: id }),
    BlockList: obj({ userIds: { type: 'array', items: id } }),
    UserList: obj({ users: { type: 'array', items: obj({ userId: id, username: str() }) } }),
    Health: obj({ status: { type: 'string', enum: ['ok', 'unavailable'] } }),
    ...ordersSchemas(),
    ...storeSchemas(),
  };
}

function errorCodeTable(): string {
  return Object.entries(ErrorCodes)
    .map(([code, { http, text }]) => `${code} (${http}): ${text}`)
    .join('; ');
}

interface OperationDoc {
  request?: string;
  response: string | { contentType: string; schema: Schema; description: string };
  query?: Array<{ name: string; schema: Schema; description: string; required?: boolean }>;
  /** refusals specific to this operation, beyond the generic ones */
  errors?: ErrorCode[];
  description?: string;
  /** a request body that is neither a JSON schema nor an image (e.g. NDJSON, an ebook file) */
  requestBody?: Schema;
}

const binary = (description: string): OperationDoc['response'] => ({ contentType: '*/*', schema: { type: 'string', contentMediaType: 'application/octet-stream' }, description });

const docs: Record<string, OperationDoc> = {
  register: { request: 'Credentials', response: 'AuthResult', errors: ['CONFLICT'] },
  login: { request: 'Credentials', response: 'AuthResult', errors: ['BAD_CREDENTIALS'] },
  logout: { response: 'Ok' },
  getMyProfile: { response: 'ProfileResult', errors: ['NOT_FOUND'] },
  getUserProfile: { response: 'ProfileResult', errors: ['NOT_FOUND'] },
  updateProfile: { request: 'ProfilePatch', response: 'Ok' },
  uploadImage: {
    response: 'ImageResult',
    errors: ['UNSUPPORTED_MEDIA', 'LIMIT_REACHED'],
    description:
      'The body is the image itself (JPEG, PNG or WebP; the format is read from the bytes, not the Content-Type). ' +
      'Dimensions outside the configured limits are INVALID_ARGUMENT; other formats, animations and files that do not fully decode are UNSUPPORTED_MEDIA.',
  },
  listMyImages: { response: 'ImageList' },
  listUserImages: { response: 'ImageList', errors: ['NOT_FOUND'] },
  removeImage: { response: 'Ok', errors: ['NOT_FOUND'] },
  reorderImages: { request: 'ReorderRequest', response: 'Ok', errors: ['NOT_FOUND'] },
  getImage: {
    response: binary('the image bytes, with their Content-Type, an ETag and a one-year immutable Cache-Control; 304 when If-None-Match matches'),
    errors: ['NOT_FOUND'],
  },
  getDeck: {
    response: 'Deck',
    query: [
      { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 100 }, description: 'how many cards at most' },
      { name: 'cursor', schema: { type: 'string', maxLength: 512 }, description: 'the `next` of the previous page' },
    ],
    errors: ['NOT_FOUND', 'INVALID_ARGUMENT', 'OVERLOADED', 'UNAVAILABLE'],
  },
  swipe: { request: 'SwipeRequest', response: 'SwipeResult', errors: ['NOT_FOUND', 'RATE_LIMITED'] },
  listMatches: { response: 'MatchList' },
  unmatch: { response: 'Ok', errors: ['NOT_MATCHED'] },
  block: { request: 'BlockRequest', response: 'Ok', errors: ['INVALID_ARGUMENT'] },
  report: { request: 'ReportRequest', response: 'ReportResult', errors: ['NOT_FOUND'] },
  sendMessage: { request: 'MessageRequest', response: 'MessageSent', errors: ['NOT_MATCHED', 'RATE_LIMITED'] },
  getMessages: {
    response: 'MessagePage',
    query: [
      { name: 'before', schema: id, description: 'exclusive cursor: the `next` of the previous page' },
      { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 200 }, description: 'page size' },
    ],
    errors: ['NOT_MATCHED'],
  },
  sendReceipt: { request: 'ReceiptRequest', response: 'Ok', errors: ['NOT_MATCHED'] },
  sendTyping: { request: 'TypingRequest', response: 'Ok', errors: ['NOT_MATCHED'] },
  getPresence: {
    response: 'PresenceResult',
    query: [{ name: 'userIds', required: true, schema: { type: 'string' }, description: 'comma separated user ids' }],
  },
  setPresence: { request: 'PresenceRequest', response: 'Ok' },
  getArchive: {
    response: 'MessagePage',
    query: [
      { name: 'before', schema: id, description: 'exclusive cursor: the `next` of the previous (newer) page' },
      { name: 'after', schema: id, description: 'exclusive cursor for forward paging: messages after it, oldest first' },
      { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 200 }, description: 'page size' },
    ],
  },
  ackMessages: { request: 'AckRequest', response: 'Ok' },
  addContact: { request: 'BlockRequest', response: 'ContactResult', errors: ['NOT_MATCHED', 'NOT_FOUND'] },
  listBlocks: { response: 'BlockList' },
  resolveUsers: {
    response: 'UserList',
    query: [
      { name: 'usernames', schema: { type: 'string' }, description: 'comma separated usernames' },
      { name: 'userIds', schema: { type: 'string' }, description: 'comma separated user ids' },
    ],
  },
  health: { response: 'Health', description: '503 with {"status":"unavailable"} while the node is not ready.' },
  metrics: { response: { contentType: 'text/plain', schema: { type: 'string' }, description: 'Prometheus text exposition format 0.0.4' } },
  openapi: { response: { contentType: 'application/json', schema: { type: 'object' }, description: 'this document' } },
  ...ordersDocs,
  ...storeDocs,
};

/** `/v1/users/:userId/profile` → `/v1/users/{userId}/profile` */
export function toOpenApiPath(pattern: string): string {
  return pattern.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function errorResponses(route: Route, doc: OperationDoc, config: KindredConfig): Record<string, Schema> {
  const codes: ErrorCode[] = [];
  if (route.auth) codes.push('UNAUTHENTICATED', 'TOKEN_EXPIRED', 'TOKEN_INVALID');
  if (route.body === 'json') codes.push('BAD_REQUEST', 'PAYLOAD_TOO_LARGE');
  if (route.body === 'json' || pathParams(route.path).length > 0 || doc.query?.length) codes.push('INVALID_ARGUMENT');
  if (route.body === 'image') codes.push('BAD_REQUEST', 'PAYLOAD_TOO_LARGE', 'INVALID_ARGUMENT');
  codes.push(...(doc.errors ?? []));
  const byStatus = new Map<number, Set<ErrorCode>>();
  for (const code of codes) {
    const status = ErrorCodes[code].http;
    if (!byStatus.has(status)) byStatus.set(status, new Set());
    byStatus.get(status)!.add(code);
  }
  const out: Record<string, Schema> = {};
  for (const [status, set] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    const limits =
      status === 413
        ? ` (limit: ${route.body === 'image' ? config.images.maxBytes : config.limits.maxHttpBodyBytes} bytes)`
        : '';
    out[String(status)] = {
      description: `${[...set].join(', ')}${limits}`,
      content: { 'application/json': { schema: ref('Error') } },
    };
  }
  out.default = {
    description: 'any other error code (e.g. RATE_LIMITED, OVERLOADED, UNAVAILABLE, TIMEOUT, INTERNAL)',
    content: { 'application/json': { schema: ref('Error') } },
  };
  return out;
}

function operation(route: Route, config: KindredConfig): Schema {
  const doc = docs[route.id];
  if (!doc) throw new Error(`openapi: route ${route.id} (${route.method.toUpperCase()} ${route.path}) is not documented`);
  const parameters: Schema[] = [
    ...pathParams(route.path).map((name) => ({ name, in: 'path', required: true, schema: id })),
    ...(doc.query ?? []).map((q) => ({ name: q.name, in: 'query', required: q.required ?? false, description: q.description, schema: q.schema })),
  ];
  const op: Schema = {
    operationId: route.id,
    summary: route.summary,
    tags: [route.tag],
  };
  if (doc.description) op.description = doc.description;
  if (route.command) op['x-kindred-command'] = route.command;
  if (parameters.length) op.parameters = parameters;
  if (route.auth) op.security = [{ bearerAuth: [] }];
  else op.security = [];
  if (doc.requestBody) {
    op.requestBody = doc.requestBody;
  } else if (route.body === 'json' && doc.request) {
    op.requestBody = { required: true, content: { 'application/json': { schema: ref(doc.request) } } };
  } else if (route.body === 'image') {
    const image = { schema: { type: 'string', contentMediaType: 'application/octet-stream' } };
    op.requestBody = {
      required: true,
      description: `at most ${config.images.maxBytes} bytes, ${config.images.minWidth}x${config.images.minHeight} to ${config.images.maxWidth}x${config.images.maxHeight} pixels`,
      content: { 'image/jpeg': image, 'image/png': image, 'image/webp': image },
    };
  }
  const success =
    typeof doc.response === 'string'
      ? { description: 'OK', content: { 'application/json': { schema: ref(doc.response) } } }
      : { description: doc.response.description, content: { [doc.response.contentType]: { schema: doc.response.schema } } };
  const responses: Record<string, Schema> = { [String(route.status)]: success };
  if (route.id === 'getImage') responses['304'] = { description: 'Not Modified (If-None-Match matched the ETag)' };
  if (route.id === 'health') responses['503'] = { description: 'not ready', content: { 'application/json': { schema: ref('Health') } } };
  Object.assign(responses, errorResponses(route, doc, config));
  op.responses = responses;
  return op;
}

/** The OpenAPI 3.1 document for the route table; limits in descriptions come from `config`. */
export function buildOpenApi(options: { config?: KindredConfig; serverUrl?: string } = {}): Record<string, unknown> {
  const config = options.config ?? defaults;
  const paths: Record<string, Record<string, Schema>> = {};
  for (const route of routes) {
    const path = toOpenApiPath(route.path);
    (paths[path] ??= {})[route.method] = operation(route, config);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Kindred REST API',
      version: '1',
      description:
        'JSON over HTTP. Errors are {"error":{"code","message"}} with the status of their code. ' +
        'Authenticated routes take Authorization: Bearer <token> from /v1/register or /v1/login. ' +
        'Request objects are closed: unknown fields are INVALID_ARGUMENT.',
    },
    servers: [{ url: options.serverUrl ?? '/' }],
    tags: [
      { name: 'auth' },
      { name: 'profile' },
      { name: 'images' },
      { name: 'discovery' },
      { name: 'chat' },
      { name: 'ops' },
      { name: 'store' },
    ],
    paths,
    components: {
      schemas: schemas(),
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'an access token from /v1/register or /v1/login' } },
    },
  };
}
