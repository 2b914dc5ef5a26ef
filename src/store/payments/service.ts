/**
 * The Payment service: the adapter between Kindred and the payment provider. It answers
 * PaymentsRequest on SUBJECTS.payments (queue group `payments`, so in a cluster any node
 * answers), turns provider intents into PaymentOutcome, and turns verified webhooks into
 * PaymentEvent on PAYMENT_EVENTS_SUBJECT for the Orders service. It keeps no state of its
 * own: the provider is the record of payments, found again by the order's id.
 */
import { handOver, type Bus, type Subscription } from '../../actors/bus.js';
import { KindredError } from '../../errors.js';
import { verifyWebhook } from '../../payments/webhook-signature.js';
import { PAYMENT_EVENTS_SUBJECT, SUBJECTS, type PaymentEvent, type PaymentOutcome, type PaymentsRequest } from '../contracts.js';
import { ProviderRejected, type ProviderClient, type ProviderIntent } from './provider-client.js';

export interface PaymentsServiceDeps {
  bus: Bus;
  client: ProviderClient;
  webhookSecret: string;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
}

export function outcomeOf(intent: ProviderIntent): PaymentOutcome {
  switch (intent.status) {
    case 'succeeded':
      return { status: 'succeeded', intentId: intent.id };
    case 'declined':
      return { status: 'declined', intentId: intent.id, reason: intent.last_payment_error?.code ?? 'declined' };
    case 'canceled':
      return { status: 'canceled', intentId: intent.id };
    case 'refunded':
      return { status: 'refunded', intentId: intent.id };
    case 'processing':
    case 'requires_confirmation':
      return { status: 'processing', intentId: intent.id };
  }
}

/** The most advanced of an order's intents (there is normally one: creation is idempotent per order). */
function decisive(intents: ProviderIntent[]): ProviderIntent | undefined {
  const rank: Record<ProviderIntent['status'], number> = { refunded: 6, succeeded: 5, processing: 4, requires_confirmation: 3, declined: 2, canceled: 1 };
  return [...intents].sort((a, b) => rank[b.status] - rank[a.status])[0];
}

export class PaymentsService {
  private sub: Subscription | undefined;
  /** webhook event ids seen recently: a redelivery is acknowledged without being published again */
  private readonly seen = new Set<string>();

  constructor(private readonly deps: PaymentsServiceDeps) {}

  start(): void {
    // Every reply is built for this one request, so it is handed over, not copied (bus.ts HandOver).
    this.sub = this.deps.bus.subscribe(SUBJECTS.payments, (payload) => this.handle(payload as PaymentsRequest).then(handOver), { queue: 'payments' });
  }

  stop(): void {
    this.sub?.unsubscribe();
  }

  async handle(req: PaymentsRequest): Promise<PaymentOutcome | { received: true }> {
    const { client } = this.deps;
    try {
      switch (req.op) {
        case 'webhook':
          return this.webhook(req.body, req.signature);
        case 'charge':
          return outcomeOf(await client.payOrder(req.orderId, req.amountCents, req.currency));
        case 'status':
          return this.status(req.orderId);
        case 'cancel': {
          const intent = decisive(await client.intentsOf(req.orderId));
          if (!intent) return { status: 'none' };
          if (intent.status === 'requires_confirmation' || intent.status === 'processing') return outcomeOf(await client.cancel(req.orderId, intent.id));
          return outcomeOf(intent);
        }
        case 'refund': {
          const intent = decisive(await client.intentsOf(req.orderId));
          if (!intent) return { status: 'none' };
          if (intent.status === 'succeeded') {
            await client.refund(req.orderId, intent.id);
            return { status: 'refunded', intentId: intent.id };
          }
          return outcomeOf(intent);
        }
      }
    } catch (err) {
      if (err instanceof ProviderRejected) {
        // The provider refused the request itself (a bug or a misconfiguration here): not retryable.
        throw new KindredError('INVALID_ARGUMENT', `payment provider refused: ${err.message}`);
      }
      throw err;
    }
  }

  private async status(orderId: string): Promise<PaymentOutcome> {
    const intent = decisive(await this.deps.client.intentsOf(orderId));
    return intent ? outcomeOf(intent) : { status: 'none' };
  }

  /**
   * A webhook from the provider: verified (HMAC over timestamp and body), then published
   * for the Orders service. Idempotent: a redelivered event changes nothing downstream,
   * where every order transition is a compare-and-set. FORBIDDEN for a bad signature.
   */
  webhook(body: string, signature: string): { received: true } {
    if (!signature || !verifyWebhook(this.deps.webhookSecret, body, signature)) {
      throw new KindredError('FORBIDDEN', 'webhook signature missing, invalid or too old');
    }
    let event: { id?: unknown; type?: unknown; data?: { object?: ProviderIntent } };
    try {
      event = JSON.parse(body) as typeof event;
    } catch {
      throw new KindredError('BAD_REQUEST', 'webhook body is not JSON');
    }
    const intent = event.data?.object;
    const orderId = intent?.metadata?.orderId;
    if (typeof event.id !== 'string' || !intent || typeof orderId !== 'string') {
      throw new KindredError('INVALID_ARGUMENT', 'webhook event without id, intent or orderId');
    }
    if (this.seen.has(event.id)) return { received: true };
    this.seen.add(event.id);
    if (this.seen.size > 100_000) this.seen.delete(this.seen.values().next().value as string);
    const out: PaymentEvent = { type: 'payment.updated', orderId, outcome: outcomeOf(intent) };
    this.deps.bus.publish(PAYMENT_EVENTS_SUBJECT, handOver(out));
    return { received: true };
  }
}
