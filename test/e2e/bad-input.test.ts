/**
 * Bad input against a real server: every refusal carries its specific error code
 * (native error frame or REST `{error:{code,message}}` with its HTTP status), the
 * server stays up, and a bystander pair of already-connected, authenticated users
 * (one over WebSocket, one over TCP) keeps chatting as if nothing happened.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import {
  api,
  connectTcp,
  connectWs,
  matchedPair,
  registerUser,
  startTestServer,
  type TestServer,
  type TestUser,
} from '../helpers/server.js';
import { NativeClient, NativeError } from '../../src/client/native.js';
import { FrameDecoder, decodeMessage, encodeLengthPrefixed, encodeMessage } from '../../src/protocol/native/codec.js';
import { TokenAuthority } from '../../src/domain/auth.js';
import type { KindredEvent } from '../../src/domain/commands.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MAX_FRAME = 64 * 1024;
const TOKEN_SECRET = randomBytes(32).toString('hex');

// ── helpers ────────────────────────────────────────────────────────────────

type Frame = Record<string, unknown> & { id?: number; error?: { code: string; message: string }; result?: unknown };

/** Records every frame the server sends on a client's connection, independently of NativeClient's bookkeeping. */
function recordFrames(c: NativeClient): { frames: Frame[]; next(match: (f: Frame) => boolean, ms?: number): Promise<Frame> } {
  const frames: Frame[] = [];
  const waiters: Array<{ match: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  const onFrame = (bytes: Uint8Array) => {
    const f = decodeMessage(bytes) as Frame;
    frames.push(f);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.match(f)) waiters.splice(i, 1)[0]!.resolve(f);
    }
  };
  if (c.rawSocket) {
    const decoder = new FrameDecoder(16 * 1024 * 1024);
    c.rawSocket.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) onFrame(f);
    });
  } else c.rawWs!.on('message', (data: Buffer) => onFrame(data));
  return {
    frames,
    next(match, ms = 5000) {
      const seen = frames.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no such frame from the server')), ms);
        waiters.push({ match, resolve: (f) => (clearTimeout(timer), resolve(f)) });
      });
    },
  };
}

/** The next connection-level error frame (no request id). */
function nextProtocolError(c: NativeClient, ms = 5000): Promise<{ code: string; message: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no protocol error frame')), ms);
    c.once('protocol-error', (err: { code: string; message: string }) => {
      clearTimeout(timer);
      resolve(err);
    });
  });
}

function closed(c: NativeClient, ms = 5000): Promise<string> {
  if (c.closed) return Promise.resolve(c.closeReason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the connection was not closed')), ms);
    c.once('close', (reason: string) => {
      clearTimeout(timer);
      resolve(reason);
    });
  });
}

/** Resolves with the NativeError a promise rejects with; fails the test if it resolves. */
async function nativeError(p: Promise<unknown>): Promise<NativeError> {
  try {
    const v = await p;
    throw new Error(`expected a native error, got ${JSON.stringify(v)}`);
  } catch (err) {
    if (err instanceof NativeError) return err;
    throw err;
  }
}

function expectApiError(t: Test, res: { status: number; body: any }, status: number, code: string, message?: string | RegExp): void {
  t.equal(res.status, status, `HTTP ${status}`);
  t.equal(res.body?.error?.code, code, code);
  if (message !== undefined) t.match(res.body?.error?.message, message);
}

async function expectNativeError(t: Test, p: Promise<unknown>, code: string, message?: string | RegExp): Promise<void> {
  const err = await nativeError(p);
  t.equal(err.code, code, `native ${code}`);
  if (message !== undefined) t.match(err.message, message);
}

/** Clients a test opens, closed when it ends. */
function clients(t: Test): <C extends NativeClient>(c: C) => C {
  const list: NativeClient[] = [];
  t.teardown(() => list.forEach((c) => c.closed || c.close()));
  return (c) => (list.push(c), c);
}

interface Bystanders {
  a: TestUser;
  b: TestUser;
  ws: NativeClient;
  tcp: NativeClient;
  /** healthz is 200 and the pair can still message each other both ways */
  check(t: Test): Promise<void>;
}

let bodySeq = 0;

async function bystanders(server: TestServer, owner: Test): Promise<Bystanders> {
  const [a, b] = await matchedPair(server, 'bystander');
  const ws = await connectWs(server, a);
  const tcp = await connectTcp(server, b);
  owner.teardown(() => {
    ws.close();
    tcp.close();
  });
  const check = async (t: Test) => {
    const health = await api(server.base, 'GET', '/healthz');
    t.equal(health.status, 200, 'the server is still up');
    t.notOk(ws.closed, 'the bystander WebSocket is still open');
    t.notOk(tcp.closed, 'the bystander TCP connection is still open');
    for (const [from, to, toUser] of [[ws, tcp, b], [tcp, ws, a]] as const) {
      const body = `still here ${++bodySeq}`;
      const sent = await from.request('message.send', { to: toUser.userId, body });
      const got = (await to.nextEvent((e) => e.type === 'message' && e.message.body === body)) as Extract<KindredEvent, { type: 'message' }>;
      t.equal(got.message.messageId, sent.messageId, `the bystander pair still chats (${from === ws ? 'ws → tcp' : 'tcp → ws'})`);
    }
  };
  return { a, b, ws, tcp, check };
}

function tcpFrame(body: Uint8Array): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

const png = (width: number, height: number, color = 'red') =>
  sharp({ create: { width, height, channels: 3, background: color } }).png().toBuffer();
/** A PNG of random pixels: incompressible, so big, and a truncation cuts into the pixel data. */
const noisePng = (width: number, height: number) => sharp(randomBytes(width * height * 3), { raw: { width, height, channels: 3 } }).png().toBuffer();

// ── the main server and its bystanders ─────────────────────────────────────

const server = await startTestServer(t, { tokenSecret: TOKEN_SECRET, images: { maxBytes: 200_000 } });
const by = await bystanders(server, t);

// ── malformed frames over TCP ──────────────────────────────────────────────

t.test('TCP: bytes that are not msgpack inside a valid length prefix', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'tcpgarbage');
  const c = track(await NativeClient.connectTcp('127.0.0.1', server.tcpPort));
  for (const garbage of [Buffer.from([0xa3, 0x61]), Buffer.from([0xcd, 0x01]), randomBytes(0), Buffer.from([0x81, 0xa1, 0x61, 0x01, 0xff])]) {
    const err = nextProtocolError(c);
    c.rawSocket!.write(tcpFrame(garbage));
    t.same(await err, { code: 'BAD_REQUEST', message: 'frame is not valid msgpack' }, `garbage ${garbage.toString('hex') || '(empty)'}`);
  }
  t.notOk(c.closed, 'the connection stays open');
  const auth = await c.request('auth', { token: user.token });
  t.equal(auth.userId, user.userId, 'and usable: it can still authenticate');
  t.equal(typeof (await c.request('ping')).now, 'number');
  const err = nextProtocolError(c);
  c.rawSocket!.write(tcpFrame(Buffer.from([0xcd])));
  t.equal((await err).code, 'BAD_REQUEST', 'after auth too');
  t.equal(typeof (await c.request('ping')).now, 'number', 'and still usable');
  await by.check(t);
});

t.test('TCP: a msgpack array or string instead of a map', async (t) => {
  const track = clients(t);
  const c = track(await NativeClient.connectTcp('127.0.0.1', server.tcpPort));
  for (const value of [[1, 'ping', {}], 'ping', 42, null, true]) {
    const err = nextProtocolError(c);
    c.sendRaw(value);
    t.same(await err, { code: 'BAD_REQUEST', message: 'a frame must be a msgpack map' }, JSON.stringify(value));
  }
  t.notOk(c.closed);
  await expectNativeError(t, c.request('deck.get'), 'UNAUTHENTICATED');
  await by.check(t);
});

t.test('TCP: a map without a usable id', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'noid');
  const c = track(await connectTcp(server, user));
  const raw = recordFrames(c);
  for (const frame of [{ op: 'ping' }, { id: -1, op: 'ping' }, { id: 1.5, op: 'ping' }, { id: '7', op: 'ping' }, {}]) {
    const err = nextProtocolError(c);
    c.sendRaw(frame);
    t.same(await err, { code: 'BAD_REQUEST', message: 'a request needs a non-negative integer "id"' }, JSON.stringify(frame));
  }
  // With an id, refusals of the rest of the frame answer that id.
  c.sendRaw({ id: 9001, args: {} });
  const noOp = await raw.next((f) => f.id === 9001);
  t.same(noOp.error, { code: 'BAD_REQUEST', message: 'a request needs a string "op"' });
  c.sendRaw({ id: 9002, op: 'ping', args: [1, 2] });
  const badArgs = await raw.next((f) => f.id === 9002);
  t.same(badArgs.error, { code: 'BAD_REQUEST', message: '"args" must be a map' });
  t.equal(typeof (await c.request('ping')).now, 'number', 'the connection is still usable');
  await by.check(t);
});

t.test('TCP: a length prefix over limits.maxFrameBytes closes the connection', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'bigframe');
  const c = track(await connectTcp(server, user));
  t.equal(server.config.limits.maxFrameBytes, MAX_FRAME);
  const err = nextProtocolError(c);
  const gone = closed(c);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(MAX_FRAME + 1, 0);
  c.rawSocket!.write(head); // the header alone is enough: no body is awaited
  t.same(await err, { code: 'PAYLOAD_TOO_LARGE', message: `frame of ${MAX_FRAME + 1} bytes exceeds the limit of ${MAX_FRAME}` });
  await gone;
  t.ok(c.closed, 'the server closed the connection');
  await expectNativeError(t, c.request('ping'), 'CLOSED');

  // A frame exactly at the limit is fine (it is refused only for its content).
  const c2 = track(await connectTcp(server, user));
  const atLimit = Buffer.alloc(MAX_FRAME, 0xc1);
  const err2 = nextProtocolError(c2);
  c2.rawSocket!.write(tcpFrame(atLimit));
  t.equal((await err2).code, 'BAD_REQUEST', 'a frame at the limit is read and judged on its content');
  t.equal(typeof (await c2.request('ping')).now, 'number', 'and the connection stays');
  await by.check(t);
});

// ── malformed frames over WebSocket ────────────────────────────────────────

t.test('WS: a text frame', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'wstext');
  const c = track(await connectWs(server, user));
  const err = nextProtocolError(c);
  c.rawWs!.send(JSON.stringify({ id: 1, op: 'ping' })); // a string is sent as a text frame
  t.same(await err, { code: 'BAD_REQUEST', message: 'the native protocol uses binary frames only' });
  t.notOk(c.closed);
  t.equal(typeof (await c.request('ping')).now, 'number', 'the connection is still usable');
  await by.check(t);
});

t.test('WS: an oversized binary frame', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'wsbig');
  const c = track(await connectWs(server, user));
  // A request over the limit is answered under its own id, so the caller is not left waiting.
  const big = c.request('message.send', { to: by.a.userId, body: 'x'.repeat(MAX_FRAME + 10) });
  await t.rejects(big, { code: 'PAYLOAD_TOO_LARGE', message: /exceeds the limit of 65536/ });
  // Without a readable id the error is connection-level.
  const frame = Buffer.concat([Buffer.from([0xc4]), Buffer.alloc(MAX_FRAME + 10)]);
  const err = nextProtocolError(c);
  c.rawWs!.send(frame);
  t.match(await err, { code: 'PAYLOAD_TOO_LARGE', message: `frame of ${frame.length} bytes exceeds the limit of ${MAX_FRAME}` });
  t.equal(typeof (await c.request('ping')).now, 'number', 'the connection is still usable');

  // Far beyond the limit, the WebSocket layer itself closes the connection.
  const gone = closed(c);
  c.rawWs!.send(Buffer.alloc(MAX_FRAME * 4 + 1));
  // uWS drops the socket, without a close frame (1006) or with 1009.
  t.match(await gone, /^100[69]\b/, 'the connection is closed');
  await by.check(t);
});

t.test('WS: garbage binary', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'wsgarbage');
  const c = track(await connectWs(server, user));
  for (const garbage of [Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff]), Buffer.from([0x92, 0x01])]) {
    const err = nextProtocolError(c);
    c.rawWs!.send(garbage);
    t.same(await err, { code: 'BAD_REQUEST', message: 'frame is not valid msgpack' });
  }
  const err = nextProtocolError(c);
  c.rawWs!.send(encodeMessage(['not', 'a', 'map']));
  t.same(await err, { code: 'BAD_REQUEST', message: 'a frame must be a msgpack map' });
  t.equal(typeof (await c.request('ping')).now, 'number', 'the connection is still usable');
  await by.check(t);
});

// ── operations ─────────────────────────────────────────────────────────────

t.test('unknown operation, native and REST', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'unknownop');
  const ws = track(await connectWs(server, user));
  const tcp = track(await connectTcp(server, user));
  for (const c of [ws, tcp]) {
    await expectNativeError(t, c.request('frobnicate' as 'ping'), 'UNKNOWN_OPERATION', /frobnicate/);
    await expectNativeError(t, c.request('constructor' as 'ping'), 'UNKNOWN_OPERATION');
    t.equal(typeof (await c.request('ping')).now, 'number');
  }
  expectApiError(t, await api(server.base, 'GET', '/v1/frobnicate', { token: user.token }), 404, 'UNKNOWN_OPERATION', 'no route for GET /v1/frobnicate');
  expectApiError(t, await api(server.base, 'DELETE', '/v1/deck', { token: user.token }), 404, 'UNKNOWN_OPERATION', 'no route for DELETE /v1/deck');
  expectApiError(t, await api(server.base, 'POST', '/v2/swipes', { json: {} }), 404, 'UNKNOWN_OPERATION');
  await by.check(t);
});

t.test('commands before auth over native', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'preauth');
  const tcp = track(await NativeClient.connectTcp('127.0.0.1', server.tcpPort));
  const ws = track(await NativeClient.connectWs(server.wsUrl));
  for (const c of [tcp, ws]) {
    await expectNativeError(t, c.request('deck.get'), 'UNAUTHENTICATED', 'send auth, login or register first');
    await expectNativeError(t, c.request('message.send', { to: by.a.userId, body: 'sneaky' }), 'UNAUTHENTICATED');
    await expectNativeError(t, c.request('logout'), 'UNAUTHENTICATED');
    await expectNativeError(t, c.request('frobnicate' as 'ping'), 'UNAUTHENTICATED', undefined);
    t.equal((await c.request('auth', { token: user.token })).userId, user.userId, 'auth still works afterwards');
    t.equal(typeof (await c.request('ping')).now, 'number');
    await expectNativeError(t, c.request('auth', { token: user.token }), 'CONFLICT', /already authenticated/);
  }
  const events = by.ws.drainEvents().filter((e) => e.type === 'message' && e.message.body === 'sneaky');
  t.same(events, [], 'nothing sent before auth got through');
  await by.check(t);
});

// ── wrong JSON and wrong types ─────────────────────────────────────────────

t.test('invalid JSON body is 400 BAD_REQUEST', async (t) => {
  const user = await registerUser(server.base, 'badjson');
  for (const body of ['{"targetId":', 'not json', '{"a":1}}', "{'kind':'like'}"]) {
    const res = await api(server.base, 'POST', '/v1/swipes', { token: user.token, body, contentType: 'application/json' });
    expectApiError(t, res, 400, 'BAD_REQUEST', 'the request body is not valid JSON');
  }
  expectApiError(t, await api(server.base, 'POST', '/v1/swipes', { token: user.token, body: Buffer.from([0xff, 0xfe, 0x7b]), contentType: 'application/json' }), 400, 'BAD_REQUEST', 'the request body is not valid UTF-8');
  expectApiError(t, await api(server.base, 'POST', '/v1/login', { body: '' }), 400, 'BAD_REQUEST', /empty/);
  expectApiError(t, await api(server.base, 'PATCH', '/v1/profile', { token: user.token, body: '[1,2' }), 400, 'BAD_REQUEST');
  await by.check(t);
});

t.test('wrong types over REST are 422 INVALID_ARGUMENT naming the field', async (t) => {
  const user = await registerUser(server.base, 'badtypes');
  const post = (json: unknown) => api(server.base, 'POST', '/v1/swipes', { token: user.token, json });
  expectApiError(t, await post({ targetId: by.a.userId, kind: 'love' }), 422, 'INVALID_ARGUMENT', 'kind: must be one of like, pass, superlike');
  expectApiError(t, await post({ targetId: 12345, kind: 'like' }), 422, 'INVALID_ARGUMENT', 'targetId: must be a string');
  expectApiError(t, await post({ targetId: 'someone', kind: 'like' }), 422, 'INVALID_ARGUMENT', 'targetId: must be an id');
  expectApiError(t, await post({ kind: 'like' }), 422, 'INVALID_ARGUMENT', 'targetId: is required');
  expectApiError(t, await post({ targetId: by.a.userId, kind: 'like', admin: true }), 422, 'INVALID_ARGUMENT', /^admin: unknown field/);
  expectApiError(t, await post([by.a.userId, 'like']), 422, 'INVALID_ARGUMENT', 'body: must be a JSON object');
  expectApiError(t, await api(server.base, 'GET', '/v1/deck?limit=x', { token: user.token }), 422, 'INVALID_ARGUMENT', 'limit: must be an integer');
  expectApiError(t, await api(server.base, 'GET', '/v1/deck?limit=0', { token: user.token }), 422, 'INVALID_ARGUMENT', /^limit: must be between/);
  expectApiError(t, await api(server.base, 'PATCH', '/v1/profile', { token: user.token, json: { preferences: { ageMin: 'old', ageMax: 40, genders: [], maxDistanceKm: 5 } } }), 422, 'INVALID_ARGUMENT', 'preferences.ageMin: must be an integer');
  expectApiError(t, await api(server.base, 'PATCH', '/v1/profile', { token: user.token, json: { location: { lat: 91, lon: 0 } } }), 422, 'INVALID_ARGUMENT', /^location\.lat: must be between/);
  expectApiError(t, await api(server.base, 'POST', '/v1/messages', { token: user.token, json: { to: by.a.userId, body: 7 } }), 422, 'INVALID_ARGUMENT', 'body: must be a string');
  expectApiError(t, await api(server.base, 'GET', '/v1/users/not-an-id/profile', { token: user.token }), 422, 'INVALID_ARGUMENT', 'userId: must be an id');
  await by.check(t);
});

t.test('wrong types over native are INVALID_ARGUMENT naming the field', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'badtypesnative');
  for (const c of [track(await connectWs(server, user)), track(await connectTcp(server, user))]) {
    await expectNativeError(t, c.request('swipe', { targetId: by.a.userId, kind: 'love' }), 'INVALID_ARGUMENT', 'kind: must be one of like, pass, superlike');
    await expectNativeError(t, c.request('swipe', { targetId: 12345, kind: 'like' }), 'INVALID_ARGUMENT', 'targetId: must be a string');
    await expectNativeError(t, c.request('deck.get', { limit: 'x' }), 'INVALID_ARGUMENT', 'limit: must be an integer from 1 to 100');
    await expectNativeError(t, c.request('message.send', { to: by.a.userId }), 'INVALID_ARGUMENT', 'body: is required');
    await expectNativeError(t, c.request('typing', { to: by.a.userId, state: 'typing' }), 'INVALID_ARGUMENT', /^state: /);
    await expectNativeError(t, c.request('presence.get', { userIds: 'a,b' }), 'INVALID_ARGUMENT', /^userIds: /);
    t.equal(typeof (await c.request('ping')).now, 'number', 'the connection is still usable');
  }
  const fresh = track(await NativeClient.connectTcp('127.0.0.1', server.tcpPort));
  await expectNativeError(t, fresh.request('auth', { token: 42 }), 'TOKEN_INVALID');
  await expectNativeError(t, fresh.request('login', { username: 7, password: 'x' }), 'INVALID_ARGUMENT');
  await expectNativeError(t, fresh.request('register', { username: 'ab', password: 'long enough' }), 'INVALID_ARGUMENT', /^username: /);
  await by.check(t);
});

// ── uploads ────────────────────────────────────────────────────────────────

t.test('uploads: not an image, a truncated PNG, an oversized body', async (t) => {
  const user = await registerUser(server.base, 'uploader');
  const upload = (body: Uint8Array | string, contentType = 'image/png') =>
    api(server.base, 'POST', '/v1/profile/images', { token: user.token, body, contentType });

  expectApiError(t, await upload('hello, I am a text file\n', 'image/png'), 415, 'UNSUPPORTED_MEDIA', /only JPEG, PNG and WebP images are accepted/);
  expectApiError(t, await upload('<svg xmlns="http://www.w3.org/2000/svg"/>', 'image/svg+xml'), 415, 'UNSUPPORTED_MEDIA', /SVG/);
  expectApiError(t, await upload(Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'), 'image/gif'), 415, 'UNSUPPORTED_MEDIA', /GIF/);

  const full = await noisePng(160, 160);
  t.ok(full.length > 50_000 && full.length < 200_000, `a ${full.length}-byte noise PNG`);
  expectApiError(t, await upload(full.subarray(0, Math.floor(full.length / 2))), 415, 'UNSUPPORTED_MEDIA', /PNG image could not be decoded/);
  expectApiError(t, await upload(full.subarray(0, 40)), 415, 'UNSUPPORTED_MEDIA', /PNG image could not be decoded/);

  const big = await noisePng(300, 300);
  t.ok(big.length > 200_000, `a ${big.length}-byte PNG is over images.maxBytes`);
  expectApiError(t, await upload(big), 413, 'PAYLOAD_TOO_LARGE', 'the image is larger than 200000 bytes');

  const list = await api(server.base, 'GET', '/v1/profile/images', { token: user.token });
  t.same(list.body.images, [], 'nothing was stored');
  t.equal((await upload(full)).status, 201, 'a whole image is still accepted');
  await by.check(t);
});

t.test('uploads: a sixth image is LIMIT_REACHED and exactly five are stored', async (t) => {
  const user = await registerUser(server.base, 'fivepics');
  const colors = ['red', 'green', 'blue', 'white', 'black'];
  for (const color of colors) {
    const res = await api(server.base, 'POST', '/v1/profile/images', { token: user.token, body: await png(64, 64, color), contentType: 'image/png' });
    t.equal(res.status, 201, `image ${color}`);
  }
  const sixth = await api(server.base, 'POST', '/v1/profile/images', { token: user.token, body: await png(80, 80, 'yellow'), contentType: 'image/png' });
  expectApiError(t, sixth, 409, 'LIMIT_REACHED', 'a profile holds at most 5 images');
  const list = await api(server.base, 'GET', '/v1/profile/images', { token: user.token });
  t.equal(list.body.images.length, 5, 'exactly five stored');
  t.same(list.body.images.map((i: { position: number }) => i.position), [0, 1, 2, 3, 4]);
  t.notOk(list.body.images.some((i: { width: number }) => i.width === 80), 'the refused one is not among them');
  await by.check(t);
});

// ── messaging ──────────────────────────────────────────────────────────────

t.test('messaging a non-match is NOT_MATCHED, native and REST', async (t) => {
  const track = clients(t);
  const loner = await registerUser(server.base, 'loner');
  const stranger = await registerUser(server.base, 'stranger');
  const c = track(await connectTcp(server, loner));
  await expectNativeError(t, c.request('message.send', { to: stranger.userId, body: 'hello?' }), 'NOT_MATCHED', 'you can only message your matches');
  await expectNativeError(t, c.request('message.send', { to: by.a.userId, body: 'hello?' }), 'NOT_MATCHED', 'you can only message your matches'); // not the bystanders either
  await expectNativeError(t, c.request('typing', { to: stranger.userId, state: 'composing' }), 'NOT_MATCHED');
  expectApiError(t, await api(server.base, 'POST', '/v1/messages', { token: loner.token, json: { to: stranger.userId, body: 'hello?' } }), 403, 'NOT_MATCHED');
  // no reading their history either
  expectApiError(t, await api(server.base, 'GET', `/v1/conversations/${by.b.userId}/messages`, { token: loner.token }), 403, 'NOT_MATCHED');
  const history = await api(server.base, 'GET', `/v1/conversations/${by.a.userId}/messages?limit=50`, { token: by.b.token });
  t.notOk(history.body.messages.some((m: { body: string }) => m.body === 'hello?'), 'nothing was stored for anyone');
  await by.check(t);
});

t.test('a message body over limits.maxMessageChars is PAYLOAD_TOO_LARGE', async (t) => {
  const track = clients(t);
  const [a, b] = await matchedPair(server, 'longwinded');
  const max = server.config.limits.maxMessageChars;
  const c = track(await connectWs(server, a));
  await expectNativeError(t, c.request('message.send', { to: b.userId, body: 'x'.repeat(max + 1) }), 'PAYLOAD_TOO_LARGE', `body: at most ${max} characters`);
  expectApiError(t, await api(server.base, 'POST', '/v1/messages', { token: a.token, json: { to: b.userId, body: 'y'.repeat(max + 1) } }), 413, 'PAYLOAD_TOO_LARGE', `body: at most ${max} characters`);
  const ok = await c.request('message.send', { to: b.userId, body: 'z'.repeat(max) });
  t.ok(ok.messageId, 'exactly at the limit is accepted');
  const history = await api(server.base, 'GET', `/v1/conversations/${b.userId}/messages`, { token: a.token });
  t.same(history.body.messages.map((m: { body: string }) => m.body.length), [max], 'only the accepted one was stored');
  await by.check(t);
});

// ── tokens ─────────────────────────────────────────────────────────────────

t.test('forged tokens are TOKEN_INVALID', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'forgery');
  const [k, body, sig] = user.token.split('.') as [string, string, string];
  const flipped = `${k}.${body}.${sig.slice(0, 10)}${sig[10] === 'A' ? 'B' : 'A'}${sig.slice(11)}`;
  const otherSecret = new TokenAuthority(randomBytes(32), 3600).issue(user.userId).token;
  const forged: Array<[string, string]> = [
    ['a flipped signature character', flipped],
    ['signed with another secret', otherSecret],
    ['garbage', 'garbage'],
    ['a payload claiming another user', `${k}.${Buffer.from(JSON.stringify({ sub: by.a.userId, jti: 'x', exp: Date.now() + 1e6 })).toString('base64url')}.${sig}`],
  ];
  for (const [what, token] of forged) {
    const res = await api(server.base, 'GET', '/v1/profile', { token });
    expectApiError(t, res, 401, 'TOKEN_INVALID');
    t.match(res.headers.get('www-authenticate'), /invalid_token/, `${what}: WWW-Authenticate says invalid_token`);
    const c = track(await NativeClient.connectTcp('127.0.0.1', server.tcpPort));
    await expectNativeError(t, c.request('auth', { token }), 'TOKEN_INVALID');
    // the connection did not become authenticated
    await expectNativeError(t, c.request('deck.get'), 'UNAUTHENTICATED', 'send auth, login or register first');
  }
  t.equal((await api(server.base, 'GET', '/v1/profile', { token: user.token })).status, 200, 'the genuine token still works');
  expectApiError(t, await api(server.base, 'GET', '/v1/profile'), 401, 'UNAUTHENTICATED');
  await by.check(t);
});

t.test('an expired token is TOKEN_EXPIRED (token minted with the server secret and an earlier clock)', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'expired');
  const past = new TokenAuthority(Buffer.from(TOKEN_SECRET, 'hex'), 60, () => Date.now() - 3600_000);
  const stale = past.issue(user.userId).token;
  const fresh = new TokenAuthority(Buffer.from(TOKEN_SECRET, 'hex'), 60).issue(user.userId).token;
  t.equal((await api(server.base, 'GET', '/v1/profile', { token: fresh })).status, 200, 'control: a token minted the same way but current works');
  expectApiError(t, await api(server.base, 'GET', '/v1/profile', { token: stale }), 401, 'TOKEN_EXPIRED');
  const c = track(await NativeClient.connectWs(server.wsUrl));
  await expectNativeError(t, c.request('auth', { token: stale }), 'TOKEN_EXPIRED');
  await by.check(t);
});

t.test('logout revokes the token', async (t) => {
  const track = clients(t);
  const user = await registerUser(server.base, 'leaver');
  const other = await api(server.base, 'POST', '/v1/login', { json: { username: user.username, password: 'correct horse battery' } });
  t.equal(other.status, 200);
  const live = track(await connectTcp(server, user));
  const out = await api(server.base, 'POST', '/v1/logout', { token: user.token });
  t.equal(out.status, 200);
  t.same(out.body, { ok: true });
  expectApiError(t, await api(server.base, 'GET', '/v1/profile', { token: user.token }), 401, 'TOKEN_INVALID', /revoked/);
  expectApiError(t, await api(server.base, 'POST', '/v1/logout', { token: user.token }), 401, 'TOKEN_INVALID');
  const c = track(await NativeClient.connectWs(server.wsUrl));
  await expectNativeError(t, c.request('auth', { token: user.token }), 'TOKEN_INVALID', /revoked/);
  await expectNativeError(t, live.request('deck.get'), 'TOKEN_INVALID', /revoked/);
  t.equal((await api(server.base, 'GET', '/v1/profile', { token: other.body.token })).status, 200, "the user's other token still works");

  // Logout over native revokes the connection's own token too.
  const c2 = track(await connectWs(server, { ...user, token: other.body.token }));
  t.same(await c2.request('logout'), { ok: true });
  await expectNativeError(t, c2.request('ping'), 'TOKEN_INVALID', /revoked/);
  expectApiError(t, await api(server.base, 'GET', '/v1/profile', { token: other.body.token }), 401, 'TOKEN_INVALID');
  await by.check(t);
});

// ── servers with other limits ──────────────────────────────────────────────

t.test('tokens expire (tokenTtlSeconds: 1)', async (t) => {
  const track = clients(t);
  const short = await startTestServer(t, { tokenTtlSeconds: 1 });
  const user = await registerUser(short.base, 'ttl');
  const live = track(await connectTcp(short, user));
  t.equal((await api(short.base, 'GET', '/v1/profile', { token: user.token })).status, 200, 'valid at first');
  await sleep(1200);
  expectApiError(t, await api(short.base, 'GET', '/v1/profile', { token: user.token }), 401, 'TOKEN_EXPIRED');
  const res = await api(short.base, 'GET', '/v1/deck', { token: user.token });
  t.match(res.headers.get('www-authenticate'), /invalid_token/);
  const c = track(await NativeClient.connectTcp('127.0.0.1', short.tcpPort));
  await expectNativeError(t, c.request('auth', { token: user.token }), 'TOKEN_EXPIRED');
  await expectNativeError(t, live.request('deck.get'), 'TOKEN_EXPIRED', undefined);
  t.equal((await api(short.base, 'GET', '/healthz')).status, 200, 'the server is still up');

  // Everyone's token expires on this server, so "unaffected" means: log in again and carry on.
  const [a, b] = await matchedPair(short, 'ttlpair');
  const login = async (u: TestUser): Promise<TestUser> => {
    const res = await api(short.base, 'POST', '/v1/login', { json: { username: u.username, password: 'correct horse battery' } });
    t.equal(res.status, 200, 'logging in again works');
    return { ...u, token: res.body.token };
  };
  const ws = track(await connectWs(short, await login(a)));
  const tcp = track(await connectTcp(short, await login(b)));
  const sent = await ws.request('message.send', { to: b.userId, body: 'fresh tokens work' });
  t.equal((await tcp.nextEvent((e) => e.type === 'message')).type === 'message' && sent.messageId.length > 0, true);
  await by.check(t);
});

t.test('rate limits: the 4th rapid message is RATE_LIMITED (messagesPerSecond 1, burst 3)', async (t) => {
  const track = clients(t);
  const limited = await startTestServer(t, { limits: { messagesPerSecond: 1, messagesBurst: 3 } });
  const local = await bystanders(limited, t);
  const [a, b] = await matchedPair(limited, 'chatty');
  for (let i = 1; i <= 3; i++) {
    const res = await api(limited.base, 'POST', '/v1/messages', { token: a.token, json: { to: b.userId, body: `burst ${i}` } });
    t.equal(res.status, 201, `message ${i} of the burst`);
  }
  const fourth = await api(limited.base, 'POST', '/v1/messages', { token: a.token, json: { to: b.userId, body: 'one too many' } });
  expectApiError(t, fourth, 429, 'RATE_LIMITED', 'too many messages, slow down');
  const history = await api(limited.base, 'GET', `/v1/conversations/${b.userId}/messages`, { token: a.token });
  t.same(history.body.messages.map((m: { body: string }) => m.body), ['burst 3', 'burst 2', 'burst 1'], 'the refused message was not stored');

  // The same over native, for another pair.
  const [c, d] = await matchedPair(limited, 'chattynative');
  const native = track(await connectTcp(limited, c));
  const results = await Promise.allSettled([1, 2, 3, 4].map((i) => native.request('message.send', { to: d.userId, body: `n${i}` })));
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
  t.equal(((results[3] as PromiseRejectedResult).reason as NativeError).code, 'RATE_LIMITED');
  await local.check(t);
  await by.check(t);
});

t.test('a slow reader is disconnected; the server and the sender carry on', async (t) => {
  const track = clients(t);
  const slow = await startTestServer(t, { limits: { maxSendBufferBytes: 64 * 1024, maxMessageChars: 50_000, messagesPerSecond: 100_000, messagesBurst: 100_000 } });
  const local = await bystanders(slow, t);
  const [sender, reader] = await matchedPair(slow, 'slowread');
  const out = track(await connectWs(slow, sender));
  const sink = track(await connectTcp(slow, reader));
  t.same((await out.request('presence.get', { userIds: [reader.userId] })).presence.map((p) => p.online), [true], 'the reader is online');
  sink.rawSocket!.pause(); // never read again

  const body = 'x'.repeat(40_000);
  let sent = 0;
  const deadline = Date.now() + 30_000;
  let online = true;
  while (online && Date.now() < deadline) {
    const batch = await Promise.all(Array.from({ length: 16 }, () => out.request('message.send', { to: reader.userId, body })));
    sent += batch.length;
    const p = await out.request('presence.get', { userIds: [reader.userId] });
    online = p.presence[0]!.online;
  }
  t.notOk(online, `the server dropped the reader after ${sent} messages (${((sent * body.length) / 1e6).toFixed(1)} MB)`);
  t.ok(sent * body.length < 200e6, 'without buffering without bound');

  // The reader's socket really is closed by the server: it sees the end once it reads.
  const gone = closed(sink, 10_000);
  sink.rawSocket!.resume();
  await gone;
  t.ok(sink.closed, 'the slow socket was closed');

  t.notOk(out.closed, 'the sender is still connected');
  const after = await out.request('message.send', { to: reader.userId, body: 'are you there?' });
  t.ok(after.messageId, 'and can still send (stored for when the reader returns)');
  t.equal((await api(slow.base, 'GET', '/healthz')).status, 200);
  await local.check(t);
  await by.check(t);
});
