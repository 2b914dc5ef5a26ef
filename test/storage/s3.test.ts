/**
 * S3BlobStore against a real S3-compatible server (versitygw, started per file on loopback):
 * the blob part of the storage contract, plus what only S3 has (buckets, presigned URLs)
 * and what a remote store must survive (outages, servers that never answer).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import t, { type Test } from 'tap';
import { KindredError } from '../../src/errors.js';
import { S3BlobStore } from '../../src/storage/s3.js';
import { startS3, type S3Server } from '../helpers/s3.js';
import { blobContract } from './contract.js';

const s3: S3Server = await startS3();
t.teardown(() => s3.close());
t.comment(`versitygw on 127.0.0.1:${s3.port}, started in ${s3.lastStartMs} ms`);

let buckets = 0;
/** A fresh, empty bucket per call (bucket names: 3-63 lowercase letters, digits, dashes). */
const freshBucket = () => `kindred-${process.pid}-${++buckets}`;

async function rejectsWithCode(t: Test, p: Promise<unknown>, code: string, msg: string): Promise<unknown> {
  try {
    await p;
    t.fail(`${msg}: expected ${code}, but it resolved`);
    return undefined;
  } catch (err) {
    t.ok(err instanceof KindredError && err.code === code, `${msg}: ${code}`, { found: err });
    return err;
  }
}

async function elapsed<T>(fn: () => Promise<T>): Promise<number> {
  const started = performance.now();
  await fn().catch(() => {});
  return performance.now() - started;
}

blobContract(t, 's3', () => S3BlobStore.open(s3.options(freshBucket())));

t.test('bucket: created at open if missing, reused if present, races are fine', async (t) => {
  const bucket = freshBucket();
  const opened = await Promise.all([1, 2, 3].map(() => S3BlobStore.open(s3.options(bucket))));
  t.pass('three concurrent opens of a missing bucket all succeed');
  await opened[0]!.put('images/one', Buffer.from('1'), 'text/plain');
  const again = await S3BlobStore.open(s3.options(bucket));
  t.equal((await again.get('images/one'))?.data.toString(), '1', 'a later open sees the same bucket');
  await again.ensureBucket();
  t.pass('ensureBucket on an existing bucket is a no-op');
  for (const s of [...opened, again]) s.close();
});

t.test('big objects, content types, key conflicts', async (t) => {
  const store = await S3BlobStore.open(s3.options(freshBucket()));
  t.teardown(() => store.close());

  const big = randomBytes(5 * 1024 * 1024);
  const started = performance.now();
  await store.put('books/big.epub', big, 'application/epub+zip');
  const got = await store.get('books/big.epub');
  t.comment(`5 MB put + get in ${Math.round(performance.now() - started)} ms`);
  t.equal(got?.data.length, big.length, '5 MB object: length');
  t.ok(got?.data.equals(big), '5 MB object: bytes');
  t.equal(got?.contentType, 'application/epub+zip', '5 MB object: content type');

  const types = ['image/jpeg', 'image/png', 'image/webp', 'text/plain; charset=utf-8', 'application/octet-stream', 'application/x-kindred+json'];
  await Promise.all(types.map((ct, i) => store.put(`kinds/${i}`, Buffer.from(`blob ${i}`), ct)));
  const back = await Promise.all(types.map((_, i) => store.get(`kinds/${i}`)));
  t.same(back.map((b) => b?.contentType), types, 'every content type is kept as given');
  t.same(back.map((b) => b?.data.toString()), types.map((_, i) => `blob ${i}`), 'each with its bytes');

  await rejectsWithCode(t, store.put('kinds/x', Buffer.from('x'), 'bad\ntype'), 'INVALID_ARGUMENT', 'a content type with a newline');
  await rejectsWithCode(t, store.put('kinds/x', Buffer.from('x'), ''), 'INVALID_ARGUMENT', 'an empty content type');

  // versitygw's posix backend maps keys to paths, so a key cannot also be a "directory".
  // The same keys fail the same way in the file store (CONFLICT); real S3 accepts both.
  await store.put('images/a', Buffer.from('a'), 'text/plain');
  const conflict = await store.put('images/a/b', Buffer.from('b'), 'text/plain').then(
    () => 'accepted',
    (err: unknown) => (err instanceof KindredError ? err.code : 'other error'),
  );
  t.ok(conflict === 'CONFLICT' || conflict === 'accepted', `a key under an existing key: CONFLICT or accepted (got ${conflict})`);
  t.equal((await store.get('images/a'))?.data.toString(), 'a', 'the existing key is untouched');
});

t.test('racing writes to one key never leave bytes with another write\'s content type', async (t) => {
  // versitygw (posix + sidecar) stores the content type apart from the bytes and tears them
  // when puts race on the server; the store queues its own writes per key.
  const store = await S3BlobStore.open(s3.options(freshBucket()));
  t.teardown(() => store.close());
  let torn = 0;
  for (let round = 0; round < 20; round++) {
    const payloads = Array.from({ length: 8 }, (_, i) => Buffer.alloc(16 * 1024 + i, round * 8 + i));
    await Promise.all(payloads.map((p, i) => (i === 3 ? store.remove('images/race') : store.put('images/race', p, `image/x-${i}`))));
    const got = await store.get('images/race');
    const winner = payloads.findIndex((p) => got?.data.equals(p));
    if (winner < 0 || got?.contentType !== `image/x-${winner}`) torn++;
  }
  t.equal(torn, 0, '20 rounds of 7 puts and a remove racing: every result is one whole write');
});

t.test('presigned GET URLs: plain fetch gets the bytes, then they expire', async (t) => {
  const store = await S3BlobStore.open(s3.options(freshBucket()));
  t.teardown(() => store.close());
  const data = randomBytes(300 * 1024);
  await store.put('books/b1.epub', data, 'application/epub+zip');

  const url = await store.presignedGetUrl('books/b1.epub', 2);
  const parsed = new URL(url);
  t.equal(parsed.host, `127.0.0.1:${s3.port}`, 'URL names the endpoint');
  t.ok(parsed.pathname.endsWith(`/books/b1.epub`) && parsed.pathname.split('/')[1]!.startsWith('kindred-'), 'path-style: /bucket/key');
  t.equal(parsed.searchParams.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256', 'SigV4');
  t.equal(parsed.searchParams.get('X-Amz-Expires'), '2', 'with the expiry asked for');

  const res = await fetch(url);
  t.equal(res.status, 200, 'fetch with no credentials: 200');
  t.equal(res.headers.get('content-type'), 'application/epub+zip', 'served with the stored content type');
  t.ok(Buffer.from(await res.arrayBuffer()).equals(data), 'and the exact bytes');

  const tampered = new URL(url);
  tampered.pathname = tampered.pathname.replace('b1.epub', 'b2.epub');
  t.equal((await fetch(tampered)).status, 403, 'the signature covers the key');

  const missing = await fetch(await store.presignedGetUrl('books/none.epub', 60));
  t.equal(missing.status, 404, 'a URL for a missing key answers 404');
  await missing.arrayBuffer();

  await new Promise((r) => setTimeout(r, 3200));
  const late = await fetch(url);
  t.equal(late.status, 403, 'after the expiry: 403');
  t.match(await late.text(), /expired/i, 'because it expired');

  await rejectsWithCode(t, store.presignedGetUrl('books/b1.epub', 0), 'INVALID_ARGUMENT', 'expiry 0');
  await rejectsWithCode(t, store.presignedGetUrl('books/b1.epub', 8 * 24 * 3600), 'INVALID_ARGUMENT', 'expiry over 7 days');
  await rejectsWithCode(t, store.presignedGetUrl('../x', 10), 'INVALID_ARGUMENT', 'a bad key');
});

t.test('wrong credentials: UNAVAILABLE with the reason', async (t) => {
  const err = await rejectsWithCode(t, S3BlobStore.open(s3.options(freshBucket(), { secretKey: 'wrong' })), 'UNAVAILABLE', 'open with a wrong secret');
  t.match((err as Error | undefined)?.message, /SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId/, 'the message names the S3 error');
});

t.test('server down: UNAVAILABLE quickly; server back: works again', async (t) => {
  const store = await S3BlobStore.open(s3.options(freshBucket(), { timeoutMs: 1000 }));
  t.teardown(() => store.close());
  await store.put('images/kept', Buffer.from('still here'), 'image/png');
  t.equal((await store.get('images/kept'))?.contentType, 'image/png', 'works before the outage');

  await s3.stop();
  for (const [what, op] of [
    ['get', () => store.get('images/kept')],
    ['put', () => store.put('images/new', Buffer.from('x'), 'image/png')],
    ['remove', () => store.remove('images/kept')],
    ['ensureBucket', () => store.ensureBucket()],
    ['open', () => S3BlobStore.open(s3.options(freshBucket()))],
  ] as const) {
    const started = performance.now();
    await rejectsWithCode(t, (op as () => Promise<unknown>)(), 'UNAVAILABLE', `${what} while the server is down`);
    const ms = performance.now() - started;
    t.ok(ms < 1500, `${what} fails fast (${Math.round(ms)} ms)`);
  }

  await s3.start();
  t.comment(`restarted in ${s3.lastStartMs} ms`);
  const back = await store.get('images/kept');
  t.equal(back?.data.toString(), 'still here', 'the same store instance works once the server is back');
  t.equal(back?.contentType, 'image/png', 'with the data from before the outage');
  await store.put('images/new', Buffer.from('after'), 'image/webp');
  t.equal((await store.get('images/new'))?.data.toString(), 'after', 'writes work again');
});

t.test('a server that never answers, or answers too slowly: UNAVAILABLE, never a hang', async (t) => {
  const sockets = new Set<net.Socket>();
  // Accepts connections and reads requests, but never answers.
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.resume();
  });
  // Answers a GET with headers, then one body byte every 100 ms: never idle, never done.
  const dribble = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000000\r\n\r\n');
      const timer = setInterval(() => s.write('x'), 100);
      s.on('close', () => clearInterval(timer));
    });
  });
  for (const srv of [silent, dribble]) await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all([silent, dribble].map((srv) => new Promise((r) => srv.close(r))));
  });
  const portOf = (srv: net.Server) => (srv.address() as net.AddressInfo).port;

  const quiet = new S3BlobStore({ ...s3.options('kindred-silent'), port: portOf(silent), timeoutMs: 300, operationTimeoutMs: 5000 });
  t.teardown(() => quiet.close());
  let ms = await elapsed(() => quiet.get('images/x'));
  await rejectsWithCode(t, quiet.get('images/x'), 'UNAVAILABLE', 'get from a silent server');
  t.ok(ms >= 250 && ms < 1500, `gives up after the request timeout (${Math.round(ms)} ms)`);
  ms = await elapsed(() => quiet.put('images/x', randomBytes(1024), 'image/png'));
  t.ok(ms < 1500, `put gives up too (${Math.round(ms)} ms)`);
  await rejectsWithCode(t, S3BlobStore.open({ ...s3.options('kindred-silent'), port: portOf(silent), timeoutMs: 300 }), 'UNAVAILABLE', 'open against a silent server');

  const slow = new S3BlobStore({ ...s3.options('kindred-slow'), port: portOf(dribble), timeoutMs: 1000, operationTimeoutMs: 600 });
  t.teardown(() => slow.close());
  ms = await elapsed(() => slow.get('images/x'));
  const err = await rejectsWithCode(t, slow.get('images/x'), 'UNAVAILABLE', 'get from a server that never finishes');
  t.match((err as Error | undefined)?.message, /600 ms/, 'the operation deadline ended it');
  t.ok(ms >= 550 && ms < 2000, `at the operation deadline (${Math.round(ms)} ms)`);
});

t.test('construction: region is required, bad keys never reach the server', async (t) => {
  t.throws(() => new S3BlobStore({ ...s3.options('kindred-x'), region: '' }), { code: 'INVALID_ARGUMENT' }, 'no region');
  const store = new S3BlobStore({ ...s3.options('kindred-x'), port: 1 }); // nothing listens there
  t.teardown(() => store.close());
  await rejectsWithCode(t, store.get('a//b'), 'INVALID_ARGUMENT', 'a bad key is refused before any request');
});
