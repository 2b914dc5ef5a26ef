/**
 * chat: N matched pairs, both users of each pair online (one native connection
 * each); messages are sent at a fixed aggregate rate, open loop: message k is due
 * at t0 + k/rate and is sent then whatever happened to earlier ones (no waiting for
 * acks). Latencies are measured from the intended send time, so a stalled server
 * or a late load generator shows up in the figures (no coordinated omission).
 *
 * Message k goes within pair k mod N, alternating direction; its body carries
 * `k|<intended send time, epoch ms>|padding`. Delivery latency = receive time at
 * the recipient - intended send time; ack latency = reply to message.send -
 * intended send time. Recipients send no receipts (that would double the load),
 * so every message stays "undelivered" on the server's books: that is fine here.
 */
import { Options } from '../lib/args.js';
import { connectAll, type BenchConn, type Target } from '../lib/conn.js';
import { Latency, nowMs, watchLoopDelay } from '../lib/hist.js';
import { ProcSampler, type ProcSnapshot, machineInfo, procSnapshot, round, summarizeSamples, selfCpuSeconds } from '../lib/proc.js';
import { fmt, log, ms, printTable, sleep, writeResult } from '../lib/report.js';
import { gitInfo, resolveEntry, scrapeMetrics, startServer } from '../lib/server.js';
import { matchedPairs } from '../lib/setup.js';

export async function chatNative(o: Options): Promise<void> {
  const pairs = o.num('pairs', 1000);
  const rate = o.num('rate', 5000);
  const duration = o.num('duration', 20);
  const warmup = o.num('warmup', 3);
  const protocol = o.str('protocol', 'ws', ['ws', 'tcp'] as const);
  const bodySize = o.num('body', 64);
  const drainSeconds = o.num('drain', 30);
  const setupConcurrency = o.num('setup-concurrency', 50);
  const entryFlag = o.str('server-entry', '');
  const keepData = o.bool('keep-data');
  o.checkUnknown();

  const machine = machineInfo();
  const { warning } = resolveEntry(entryFlag || undefined);
  if (warning) log(`warning: ${warning}`);
  const server = await startServer({ entry: entryFlag || undefined, keepData, config: o.serverConfig() });
  log(`server pid ${server.pid} on http ${server.httpPort}, tcp ${server.tcpPort} (${server.entry})`);
  const conns: BenchConn[] = [];
  try {
    log(`setup: ${pairs} matched pairs over REST`);
    const setup = await matchedPairs(server.base, pairs, setupConcurrency);
    const users = setup.pairs.flatMap(([a, b]) => [a, b]);
    log(`setup: ${fmt(setup.timing.register!.perSecond)} registrations/s; connecting ${users.length} ${protocol} sessions`);
    const target: Target = { protocol, wsUrl: server.wsUrl, host: '127.0.0.1', tcpPort: server.tcpPort };
    const connectStart = performance.now();
    conns.push(...(await connectAll(target, users.map((u) => u.token), { concurrency: 100 })));
    const connectSeconds = (performance.now() - connectStart) / 1000;

    const total = Math.round(rate * (warmup + duration));
    const warmN = Math.round(rate * warmup);
    const interval = 1000 / rate;
    const pad = 'x'.repeat(Math.max(0, bodySize - 24));
    const acked = new Uint8Array(total);
    const received = new Uint8Array(total);
    const delivery = new Latency();
    const ack = new Latency();
    const sendLag = new Latency();
    const ackErrors: Record<string, number> = {};
    let ackedCount = 0;
    let errorCount = 0;
    let receivedCount = 0;
    /** messages both acked and received */
    let ackedReceived = 0;
    let receivedMeasured = 0;
    let duplicates = 0;
    let misrouted = 0;
    let otherEvents = 0;
    let lastReceiveAt = 0;
    const closes: Record<string, number> = {};

    conns.forEach((c, i) => {
      const me = users[i]!.userId;
      c.onClose = (reason) => {
        closes[reason] = (closes[reason] ?? 0) + 1;
      };
      c.onEvent = (e) => {
        if (e.type !== 'message') {
          otherEvents++;
          return;
        }
        const now = nowMs();
        const body = e.message.body as string;
        const a = body.indexOf('|');
        const b = body.indexOf('|', a + 1);
        const k = Number(body.slice(0, a));
        if (e.message.to !== me) misrouted++;
        if (received[k]) {
          duplicates++;
          return;
        }
        received[k] = 1;
        receivedCount++;
        if (acked[k]) ackedReceived++;
        if (k >= warmN) {
          delivery.recordMs(now - Number(body.slice(a + 1, b)));
          receivedMeasured++;
          lastReceiveAt = now;
        }
      };
    });

    const sampler = new ProcSampler(server.pid).start();
    const loop = watchLoopDelay();
    log(`sending ${fmt(total)} messages at ${fmt(rate)}/s (${warmup} s warm-up, ${duration} s measured)`);
    const t0 = nowMs() + 20;
    let measureStart = 0;
    let snapStart: ProcSnapshot | undefined;
    let selfStart = 0;
    let lastSendAt = 0;
    let k = 0;
    const sendOne = (k: number) => {
      const p = k % pairs;
      const dir = Math.floor(k / pairs) & 1;
      const from = conns[2 * p + dir]!;
      const to = users[2 * p + 1 - dir]!.userId;
      const intended = t0 + k * interval;
      const sentAt = nowMs();
      if (k >= warmN) sendLag.recordMs(sentAt - intended);
      lastSendAt = sentAt;
      from.call('message.send', { to, body: `${k}|${intended.toFixed(3)}|${pad}` }, (err) => {
        const now = nowMs();
        if (err) {
          errorCount++;
          ackErrors[err.code] = (ackErrors[err.code] ?? 0) + 1;
          return;
        }
        acked[k] = 1;
        ackedCount++;
        if (received[k]) ackedReceived++;
        if (k >= warmN) ack.recordMs(now - intended);
      });
    };
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = nowMs();
        const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
        while (k < due) {
          if (k === warmN) {
            measureStart = t0 + warmN * interval;
            snapStart = procSnapshot(server.pid);
            selfStart = selfCpuSeconds();
          }
          sendOne(k++);
        }
        if (k < total) setTimeout(tick, 1);
        else resolve();
      };
      setTimeout(tick, Math.max(0, t0 - nowMs()));
    });
    const sendEnd = t0 + total * interval;
    // Drain: wait for the outstanding acks and deliveries. Stop when everything is
    // settled, or nothing arrived for 3 s and the server's actor mailboxes are empty,
    // or after --drain seconds (an overloaded server may still hold a backlog then:
    // what is missing is reported as "not received", and only called lost if the
    // server had nothing queued any more).
    log(`all sent; draining (up to ${drainSeconds} s)`);
    const drainStart = nowMs();
    const drainDeadline = drainStart + drainSeconds * 1000;
    let lastProgress = nowMs();
    let seen = -1;
    let snapEnd: ProcSnapshot | undefined;
    let selfEnd = 0;
    let mailboxDepth = NaN;
    while (nowMs() < drainDeadline) {
      const settled = ackedCount + errorCount >= total && ackedReceived >= ackedCount;
      if (settled && !snapEnd) {
        snapEnd = procSnapshot(server.pid);
        selfEnd = selfCpuSeconds();
      }
      if (settled) break;
      const progress = ackedCount + errorCount + receivedCount;
      if (progress !== seen) {
        seen = progress;
        lastProgress = nowMs();
      } else if (nowMs() - lastProgress > 3000) {
        mailboxDepth = (await scrapeMetrics(server.base).catch(() => ({}) as Record<string, number>))['kindred_mailbox_depth'] ?? NaN;
        if (mailboxDepth === 0) break;
      }
      await sleep(20);
    }
    const drainedSeconds = (nowMs() - drainStart) / 1000;
    if (!snapEnd) {
      snapEnd = procSnapshot(server.pid);
      selfEnd = selfCpuSeconds();
    }
    sampler.stop();
    const loadGenLoopDelay = loop.stop();
    let notReceived = 0;
    let unacked = 0;
    let receivedUnacked = 0;
    for (let i = 0; i < total; i++) {
      if (acked[i] && !received[i]) notReceived++;
      if (!acked[i]) {
        unacked++;
        if (received[i]) receivedUnacked++;
      }
    }
    unacked -= errorCount;
    const metrics: Record<string, number> = await scrapeMetrics(server.base).catch(() => ({}));
    mailboxDepth = metrics['kindred_mailbox_depth'] ?? mailboxDepth;
    // Missing messages are lost only if the server has nothing left queued that could still deliver them.
    const lost = mailboxDepth === 0 ? notReceived : 0;
    const lostVerdict = notReceived === 0 ? 'none' : mailboxDepth === 0 ? 'lost' : 'undetermined: server backlog';
    const windowEnd = Math.max(lastReceiveAt, sendEnd);
    const measuredSeconds = (windowEnd - measureStart) / 1000;
    const serverCpu = snapEnd.cpuSeconds - snapStart!.cpuSeconds;
    const wallSeconds = (snapEnd.at - snapStart!.at) / 1000;
    const eventLoop = {
      /** share of wall time the server's main thread ran on a CPU */
      running: round((snapEnd.mainRunSeconds - snapStart!.mainRunSeconds) / wallSeconds, 2),
      /** share of wall time it was runnable but waiting for a CPU (taken by other processes) */
      waitingForCpu: round((snapEnd.mainWaitSeconds - snapStart!.mainWaitSeconds) / wallSeconds, 2),
    };
    const deliveredPerSecond = receivedMeasured / measuredSeconds;
    const sentMeasured = total - warmN;
    const sendSeconds = (lastSendAt - measureStart) / 1000;
    const d = delivery.summary();
    const a = ack.summary();
    const lag = sendLag.summary();
    const problems = server.problems();

    const results = {
      offeredRate: rate,
      sent: total,
      sentMeasured,
      achievedSendRate: Math.round(sentMeasured / sendSeconds),
      deliveredMeasured: receivedMeasured,
      deliveredPerSecond: Math.round(deliveredPerSecond),
      measuredSeconds: round(measuredSeconds, 2),
      deliveryLatencyMs: d,
      ackLatencyMs: a,
      sendLagMs: lag,
      acked: ackedCount,
      ackErrors,
      unacked,
      /** acked but not received when the run ended */
      notReceived,
      /** notReceived, if the server's actor mailboxes were empty at the end (else 0 and see lostVerdict) */
      lost,
      lostVerdict,
      serverMailboxDepthAtEnd: mailboxDepth,
      drainSeconds: round(drainedSeconds, 1),
      /** messages the client was told failed (e.g. TIMEOUT) that were delivered anyway */
      receivedUnacked,
      duplicates,
      misrouted,
      otherEvents,
      connectionsClosed: closes,
      serverCpuSeconds: round(serverCpu, 2),
      serverMainThread: eventLoop,
      serverCpuCores: round(serverCpu / measuredSeconds, 2),
      msgsPerServerCpuSecond: Math.round(receivedMeasured / serverCpu),
      loadGenCpuSeconds: round(selfEnd - selfStart, 2),
      loadGenLoopDelayMs: loadGenLoopDelay,
      serverRssKiBEnd: procSnapshot(server.pid).rssKiB,
      contention: summarizeSamples(sampler.samples, warmup, warmup + duration),
      serverLog: problems,
      serverMetrics: metrics,
    };
    printTable(`chat: ${pairs} pairs over ${protocol}, ${fmt(rate)} msgs/s offered for ${duration} s (open loop, no receipts)`, [
      ['setup', `${fmt(setup.timing.register!.perSecond)} reg/s, ${round(connectSeconds, 1)} s to connect ${conns.length}`],
      ['sent / achieved send rate', `${fmt(sentMeasured)} / ${fmt(results.achievedSendRate)} msgs/s (max send lag ${ms(lag.max)})`],
      ['delivered msgs/s', fmt(results.deliveredPerSecond)],
      ['delivery p50 / p90 / p99 / max', `${ms(d.p50)} / ${ms(d.p90)} / ${ms(d.p99)} / ${ms(d.max)}`],
      ['ack p50 / p99', `${ms(a.p50)} / ${ms(a.p99)}`],
      ['acked but not received / verdict', `${notReceived} / ${lostVerdict} (server mailbox depth at end ${mailboxDepth}, drained ${round(drainedSeconds, 1)} s)`],
      ['failed acks delivered anyway', receivedUnacked],
      ['unacked / ack errors', `${unacked} / ${JSON.stringify(ackErrors)}`],
      ['duplicates / misrouted', `${duplicates} / ${misrouted}`],
      ['connections closed', JSON.stringify(closes)],
      ['server CPU', `${round(serverCpu, 2)} s (${round(serverCpu / measuredSeconds, 2)} cores)`],
      ['msgs per server CPU-second', fmt(results.msgsPerServerCpuSecond)],
      ['server main thread running / waiting for CPU', `${Math.round(eventLoop.running * 100)}% / ${Math.round(eventLoop.waitingForCpu * 100)}% of wall time`],
      ['load generator CPU / loop delay p99', `${round(selfEnd - selfStart, 2)} s / ${ms(loadGenLoopDelay.p99)}`],
      ['server warnings / errors', `${problems.warnings} / ${problems.errors}`],
      ['other tenants (mean cores) / CPU pressure', `${results.contention.otherCores} / ${Math.round(results.contention.cpuPressure * 100)}%`],
      ['machine load avg at start', machine.loadavg.join(' ')],
    ]);
    const file = writeResult('chat-native', {
      scenario: 'chat-native',
      startedAt: new Date(t0).toISOString(),
      argv: process.argv.slice(2),
      params: { pairs, rate, duration, warmup, protocol, bodySize, drainSeconds },
      machine,
      server: { entry: server.entry, config: server.config, git: gitInfo() },
      setup: { ...setup.timing, connect: { connections: conns.length, seconds: round(connectSeconds, 2) } },
      results,
      samples: sampler.samples,
    });
    log(`wrote ${file}`);
    if (lost > 0) process.exitCode = 3;
    else if (notReceived > 0) process.exitCode = 4;
  } finally {
    for (const c of conns) c.close();
    await server.stop();
  }
}
