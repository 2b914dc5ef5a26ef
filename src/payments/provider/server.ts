/**
 * The payment provider stand-in: a small PSP with payment intents over HTTP/JSON, shaped
 * like the real ones (Stripe-style), so Kindred's adapter is always exercised over a real
 * network hop. It persists everything in SQLite (a restart keeps intents, idempotent
 * responses and owed webhooks) and misbehaves on request (behaviour.ts).
 *
 *   POST /v1/payment_intents             {amount, currency, metadata?, confirm?}  Idempotency-Key required
 *   POST /v1/payment_intents/:id/confirm                                          Idempotency-Key optional
 *   POST /v1/payment_intents/:id/cancel
 *   GET  /v1/payment_intents/:id
 *   GET  /v1/payment_intents?order_id=X  the intents whose metadata.orderId is X (reconciliation)
 *   POST /v1/refunds                     {payment_intent}                          Idempotency-Key required
 *   POST /v1/webhook_endpoints           {url}   where signed webhooks go (the last one set wins)
 *   GET  /_charges?order_id=X            every charge and refund made (for tests: "charged once")
 *   POST /_control                       {behaviour fields…, outage?: {mode, forMs}}
 *   GET  /healthz
 *
 * Idempotency: a key with the same route and body answers the stored response; the same key
 * with a different body answers 409. Intent changes, the charge, the webhook and the stored
 * response commit in one transaction.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_BEHAVIOUR, patchBehaviour, seededRandom, type Behaviour, type OutageMode, type OutageWindow } from './behaviour.js';
import { ProviderStore, type Intent } from './store.js';
import { WebhookSender } from './webhooks.js';

export interface ProviderOptions {
  host: string;
  port: number;
  dbFile: string;
  webhookSecret: string;
  /** when set, /v1 requests need `Authorization: Bearer <apiKey>` */
  apiKey?: string;
  webhookUrl?: string;
  behaviour?: Partial<Behaviour>;
  outages?: OutageWindow[];
  seed?: number;
  log?: (msg: string) => void;
}

export interface ProviderServer {
  port: number;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

interface Answer {
  status: number;
  body: unknown;
}

const MAX_BODY = 64 * 1024;

function intentJson(i: Intent): Record<string, unknown> {
  return {
    id: i.id,
    object: 'payment_intent',
    amount: i.amount,
    currency: i.currency,
    status: i.status,
    metadata: i.metadata,
    last_payment_error: i.lastError ? { code: i.lastError } : null,
    created: i.created,
  };
}

function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}

export async function startProvider(opts: ProviderOptions): Promise<ProviderServer> {
  const store = new ProviderStore(opts.dbFile);
  let behaviour: Behaviour = { ...DEFAULT_BEHAVIOUR, ...opts.behaviour };
  const random = seededRandom(opts.seed ?? Date.now());
  const log = opts.log ?? (() => undefined);
  if (opts.webhookUrl) store.putSetting('webhook_url', opts.webhookUrl);
  const webhooks = new WebhookSender(store, opts.webhookSecret, log);
  let outage: { mode: OutageMode; until: number } | undefined;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  function later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
  }

  function emit(type: string, intent: Intent): void {
    store.enqueueWebhook(JSON.stringify({ id: newId('evt'), type, created: Math.floor(Date.now() / 1000), data: { object: intentJson(intent) } }));
  }

  /** Decides a confirmation's fate; inside the caller's transaction. */
  function confirm(intent: Intent, now: number): Intent {
    if (intent.status !== 'requires_confirmation') return intent;
    let next: Intent;
    if (random() < behaviour.declineRate) {
      next = { ...intent, status: 'declined', lastError: 'card_declined', updated: now };
      emit('payment_intent.payment_failed', next);
    } else if (random() < behaviour.asyncRate) {
      next = { ...intent, status: 'processing', updated: now };
      later(behaviour.asyncDelayMs, () => finishProcessing(intent.id));
    } else {
      next = { ...intent, status: 'succeeded', updated: now };
      store.recordCharge({ intentId: intent.id, orderId: intent.metadata.orderId ?? '', amount: intent.amount, currency: intent.currency, at: now }, 'charge');
      emit('payment_intent.succeeded', next);
    }
    store.updateIntent(next.id, next.status, next.lastError, now);
    return next;
  }

  function finishProcessing(id: string): void {
    store.tx(() => {
      const intent = store.getIntent(id);
      if (!intent || intent.status !== 'processing') return;
      const now = Date.now();
      if (random() < behaviour.declineRate) {
        const next = { ...intent, status: 'declined' as const, lastError: 'card_declined', updated: now };
        store.updateIntent(id, next.status, next.lastError, now);
        emit('payment_intent.payment_failed', next);
      } else {
        const next = { ...intent, status: 'succeeded' as const, updated: now };
        store.updateIntent(id, next.status, null, now);
        store.recordCharge({ intentId: id, orderId: intent.metadata.orderId ?? '', amount: intent.amount, currency: intent.currency, at: now }, 'charge');
        emit('payment_intent.succeeded', next);
      }
    });
    webhooks.kick();
  }

  function requireIntent(id: string): Intent {
    const intent = store.getIntent(id);
    if (!intent) throw new HttpError(404, 'resource_missing', `no such payment_intent: ${id}`);
    return intent;
  }

  /** Runs `fn` once per idempotency key: a repeat with the same body answers the stored response. */
  function idempotent(key: string | undefined, route: string, rawBody: string, fn: () => Answer): Answer {
    if (key === undefined) return store.tx(fn);
    if (key.length === 0 || key.length > 255) throw new HttpError(400, 'invalid_request_error', 'Idempotency-Key must be 1 to 255 characters');
    const bodyHash = createHash('sha256').update(rawBody).digest('hex');
    return store.tx(() => {
      const stored = store.getResponse(key, route);
      if (stored) {
        if (stored.bodyHash !== bodyHash) {
          throw new HttpError(409, 'idempotency_error', 'this Idempotency-Key was used with a different request body');
        }
        return { status: stored.status, body: JSON.parse(stored.body) as unknown };
      }
      let answer: Answer;
      try {
        answer = fn();
      } catch (err) {
        if (!(err instanceof HttpError) || err.status >= 500) throw err;
        answer = { status: err.status, body: { error: { type: err.type, message: err.message } } };
      }
      store.putResponse(key, route, { bodyHash, status: answer.status, body: JSON.stringify(answer.body) });
      return answer;
    });
  }

  function parseJson(raw: string): Record<string, unknown> {
    if (raw === '') return {};
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch {
      throw new HttpError(400, 'invalid_request_error', 'the body is not valid JSON');
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'invalid_request_error', 'the body must be a JSON object');
    return v as Record<string, unknown>;
  }

  function route(method: string, url: URL, raw: string, key: string | undefined): Answer {
    const path = url.pathname;
    if (method === 'POST' && path === '/v1/payment_intents') {
      if (key === undefined) throw new HttpError(400, 'invalid_request_error', 'an Idempotency-Key header is required');
      return idempotent(key, 'create', raw, () => {
        const b = parseJson(raw);
        const amount = b.amount;
        const currency = b.currency;
        if (typeof amount !== 'number' || !Number.isInteger(amount) || amount < 1 || amount > 99_999_999) {
          throw new HttpError(400, 'invalid_request_error', 'amount must be an integer number of minor units in [1, 99999999]');
        }
        if (typeof currency !== 'string' || !/^[a-zA-Z]{3}$/.test(currency)) throw new HttpError(400, 'invalid_request_error', 'currency must be an ISO 4217 code');
        const metadata: Record<string, string> = {};
        if (b.metadata !== undefined) {
          if (typeof b.metadata !== 'object' || b.metadata === null) throw new HttpError(400, 'invalid_request_error', 'metadata must be an object');
          for (const [k, v] of Object.entries(b.metadata)) metadata[k] = String(v);
        }
        const now = Date.now();
        let intent: Intent = { id: newId('pi'), amount, currency: currency.toLowerCase(), status: 'requires_confirmation', metadata, lastError: null, created: now, updated: now };
        store.insertIntent(intent);
        if (b.confirm === true) intent = confirm(intent, now);
        return { status: 200, body: intentJson(intent) };
      });
    }
    const m = /^\/v1\/payment_intents\/([A-Za-z0-9_]+)(?:\/(confirm|cancel))?$/.exec(path);
    if (m) {
      const [, id, action] = m;
      if (method === 'GET' && !action) return { status: 200, body: intentJson(requireIntent(id!)) };
      if (method === 'POST' && action === 'confirm') {
        return idempotent(key, `confirm:${id}`, raw, () => ({ status: 200, body: intentJson(confirm(requireIntent(id!), Date.now())) }));
      }
      if (method === 'POST' && action === 'cancel') {
        return idempotent(key, `cancel:${id}`, raw, () => {
          const intent = requireIntent(id!);
          if (intent.status === 'succeeded' || intent.status === 'refunded') {
            throw new HttpError(400, 'payment_intent_unexpected_state', `a ${intent.status} payment cannot be canceled; refund it`);
          }
          if (intent.status === 'canceled' || intent.status === 'declined') return { status: 200, body: intentJson(intent) };
          const now = Date.now();
          store.updateIntent(intent.id, 'canceled', null, now);
          const next = { ...intent, status: 'canceled' as const, updated: now };
          emit('payment_intent.canceled', next);
          return { status: 200, body: intentJson(next) };
        });
      }
    }
    if (method === 'GET' && path === '/v1/payment_intents') {
      const orderId = url.searchParams.get('order_id');
      if (!orderId) throw new HttpError(400, 'invalid_request_error', 'order_id is required');
      return { status: 200, body: { object: 'list', data: store.intentsForOrder(orderId).map(intentJson) } };
    }
    if (method === 'POST' && path === '/v1/refunds') {
      if (key === undefined) throw new HttpError(400, 'invalid_request_error', 'an Idempotency-Key header is required');
      return idempotent(key, 'refund', raw, () => {
        const b = parseJson(raw);
        if (typeof b.payment_intent !== 'string') throw new HttpError(400, 'invalid_request_error', 'payment_intent is required');
        const intent = requireIntent(b.payment_intent);
        if (intent.status === 'refunded') return { status: 200, body: { object: 'refund', payment_intent: intent.id, status: 'succeeded' } };
        if (intent.status !== 'succeeded') throw new HttpError(400, 'charge_not_refundable', `a ${intent.status} payment has nothing to refund`);
        const now = Date.now();
        store.updateIntent(intent.id, 'refunded', null, now);
        store.recordCharge({ intentId: intent.id, orderId: intent.metadata.orderId ?? '', amount: intent.amount, currency: intent.currency, at: now }, 'refund');
        emit('charge.refunded', { ...intent, status: 'refunded', updated: now });
        return { status: 200, body: { object: 'refund', payment_intent: intent.id, status: 'succeeded' } };
      });
    }
    if (method === 'POST' && path === '/v1/webhook_endpoints') {
      const b = parseJson(raw);
      if (typeof b.url !== 'string' || !/^https?:\/\//.test(b.url)) throw new HttpError(400, 'invalid_request_error', 'url must be an http(s) URL');
      store.putSetting('webhook_url', b.url);
      return { status: 200, body: { object: 'webhook_endpoint', url: b.url } };
    }
    throw new HttpError(404, 'invalid_request_error', `no route for ${method} ${path}`);
  }

  function control(raw: string): Answer {
    const b = parseJson(raw);
    const { outage: o, ...rest } = b;
    try {
      behaviour = patchBehaviour(behaviour, rest);
    } catch (err) {
      throw new HttpError(400, 'invalid_request_error', (err as Error).message);
    }
    if (o !== undefined) {
      const spec = o as { mode?: unknown; forMs?: unknown; afterMs?: unknown };
      if ((spec.mode !== '503' && spec.mode !== 'refuse') || typeof spec.forMs !== 'number') {
        throw new HttpError(400, 'invalid_request_error', 'outage must be {mode: "503" | "refuse", forMs, afterMs?}');
      }
      scheduleOutage({ mode: spec.mode, durationMs: spec.forMs, startMs: typeof spec.afterMs === 'number' ? spec.afterMs : 0 });
    }
    return { status: 200, body: { behaviour } };
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://provider');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY) throw new HttpError(413, 'invalid_request_error', 'body too large');
      chunks.push(chunk);
    }
    const raw = Buffer.concat(chunks).toString('utf8');
    if (url.pathname === '/healthz') return reply(res, { status: 200, body: { ok: true } });
    if (url.pathname === '/_charges' && req.method === 'GET') {
      const orderId = url.searchParams.get('order_id') ?? undefined;
      return reply(res, { status: 200, body: { charges: store.charges('charge', orderId), refunds: store.charges('refund', orderId) } });
    }
    if (url.pathname === '/_control' && req.method === 'POST') return reply(res, control(raw));
    if (outage && outage.mode === '503' && Date.now() < outage.until) {
      return reply(res, { status: 503, body: { error: { type: 'api_error', message: 'the provider is unavailable (simulated outage)' } } });
    }
    if (opts.apiKey && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      return reply(res, { status: 401, body: { error: { type: 'authentication_error', message: 'invalid API key' } } });
    }
    const delay = behaviour.latencyMs + (random() * 2 - 1) * behaviour.jitterMs;
    if (delay > 0) await sleep(delay);
    const header = req.headers['idempotency-key'];
    const key = Array.isArray(header) ? header[0] : header;
    const answer = route(req.method ?? 'GET', url, raw, key);
    webhooks.kick();
    // A simulated timeout: the work is done and stored, but the answer comes too late.
    if (url.pathname.startsWith('/v1/') && random() < behaviour.timeoutRate) await sleep(behaviour.timeoutHangMs);
    reply(res, answer);
  }

  function reply(res: http.ServerResponse, answer: Answer): void {
    if (res.destroyed) return;
    const body = JSON.stringify(answer.body);
    res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) reply(res, { status: err.status, body: { error: { type: err.type, message: err.message } } });
      else {
        log(`provider error: ${(err as Error).stack ?? String(err)}`);
        reply(res, { status: 500, body: { error: { type: 'api_error', message: 'internal error' } } });
      }
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  function listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, opts.host, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  let port = await listen(opts.port);

  /** A 'refuse' outage closes the listener and every connection, then listens again on the same port. */
  function scheduleOutage(w: OutageWindow): void {
    later(w.startMs, () => {
      outage = { mode: w.mode, until: Date.now() + w.durationMs };
      log(`outage ${w.mode} for ${w.durationMs} ms`);
      if (w.mode === 'refuse') {
        server.close();
        for (const s of sockets) s.destroy();
        later(w.durationMs, () => {
          listen(port).then(
            (p) => {
              port = p;
              outage = undefined;
            },
            (err: unknown) => log(`could not listen again: ${String(err)}`),
          );
        });
      }
    });
  }
  for (const w of opts.outages ?? []) scheduleOutage(w);

  // Intents left `processing` by a previous run still finish, and their webhooks go out.
  for (const i of store.processingIntents()) later(behaviour.asyncDelayMs, () => finishProcessing(i.id));
  webhooks.start();

  return {
    get port() {
      return port;
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      webhooks.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      store.close();
    },
  };
}
