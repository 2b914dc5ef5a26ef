/**
 * The native framing: a length-prefixed msgpack stream decodes to exactly the frames
 * that were encoded, however the bytes are split on the way.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { FrameDecoder, decodeMessage, encodeLengthPrefixed, encodeMessage } from '../../src/protocol/native/codec.js';
import { KindredError } from '../../src/errors.js';
import { seededRandom as rng } from '../helpers/async.js';

/** A small deterministic PRNG (mulberry32) so a failure can be reproduced from its seed. */

function randomFrame(rand: () => number, i: number): Record<string, unknown> {
  const kind = Math.floor(rand() * 5);
  const text = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(rand() * 2000))).join('');
  switch (kind) {
    case 0:
      return { id: i, op: 'ping', args: {} };
    case 1:
      return { id: i, op: 'message.send', args: { to: text(36), body: text(Math.floor(rand() * 3000)) } };
    case 2:
      return { event: { type: 'typing', from: text(10), state: rand() < 0.5 ? 'composing' : 'paused' } };
    case 3:
      return { id: i, result: { list: Array.from({ length: Math.floor(rand() * 50) }, (_, k) => ({ k, v: rand() })), big: 2 ** 40 + i, neg: -i, nil: null, yes: true } };
    default:
      return { id: i, op: 'images.upload', args: { data: new Uint8Array(randomBytes(Math.floor(rand() * 5000))), contentType: 'image/png' } };
  }
}

function normalise(v: unknown): unknown {
  // msgpack gives binary back as Buffer/Uint8Array: compare bytes, not classes.
  if (v instanceof Uint8Array) return { bin: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(normalise);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  return v;
}

function decodeAll(decoder: FrameDecoder, chunks: Buffer[]): unknown[] {
  const out: unknown[] = [];
  for (const c of chunks) for (const f of decoder.push(c)) out.push(decodeMessage(f));
  return out;
}

const rand = rng(0x5eed);
const frames = Array.from({ length: 300 }, (_, i) => randomFrame(rand, i));
const stream = Buffer.concat(frames.map((f) => encodeLengthPrefixed(f)));
const expected = frames.map(normalise);

t.test('encodeLengthPrefixed writes a 4-byte big-endian length then the msgpack body', async (t) => {
  const frame = { id: 7, op: 'ping', args: {} };
  const body = encodeMessage(frame);
  const prefixed = encodeLengthPrefixed(frame);
  t.equal(prefixed.readUInt32BE(0), body.length);
  t.same(prefixed.subarray(4), body);
  t.same(decodeMessage(body), frame);
});

t.test('the whole stream in one chunk', async (t) => {
  const got = decodeAll(new FrameDecoder(64 * 1024), [stream]);
  t.equal(got.length, frames.length);
  t.same(got.map(normalise), expected);
});

t.test('one byte at a time', async (t) => {
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
  const decoder = new FrameDecoder(64 * 1024);
  const got: unknown[] = [];
  let maxPerPush = 0;
  for (const c of chunks) {
    const fs = decoder.push(c);
    maxPerPush = Math.max(maxPerPush, fs.length);
    for (const f of fs) got.push(decodeMessage(f));
  }
  t.equal(maxPerPush, 1, 'a single byte completes at most one frame');
  t.equal(got.length, frames.length);
  t.same(got.map(normalise), expected);
});

t.test('random splits, many seeds', async (t) => {
  for (let seed = 1; seed <= 40; seed++) {
    const r = rng(seed);
    const chunks: Buffer[] = [];
    let at = 0;
    while (at < stream.length) {
      // Mostly small pieces, sometimes large ones spanning several frames, sometimes empty.
      const roll = r();
      const n = roll < 0.05 ? 0 : roll < 0.7 ? 1 + Math.floor(r() * 7) : 1 + Math.floor(r() * 9000);
      chunks.push(stream.subarray(at, at + n));
      at += n;
    }
    const got = decodeAll(new FrameDecoder(64 * 1024), chunks);
    if (got.length !== frames.length) {
      t.fail(`seed ${seed}: ${got.length} frames instead of ${frames.length}`);
      continue;
    }
    t.same(got.map(normalise), expected, `seed ${seed}: ${chunks.length} chunks`);
  }
});

t.test('split exactly at every length-prefix boundary and inside it', async (t) => {
  const one = encodeLengthPrefixed({ id: 1, op: 'ping' });
  const two = encodeLengthPrefixed({ id: 2, op: 'ping' });
  const both = Buffer.concat([one, two]);
  for (let cut = 0; cut <= both.length; cut++) {
    const got = decodeAll(new FrameDecoder(1024), [both.subarray(0, cut), both.subarray(cut)]);
    t.same(got, [{ id: 1, op: 'ping' }, { id: 2, op: 'ping' }], `cut at ${cut}`);
  }
});

t.test('a zero-length frame is yielded as an empty body', async (t) => {
  const got = new FrameDecoder(16).push(Buffer.from([0, 0, 0, 0]));
  t.equal(got.length, 1);
  t.equal(got[0]!.length, 0);
  t.throws(() => decodeMessage(got[0]!), { code: 'BAD_REQUEST' }, 'and an empty body is not a msgpack value');
});

t.test('a frame exactly at the limit is accepted, one byte over is PAYLOAD_TOO_LARGE', async (t) => {
  const limit = 1000;
  const atLimit = Buffer.alloc(4 + limit);
  atLimit.writeUInt32BE(limit, 0);
  t.equal(new FrameDecoder(limit).push(atLimit).length, 1);

  const over = Buffer.alloc(4);
  over.writeUInt32BE(limit + 1, 0);
  const err = (() => {
    try {
      new FrameDecoder(limit).push(over);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.ok(err instanceof KindredError, 'throws a KindredError');
  t.equal((err as KindredError).code, 'PAYLOAD_TOO_LARGE');
  t.match((err as KindredError).message, /1001 bytes exceeds the limit of 1000/);
});

t.test('an oversized length is refused as soon as the prefix is complete, before the body arrives', async (t) => {
  const decoder = new FrameDecoder(64 * 1024);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(0xffffffff, 0);
  t.same(decoder.push(head.subarray(0, 3)), [], 'three bytes of prefix: nothing yet');
  t.throws(() => decoder.push(head.subarray(3)), { code: 'PAYLOAD_TOO_LARGE' });
});

t.test('an oversized frame after good ones still yields nothing past it', async (t) => {
  const decoder = new FrameDecoder(100);
  const good = encodeLengthPrefixed({ id: 1 });
  const bad = Buffer.alloc(4);
  bad.writeUInt32BE(101, 0);
  t.same(decoder.push(good).map((f) => decodeMessage(f)), [{ id: 1 }]);
  t.throws(() => decoder.push(bad), { code: 'PAYLOAD_TOO_LARGE' });
});

t.test('decodeMessage refuses garbage with BAD_REQUEST', async (t) => {
  const garbage = [
    Buffer.from([0xa3, 0x61]), // fixstr of 3 bytes, truncated
    Buffer.from([0xcd, 0x01]), // uint16, truncated
    Buffer.from([0x81, 0xa1, 0x61, 0x01, 0x82]), // one whole map, then trailing bytes
    Buffer.from([0xd9]), // str8 without its length
    Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff]), // str32 of 4 GiB with no bytes
    Buffer.from([0x85, 0xa1, 0x61]), // map of 5 entries, truncated
    Buffer.from([0xc4, 0x10, 1, 2]), // bin8 of 16 bytes, truncated
    Buffer.alloc(0),
  ];
  for (const g of garbage) {
    try {
      decodeMessage(g);
      t.fail(`decoded garbage ${g.toString('hex')}`);
    } catch (err) {
      t.ok(err instanceof KindredError, `${g.toString('hex') || '(empty)'} throws a KindredError`);
      t.equal((err as KindredError).code, 'BAD_REQUEST');
      t.equal((err as KindredError).message, 'frame is not valid msgpack');
    }
  }
});
