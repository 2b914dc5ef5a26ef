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
import { connectAll, type BenchConn, type Target } from '../lib/conn.js';
import { Latency, nowMs, watchLoopDelay } from '../lib/hist.js';
import { ProcSampler, type ProcSnapshot, machineInfo, procSnapshot, round, summarizeSamples, selfCpuSeconds } from '../lib/proc.js';
import { fmt, log, ms, printTable, sleep, writeResult } from '../lib/report.js';
import { gitInfo, resolveEntry, scrapeMetrics, startServer } from '../lib/server.js';
import { registerUsers } from '../lib/setup.js';

export async function swipes(o: Options): Promise<void> {
  const userCount = o.num('users', 1000);
  const concurrency = o.num('concurrency', 128);
  const duration = o.num('duration', 20);
  const warmup = o.num('warmup', 3);
  const likeShare = o.num('like', 0.5);
  const protocol = o.str('protocol', 'ws', ['ws', 'tcp'] as const);
  const setupConcurrency = o.num('setup-concurrency', 50);
  const entryFlag = o.str('server-entry', '');
  const keepData = o.bool('keep-data');
  o.checkUnknown();
  if (userCount < 2) throw new Error('--users must be at least 2');

  const machine = machineInfo();
  const { warning } = resolveEntry(entryFlag || undefined);
  if (warning) log(`warning: ${warning}`);
  const server = await startServer({ entry: entryFlag || undefined, keepData, config: o.serverConfig() });
  log(`server pid ${server.pid} on http ${server.httpPort}, tcp ${server.tcpPort} (${server.entry})`);
  const conns: BenchConn[] = [];
  try {
    log(`setup: ${userCount} users with profiles over REST`);
    const { users, register, profile } = await registerUsers(server.base, userCount, { prefix: 'swiper', concurrency: setupConcurrency, profiles: true });
    const target: Target = { protocol, wsUrl: server.wsUrl, host: '127.0.0.1', tcpPort: server.tcpPort };
    const connectStart = performance.now();
    conns.push(...(await connectAll(target, users.map((u) => u.token), { concurrency: 100 })));
    const connectSeconds = (performance.now() - connectStart) / 1000;
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

    const sampler = new ProcSampler(server.pid).start();
    const loop = watchLoopDelay();
    const start = nowMs();
    const measureStart = start + warmup * 1000;
    const end = measureStart + duration * 1000;
    let measuring = false;
    let snapStart: ProcSnapshot | undefined;
    let selfStart = 0;
    log(`swiping for ${warmup} + ${duration} s with ${concurrency} in flight`);
    await new Promise<void>((resolve) => {
      let running = concurrency;
      const next = () => {
        const now = nowMs();
        if (!measuring && now >= measureStart) {
          measuring = true;
          snapStart = procSnapshot(server.pid);
          selfStart = selfCpuSeconds();
        }
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
    const snapEnd = procSnapshot(server.pid);
    const selfEnd = selfCpuSeconds();
    sampler.stop();
    const loadGenLoopDelay = loop.stop();
    await sleep(200); // let the last match events arrive
    const measuredSeconds = (nowMs() - 200 - measureStart) / 1000;
    const serverCpu = snapEnd.cpuSeconds - snapStart!.cpuSeconds;
    const wallSeconds = (snapEnd.at - snapStart!.at) / 1000;
    const eventLoop = {
      /** share of wall time the server's main thread ran on a CPU */
      running: round((snapEnd.mainRunSeconds - snapStart!.mainRunSeconds) / wallSeconds, 2),
      /** share of wall time it was runnable but waiting for a CPU (taken by other processes) */
      waitingForCpu: round((snapEnd.mainWaitSeconds - snapStart!.mainWaitSeconds) / wallSeconds, 2),
    };
    const l = latency.summary();
    const problems = server.problems();
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
      serverCpuSeconds: round(serverCpu, 2),
      serverMainThread: eventLoop,
      serverCpuCores: round(serverCpu / measuredSeconds, 2),
      swipesPerServerCpuSecond: Math.round(okMeasured / serverCpu),
      loadGenCpuSeconds: round(selfEnd - selfStart, 2),
      loadGenLoopDelayMs: loadGenLoopDelay,
      serverRssKiBEnd: procSnapshot(server.pid).rssKiB,
      contention: summarizeSamples(sampler.samples, warmup, warmup + duration),
      serverLog: problems,
      serverMetrics: metrics,
    };
    printTable(`swipes: ${userCount} users over ${protocol}, ${concurrency} in flight, ${duration} s, ${Math.round(likeShare * 100)}% likes`, [
      ['setup', `${fmt(register.perSecond)} reg/s, ${fmt(profile!.perSecond)} profiles/s, ${round(connectSeconds, 1)} s to connect ${conns.length}`],
      ['swipes/s', fmt(results.swipesPerSecond)],
      ['latency p50 / p90 / p99 / max', `${ms(l.p50)} / ${ms(l.p90)} / ${ms(l.p99)} / ${ms(l.max)}`],
      ['errors', JSON.stringify(errors)],
      ['matches (answers / events)', `${matched} / ${matchEvents}`],
      ['connections closed', JSON.stringify(closes)],
      ['server CPU', `${round(serverCpu, 2)} s (${results.serverCpuCores} cores)`],
      ['swipes per server CPU-second', fmt(results.swipesPerServerCpuSecond)],
      ['server main thread running / waiting for CPU', `${Math.round(eventLoop.running * 100)}% / ${Math.round(eventLoop.waitingForCpu * 100)}% of wall time`],
      ['load generator CPU / loop delay p99', `${round(selfEnd - selfStart, 2)} s / ${ms(loadGenLoopDelay.p99)}`],
      ['server warnings / errors', `${problems.warnings} / ${problems.errors}`],
      ['other tenants (mean cores) / CPU pressure', `${results.contention.otherCores} / ${Math.round(results.contention.cpuPressure * 100)}%`],
      ['machine load avg at start', machine.loadavg.join(' ')],
    ]);
    const file = writeResult('swipes', {
      scenario: 'swipes',
      startedAt: new Date(start).toISOString(),
      argv: process.argv.slice(2),
      params: { users: userCount, concurrency, duration, warmup, likeShare, protocol },
      machine,
      server: { entry: server.entry, config: server.config, git: gitInfo() },
      setup: { register, profile, connect: { connections: conns.length, seconds: round(connectSeconds, 2) } },
      results,
      samples: sampler.samples,
    });
    log(`wrote ${file}`);
  } finally {
    for (const c of conns) c.close();
    await server.stop();
  }
}
