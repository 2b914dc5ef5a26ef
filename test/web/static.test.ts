/**
 * The web front end's static route (src/protocol/http/static.ts) on a real node: content
 * types, caching (immutable hashed assets, revalidated index), ETag 304s, gzip, the SPA
 * fallback for client routes, API paths still answered by the API, and no way out of the
 * asset directory however the path is spelled (sent as raw HTTP so nothing normalises it).
 */
import t from 'tap';
import net from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { startTestServer } from '../helpers/server.js';

const root = mkdtempSync(join(tmpdir(), 'kindred-web-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const site = join(root, 'site');
mkdirSync(join(site, 'assets'), { recursive: true });
const INDEX = '<!doctype html><title>app shell</title><script type="module" src="/assets/app-Ab12Cd34.js"></script>';
const SCRIPT = `console.log(${JSON.stringify('x'.repeat(4000))});`;
writeFileSync(join(site, 'index.html'), INDEX);
writeFileSync(join(site, 'assets', 'app-Ab12Cd34.js'), SCRIPT);
writeFileSync(join(site, 'assets', 'style-Zz99.css'), 'body{color:red}');
writeFileSync(join(site, 'robots.txt'), 'User-agent: *');
// a secret next to (outside) the served directory, and one in the data dir
writeFileSync(join(root, 'secret.txt'), 'TOP SECRET');

interface Raw {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One HTTP/1.1 request with the path exactly as given (fetch would normalise `..`). */
function raw(port: number, path: string, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, split).toString('latin1').split('\r\n');
      const status = Number(head[0]!.split(' ')[1]);
      const h: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status, headers: h, body: all.subarray(split + 4) });
    });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}Connection: close\r\n\r\n`);
  });
}

t.test('static front end', async (t) => {
  const server = await startTestServer(t, { webDir: site });
  const port = server.node.httpPort;

  await t.test('index and hashed assets with their types and caching', async (t) => {
    const index = await raw(port, '/');
    t.equal(index.status, 200);
    t.equal(index.headers['content-type'], 'text/html; charset=utf-8');
    t.equal(index.headers['cache-control'], 'no-cache', 'the shell is revalidated, so a new build shows at once');
    t.match(index.headers['content-security-policy'], /default-src 'self'/);
    t.equal(index.body.toString(), INDEX);

    const js = await raw(port, '/assets/app-Ab12Cd34.js');
    t.equal(js.status, 200);
    t.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    t.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    t.equal(js.headers['x-content-type-options'], 'nosniff');
    t.equal(js.body.toString(), SCRIPT);

    const css = await raw(port, '/assets/style-Zz99.css');
    t.equal(css.headers['content-type'], 'text/css; charset=utf-8');
    const txt = await raw(port, '/robots.txt');
    t.equal(txt.headers['content-type'], 'text/plain; charset=utf-8');
    t.equal(txt.headers['cache-control'], 'no-cache');
  });

  await t.test('ETag revalidation and gzip', async (t) => {
    const first = await raw(port, '/assets/app-Ab12Cd34.js');
    const etag = first.headers.etag!;
    t.match(etag, /^"[\w-]+"$/);
    const again = await raw(port, '/assets/app-Ab12Cd34.js', { 'If-None-Match': etag });
    t.equal(again.status, 304);
    t.equal(again.body.length, 0);
    const changed = await raw(port, '/assets/app-Ab12Cd34.js', { 'If-None-Match': '"other"' });
    t.equal(changed.status, 200);
    const gz = await raw(port, '/assets/app-Ab12Cd34.js', { 'Accept-Encoding': 'gzip, br' });
    t.equal(gz.headers['content-encoding'], 'gzip');
    t.equal(gz.headers.vary, 'Accept-Encoding');
    t.ok(gz.body.length < SCRIPT.length / 4, 'compressed');
    t.equal(gunzipSync(gz.body).toString(), SCRIPT);
  });

  await t.test('client routes get the app shell; missing files and API paths do not', async (t) => {
    for (const path of ['/tindr', '/tindr/chat/0198a1b2-0000-7000-8000-000000000000', '/store/search?q=dune', '/login']) {
      const res = await raw(port, path);
      t.equal(res.status, 200, path);
      t.equal(res.body.toString(), INDEX, `${path} is the shell`);
    }
    const missingAsset = await raw(port, '/assets/gone-123.js');
    t.equal(missingAsset.status, 404);
    t.match(missingAsset.headers['content-type'], /application\/json/);
    t.equal(JSON.parse(missingAsset.body.toString()).error.code, 'UNKNOWN_OPERATION');
    t.equal((await raw(port, '/favicon.ico')).status, 404, 'a missing file with an extension is a 404');
    const api = await raw(port, '/v1/nothing-here');
    t.equal(api.status, 404);
    t.equal(JSON.parse(api.body.toString()).error.code, 'UNKNOWN_OPERATION', 'unknown API paths stay JSON 404s');
    t.equal((await raw(port, '/healthz')).status, 200, 'server routes still win');
    t.match((await raw(port, '/openapi.json')).headers['content-type'], /application\/json/);
    const deck = await raw(port, '/v1/deck');
    t.equal(deck.status, 401, 'a REST route is not shadowed by the static route');
  });

  await t.test('no path escapes the asset directory', async (t) => {
    const attempts = [
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/assets/%2e%2e/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/assets/..%2f..%2fsecret.txt',
      '/..\\secret.txt',
      '/%2e%2e%5csecret.txt',
      '//etc/passwd',
      '/../../../../../../etc/passwd',
      '/assets/%00../secret.txt',
      '/./index.html/../../secret.txt',
    ];
    for (const path of attempts) {
      const res = await raw(port, path);
      t.notMatch(res.body.toString(), /TOP SECRET|root:/, `${path} reveals nothing`);
      t.ok(res.status === 404 || res.body.toString() === INDEX, `${path}: ${res.status} is a 404 or the shell`);
    }
  });
});

t.test('a node without a build answers 404 at / and keeps serving the API', async (t) => {
  const server = await startTestServer(t, { webDir: join(root, 'does-not-exist') });
  const res = await raw(server.node.httpPort, '/');
  t.equal(res.status, 404);
  t.equal((await raw(server.node.httpPort, '/healthz')).status, 200);
});
