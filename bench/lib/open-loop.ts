/**
 * Open-loop arrivals in one process: in a stream at R per second, event k is due at
 * t0 + k/R and is fired then, whatever happened to earlier ones (no waiting for answers),
 * so a stalled server or a late load generator is charged to every event due during the
 * stall (no coordinated omission). A 1 ms timer fires everything that is due; several
 * streams (chat, swipes, searches, orders) share the one timer.
 */
import { nowMs } from './hist.js';

export interface ArrivalStream {
  /** events per second */
  rate: number;
  /** events in all (0: the stream is off) */
  total: number;
  /** fires event `k`, due at `intended` (epoch ms) */
  fire(k: number, intended: number): void;
}

/** Events in a stream at `rate`/s over `seconds`. */
export function eventsIn(rate: number, seconds: number): number {
  return Math.round(rate * seconds);
}

/** Runs the streams from `t0` (epoch ms) until each has fired `total` events; `onTick` after every timer round. */
export function runOpenLoop(streams: readonly ArrivalStream[], t0: number, onTick?: () => void): Promise<void> {
  const next = streams.map(() => 0);
  const intervals = streams.map((s) => 1000 / s.rate);
  return new Promise<void>((resolve) => {
    const tick = () => {
      const now = nowMs();
      let more = false;
      streams.forEach((s, i) => {
        if (s.total <= 0) return;
        const interval = intervals[i]!;
        const due = Math.min(s.total, Math.floor((now - t0) / interval) + 1);
        while (next[i]! < due) {
          const k = next[i]!++;
          s.fire(k, t0 + k * interval);
        }
        if (next[i]! < s.total) more = true;
      });
      onTick?.();
      if (more) setTimeout(tick, 1);
      else resolve();
    };
    setTimeout(tick, Math.max(0, t0 - nowMs()));
  });
}

/** How many of a stream's events have been fired by now (for progress lines). */
export function firedBy(stream: Pick<ArrivalStream, 'rate' | 'total'>, t0: number, now = nowMs()): number {
  if (stream.total <= 0) return 0;
  return Math.max(0, Math.min(stream.total, Math.floor((now - t0) / (1000 / stream.rate)) + 1));
}
