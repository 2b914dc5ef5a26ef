/**
 * The step-load procedure on a simulated server (no sockets): where it lands, and that a
 * step failed on a busy machine is repeated instead of ending the search.
 */
import t from 'tap';
import type { PhaseResult } from '../../bench/lib/fleet.js';
import { stepLoad, type StepOptions, type StepRun } from '../../bench/lib/step-load.js';

/** A phase result for a server with capacity `capacity` msgs/s offered `rate`. */
function phase(rate: number, capacity: number): PhaseResult {
  const p99 = rate <= capacity ? 20 : 2000;
  return {
    offeredRate: rate,
    warmup: 0,
    duration: 10,
    pairs: 10,
    sent: rate * 10,
    sentMeasured: rate * 10,
    received: rate * 10,
    receivedMeasured: rate * 10,
    deliveredPerSecond: rate,
    notReceived: 0,
    duplicates: 0,
    late: 0,
    errors: {},
    closes: {},
    maxSendLagMs: 0,
    latencyMs: { p50: 5, p90: 10, p99, max: p99 } as PhaseResult['latencyMs'],
    distribution: [],
    medianSecondP99: p99,
    timeline: [],
    loadGenCpuSeconds: 0,
  };
}

const opts: StepOptions = { start: 100, factor: 1.5, maxRate: 100_000, refine: 3, limitMs: 100, busyCores: 0.5, busyRetries: 3, busyPauseMs: 1 };
const quiet = () => {};

t.test('lands just under the capacity, the same on every run', async (t) => {
  const results: number[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await stepLoad(async (rate): Promise<StepRun> => ({ ...phase(rate, 1000), otherCores: 0.1 }), opts, quiet);
    results.push(r.maxSustainable);
    t.ok(r.maxSustainable <= 1000, `sustained ${r.maxSustainable} ≤ capacity`);
    t.ok(r.maxSustainable >= 900, `within ~10% of the capacity (${r.maxSustainable})`);
    t.ok(r.firstFailing! > 1000, 'the first failing rate is above the capacity');
  }
  t.equal(results[0], results[1]);
});

t.test('a step failed while neighbours used the CPU is repeated, not judged', async (t) => {
  // The first step at or above 700 msgs/s (a rate the server sustains) meets a neighbour's burst.
  let burstAt: number | undefined;
  const r = await stepLoad(
    async (rate): Promise<StepRun> => {
      if (rate >= 700 && burstAt === undefined) {
        burstAt = rate;
        return { ...phase(rate, 0), otherCores: 1.6 };
      }
      return { ...phase(rate, 1000), otherCores: 0.1 };
    },
    opts,
    quiet,
  );
  const atBurst = r.steps.filter((s) => s.rate === burstAt);
  t.equal(atBurst.length, 2, `${burstAt} msgs/s run twice`);
  t.equal(atBurst[0]!.busy, true, 'the first marked busy');
  t.equal(atBurst[1]!.ok, true, 'the repeat sustained');
  t.ok(r.maxSustainable >= 900, `the search went on past it (${r.maxSustainable})`);
});

t.test('a failure on a quiet machine is judged (retried once), and busy retries are bounded', async (t) => {
  let calls = 0;
  const always = await stepLoad(
    async (rate): Promise<StepRun> => {
      calls++;
      return { ...phase(rate, 0), otherCores: 1.9 };
    },
    { ...opts, start: 100 },
    quiet,
  );
  t.equal(always.maxSustainable, 0);
  // one step, its retry, each repeated at most busyRetries (3) times on a busy machine
  t.equal(calls, 2 * (1 + 3), 'bounded repeats');
  const quietFail = await stepLoad(async (rate): Promise<StepRun> => ({ ...phase(rate, 0), otherCores: 0.1 }), opts, quiet);
  t.equal(quietFail.steps.length, 2, 'a quiet failure: the step and its one retry');
  t.notOk(quietFail.steps.some((s) => s.busy));
});
