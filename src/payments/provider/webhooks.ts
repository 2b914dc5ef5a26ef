/**
 * Delivers the provider's webhooks from its persisted outbox: signed (webhook-signature.ts),
 * retried with backoff until the endpoint answers 2xx, so an event survives a Kindred
 * outage and a provider restart. Delivery is at least once and in outbox order per round;
 * the receiver must be idempotent.
 */
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
            const res = await fetch(url, {
              method: 'POST',
              headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signWebhook(this.secret, item.body) },
              body: item.body,
              signal: AbortSignal.timeout(5000),
            });
            await res.arrayBuffer();
            ok = res.status >= 200 && res.status < 300;
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
