/**
 * Per-stream limits: a token bucket on inbound top-level elements (over the rate, processing
 * waits, and a TCP reader stops reading; the queue in front of it is bounded), and the check
 * that closes a stalled writer. Stanza size is capped in the parser (parser.ts).
 */
/**
 * A token bucket (its own, not the domain's TokenBucket: it must tell when it is full again, so
 * an idle session can drop it — a full bucket is the same as a new one).
 */
export class StanzaRateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** 0 if an element may be handled now, else how many ms to wait before asking again. */
  delayMs(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(1000 / this.perSecond));
  }

  /** the bucket has refilled by `now`: forgetting it changes nothing */
  isFull(now: number): boolean {
    return this.tokens + ((now - this.last) / 1000) * this.perSecond >= this.burst;
  }
}

/** Inbound queue bounds per stream. */
export const INBOX = {
  /** stop reading (TCP) at this many queued elements */
  pauseAt: 32,
  /** start again at */
  resumeAt: 8,
  /** beyond this the stream fails with <policy-violation/> (a WebSocket cannot be paused) */
  hardLimit: 1000,
} as const;

/** Events queued for a session beyond this mean it cannot keep up: it is closed. */
export const MAX_QUEUED_EVENTS = 5000;

/** True if a writer with this many bytes still unsent has stalled. */
export function writerStalled(bufferedBytes: number, maxSendBufferBytes: number): boolean {
  return bufferedBytes > maxSendBufferBytes;
}
