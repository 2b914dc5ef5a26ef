/**
 * Delivers the provider's webhooks from its persisted outbox: signed (webhook-signature.ts),
 * retried with backoff until the endpoint answers 2xx, so an event survives a Kindred
 * outage and a provider restart. Delivery is at least once and in outbox order per round;
 * the receiver must be idempotent.
 */
import http from 'node:http';
import https from 'node:https';
import { signWebhook, SIGNATURE_HEADER } from '../webhook-signature.js';
import type { ProviderStore } from './store.js';

const BATCH = 256;
const CONCURRENCY = 32;

export class WebhookSender {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private again = false;
  private stopped = false;
  /** outbox id → earliest next attempt (ms), after a failed delivery */
  private readonly backoff = new Map<number, number>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  private readonly tlsAgent = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

  constructor(
    private readonly store: ProviderStore,
    private readonly secret: string,
    private readonly log: (msg: string) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), 250);
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.agent.destroy();
  }

  /**
   * One signed delivery over a keep-alive connection (node:http: at hundreds of webhooks per
   * second fetch cost this process several times the CPU, on the same cores as the server).
   * Resolves with the status once the answer is read; rejects on a network error or after 5 s.
   */
  private post(url: string, body: string): Promise<number> {
    const u = new URL(url);
    const lib = u.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(
        {
          protocol: u.protocol,
          hostname: u.hostname,
          port: u.port,
          path: `${u.pathname}${u.search}`,
          method: 'POST',
          agent: u.protocol === 'https:' ? this.tlsAgent : this.agent,
          headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), [SIGNATURE_HEADER]: signWebhook(this.secret, body) },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            clearTimeout(timer);
            resolve(res.statusCode ?? 0);
          });
          res.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
          });
        },
      );
      const timer = setTimeout(() => req.destroy(new Error('webhook endpoint did not answer in 5 s')), 5000);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(body);
    });
  }

  /** Sends what is owed now (coalesced: one round at a time). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.round()
      .catch((err: unknown) => this.log(`webhook round failed: ${String(err)}`))
      .finally(() => {
        this.running = false;
        if (this.again && !this.stopped) {
          this.again = false;
          setImmediate(() => this.kick());
        }
      });
  }

  private async round(): Promise<void> {
    const url = this.store.setting('webhook_url');
    if (!url) return;
    const now = Date.now();
    const due = this.store.outbox(BATCH).filter((item) => (this.backoff.get(item.id) ?? 0) <= now);
    for (let i = 0; i < due.length; i += CONCURRENCY) {
      await Promise.all(
        due.slice(i, i + CONCURRENCY).map(async (item) => {
          if (this.stopped) return;
          let ok = false;
          try {
            const status = await this.post(url, item.body);
            ok = status >= 200 && status < 300;
          } catch {
            ok = false;
          }
          if (this.stopped) return;
          if (ok) {
            this.store.webhookDelivered(item.id);
            this.backoff.delete(item.id);
          } else {
            this.store.webhookAttempted(item.id);
            const delay = Math.min(30_000, 250 * 2 ** Math.min(item.attempts, 7));
            this.backoff.set(item.id, Date.now() + delay);
          }
        }),
      );
    }
  }
}
