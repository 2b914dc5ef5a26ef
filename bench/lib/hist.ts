/**
 * Latency recording with HdrHistogram (hdr-histogram-js): values are recorded in
 * microseconds and summarised in milliseconds.
 */
import { build, decodeFromCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface LatencySummary {
  count: number;
  /** all in milliseconds */
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export class Latency {
  private readonly h: Histogram = build({
    bitBucketSize: 64,
    autoResize: true,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });

  /** Records one latency given in milliseconds (negative values, from clock jitter, count as 0). */
  recordMs(ms: number): void {
    this.h.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  get count(): number {
    return this.h.totalCount;
  }

  /** the underlying HdrHistogram (values in µs), e.g. to encode it for another process */
  get histogram(): Histogram {
    return this.h;
  }

  /** Adds a histogram encoded with encodeIntoCompressedBase64 (from a worker process). */
  addEncoded(b64: string): this {
    const other = decodeFromCompressedBase64(b64, 64, false);
    if (other.totalCount > 0) this.h.add(other);
    return this;
  }

  add(other: Latency): this {
    if (other.count > 0) this.h.add(other.h);
    return this;
  }

  /** [percentile, ms] pairs for a percentile distribution chart */
  distribution(percentiles: readonly number[] = [0, 50, 75, 90, 95, 99, 99.9, 99.99, 100]): Array<[number, number]> {
    if (this.h.totalCount === 0) return [];
    return percentiles.map((p) => [p, Math.round(this.h.getValueAtPercentile(p)) / 1000]);
  }

  summary(): LatencySummary {
    const h = this.h;
    const ms = (us: number) => Math.round(us) / 1000;
    if (h.totalCount === 0) return { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
    return {
      count: h.totalCount,
      mean: ms(h.mean),
      p50: ms(h.getValueAtPercentile(50)),
      p90: ms(h.getValueAtPercentile(90)),
      p99: ms(h.getValueAtPercentile(99)),
      p999: ms(h.getValueAtPercentile(99.9)),
      max: ms(h.maxValue),
    };
  }
}

/** Wall clock with sub-millisecond resolution, in ms since the epoch (one clock for a whole process). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Watches this process's event-loop delay (the load generator's own lateness). */
export function watchLoopDelay(): { stop(): { p50: number; p99: number; max: number } } {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  return {
    stop() {
      h.disable();
      const ms = (ns: number) => Math.round(ns / 1e4) / 100;
      return { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) };
    },
  };
}
