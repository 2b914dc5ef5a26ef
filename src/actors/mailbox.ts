/**
 * A bounded mailbox processed one message at a time.
 *
 * Overflow policy: reject the new message with OVERLOADED (backpressure reaches the
 * sender, memory stays bounded); messages already accepted are processed, except
 * those whose sender has already given up: a letter past its deadline is dropped
 * unprocessed with TIMEOUT, so a timed-out request never takes effect later and a
 * backlog sheds itself instead of growing.
 *
 * A handler may answer with `later(promise)`: the mailbox moves on to the next
 * message at once and the reply settles when the promise does. Actors use this to
 * release their turn while a durable write completes (the write was already queued
 * in order, so per-actor ordering is kept).
 */
import { KindredError } from '../errors.js';

export class Later<R> {
  constructor(readonly promise: Promise<R>) {}
}

/** Answer with the outcome of `promise` without holding the actor's turn while it settles. */
export function later<R>(promise: Promise<R>): Later<R> {
  return new Later(promise);
}

interface Letter<M, R> {
  msg: M;
  deadline: number;
  resolve: (value: R) => void;
  reject: (err: unknown) => void;
}

export class Mailbox<M, R> {
  private readonly queue: Array<Letter<M, R>> = [];
  private head = 0;
  private running = false;

  constructor(
    private readonly limit: number,
    private readonly process: (msg: M) => Promise<R | Later<R>> | R | Later<R>,
    private readonly now: () => number = Date.now,
  ) {}

  get depth(): number {
    return this.queue.length - this.head + (this.running ? 1 : 0);
  }

  get idle(): boolean {
    return !this.running && this.queue.length === this.head;
  }

  /** `deadline` (epoch ms): after it the letter is dropped unprocessed with TIMEOUT. */
  post(msg: M, deadline = Infinity): Promise<R> {
    if (this.queue.length - this.head >= this.limit) {
      return Promise.reject(new KindredError('OVERLOADED', 'actor mailbox is full'));
    }
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ msg, deadline, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.head < this.queue.length) {
        const letter = this.queue[this.head]!;
        this.queue[this.head++] = undefined as never;
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue.splice(0, this.head);
          this.head = 0;
        }
        if (letter.deadline < this.now()) {
          letter.reject(new KindredError('TIMEOUT', 'the request expired before the actor reached it'));
          continue;
        }
        try {
          const returned = this.process(letter.msg);
          // a handler that answered synchronously needs no extra turn of the microtask queue
          const out = typeof (returned as PromiseLike<unknown> | undefined)?.then === 'function' ? await returned : (returned as R | Later<R>);
          if (out instanceof Later) out.promise.then(letter.resolve, letter.reject);
          else letter.resolve(out);
        } catch (err) {
          // Errors are caught per message: one bad message never stops the actor.
          letter.reject(err);
        }
      }
      this.queue.length = 0;
      this.head = 0;
    } finally {
      this.running = false;
    }
  }
}
