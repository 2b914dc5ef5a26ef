/**
 * The message bus between actors, sessions and nodes. Embedded mode uses LocalBus
 * (in-process); cluster mode a NATS implementation with the same contract.
 *
 * Contract (both implementations):
 * - payloads are plain data and are serialised with msgpack on every hop, so no
 *   object reference ever crosses from one actor or node to another;
 * - `publish` is fire-and-forget to every subscriber of the subject;
 * - `request` goes to one subscriber and resolves with its handler's return value;
 *   a handler that throws a KindredError rejects the request with the same code;
 *   no subscriber → UNAVAILABLE; no reply in time → TIMEOUT.
 */
import { Packr } from 'msgpackr';
import { KindredError, toKindredError, isErrorCode } from '../errors.js';

export type Handler = (payload: unknown, subject: string) => unknown | Promise<unknown>;

export interface Subscription {
  unsubscribe(): void;
}

export interface Bus {
  publish(subject: string, payload: unknown): void;
  request(subject: string, payload: unknown, timeoutMs: number): Promise<unknown>;
  /** `queue` subscribers share the load (one of them gets each message), like NATS queue groups. */
  subscribe(subject: string, handler: Handler, opts?: { queue?: string }): Subscription;
  close(): Promise<void>;
}

/** Reply envelope, shared with the NATS bus. */
export type ReplyEnvelope = { ok: unknown } | { err: { code: string; message: string } };

export const packr = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true } as ConstructorParameters<typeof Packr>[0]);

export function encodeError(err: unknown): ReplyEnvelope {
  const k = toKindredError(err);
  return { err: { code: k.code, message: k.message } };
}

export function decodeReply(envelope: ReplyEnvelope): unknown {
  if ('err' in envelope) {
    const code = isErrorCode(envelope.err.code) ? envelope.err.code : 'INTERNAL';
    throw new KindredError(code, envelope.err.message);
  }
  return envelope.ok;
}

interface LocalSub {
  handler: Handler;
  queue?: string;
}

export class LocalBus implements Bus {
  private readonly subs = new Map<string, LocalSub[]>();
  private closed = false;
  private rr = 0;

  publish(subject: string, payload: unknown): void {
    const list = this.subs.get(subject);
    if (!list || this.closed) return;
    const bytes = packr.pack(payload);
    // Queue groups get one delivery each, plain subscribers every message: as NATS does.
    const seenQueues = new Set<string>();
    for (const sub of list) {
      if (sub.queue) {
        if (seenQueues.has(sub.queue)) continue;
        seenQueues.add(sub.queue);
      }
      const copy = packr.unpack(bytes);
      queueMicrotask(() => {
        try {
          const r = sub.handler(copy, subject);
          if (r instanceof Promise) r.catch(() => undefined);
        } catch {
          /* a subscriber's failure must not affect the publisher */
        }
      });
    }
  }

  async request(subject: string, payload: unknown, timeoutMs: number): Promise<unknown> {
    const list = this.subs.get(subject);
    if (!list || list.length === 0 || this.closed) throw new KindredError('UNAVAILABLE', `no responder for ${subject}`);
    const sub = list[this.rr++ % list.length]!;
    const copy = packr.unpack(packr.pack(payload));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new KindredError('TIMEOUT', `no reply from ${subject} in ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      let envelope: ReplyEnvelope;
      try {
        // Dispatched as a microtask like publish(), so a sender's tells and asks to one
        // subject reach the handler in the order they were sent (as on NATS).
        const handled = new Promise<unknown>((resolve, reject) =>
          queueMicrotask(() => {
            try {
              resolve(sub.handler(copy, subject));
            } catch (err) {
              reject(err);
            }
          }),
        );
        envelope = { ok: await Promise.race([handled, timeout]) };
      } catch (err) {
        if (err instanceof KindredError && err.code === 'TIMEOUT') throw err;
        envelope = encodeError(err);
      }
      return decodeReply(packr.unpack(packr.pack(envelope)) as ReplyEnvelope);
    } finally {
      clearTimeout(timer);
    }
  }

  subscribe(subject: string, handler: Handler, opts: { queue?: string } = {}): Subscription {
    const entry: LocalSub = { handler, queue: opts.queue };
    const list = this.subs.get(subject) ?? [];
    list.push(entry);
    this.subs.set(subject, list);
    return {
      unsubscribe: () => {
        const current = this.subs.get(subject);
        if (!current) return;
        const next = current.filter((s) => s !== entry);
        if (next.length) this.subs.set(subject, next);
        else this.subs.delete(subject);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subs.clear();
  }
}
