/**
 * Step load: raise the offered rate until a step is not sustainable, then bisect
 * between the last good and the first bad rate. A step is sustainable when
 *   - the median over its measured seconds of each second's p99 delivery latency is
 *     below the limit (100 ms): one bad second on a shared machine does not fail a
 *     step, a server that cannot keep up fails every second;
 *   - every message sent was received (after the drain);
 *   - at least 95% of the measured messages were received within the measured window
 *     plus the drain (a growing backlog fails).
 * Rates grow by `factor` (1.5) from `start`; `refine` (3) bisections then narrow the
 * bracket to about 1.5^(1/8), i.e. 5%, which is what lets two runs agree within ±15%.
 * On a shared machine a neighbour's burst can fail one step anywhere, so a failed step
 * is run once more at the same rate and counts as failed only if that fails too; and
 * the steps start after one unmeasured warm-up phase at the start rate (first
 * messages of each conversation, JIT, caches).
 */
import type { PhaseResult } from './fleet.js';

export interface StepOptions {
  start: number;
  factor: number;
  maxRate: number;
  refine: number;
  limitMs: number;
}

export interface StepVerdict {
  rate: number;
  ok: boolean;
  /** a second attempt at the same rate after a failure */
  retry?: boolean;
  why: string;
  result: PhaseResult;
}

export function judge(r: PhaseResult, limitMs: number): { ok: boolean; why: string } {
  if (r.notReceived > 0) return { ok: false, why: `${r.notReceived} not received` };
  if (r.sentMeasured > 0 && r.receivedMeasured < 0.95 * r.sentMeasured) return { ok: false, why: `received ${r.receivedMeasured} of ${r.sentMeasured}` };
  if (Object.keys(r.errors).length) return { ok: false, why: `errors ${JSON.stringify(r.errors)}` };
  if (!(r.medianSecondP99 < limitMs)) return { ok: false, why: `median per-second p99 ${r.medianSecondP99} ms ≥ ${limitMs} ms` };
  return { ok: true, why: `median per-second p99 ${r.medianSecondP99} ms` };
}

export async function stepLoad(
  run: (rate: number) => Promise<PhaseResult>,
  o: StepOptions,
  log: (s: string) => void,
  warmup?: (rate: number) => Promise<unknown>,
): Promise<{ steps: StepVerdict[]; maxSustainable: number; firstFailing?: number }> {
  const steps: StepVerdict[] = [];
  if (warmup) {
    log(`warm-up phase at ${o.start} msgs/s (not judged)`);
    await warmup(o.start);
  }
  const attempt = async (rate: number, retry: boolean) => {
    const result = await run(rate);
    const v = { rate, ...judge(result, o.limitMs), retry, result };
    steps.push(v);
    log(`step ${rate} msgs/s${retry ? ' (again)' : ''}: ${v.ok ? 'sustained' : 'NOT sustained'} (${v.why}; p99 over the step ${result.latencyMs.p99} ms)`);
    return v.ok;
  };
  const step = async (rate: number) => (await attempt(rate, false)) || (await attempt(rate, true));
  let good = 0;
  let bad: number | undefined;
  for (let rate = o.start; rate <= o.maxRate; rate = Math.round(rate * o.factor)) {
    if (await step(rate)) good = rate;
    else {
      bad = rate;
      break;
    }
  }
  if (bad !== undefined && good > 0) {
    for (let i = 0; i < o.refine; i++) {
      const mid = Math.round((good + bad) / 2);
      if (mid === good || mid === bad) break;
      if (await step(mid)) good = mid;
      else bad = mid;
    }
  }
  return { steps, maxSustainable: good, firstFailing: bad };
}
