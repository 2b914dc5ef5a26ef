/**
 * Chat between matched pairs over lean native connections, message by message, with the
 * bookkeeping that makes a lost-message verdict possible. Used by `chat-native` and `mixed`.
 *
 * Users are given pair by pair (a0, b0, a1, b1, …), one connection each. Message k goes
 * within pair k mod P, alternating direction; its body is `k|<intended send time>|padding`.
 * Delivery latency = receive time at the recipient − intended send time; ack latency =
 * reply to `message.send` − intended send time. Both are recorded only for messages
 * k ≥ `measureFrom` (the warm-up is not counted). Recipients send no receipts.
 */
import type { BenchConn } from './conn.js';
import { Latency, nowMs } from './hist.js';
import { sleep } from './report.js';
import { scrapeMetrics } from './server.js';

export class PairChat {
  readonly delivery = new Latency();
  readonly ack = new Latency();
  /** how late each measured message was sent after its intended time (the load generator's lateness) */
  readonly sendLag = new Latency();
  readonly ackErrors: Record<string, number> = {};
  readonly closes: Record<string, number> = {};
  ackedCount = 0;
  errorCount = 0;
  receivedCount = 0;
  /** messages both acked and received */
  ackedReceived = 0;
  receivedMeasured = 0;
  duplicates = 0;
  misrouted = 0;
  otherEvents = 0;
  lastReceiveAt = 0;
  lastSendAt = 0;
  /** called with each measured delivery latency (ms), e.g. for a per-second timeline */
  onMeasuredDelivery: (ms: number) => void = () => undefined;
  private readonly acked: Uint8Array;
  private readonly received: Uint8Array;
  private readonly pad: string;

  constructor(
    private readonly userIds: readonly string[],
    private readonly conns: readonly BenchConn[],
    /** messages in all */
    readonly total: number,
    /** the first measured message */
    readonly measureFrom: number,
    bodySize: number,
  ) {
    this.acked = new Uint8Array(total);
    this.received = new Uint8Array(total);
    this.pad = 'x'.repeat(Math.max(0, bodySize - 24));
    conns.forEach((c, i) => {
      c.onClose = (reason) => {
        this.closes[reason] = (this.closes[reason] ?? 0) + 1;
      };
      c.onEvent = (e) => this.onEvent(userIds[i]!, e);
    });
  }

  get pairs(): number {
    return this.userIds.length / 2;
  }

  private onEvent(me: string, e: any): void {
    if (e.type !== 'message') {
      this.otherEvents++;
      return;
    }
    const now = nowMs();
    const body = e.message.body as string;
    const a = body.indexOf('|');
    const b = body.indexOf('|', a + 1);
    const k = Number(body.slice(0, a));
    if (e.message.to !== me) this.misrouted++;
    if (this.received[k]) {
      this.duplicates++;
      return;
    }
    this.received[k] = 1;
    this.receivedCount++;
    if (this.acked[k]) this.ackedReceived++;
    if (k >= this.measureFrom) {
      const latency = now - Number(body.slice(a + 1, b));
      this.delivery.recordMs(latency);
      this.onMeasuredDelivery(latency);
      this.receivedMeasured++;
      this.lastReceiveAt = now;
    }
  }

  /** Sends message `k`, due at `intended` (epoch ms). */
  send(k: number, intended: number): void {
    const pairs = this.pairs;
    const p = k % pairs;
    const dir = Math.floor(k / pairs) & 1;
    const from = this.conns[2 * p + dir]!;
    const to = this.userIds[2 * p + 1 - dir]!;
    const sentAt = nowMs();
    if (k >= this.measureFrom) this.sendLag.recordMs(sentAt - intended);
    this.lastSendAt = sentAt;
    from.call('message.send', { to, body: `${k}|${intended.toFixed(3)}|${this.pad}` }, (err) => {
      const now = nowMs();
      if (err) {
        this.errorCount++;
        this.ackErrors[err.code] = (this.ackErrors[err.code] ?? 0) + 1;
        return;
      }
      this.acked[k] = 1;
      this.ackedCount++;
      if (this.received[k]) this.ackedReceived++;
      if (k >= this.measureFrom) this.ack.recordMs(now - intended);
    });
  }

  /** every message of `sent` answered, and every acknowledged one delivered */
  settled(sent = this.total): boolean {
    return this.ackedCount + this.errorCount >= sent && this.ackedReceived >= this.ackedCount;
  }

  /** a number that grows while anything still arrives (acks, errors, deliveries) */
  progress(): number {
    return this.ackedCount + this.errorCount + this.receivedCount;
  }

  /**
   * After the run, over the first `sent` messages: acknowledged but not received; neither
   * acknowledged nor refused; and refused or timed out but delivered anyway.
   */
  outcome(sent = this.total): { notReceived: number; unacked: number; receivedUnacked: number } {
    let notReceived = 0;
    let unacked = 0;
    let receivedUnacked = 0;
    for (let i = 0; i < sent; i++) {
      if (this.acked[i] && !this.received[i]) notReceived++;
      if (!this.acked[i]) {
        unacked++;
        if (this.received[i]) receivedUnacked++;
      }
    }
    return { notReceived, unacked: unacked - this.errorCount, receivedUnacked };
  }
}

/**
 * After the last send: waits until `settled()`, or until nothing progressed for 3 s and the
 * server's actor mailboxes are empty (`kindred_mailbox_depth` on /metrics), or `seconds`
 * passed (an overloaded server may still hold a backlog then). `onSettled` runs once, the
 * moment everything settled (to close a cost window there). Returns how long it waited and
 * the mailbox depth last read (NaN if never read).
 */
export async function drain(o: {
  settled: () => boolean;
  progress: () => number;
  seconds: number;
  base: string;
  onSettled?: () => void;
}): Promise<{ seconds: number; mailboxDepth: number }> {
  const start = nowMs();
  const deadline = start + o.seconds * 1000;
  let lastProgress = nowMs();
  let seen = -1;
  let mailboxDepth = NaN;
  while (nowMs() < deadline) {
    if (o.settled()) {
      o.onSettled?.();
      break;
    }
    const progress = o.progress();
    if (progress !== seen) {
      seen = progress;
      lastProgress = nowMs();
    } else if (nowMs() - lastProgress > 3000) {
      mailboxDepth = (await scrapeMetrics(o.base).catch(() => ({}) as Record<string, number>))['kindred_mailbox_depth'] ?? NaN;
      if (mailboxDepth === 0) break;
    }
    await sleep(20);
  }
  return { seconds: (nowMs() - start) / 1000, mailboxDepth };
}
