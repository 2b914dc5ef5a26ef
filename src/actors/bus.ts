/**
 * The message bus between actors, sessions and nodes. Embedded mode uses LocalBus
 * (in-process); cluster mode a NATS implementation with the same contract.
 *
 * Contract (both implementations):
 * - payloads are plain data and are serialised with msgpack on every hop, so no
 *   object reference ever crosses from one actor or node to another; the one
 *   exception is a payload (or reply) its owner explicitly hands over with
 *   `handOver()`: see there;
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

/**
 * A payload or reply its owner hands over to the bus: plain data (what msgpack would
 * carry) that the owner keeps no reference to, so it will never read or change it
 * again. Nobody else can then see the object, and a bus inside one process (LocalBus)
 * passes it to its one receiver as it is instead of a msgpack copy: the chat path
 * crosses the bus four times per message, and those copies were ~12% of its CPU. A
 * bus that crosses processes (NatsBus) serialises it as always. Publishing to several
 * subscribers gives the first the object and the others copies, as before.
 */
export class HandOver<T = unknown> {
  constructor(readonly value: T) {}
}

/** Wraps `value` as handed over (see HandOver): for `publish`, `request` and a handler's return value. */
export function handOver<T>(value: T): HandOver<T> {
  return new HandOver(value);
}

/** The payload itself, whether or not it was handed over (for buses that serialise it anyway). */
export function unwrapHandOver(payload: unknown): unknown {
  return payload instanceof HandOver ? payload.value : payload;
}

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
    // A handed-over payload goes as it is to the first receiver; any other gets a copy
    // (made here, before any receiver runs: handlers are called in later microtasks).
    const handedOver = payload instanceof HandOver;
    const value = handedOver ? payload.value : payload;
    let first = handedOver;
    let bytes: Uint8Array | undefined;
    // Queue groups get one delivery each, plain subscribers every message: as NATS does.
    let seenQueues: Set<string> | undefined;
    for (const sub of list) {
      if (sub.queue) {
        seenQueues ??= new Set<string>();
        if (seenQueues.has(sub.queue)) continue;
        seenQueues.add(sub.queue);
      }
      let copy: unknown;
      if (first) {
        copy = value;
        first = false;
      } else copy = packr.unpack((bytes ??= packr.pack(value)));
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

  request(subject: string, payload: unknown, timeoutMs: number): Promise<unknown> {
    const list = this.subs.get(subject);
    if (!list || list.length === 0 || this.closed) return Promise.reject(new KindredError('UNAVAILABLE', `no responder for ${subject}`));
    const sub = list[this.rr++ % list.length]!;
    let arg: unknown;
    try {
      arg = payload instanceof HandOver ? payload.value : packr.unpack(packr.pack(payload));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<unknown>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new KindredError('TIMEOUT', `no reply from ${subject} in ${timeoutMs} ms`));
      }, timeoutMs);
      const answer = (value: unknown) => {
        if (settled) return; // a late reply is dropped, as on NATS
        settled = true;
        clearTimeout(timer);
        try {
          // the reply is a copy unless the handler handed it over
          resolve(value instanceof HandOver ? value.value : decodeReply(packr.unpack(packr.pack({ ok: value })) as ReplyEnvelope));
        } catch (err) {
          reject(err);
        }
      };
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          decodeReply(encodeError(err));
        } catch (mapped) {
          reject(mapped);
        }
      };
      // Dispatched as a microtask like publish(), so a sender's tells and asks to one
      // subject reach the handler in the order they were sent (as on NATS).
      queueMicrotask(() => {
        let out: unknown;
        try {
          out = sub.handler(arg, subject);
        } catch (err) {
          fail(err);
          return;
        }
        if (typeof (out as PromiseLike<unknown> | undefined)?.then === 'function') Promise.resolve(out).then(answer, fail);
        else answer(out);
      });
    });
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
