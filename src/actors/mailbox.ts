/**
 * A bounded mailbox processed one message at a time. Overflow policy: reject the
 * new message with OVERLOADED (backpressure reaches the sender, memory stays
 * bounded); messages already accepted are always processed.
 */
import { KindredError } from '../errors.js';

interface Letter<M, R> {
  msg: M;
  resolve: (value: R) => void;
  reject: (err: unknown) => void;
}

export class Mailbox<M, R> {
  private readonly queue: Array<Letter<M, R>> = [];
  private head = 0;
  private running = false;

  constructor(
    private readonly limit: number,
    private readonly process: (msg: M) => Promise<R> | R,
  ) {}

  get depth(): number {
    return this.queue.length - this.head + (this.running ? 1 : 0);
  }

  get idle(): boolean {
    return !this.running && this.queue.length === this.head;
  }

  post(msg: M): Promise<R> {
    if (this.queue.length - this.head >= this.limit) {
      return Promise.reject(new KindredError('OVERLOADED', 'actor mailbox is full'));
    }
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ msg, resolve, reject });
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
        try {
          letter.resolve(await this.process(letter.msg));
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
