/**
 * The HTTP + JSON transport on uWebSockets.js: registers the route table (routes.ts),
 * reads bodies under hard caps, checks bearer tokens at the edge, and maps every
 * refusal to `{ "error": { "code", "message" } }` with the status from src/errors.ts.
 *
 * uWS rules followed here: the request object is only valid during the synchronous
 * part of a handler, so headers, url, parameters are read first and the body reader
 * is attached before anything awaits; every response that may outlive the handler
 * has an onAborted handler; writes after an await are corked.
 */
import { STATUS_CODES } from 'node:http';
import type { Logger } from 'pino';
import uWS from 'uWebSockets.js';
import type { KindredConfig } from '../../config.js';
import type { CommandGateway, Principal } from '../../domain/gateway.js';
import { ErrorCodes, KindredError, toKindredError } from '../../errors.js';
import { buildOpenApi } from './openapi.js';
import { pathParams, routes, type Reply, type RequestContext, type Route, type RouteDeps } from './routes.js';

export interface HttpServerDeps {
  gateway: CommandGateway;
  config: KindredConfig;
  log: Logger;
  images: { read(imageId: string): Promise<{ data: Buffer | Uint8Array; contentType: string } | undefined> };
  /** /healthz answers 200 while true, 503 otherwise */
  isReady: () => boolean;
  /** the Prometheus exposition text for /metrics */
  metricsText: () => Promise<string>;
  /** the bus, for the book store's routes */
  bus?: RouteDeps['bus'];
  /** ebook downloads through signed links */
  downloads?: RouteDeps['downloads'];
  /** called with the app after the REST routes and before the catch-all 404 (attach `/ws` here) */
  onApp?: (app: uWS.TemplatedApp) => void;
}

export interface HttpServer {
  app: uWS.TemplatedApp;
  /** Starts listening; resolves with the bound port (pass 0 for any free port). */
  listen(host: string, port: number): Promise<number>;
  /** Stops listening and closes every connection (HTTP and WebSocket). */
  close(): void;
}

interface RequestState {
  method: string;
  url: string;
  started: number;
  aborted: boolean;
  done: boolean;
  /** close the connection after the response (the client is still sending a refused body) */
  closeAfter: boolean;
  onAbort: (() => void) | undefined;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const utf8 = new TextDecoder('utf-8', { fatal: true });

function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}

/** Thrown when the client went away while we waited for its body; nothing is answered. */
const ABORTED = Symbol('aborted');

function parseJsonBody(buf: Uint8Array): unknown {
  if (buf.byteLength === 0) throw new KindredError('BAD_REQUEST', 'the request body is empty: send a JSON object');
  let text: string;
  try {
    text = utf8.decode(buf);
  } catch {
    throw new KindredError('BAD_REQUEST', 'the request body is not valid UTF-8');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new KindredError('BAD_REQUEST', 'the request body is not valid JSON');
  }
}

function bearer(authorization: string, gateway: CommandGateway): Principal {
  if (!authorization) throw new KindredError('UNAUTHENTICATED', 'send an Authorization: Bearer <token> header');
  const match = /^Bearer +(\S+) *$/i.exec(authorization);
  if (!match) throw new KindredError('UNAUTHENTICATED', 'the Authorization header must be "Bearer <token>"');
  return gateway.verifyToken(match[1]!);
}

function decodeParam(raw: string, name: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new KindredError('BAD_REQUEST', `${name}: malformed percent-encoding in the path`);
  }
}

function tooLarge(cap: number, what: string): KindredError {
  return new KindredError('PAYLOAD_TOO_LARGE', `the ${what} is larger than ${cap} bytes`);
}

export function createHttpServer(deps: HttpServerDeps): HttpServer {
  const { config, log, gateway } = deps;
  const app = config.tls
    ? uWS.SSLApp({ cert_file_name: config.tls.certFile, key_file_name: config.tls.keyFile })
    : uWS.App();

  const openapiText = JSON.stringify(buildOpenApi({ config }));
  const routeDeps: RouteDeps = {
    gateway,
    images: deps.images,
    isReady: deps.isReady,
    metricsText: deps.metricsText,
    bus: deps.bus,
    downloads: deps.downloads,
    openapiJson: () => openapiText,
  };

  function send(res: uWS.HttpResponse, state: RequestState, reply: Reply): void {
    if (state.aborted || state.done) return;
    // Serialize before marking the request done: a throw here still gets an error response.
    const headers: Record<string, string> = { 'X-Content-Type-Options': 'nosniff' };
    let body: string | Uint8Array;
    if ('json' in reply) {
      headers['Content-Type'] = JSON_TYPE;
      headers['Cache-Control'] = 'no-store';
      body = JSON.stringify(reply.json);
    } else {
      if (reply.contentType) headers['Content-Type'] = reply.contentType;
      body = reply.body;
    }
    Object.assign(headers, reply.headers);
    const close = state.closeAfter;
    state.done = true;
    res.cork(() => {
      res.writeStatus(statusLine(reply.status));
      for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
      if (reply.status === 304 || reply.status === 204) res.endWithoutBody(undefined, close);
      else res.end(body, close);
    });
    if (log.isLevelEnabled('debug')) {
      log.debug({ method: state.method, url: state.url, status: reply.status, ms: Math.round(performance.now() - state.started) }, 'http');
    }
  }

  function fail(res: uWS.HttpResponse, state: RequestState, err: unknown): void {
    if (err === ABORTED || state.aborted || state.done) return;
    const error = toKindredError(err);
    if (!(err instanceof KindredError) && error.code === 'INTERNAL') {
      log.error({ err, method: state.method, url: state.url }, 'http request failed');
    }
    const headers: Record<string, string> = {};
    if (ErrorCodes[error.code].http === 401) {
      headers['WWW-Authenticate'] = error.code === 'UNAUTHENTICATED' || error.code === 'BAD_CREDENTIALS' ? 'Bearer' : 'Bearer error="invalid_token"';
    }
    send(res, state, { status: error.httpStatus, json: { error: error.toJSON() }, headers });
  }

  /** Collects the body up to `cap` bytes. Must be called synchronously in the handler. */
  function readBody(res: uWS.HttpResponse, state: RequestState, cap: number, declared: number | undefined, what: string): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let buf = Buffer.allocUnsafe(declared ?? Math.min(cap, 16 * 1024));
      let received = 0;
      let settled = false;
      state.onAbort = () => {
        settled = true;
        reject(ABORTED);
      };
      res.onData((chunk, isLast) => {
        if (settled) return;
        const n = chunk.byteLength;
        if (received + n > cap) {
          settled = true;
          state.closeAfter = true;
          reject(tooLarge(cap, what));
          return;
        }
        if (received + n > buf.length) {
          const bigger = Buffer.allocUnsafe(Math.min(cap, Math.max(buf.length * 2, received + n)));
          buf.copy(bigger, 0, 0, received);
          buf = bigger;
        }
        // The chunk is neutered when this callback returns: copy it now.
        buf.set(new Uint8Array(chunk), received);
        received += n;
        if (isLast) {
          settled = true;
          resolve(buf.subarray(0, received));
        }
      });
    });
  }

  function handlerFor(route: Route): (res: uWS.HttpResponse, req: uWS.HttpRequest) => void {
    const names = pathParams(route.path);
    const cap = route.maxBodyBytes?.(config) ?? (route.body === 'image' ? config.images.maxBytes : config.limits.maxHttpBodyBytes);
    const what = route.body === 'image' ? 'image' : 'request body';
    return (res, req) => {
      const state: RequestState = {
        method: route.method.toUpperCase(),
        url: route.path,
        started: performance.now(),
        aborted: false,
        done: false,
        closeAfter: false,
        onAbort: undefined,
      };
      res.onAborted(() => {
        state.aborted = true;
        state.onAbort?.();
      });
      let ctx: RequestContext;
      let bodyPromise: Promise<Buffer> | undefined;
      try {
        // Everything from `req` is read here: it is invalid once this function returns.
        state.url = req.getUrl();
        const params: Record<string, string> = {};
        names.forEach((name, i) => {
          params[name] = decodeParam(req.getParameter(i) ?? '', name);
        });
        ctx = {
          method: route.method,
          url: state.url,
          params,
          query: new URLSearchParams(req.getQuery() ?? ''),
          headers: {
            contentType: req.getHeader('content-type'),
            ifNoneMatch: req.getHeader('if-none-match'),
            idempotencyKey: req.getHeader('idempotency-key'),
            webhookSignature: req.getHeader('kindred-signature'),
          },
          principal: undefined,
          body: undefined,
        };
        if (route.auth) ctx.principal = bearer(req.getHeader('authorization'), gateway);
        if (route.body !== 'none') {
          const lengthHeader = req.getHeader('content-length');
          const chunked = req.getHeader('transfer-encoding') !== '';
          let declared: number | undefined;
          if (lengthHeader !== '') {
            if (!/^\d+$/.test(lengthHeader)) throw new KindredError('BAD_REQUEST', 'malformed Content-Length');
            declared = Number(lengthHeader);
            if (declared > cap) {
              state.closeAfter = true;
              throw tooLarge(cap, what);
            }
          }
          if (declared === 0 || (declared === undefined && !chunked)) bodyPromise = Promise.resolve(Buffer.alloc(0));
          else bodyPromise = readBody(res, state, cap, declared, what);
        }
      } catch (err) {
        fail(res, state, err);
        return;
      }
      void (async () => {
        try {
          if (bodyPromise) {
            const raw = await bodyPromise;
            ctx.body = route.body === 'json' ? parseJsonBody(raw) : raw;
          }
          send(res, state, await route.handle(ctx, routeDeps));
        } catch (err) {
          fail(res, state, err);
        }
      })();
    };
  }

  for (const route of routes) {
    const handler = handlerFor(route);
    switch (route.method) {
      case 'get': app.get(route.path, handler); break;
      case 'post': app.post(route.path, handler); break;
      case 'put': app.put(route.path, handler); break;
      case 'patch': app.patch(route.path, handler); break;
      case 'delete': app.del(route.path, handler); break;
    }
  }

  deps.onApp?.(app);

  app.any('/*', (res, req) => {
    const method = req.getCaseSensitiveMethod();
    const url = req.getUrl();
    const state: RequestState = { method, url, started: performance.now(), aborted: false, done: false, closeAfter: false, onAbort: undefined };
    res.onAborted(() => {
      state.aborted = true;
    });
    const shown = `${method} ${url}`.slice(0, 200);
    fail(res, state, new KindredError('UNKNOWN_OPERATION', `no route for ${shown}`));
  });

  const listenSockets: uWS.us_listen_socket[] = [];

  return {
    app,
    listen(host: string, port: number): Promise<number> {
      return new Promise<number>((resolve, reject) => {
        app.listen(host, port, (socket) => {
          if (!socket) {
            reject(new Error(`could not listen on ${host}:${port}`));
            return;
          }
          listenSockets.push(socket);
          resolve(uWS.us_socket_local_port(socket as unknown as uWS.us_socket));
        });
      });
    },
    close(): void {
      for (const socket of listenSockets.splice(0)) uWS.us_listen_socket_close(socket);
      app.close();
    },
  };
}
