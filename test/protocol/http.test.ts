import t from 'tap';
import { pino } from 'pino';
import { makeConfig } from '../../src/config.js';
import type { Command, CommandResults, PublicCommand, UserCommand } from '../../src/domain/commands.js';
import type { CommandGateway, EventSink, Principal, SessionInfo } from '../../src/domain/gateway.js';
import { ErrorCodes, KindredError } from '../../src/errors.js';
import { newId } from '../../src/ids.js';
import { toOpenApiPath } from '../../src/protocol/http/openapi.js';
import { routes } from '../../src/protocol/http/routes.js';
import { createHttpServer } from '../../src/protocol/http/server.js';

const ME = newId();
const PEER = newId();
const IMAGE = newId();
const MSG = newId();
const PRINCIPAL: Principal = { userId: ME, tokenId: newId(), expiresAt: Date.now() + 3_600_000 };

/** Records what it is asked and answers canned results; tokens: 'good' works, 'expired'/'forged' are refused. */
class FakeGateway implements CommandGateway {
  readonly calls: Array<{ principal?: Principal; cmd: Command }> = [];
  /** set to make the next execute throw */
  failWith: unknown = undefined;
  /** set to answer the next execute with this instead of the canned result */
  answerWith: unknown = undefined;

  async startScram(): Promise<never> {
    throw new KindredError('UNKNOWN_OPERATION');
  }

  verifyToken(token: string): Principal {
    if (token === 'good') return PRINCIPAL;
    if (token === 'expired') throw new KindredError('TOKEN_EXPIRED');
    throw new KindredError('TOKEN_INVALID');
  }

  async authenticate<C extends PublicCommand>(cmd: C): Promise<{ principal: Principal; result: CommandResults[C['op']] }> {
    this.calls.push({ cmd });
    if (cmd.op === 'login' && cmd.password !== 'secret') throw new KindredError('BAD_CREDENTIALS');
    const result = { userId: ME, token: 'good', expiresAt: PRINCIPAL.expiresAt };
    return { principal: PRINCIPAL, result: result as CommandResults[C['op']] };
  }

  async execute<C extends UserCommand>(principal: Principal, cmd: C): Promise<CommandResults[C['op']]> {
    this.calls.push({ principal, cmd });
    if (this.failWith !== undefined) {
      const err = this.failWith;
      this.failWith = undefined;
      throw err;
    }
    if (this.answerWith !== undefined) {
      const answer = this.answerWith;
      this.answerWith = undefined;
      return answer as CommandResults[C['op']];
    }
    const canned: Partial<Record<UserCommand['op'], unknown>> = {
      'message.send': { messageId: MSG, sentAt: 1 },
      'images.upload': { image: { imageId: IMAGE, url: `/images/${IMAGE}`, position: 0, width: 100, height: 100, contentType: 'image/png' } },
      swipe: { matched: true, matchId: newId() },
      report: { reportId: newId() },
      'presence.get': { presence: [] },
    };
    return (canned[cmd.op] ?? { ok: true }) as CommandResults[C['op']];
  }

  async openSession(_p: Principal, _s: SessionInfo, _sink: EventSink): Promise<void> {}
  closeSession(): void {}
  newConnId(): string {
    return newId();
  }

  last(): Command | undefined {
    return this.calls.at(-1)?.cmd;
  }
}

const gateway = new FakeGateway();
let ready = true;
const imageBytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
const config = makeConfig({ limits: { maxHttpBodyBytes: 1024 }, images: { maxBytes: 4096 } });
const server = createHttpServer({
  gateway,
  config,
  log: pino({ level: 'silent' }),
  images: {
    async read(imageId) {
      return imageId === IMAGE ? { data: imageBytes, contentType: 'image/png' } : undefined;
    },
  },
  isReady: () => ready,
  metricsText: async () => '# HELP kindred_up up\n# TYPE kindred_up gauge\nkindred_up 1\n',
});
const port = await server.listen('127.0.0.1', 0);
t.teardown(() => server.close());
const base = `http://127.0.0.1:${port}`;

interface Answer {
  status: number;
  headers: Headers;
  json: any;
  text: string;
}

async function call(method: string, path: string, opts: { token?: string | null; json?: unknown; body?: string | Uint8Array; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  const token = opts.token === undefined ? 'good' : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

t.test('auth routes', async (t) => {
  let r = await call('POST', '/v1/register', { token: null, json: { username: 'ann', password: 'secret' } });
  t.equal(r.status, 201);
  t.same(r.json, { userId: ME, token: 'good', expiresAt: PRINCIPAL.expiresAt });
  t.same(gateway.last(), { op: 'register', username: 'ann', password: 'secret' });
  t.equal(r.headers.get('cache-control'), 'no-store');

  r = await call('POST', '/v1/login', { token: null, json: { username: 'ann', password: 'secret' } });
  t.equal(r.status, 200);
  t.equal(r.json.token, 'good');

  r = await call('POST', '/v1/login', { token: null, json: { username: 'ann', password: 'wrong' } });
  t.equal(r.status, 401);
  t.equal(r.json.error.code, 'BAD_CREDENTIALS');

  r = await call('POST', '/v1/logout');
  t.equal(r.status, 200);
  t.same(r.json, { ok: true });
  t.same(gateway.calls.at(-1), { principal: PRINCIPAL, cmd: { op: 'logout' } });
});

t.test('bearer tokens', async (t) => {
  let r = await call('GET', '/v1/profile', { token: null });
  t.equal(r.status, 401);
  t.equal(r.json.error.code, 'UNAUTHENTICATED');
  t.equal(r.headers.get('www-authenticate'), 'Bearer');

  r = await call('GET', '/v1/profile', { token: null, headers: { authorization: 'Basic YWxhZGRpbjpvcGVuc2VzYW1l' } });
  t.equal(r.status, 401);
  t.equal(r.json.error.code, 'UNAUTHENTICATED');

  r = await call('GET', '/v1/profile', { token: 'forged' });
  t.equal(r.status, 401);
  t.equal(r.json.error.code, 'TOKEN_INVALID');
  t.match(r.headers.get('www-authenticate'), /invalid_token/);

  r = await call('GET', '/v1/profile', { token: 'expired' });
  t.equal(r.status, 401);
  t.equal(r.json.error.code, 'TOKEN_EXPIRED');

  const before = gateway.calls.length;
  r = await call('POST', '/v1/messages', { token: 'forged', json: { to: PEER, body: 'hi' } });
  t.equal(r.status, 401, 'refused before the body is read');
  t.equal(gateway.calls.length, before, 'nothing executed');

  r = await call('GET', '/v1/profile', { headers: { authorization: 'bearer good' }, token: null });
  t.equal(r.status, 200, 'the scheme is case-insensitive');
});

t.test('routes decode into the right commands', async (t) => {
  const cases: Array<{ method: string; path: string; json?: unknown; status?: number; cmd: UserCommand }> = [
    { method: 'GET', path: '/v1/profile', cmd: { op: 'profile.get' } },
    { method: 'GET', path: `/v1/users/${PEER}/profile`, cmd: { op: 'profile.get', userId: PEER } },
    {
      method: 'PATCH',
      path: '/v1/profile',
      json: {
        displayName: 'Ann',
        bio: 'hi',
        birthDate: '1990-02-03',
        gender: 'woman',
        preferences: { ageMin: 25, ageMax: 40, genders: ['man', 'nonbinary'], maxDistanceKm: 30 },
        location: { lat: 52.5, lon: 13.4 },
        showPresence: false,
      },
      cmd: {
        op: 'profile.update',
        patch: {
          displayName: 'Ann',
          bio: 'hi',
          birthDate: '1990-02-03',
          gender: 'woman',
          preferences: { ageMin: 25, ageMax: 40, genders: ['man', 'nonbinary'], maxDistanceKm: 30 },
          location: { lat: 52.5, lon: 13.4 },
          showPresence: false,
        },
      },
    },
    { method: 'PATCH', path: '/v1/profile', json: { location: null }, cmd: { op: 'profile.update', patch: { location: null } } },
    { method: 'GET', path: '/v1/profile/images', cmd: { op: 'images.list' } },
    { method: 'GET', path: `/v1/users/${PEER}/images`, cmd: { op: 'images.list', userId: PEER } },
    { method: 'DELETE', path: `/v1/profile/images/${IMAGE}`, cmd: { op: 'images.remove', imageId: IMAGE } },
    { method: 'PUT', path: '/v1/profile/images/order', json: { imageIds: [IMAGE, MSG] }, cmd: { op: 'images.reorder', imageIds: [IMAGE, MSG] } },
    { method: 'GET', path: '/v1/deck', cmd: { op: 'deck.get' } },
    { method: 'GET', path: '/v1/deck?limit=10', cmd: { op: 'deck.get', limit: 10 } },
    { method: 'POST', path: '/v1/swipes', json: { targetId: PEER, kind: 'superlike' }, cmd: { op: 'swipe', targetId: PEER, kind: 'superlike' } },
    { method: 'GET', path: '/v1/matches', cmd: { op: 'matches.list' } },
    { method: 'DELETE', path: `/v1/matches/${PEER}`, cmd: { op: 'unmatch', userId: PEER } },
    { method: 'POST', path: '/v1/blocks', json: { userId: PEER }, cmd: { op: 'block', userId: PEER } },
    { method: 'POST', path: '/v1/reports', json: { userId: PEER, reason: 'spam' }, status: 201, cmd: { op: 'report', userId: PEER, reason: 'spam' } },
    {
      method: 'POST',
      path: '/v1/reports',
      json: { userId: PEER, reason: 'spam', details: 'sells things' },
      status: 201,
      cmd: { op: 'report', userId: PEER, reason: 'spam', details: 'sells things' },
    },
    { method: 'POST', path: '/v1/messages', json: { to: PEER, body: 'hello ✨' }, status: 201, cmd: { op: 'message.send', to: PEER, body: 'hello ✨' } },
    {
      method: 'POST',
      path: '/v1/messages',
      json: { to: PEER, body: 'hi', clientId: 'c-1' },
      status: 201,
      cmd: { op: 'message.send', to: PEER, body: 'hi', clientId: 'c-1' },
    },
    { method: 'GET', path: `/v1/conversations/${PEER}/messages`, cmd: { op: 'messages.history', with: PEER } },
    {
      method: 'GET',
      path: `/v1/conversations/${PEER}/messages?before=${MSG}&limit=20`,
      cmd: { op: 'messages.history', with: PEER, before: MSG, limit: 20 },
    },
    { method: 'GET', path: `/v1/conversations/${PEER}/messages?before=&limit=`, cmd: { op: 'messages.history', with: PEER } },
    { method: 'POST', path: '/v1/receipts', json: { to: PEER, messageId: MSG, kind: 'read' }, cmd: { op: 'receipt', to: PEER, messageId: MSG, kind: 'read' } },
    { method: 'POST', path: '/v1/typing', json: { to: PEER, state: 'composing' }, cmd: { op: 'typing', to: PEER, state: 'composing' } },
    { method: 'GET', path: `/v1/presence?userIds=${PEER},${ME}`, cmd: { op: 'presence.get', userIds: [PEER, ME] } },
  ];
  for (const c of cases) {
    const r = await call(c.method, c.path, { json: c.json });
    t.equal(r.status, c.status ?? 200, `${c.method} ${c.path} status`);
    t.same(gateway.calls.at(-1), { principal: PRINCIPAL, cmd: c.cmd }, `${c.method} ${c.path} → ${c.cmd.op}`);
  }
  const sent = await call('POST', '/v1/messages', { json: { to: PEER, body: 'x' } });
  t.same(sent.json, { messageId: MSG, sentAt: 1 }, 'the result is the body');
});

t.test('image upload and serving', async (t) => {
  const bytes = Buffer.alloc(3000, 0xab);
  let r = await call('POST', '/v1/profile/images', { body: bytes, headers: { 'content-type': 'image/jpeg' } });
  t.equal(r.status, 201);
  t.equal(r.json.image.imageId, IMAGE);
  const cmd = gateway.last() as Extract<UserCommand, { op: 'images.upload' }>;
  t.equal(cmd.op, 'images.upload');
  t.equal(cmd.contentType, 'image/jpeg');
  t.ok(Buffer.from(cmd.data).equals(bytes), 'the bytes arrive intact');

  // A body streamed in chunks without Content-Length.
  const chunks = [Buffer.alloc(1000, 1), Buffer.alloc(1000, 2)];
  const stream = new ReadableStream({
    start(c) {
      for (const chunk of chunks) c.enqueue(chunk);
      c.close();
    },
  });
  const res = await fetch(`${base}/v1/profile/images`, { method: 'POST', body: stream, headers: { authorization: 'Bearer good' }, duplex: 'half' } as RequestInit);
  t.equal(res.status, 201);
  await res.arrayBuffer();
  const streamed = gateway.last() as Extract<UserCommand, { op: 'images.upload' }>;
  t.ok(Buffer.from(streamed.data).equals(Buffer.concat(chunks)));
  t.equal(streamed.contentType, 'application/octet-stream', 'a missing Content-Type is passed as octet-stream');

  r = await call('POST', '/v1/profile/images', { body: Buffer.alloc(4097), headers: { 'content-type': 'image/png' } });
  t.equal(r.status, 413);
  t.equal(r.json.error.code, 'PAYLOAD_TOO_LARGE');
  t.match(r.json.error.message, /4096/);

  r = await call('POST', '/v1/profile/images', { body: Buffer.alloc(0) });
  t.equal(r.status, 400);

  const img = await fetch(`${base}/images/${IMAGE}`);
  t.equal(img.status, 200);
  t.equal(img.headers.get('content-type'), 'image/png');
  t.equal(img.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  const etag = img.headers.get('etag');
  t.equal(etag, `"${IMAGE}"`);
  t.ok(Buffer.from(await img.arrayBuffer()).equals(imageBytes));

  const cached = await fetch(`${base}/images/${IMAGE}`, { headers: { 'if-none-match': etag! } });
  t.equal(cached.status, 304);
  t.equal(await cached.text(), '');
  const weak = await fetch(`${base}/images/${IMAGE}`, { headers: { 'if-none-match': `"other", W/${etag}` } });
  t.equal(weak.status, 304);
  const other = await fetch(`${base}/images/${IMAGE}`, { headers: { 'if-none-match': '"other"' } });
  t.equal(other.status, 200);
  await other.arrayBuffer();

  r = await call('GET', `/images/${newId()}`, { token: null });
  t.equal(r.status, 404);
  t.equal(r.json.error.code, 'NOT_FOUND');
  r = await call('GET', '/images/..%2F..%2Fetc%2Fpasswd', { token: null });
  t.equal(r.status, 404);
});

t.test('error mapping', async (t) => {
  let r = await call('POST', '/v1/swipes', { body: '{"targetId": ', headers: { 'content-type': 'application/json' } });
  t.equal(r.status, 400);
  t.equal(r.json.error.code, 'BAD_REQUEST');

  r = await call('POST', '/v1/swipes', { body: '' });
  t.equal(r.status, 400, 'empty JSON body');

  r = await call('POST', '/v1/swipes', { body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) });
  t.equal(r.status, 400, 'not UTF-8');

  const wrong: Array<[string, string, unknown, RegExp]> = [
    ['POST', '/v1/swipes', { targetId: PEER, kind: 'love' }, /^kind: /],
    ['POST', '/v1/swipes', { targetId: 42, kind: 'like' }, /^targetId: /],
    ['POST', '/v1/swipes', { targetId: 'bob', kind: 'like' }, /^targetId: must be an id/],
    ['POST', '/v1/swipes', { kind: 'like' }, /^targetId: is required/],
    ['POST', '/v1/swipes', { targetId: PEER, kind: 'like', extra: 1 }, /^extra: unknown field/],
    ['POST', '/v1/swipes', [1, 2], /^body: must be a JSON object/],
    ['POST', '/v1/swipes', null, /^body: /],
    ['POST', '/v1/register', { username: 'x', password: 5 }, /^password: must be a string/],
    ['POST', '/v1/messages', { to: PEER, body: { html: true } }, /^body: must be a string/],
    ['POST', '/v1/messages', { to: PEER, body: 'x', clientId: 7 }, /^clientId: /],
    ['POST', '/v1/reports', { userId: PEER, reason: 'x', details: false }, /^details: /],
    ['POST', '/v1/receipts', { to: PEER, messageId: MSG, kind: 'seen' }, /^kind: /],
    ['POST', '/v1/typing', { to: PEER, state: true }, /^state: /],
    ['PUT', '/v1/profile/images/order', { imageIds: 'abc' }, /^imageIds: /],
    ['PUT', '/v1/profile/images/order', { imageIds: [IMAGE, 3] }, /^imageIds\[1\]: /],
    ['PATCH', '/v1/profile', { gender: 'robot' }, /^gender: /],
    ['PATCH', '/v1/profile', { birthDate: '3 Feb 1990' }, /^birthDate: /],
    ['PATCH', '/v1/profile', { showPresence: 'no' }, /^showPresence: /],
    ['PATCH', '/v1/profile', { location: { lat: '52', lon: 13 } }, /^location.lat: /],
    ['PATCH', '/v1/profile', { location: { lat: 95, lon: 13 } }, /^location.lat: /],
    ['PATCH', '/v1/profile', { preferences: { ageMin: '25', ageMax: 40, genders: [], maxDistanceKm: 5 } }, /^preferences.ageMin: /],
    ['PATCH', '/v1/profile', { preferences: { ageMin: 25, ageMax: 40, genders: ['cat'], maxDistanceKm: 5 } }, /^preferences.genders\[0\]: /],
    ['PATCH', '/v1/profile', { preferences: { ageMin: 25, ageMax: 40, genders: [] } }, /^preferences.maxDistanceKm: is required/],
    ['PATCH', '/v1/profile', '{"__proto__":{"admin":true},"bio":"x"}', /^__proto__: unknown field/],
  ];
  for (const [method, path, body, message] of wrong) {
    const before = gateway.calls.length;
    r = await call(method, path, { body: typeof body === 'string' ? body : JSON.stringify(body) });
    t.equal(r.status, 422, `${method} ${path} ${JSON.stringify(body)} → 422`);
    t.equal(r.json?.error?.code, 'INVALID_ARGUMENT');
    t.match(r.json?.error?.message, message);
    t.equal(gateway.calls.length, before, 'not executed');
  }

  const badQueries: Array<[string, RegExp]> = [
    ['/v1/deck?limit=abc', /^limit: /],
    ['/v1/deck?limit=0', /^limit: /],
    ['/v1/deck?limit=1.5', /^limit: /],
    [`/v1/conversations/${PEER}/messages?before=yesterday`, /^before: /],
    ['/v1/conversations/bob/messages', /^userId: /],
    ['/v1/users/bob/profile', /^userId: /],
    ['/v1/presence', /^userIds: /],
    [`/v1/presence?userIds=${PEER},bob`, /^userIds: /],
  ];
  for (const [path, message] of badQueries) {
    r = await call('GET', path);
    t.equal(r.status, 422, `${path} → 422`);
    t.match(r.json?.error?.message, message);
  }
  r = await call('DELETE', '/v1/profile/images/nope');
  t.equal(r.status, 422);

  r = await call('GET', '/v1/users/%E0%A4%A/profile');
  t.equal(r.status, 400, 'malformed percent-encoding');

  r = await call('GET', '/v1/nothing-here');
  t.equal(r.status, 404);
  t.equal(r.json.error.code, 'UNKNOWN_OPERATION');
  r = await call('DELETE', '/v1/register', { token: null });
  t.equal(r.status, 404, 'a known path with another method');
  t.equal(r.json.error.code, 'UNKNOWN_OPERATION');
  r = await call('GET', '/', { token: null });
  t.equal(r.json.error.code, 'UNKNOWN_OPERATION');

  // Domain refusals keep their code and status.
  gateway.failWith = new KindredError('NOT_MATCHED');
  r = await call('POST', '/v1/messages', { json: { to: PEER, body: 'hi' } });
  t.equal(r.status, 403);
  t.same(r.json, { error: { code: 'NOT_MATCHED', message: ErrorCodes.NOT_MATCHED.text } });

  gateway.failWith = new KindredError('RATE_LIMITED', 'slow down');
  r = await call('POST', '/v1/swipes', { json: { targetId: PEER, kind: 'like' } });
  t.equal(r.status, 429);

  // Unexpected failures are INTERNAL without details.
  gateway.failWith = new Error('SELECT * FROM secrets failed at /srv/db');
  r = await call('GET', '/v1/matches');
  t.equal(r.status, 500);
  t.same(r.json, { error: { code: 'INTERNAL', message: 'internal error' } });
  t.notMatch(r.text, /secrets/);

  // A result that cannot be serialized still gets an answer.
  gateway.answerWith = { matches: [{ n: 1n }] };
  r = await call('GET', '/v1/matches');
  t.equal(r.status, 500);
  t.equal(r.json.error.code, 'INTERNAL');
});

t.test('body size caps', async (t) => {
  const big = JSON.stringify({ to: PEER, body: 'x'.repeat(2000) });
  let r = await call('POST', '/v1/messages', { body: big });
  t.equal(r.status, 413);
  t.equal(r.json.error.code, 'PAYLOAD_TOO_LARGE');
  t.match(r.json.error.message, /1024/);

  // Chunked, so the cap is found while reading.
  const stream = new ReadableStream({
    start(c) {
      for (let i = 0; i < 20; i++) c.enqueue(Buffer.alloc(200, 0x20));
      c.close();
    },
  });
  const res = await fetch(`${base}/v1/messages`, { method: 'POST', body: stream, headers: { authorization: 'Bearer good' }, duplex: 'half' } as RequestInit);
  t.equal(res.status, 413);
  t.equal(((await res.json()) as { error: { code: string } }).error.code, 'PAYLOAD_TOO_LARGE');

  // A much larger upload is refused from its Content-Length.
  r = await call('POST', '/v1/profile/images', { body: Buffer.alloc(3_000_000) });
  t.equal(r.status, 413);

  r = await call('GET', '/v1/matches');
  t.equal(r.status, 200, 'the server still answers');
});

t.test('operations endpoints', async (t) => {
  let r = await call('GET', '/healthz', { token: null });
  t.equal(r.status, 200);
  t.same(r.json, { status: 'ok' });
  ready = false;
  r = await call('GET', '/healthz', { token: null });
  t.equal(r.status, 503);
  ready = true;

  r = await call('GET', '/metrics', { token: null });
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type'), /^text\/plain/);
  t.match(r.text, /kindred_up 1/);

  r = await call('GET', '/openapi.json', { token: null });
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type'), /application\/json/);
  const doc = r.json;
  t.equal(doc.openapi, '3.1.0');
  for (const route of routes) {
    const op = doc.paths[toOpenApiPath(route.path)]?.[route.method];
    t.ok(op, `${route.method.toUpperCase()} ${route.path} is documented`);
    t.ok(op?.responses?.[String(route.status)], `${route.id} documents its success status`);
    t.same(op?.security, route.auth ? [{ bearerAuth: [] }] : [], `${route.id} security`);
  }
  const documented = Object.values(doc.paths as Record<string, object>).reduce((n, p) => n + Object.keys(p).length, 0);
  t.equal(documented, routes.length, 'no undocumented extras');
  t.same(doc.components.schemas.Error.properties.error.properties.code.enum, Object.keys(ErrorCodes));
  t.equal(doc.components.securitySchemes.bearerAuth.scheme, 'bearer');
  // Every $ref points at a defined schema.
  const refs = [...r.text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
  for (const name of new Set(refs)) t.ok(doc.components.schemas[name], `schema ${name} exists`);

  const expected = [
    'POST /v1/register', 'POST /v1/login', 'POST /v1/logout', 'GET /v1/profile', 'GET /v1/users/{userId}/profile', 'PATCH /v1/profile',
    'POST /v1/profile/images', 'GET /v1/profile/images', 'GET /v1/users/{userId}/images', 'DELETE /v1/profile/images/{imageId}',
    'PUT /v1/profile/images/order', 'GET /images/{imageId}', 'GET /v1/deck', 'POST /v1/swipes', 'GET /v1/matches',
    'DELETE /v1/matches/{userId}', 'POST /v1/blocks', 'POST /v1/reports', 'POST /v1/messages', 'GET /v1/conversations/{userId}/messages',
    'POST /v1/receipts', 'POST /v1/typing', 'GET /v1/presence', 'GET /healthz', 'GET /metrics', 'GET /openapi.json',
  ];
  for (const entry of expected) {
    const [method, path] = entry.split(' ') as [string, string];
    t.ok(doc.paths[path]?.[method.toLowerCase()], `${entry} in openapi.json`);
  }
});

t.test('survives hostile input', async (t) => {
  const { connect } = await import('node:net');
  const raw = (payload: string) =>
    new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => socket.end(payload));
      let out = '';
      socket.on('data', (d) => (out += d.toString()));
      socket.on('close', () => resolve(out));
      socket.on('error', () => resolve(out));
      setTimeout(() => socket.destroy(), 2000);
    });
  await raw('POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nContent-Length: 50\r\n\r\n{"to":');
  await raw('POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n');
  await raw('GARBAGE\r\n\r\n');
  const r = await call('GET', '/healthz', { token: null });
  t.equal(r.status, 200, 'still serving after aborted and malformed requests');
});
