/**
 * swipes: M users with profiles, each online over one native connection, swipe
 * random other users (like with probability --like, else pass) as fast as the
 * server answers, with a bound of --concurrency swipes in flight in total (closed
 * loop: each of C workers sends a swipe, waits for its answer, sends the next).
 * A random swiper per swipe keeps each connection's in-flight count far below the
 * server's 64-per-connection limit. Mutual likes make matches, whose events are
 * pushed to both (online) users as in reality.
 *
 * Latency = answer time - send time of each swipe (closed loop, so it is service
 * time under this concurrency, not a fixed-rate figure).
 */
import type { Options } from '../lib/args.js';
import { Latency, nowMs, watchLoopDelay } from '../lib/hist.js';
import { ProcSampler, round, summarizeSamples } from '../lib/proc.js';
import { fmt, log, ms, printTable, sleep } from '../lib/report.js';
import { CostWindow, onlineProfiles, scenarioFlags, serverCost, serverCostRows, withScenarioServer, writeScenarioResult } from '../lib/scenario.js';
import { scrapeMetrics } from '../lib/server.js';

export async function swipes(o: Options): Promise<void> {
  const userCount = o.num('users', 1000);
  const concurrency = o.num('concurrency', 128);
  const duration = o.num('duration', 20);
  const warmup = o.num('warmup', 3);
  const likeShare = o.num('like', 0.5);
  const protocol = o.str('protocol', 'ws', ['ws', 'tcp'] as const);
  const flags = scenarioFlags(o);
  o.checkUnknown();
  if (userCount < 2) throw new Error('--users must be at least 2');

  await withScenarioServer(flags, {}, async ({ server, machine, conns }) => {
    const { users, register, profile, connectSeconds } = await onlineProfiles(server.base, server, conns, { count: userCount, prefix: 'swiper', protocol, setupConcurrency: flags.setupConcurrency });
    const ids = users.map((u) => u.userId);

    const latency = new Latency();
    const errors: Record<string, number> = {};
    const closes: Record<string, number> = {};
    let ok = 0;
    let okMeasured = 0;
    let likes = 0;
    let matched = 0;
    let matchEvents = 0;
    let otherEvents = 0;
    for (const c of conns) {
      c.onEvent = (e) => (e.type === 'match' ? matchEvents++ : otherEvents++);
      c.onClose = (reason) => (closes[reason] = (closes[reason] ?? 0) + 1);
    }

    const cost = new CostWindow(server.pid);
    const sampler = new ProcSampler(server.pid).start();
    const loop = watchLoopDelay();
    const start = nowMs();
    const measureStart = start + warmup * 1000;
    const end = measureStart + duration * 1000;
    log(`swiping for ${warmup} + ${duration} s with ${concurrency} in flight`);
    await new Promise<void>((resolve) => {
      let running = concurrency;
      const next = () => {
        const now = nowMs();
        if (now >= measureStart) cost.open();
        if (now >= end) {
          if (--running === 0) resolve();
          return;
        }
        const s = Math.floor(Math.random() * userCount);
        let t = Math.floor(Math.random() * (userCount - 1));
        if (t >= s) t++;
        const kind = Math.random() < likeShare ? 'like' : 'pass';
        const sentAt = now;
        conns[s]!.call('swipe', { targetId: ids[t], kind }, (err, result) => {
          const done = nowMs();
          if (err) errors[err.code] = (errors[err.code] ?? 0) + 1;
          else {
            ok++;
            if (kind === 'like') likes++;
            if (result?.matched) matched++;
            if (sentAt >= measureStart) {
              okMeasured++;
              latency.recordMs(done - sentAt);
            }
          }
          if (err?.code === 'CLOSED') setTimeout(next, 10);
          else next();
        });
      };
      for (let i = 0; i < concurrency; i++) next();
    });
    cost.close();
    sampler.stop();
    const loadGenLoopDelay = loop.stop();
    await sleep(200); // let the last match events arrive
    const measuredSeconds = (nowMs() - 200 - measureStart) / 1000;
    const l = latency.summary();
    const metrics = await scrapeMetrics(server.base).catch((err) => ({ error: String(err) }));
    const results = {
      swipes: ok,
      swipesMeasured: okMeasured,
      swipesPerSecond: Math.round(okMeasured / measuredSeconds),
      measuredSeconds: round(measuredSeconds, 2),
      latencyMs: l,
      errors,
      likes,
      matchedAnswers: matched,
      matchEvents,
      otherEvents,
      connectionsClosed: closes,
      ...serverCost(cost, server.pid, 'swipesPerServerCpuSecond', {
        ops: okMeasured,
        measuredSeconds,
        loadGenLoopDelayMs: loadGenLoopDelay,
        contention: summarizeSamples(sampler.samples, warmup, warmup + duration),
        serverLog: server.problems(),
        serverMetrics: metrics,
      }),
    };
    printTable(`swipes: ${userCount} users over ${protocol}, ${concurrency} in flight, ${duration} s, ${Math.round(likeShare * 100)}% likes`, [
      ['setup', `${fmt(register.perSecond)} reg/s, ${fmt(profile.perSecond)} profiles/s, ${round(connectSeconds, 1)} s to connect ${conns.length}`],
      ['swipes/s', fmt(results.swipesPerSecond)],
      ['latency p50 / p90 / p99 / max', `${ms(l.p50)} / ${ms(l.p90)} / ${ms(l.p99)} / ${ms(l.max)}`],
      ['errors', JSON.stringify(errors)],
      ['matches (answers / events)', `${matched} / ${matchEvents}`],
      ['connections closed', JSON.stringify(closes)],
      ...serverCostRows(results, { label: 'swipes per server CPU-second', value: results.swipesPerServerCpuSecond }, machine),
    ]);
    writeScenarioResult('swipes', flags, {
      startedAt: start,
      params: { users: userCount, concurrency, duration, warmup, likeShare, protocol },
      machine,
      server,
      setup: { register, profile, connect: { connections: conns.length, seconds: round(connectSeconds, 2) } },
      results,
      samples: sampler.samples,
    });
  });
}
