/**
 * Serves the built web front end (web/, built by Vite into dist/web) from memory.
 *
 * The whole build is read once at start into a map keyed by URL path, so a request can only
 * ever name a file that was in the directory: `..`, encoded slashes or symlinks out of the
 * tree have nothing to match (no path is ever joined from request input). Vite puts
 * content-hashed files under /assets/, which are cached for a year as immutable; every other
 * file (index.html above all) is revalidated with its ETag so a new build is picked up at once.
 * A GET for a path without a file extension that is not an API path is a client-side route
 * of the single-page app: it gets index.html.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type uWS from 'uWebSockets.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
};

/** Paths that belong to the server itself: never answered with the app, even when unknown. */
const SERVER_PREFIXES = ['/v1', '/images', '/ws', '/xmpp-websocket', '/healthz', '/metrics', '/openapi.json', '/downloads', '/webhooks'];

/** The page's policy: scripts, styles and connections only from this origin (plus its WebSocket). */
const CSP = "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export interface StaticFile {
  body: Buffer;
  gzip: Buffer | undefined;
  contentType: string;
  etag: string;
  cacheControl: string;
}

export interface StaticSite {
  dir: string;
  files: Map<string, StaticFile>;
  /** index.html, for client-side routes; undefined when the directory has no build */
  index: StaticFile | undefined;
}

/** Where `npm run build` puts the front end: <repo>/dist/web, from src/ or from dist/. */
export function defaultWebDir(): string {
  return fileURLToPath(new URL('../../../dist/web', import.meta.url));
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else if (entry.isFile()) yield full;
  }
}

/** Reads a build directory into memory. A missing directory gives an empty site (every path 404s). */
export function loadStaticSite(dir: string): StaticSite {
  const files = new Map<string, StaticFile>();
  if (existsSync(dir) && statSync(dir).isDirectory()) {
    for (const full of walk(dir)) {
      const urlPath = '/' + relative(dir, full).split(sep).join('/');
      const body = readFileSync(full);
      const contentType = CONTENT_TYPES[extname(full).toLowerCase()] ?? 'application/octet-stream';
      const compressible = /^(text\/|application\/(json|manifest)|image\/svg)/.test(contentType) && body.byteLength > 1024;
      const gzip = compressible ? gzipSync(body, { level: 9 }) : undefined;
      files.set(urlPath, {
        body,
        gzip: gzip && gzip.byteLength < body.byteLength ? gzip : undefined,
        contentType,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        // Vite names everything under /assets/ by content hash: such a URL never changes meaning.
        cacheControl: urlPath.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      });
    }
  }
  return { dir, files, index: files.get('/index.html') };
}

function isServerPath(url: string): boolean {
  return SERVER_PREFIXES.some((p) => url === p || url.startsWith(p + '/'));
}

/** What a GET for `url` is answered with: a file, the app shell, or nothing (fall through to 404). */
export function resolveStatic(site: StaticSite, url: string): StaticFile | undefined {
  const direct = site.files.get(url === '/' ? '/index.html' : url);
  if (direct) return direct;
  if (isServerPath(url)) return undefined;
  const last = url.slice(url.lastIndexOf('/') + 1);
  // A client route looks like /tindr/chat/<id>; a missing /assets/x.js must stay a 404.
  if (last.includes('.') || url.startsWith('/assets/')) return undefined;
  return site.index;
}

function etagMatches(ifNoneMatch: string, etag: string): boolean {
  return ifNoneMatch.split(',').some((t) => {
    const tag = t.trim().replace(/^W\//, '');
    return tag === '*' || tag === etag;
  });
}

/**
 * Registers `GET /*` for the site. Must be attached before the server's catch-all: anything
 * it does not serve is yielded to the next handler (the JSON 404 of the REST server).
 */
export function attachStaticSite(app: uWS.TemplatedApp, site: StaticSite): void {
  app.get('/*', (res, req) => {
    const url = req.getUrl();
    const file = resolveStatic(site, url);
    if (!file) {
      req.setYield(true);
      return;
    }
    const ifNoneMatch = req.getHeader('if-none-match');
    const gzip = file.gzip && /\bgzip\b/.test(req.getHeader('accept-encoding')) ? file.gzip : undefined;
    res.cork(() => {
      const notModified = ifNoneMatch !== '' && etagMatches(ifNoneMatch, file.etag);
      res.writeStatus(notModified ? '304 Not Modified' : '200 OK');
      res.writeHeader('ETag', file.etag);
      res.writeHeader('Cache-Control', file.cacheControl);
      res.writeHeader('X-Content-Type-Options', 'nosniff');
      if (file.gzip) res.writeHeader('Vary', 'Accept-Encoding');
      if (file === site.index || file.contentType.startsWith('text/html')) {
        res.writeHeader('Content-Security-Policy', CSP);
        res.writeHeader('Referrer-Policy', 'same-origin');
      }
      if (notModified) {
        res.endWithoutBody();
        return;
      }
      res.writeHeader('Content-Type', file.contentType);
      if (gzip) res.writeHeader('Content-Encoding', 'gzip');
      res.end(gzip ?? file.body);
    });
  });
}
