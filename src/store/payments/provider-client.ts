/**
 * The HTTP client for the payment provider (the stand-in in src/payments/provider, or any
 * PSP with the same payment-intent API): every call has a timeout, and is retried with
 * exponential backoff and jitter on timeouts, connection failures, 429 and 5xx. Retries are
 * safe because every mutating call carries an idempotency key derived from the order, so
 * a charge that went through before its answer was lost is found again, not made twice.
 *
 * It uses node:http with a keep-alive agent rather than fetch: at hundreds of settlements per
 * second fetch's per-request overhead was a visible share of the server's CPU.
 */
import http from 'node:http';
import https from 'node:https';
import { KindredError } from '../../errors.js';

export interface ProviderIntent {
  id: string;
  amount: number;
  currency: string;
  status: 'requires_confirmation' | 'processing' | 'succeeded' | 'declined' | 'canceled' | 'refunded';
  metadata: Record<string, string>;
  last_payment_error: { code: string } | null;
}

export interface ProviderClientOptions {
  baseUrl: string;
  apiKey?: string;
  /** per attempt (default 2000 ms) */
  timeoutMs?: number;
  /** attempts in all, the first included (default 4) */
  attempts?: number;
  /** first backoff (default 100 ms), doubling, with ±50 % jitter */
  backoffMs?: number;
}

/** A provider answer that retrying will not change (4xx but 429). */
export class ProviderRejected extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export class ProviderClient {
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly backoffMs: number;
  /** counters for tests and metrics: how often a call had to be retried */
  retries = 0;

  private readonly url: URL;
  private readonly agent: http.Agent;

  constructor(private readonly opts: ProviderClientOptions) {
    this.url = new URL(opts.baseUrl);
    const secure = this.url.protocol === 'https:';
    this.agent = new (secure ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 512, maxFreeSockets: 256, scheduling: 'lifo' });
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.attempts = opts.attempts ?? 4;
    this.backoffMs = opts.backoffMs ?? 100;
  }

  /** Creates and confirms the order's payment in one call (idempotent per order). */
  payOrder(orderId: string, amountCents: number, currency: string): Promise<ProviderIntent> {
    return this.call<ProviderIntent>('POST', '/v1/payment_intents', `kindred-order-${orderId}-pay`, {
      amount: amountCents,
      currency: currency.toLowerCase(),
      metadata: { orderId },
      confirm: true,
    });
  }

  /** The order's intents (normally one), for reconciliation after a crash or a lost answer. */
  async intentsOf(orderId: string): Promise<ProviderIntent[]> {
    const list = await this.call<{ data: ProviderIntent[] }>('GET', `/v1/payment_intents?order_id=${encodeURIComponent(orderId)}`);
    return list.data;
  }

  cancel(orderId: string, intentId: string): Promise<ProviderIntent> {
    return this.call<ProviderIntent>('POST', `/v1/payment_intents/${encodeURIComponent(intentId)}/cancel`, `kindred-order-${orderId}-cancel`, {});
  }

  refund(orderId: string, intentId: string): Promise<unknown> {
    return this.call('POST', '/v1/refunds', `kindred-order-${orderId}-refund`, { payment_intent: intentId });
  }

  /** One HTTP exchange with a deadline for the whole of it (connect, send, answer). */
  private send(method: string, path: string, headers: Record<string, string>, body: string | undefined): Promise<{ status: number; text: string }> {
    const lib = this.url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
      const req = lib.request(
        { protocol: this.url.protocol, hostname: this.url.hostname, port: this.url.port, method, path: `${this.url.pathname.replace(/\/$/, '')}${path}`, headers, agent: this.agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
          });
        },
      );
      const timer = setTimeout(() => req.destroy(new TimeoutError(`no answer in ${this.timeoutMs} ms`)), this.timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }

  registerWebhook(url: string): Promise<unknown> {
    return this.call('POST', '/v1/webhook_endpoints', undefined, { url });
  }

  private async call<T>(method: 'GET' | 'POST', path: string, idempotencyKey?: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let last: unknown;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      if (attempt > 0) {
        this.retries++;
        const base = this.backoffMs * 2 ** (attempt - 1);
        await new Promise((r) => setTimeout(r, base * (0.5 + Math.random())));
      }
      try {
        const res = await this.send(method, path, headers, payload);
        if (res.status >= 200 && res.status < 300) return JSON.parse(res.text) as T;
        const err = parseError(res.text);
        if (res.status === 429 || res.status >= 500) {
          last = new KindredError('UNAVAILABLE', `payment provider answered ${res.status}: ${err.message}`);
          continue;
        }
        throw new ProviderRejected(res.status, err.type, err.message);
      } catch (err) {
        if (err instanceof ProviderRejected) throw err;
        if (err instanceof KindredError) {
          last = err;
          continue;
        }
        const name = (err as Error).name;
        last =
          name === 'TimeoutError'
            ? new KindredError('TIMEOUT', `payment provider did not answer in ${this.timeoutMs} ms`)
            : new KindredError('UNAVAILABLE', `payment provider unreachable: ${(err as Error).message}`);
      }
    }
    throw last instanceof KindredError ? last : new KindredError('UNAVAILABLE', 'payment provider unavailable');
  }
}

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

function parseError(text: string): { type: string; message: string } {
  try {
    const e = (JSON.parse(text) as { error?: { type?: string; message?: string } }).error;
    return { type: e?.type ?? 'unknown', message: e?.message ?? text.slice(0, 200) };
  } catch {
    return { type: 'unknown', message: text.slice(0, 200) };
  }
}
