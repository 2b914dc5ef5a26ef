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
import type { Options } from '../lib/args.js';
import { nowMs, watchLoopDelay } from '../lib/hist.js';
import { drain, PairChat } from '../lib/native-chat.js';
import { eventsIn, runOpenLoop } from '../lib/open-loop.js';
import { ProcSampler, round, summarizeSamples } from '../lib/proc.js';
import { fmt, log, ms, printTable } from '../lib/report.js';
import { CostWindow, nativeTarget, openSessions, scenarioFlags, serverCost, serverCostRows, withScenarioServer, writeScenarioResult } from '../lib/scenario.js';
import { scrapeMetrics } from '../lib/server.js';
import { matchedPairs } from '../lib/setup.js';

export async function chatNative(o: Options): Promise<void> {
  const pairs = o.num('pairs', 1000);
  const rate = o.num('rate', 5000);
  const duration = o.num('duration', 20);
  const warmup = o.num('warmup', 3);
  const protocol = o.str('protocol', 'ws', ['ws', 'tcp'] as const);
  const bodySize = o.num('body', 64);
  const drainSeconds = o.num('drain', 30);
  const flags = scenarioFlags(o);
  o.checkUnknown();

  await withScenarioServer(flags, {}, async ({ server, machine, conns }) => {
    log(`setup: ${pairs} matched pairs over REST`);
    const setup = await matchedPairs(server.base, pairs, flags.setupConcurrency);
    const users = setup.pairs.flatMap(([a, b]) => [a, b]);
    log(`setup: ${fmt(setup.timing.register!.perSecond)} registrations/s; connecting ${users.length} ${protocol} sessions`);
    const { seconds: connectSeconds } = await openSessions(nativeTarget(server, protocol), users.map((u) => u.token), conns);

    const total = eventsIn(rate, warmup + duration);
    const warmN = eventsIn(rate, warmup);
    const chat = new PairChat(users.map((u) => u.userId), conns, total, warmN, bodySize);
    const cost = new CostWindow(server.pid);
    const sampler = new ProcSampler(server.pid).start();
    const loop = watchLoopDelay();
    log(`sending ${fmt(total)} messages at ${fmt(rate)}/s (${warmup} s warm-up, ${duration} s measured)`);
    const t0 = nowMs() + 20;
    const measureStart = t0 + warmN * (1000 / rate);
    await runOpenLoop(
      [
        {
          rate,
          total,
          fire: (k, intended) => {
            if (k === warmN) cost.open();
            chat.send(k, intended);
          },
        },
      ],
      t0,
    );
    const sendEnd = t0 + total * (1000 / rate);
    // Drain: wait for the outstanding acks and deliveries. What is still missing after it
    // is reported as "not received", and only called lost if the server had nothing queued.
    log(`all sent; draining (up to ${drainSeconds} s)`);
    const drained = await drain({ settled: () => chat.settled(), progress: () => chat.progress(), seconds: drainSeconds, base: server.base, onSettled: () => cost.close() });
    cost.close();
    sampler.stop();
    const loadGenLoopDelay = loop.stop();
    const { notReceived, unacked, receivedUnacked } = chat.outcome();
    const metrics: Record<string, number> = await scrapeMetrics(server.base).catch(() => ({}));
    const mailboxDepth = metrics['kindred_mailbox_depth'] ?? drained.mailboxDepth;
    // Missing messages are lost only if the server has nothing left queued that could still deliver them.
    const lost = mailboxDepth === 0 ? notReceived : 0;
    const lostVerdict = notReceived === 0 ? 'none' : mailboxDepth === 0 ? 'lost' : 'undetermined: server backlog';
    const windowEnd = Math.max(chat.lastReceiveAt, sendEnd);
    const measuredSeconds = (windowEnd - measureStart) / 1000;
    const deliveredPerSecond = chat.receivedMeasured / measuredSeconds;
    const sentMeasured = total - warmN;
    const sendSeconds = (chat.lastSendAt - measureStart) / 1000;
    const d = chat.delivery.summary();
    const a = chat.ack.summary();
    const lag = chat.sendLag.summary();

    const results = {
      offeredRate: rate,
      sent: total,
      sentMeasured,
      achievedSendRate: Math.round(sentMeasured / sendSeconds),
      deliveredMeasured: chat.receivedMeasured,
      deliveredPerSecond: Math.round(deliveredPerSecond),
      measuredSeconds: round(measuredSeconds, 2),
      deliveryLatencyMs: d,
      ackLatencyMs: a,
      sendLagMs: lag,
      acked: chat.ackedCount,
      ackErrors: chat.ackErrors,
      unacked,
      /** acked but not received when the run ended */
      notReceived,
      /** notReceived, if the server's actor mailboxes were empty at the end (else 0 and see lostVerdict) */
      lost,
      lostVerdict,
      serverMailboxDepthAtEnd: mailboxDepth,
      drainSeconds: round(drained.seconds, 1),
      /** messages the client was told failed (e.g. TIMEOUT) that were delivered anyway */
      receivedUnacked,
      duplicates: chat.duplicates,
      misrouted: chat.misrouted,
      otherEvents: chat.otherEvents,
      connectionsClosed: chat.closes,
      ...serverCost(cost, server.pid, 'msgsPerServerCpuSecond', {
        ops: chat.receivedMeasured,
        measuredSeconds,
        loadGenLoopDelayMs: loadGenLoopDelay,
        contention: summarizeSamples(sampler.samples, warmup, warmup + duration),
        serverLog: server.problems(),
        serverMetrics: metrics,
      }),
    };
    printTable(`chat: ${pairs} pairs over ${protocol}, ${fmt(rate)} msgs/s offered for ${duration} s (open loop, no receipts)`, [
      ['setup', `${fmt(setup.timing.register!.perSecond)} reg/s, ${round(connectSeconds, 1)} s to connect ${conns.length}`],
      ['sent / achieved send rate', `${fmt(sentMeasured)} / ${fmt(results.achievedSendRate)} msgs/s (max send lag ${ms(lag.max)})`],
      ['delivered msgs/s', fmt(results.deliveredPerSecond)],
      ['delivery p50 / p90 / p99 / max', `${ms(d.p50)} / ${ms(d.p90)} / ${ms(d.p99)} / ${ms(d.max)}`],
      ['ack p50 / p99', `${ms(a.p50)} / ${ms(a.p99)}`],
      ['acked but not received / verdict', `${notReceived} / ${lostVerdict} (server mailbox depth at end ${mailboxDepth}, drained ${round(drained.seconds, 1)} s)`],
      ['failed acks delivered anyway', receivedUnacked],
      ['unacked / ack errors', `${unacked} / ${JSON.stringify(chat.ackErrors)}`],
      ['duplicates / misrouted', `${chat.duplicates} / ${chat.misrouted}`],
      ['connections closed', JSON.stringify(chat.closes)],
      ...serverCostRows(results, { label: 'msgs per server CPU-second', value: results.msgsPerServerCpuSecond }, machine),
    ]);
    writeScenarioResult('chat-native', flags, {
      startedAt: t0,
      params: { pairs, rate, duration, warmup, protocol, bodySize, drainSeconds },
      machine,
      server,
      setup: { ...setup.timing, connect: { connections: conns.length, seconds: round(connectSeconds, 2) } },
      results,
      samples: sampler.samples,
    });
    if (lost > 0) process.exitCode = 3;
    else if (notReceived > 0) process.exitCode = 4;
  });
}
