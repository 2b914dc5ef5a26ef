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
 *
 * A step that fails while other processes on the machine used more than `busyCores`
 * (measured by the caller over that step) says more about the neighbours than about the
 * server: it is repeated, up to `busyRetries` more times after a pause, and only a failure
 * measured on a quiet enough machine (or the last try) counts. Each verdict records the
 * other tenants' CPU, so a report shows which steps ran on a busy machine.
 */
import type { PhaseResult } from './fleet.js';

export interface StepOptions {
  start: number;
  factor: number;
  maxRate: number;
  refine: number;
  limitMs: number;
  /** other tenants' CPU (cores) above which a failed step is not trusted (default: no limit) */
  busyCores?: number;
  /** how many more times a step that failed on a busy machine is run (default 3) */
  busyRetries?: number;
  /** pause before repeating a step that failed on a busy machine (default 10 s) */
  busyPauseMs?: number;
}

/** One measured step, with the CPU other processes used while it ran (when the caller measured it). */
export type StepRun = PhaseResult & { otherCores?: number };

export interface StepVerdict {
  rate: number;
  ok: boolean;
  /** a second attempt at the same rate after a failure */
  retry?: boolean;
  /** other tenants' CPU during the step, cores */
  otherCores?: number;
  /** failed while the machine was busy: repeated instead of judged */
  busy?: boolean;
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
  run: (rate: number) => Promise<StepRun>,
  o: StepOptions,
  log: (s: string) => void,
  warmup?: (rate: number) => Promise<unknown>,
): Promise<{ steps: StepVerdict[]; maxSustainable: number; firstFailing?: number }> {
  const steps: StepVerdict[] = [];
  if (warmup) {
    log(`warm-up phase at ${o.start} msgs/s (not judged)`);
    await warmup(o.start);
  }
  const attempt = async (rate: number, retry: boolean): Promise<boolean> => {
    let busyLeft = o.busyRetries ?? 3;
    for (;;) {
      const { otherCores, ...result } = await run(rate);
      const verdict = judge(result, o.limitMs);
      const busy = !verdict.ok && o.busyCores !== undefined && otherCores !== undefined && otherCores > o.busyCores && busyLeft > 0;
      const v: StepVerdict = { rate, ...verdict, retry, ...(otherCores !== undefined ? { otherCores } : {}), ...(busy ? { busy } : {}), result };
      steps.push(v);
      const others = otherCores !== undefined ? `; other tenants ${otherCores.toFixed(2)} cores` : '';
      const outcome = v.ok ? 'sustained' : busy ? 'failed on a busy machine, will be repeated' : 'NOT sustained';
      log(`step ${rate} msgs/s${retry ? ' (again)' : ''}: ${outcome} (${v.why}; p99 over the step ${result.latencyMs.p99} ms${others})`);
      if (!busy) return v.ok;
      busyLeft--;
      await new Promise((r) => setTimeout(r, o.busyPauseMs ?? 10_000));
    }
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
