/**
 * Per-second figures of a run with several parts (chat, swipes, searches, orders): how many
 * operations of each part completed in each second, and that second's p99 latency. Parts
 * record their latencies as they complete; a 1 s timer closes the second. For the HTML report.
 */
import type { Series } from './html.js';
import { Latency, nowMs } from './hist.js';

export interface TimelinePoint {
  /** seconds since the run started */
  t: number;
  parts: Record<string, { count: number; p99: number }>;
}

export class Timeline {
  readonly points: TimelinePoint[] = [];
  private current = new Map<string, Latency>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly parts: readonly string[],
    private readonly t0 = nowMs(),
  ) {}

  record(part: string, ms: number): void {
    let h = this.current.get(part);
    if (!h) this.current.set(part, (h = new Latency()));
    h.recordMs(ms);
  }

  start(): this {
    this.timer = setInterval(() => this.flush(), 1000);
    this.timer.unref();
    return this;
  }

  private flush(): void {
    const parts: TimelinePoint['parts'] = {};
    for (const name of this.parts) {
      const s = this.current.get(name)?.summary();
      parts[name] = { count: s?.count ?? 0, p99: s?.p99 ?? 0 };
    }
    this.points.push({ t: Math.round((nowMs() - this.t0) / 100) / 10, parts });
    this.current = new Map();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** operations/s per part */
  throughput(): Series[] {
    return this.parts.map((name) => ({ name, points: this.points.map((p) => [p.t, p.parts[name]!.count] as [number, number]) }));
  }

  /** each second's p99 per part (seconds without a completion left out) */
  p99(): Series[] {
    return this.parts.map((name) => ({ name, points: this.points.filter((p) => p.parts[name]!.count > 0).map((p) => [p.t, p.parts[name]!.p99] as [number, number]) }));
  }
}
